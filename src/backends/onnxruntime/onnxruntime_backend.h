// The ONNX Runtime backend (`backend: onnxruntime`).
//
// Each instance is one Ort::Session created from <version>/model.onnx (or
// the config's default_model_filename) with the config's graph
// optimisation level and execution provider. optimization.precision int8 or
// fp16 serves the quantized copy beside it (model.int8.onnx,
// model.fp16.onnx: `braid models quantize`), except under TensorRT, which
// lowers the FP32 file's precision itself.
//
// Threads: every session whose intra_op_threads reaches the process's
// compute budget (core/compute_budget.h) runs on ONNX Runtime's global
// intra-op pool of that many threads, which does not spin: a lone run uses
// all of them, concurrent runs share them. intra_op_threads stays an upper
// bound: a session that asks for fewer (or for inter_op_threads above 1)
// gets its own pool of that size, also without spinning; 1 means the
// calling thread alone. Those pools run in the budget's regular tier of OS
// priority; a priority instance's session (instance_group.priority_instances)
// gets a pool of its own at the process's priority, so that an urgent batch
// beside a regular one is not slowed by sharing its threads; a background
// instance's session (instance_group.background_instances) computes on the
// calling thread alone, the scheduler's background worker at the idle
// priority. At load the backend checks the config's inputs and outputs
// against those the ONNX file declares and runs one warm-up batch per
// instance. Inputs are bound to ONNX Runtime without copying (the tensors'
// buffers are handed to it directly) and outputs are wrapped, not copied,
// when they come back. An instance can stop its run in progress
// (ModelInstance::Preempt, for dynamic_batching.preempt): ONNX Runtime's
// terminate flag ends it between two of the graph's nodes.
#pragma once

#include <filesystem>
#include <memory>
#include <span>
#include <string_view>

#include "model/backend.h"

namespace braid {

inline constexpr char kOnnxRuntimeBackend[] = "onnxruntime";

BackendFactory MakeOnnxRuntimeBackend();

// The file of `version_dir` that serves `precision`: the config's
// default_model_filename (model.onnx unless set) for FP32, its quantized copy
// beside it for INT8 or FP16 (model.int8.onnx, model.fp16.onnx), as
// `braid models quantize` writes it.
std::filesystem::path OnnxModelFile(const ModelConfig& config,
                                    const std::filesystem::path& version_dir,
                                    Optimization::Precision precision);

// For baselines (bench_workflows --per-model-pools): each session gets its
// own pool sized by its config, spinning as ONNX Runtime does by default,
// as braid did before the shared budget. Call before the first model loads.
void UsePerSessionThreadPools();

// The version of the ONNX Runtime library in use, e.g. "1.21.0".
std::string OnnxRuntimeVersion();

// A tensor an ONNX model declares; a dim below 0 is variable.
struct OnnxTensorInfo {
  std::string name;
  DataType datatype;
  Shape dims;
};

// An ONNX model held in memory and run outside the model repository, on the
// process's compute budget (the global pool): for tools such as
// `braid quantize` that run a model beside a transformed copy of it.
class OnnxModelRunner {
 public:
  virtual ~OnnxModelRunner() = default;
  virtual const std::vector<OnnxTensorInfo>& inputs() const = 0;
  virtual const std::vector<OnnxTensorInfo>& outputs() const = 0;
  // Runs the model on `inputs`, in inputs() order; all outputs, in outputs() order.
  virtual Result<std::vector<Tensor>> Run(std::span<const Tensor> inputs) = 0;
};

// InvalidArgument when ONNX Runtime cannot load `bytes`.
Result<std::unique_ptr<OnnxModelRunner>> OpenOnnxModel(std::string_view bytes);

}  // namespace braid
