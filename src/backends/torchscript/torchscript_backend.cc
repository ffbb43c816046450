#include "backends/torchscript/torchscript_backend.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/version.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <mutex>

#include "core/compute_budget.h"

#if BRAID_TORCH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace braid {
namespace {

namespace fs = std::filesystem;

Result<c10::ScalarType> TorchType(DataType type) {
  switch (type) {
    case DataType::kBool:
      return c10::ScalarType::Bool;
    case DataType::kUint8:
      return c10::ScalarType::Byte;
    case DataType::kInt32:
      return c10::ScalarType::Int;
    case DataType::kInt64:
      return c10::ScalarType::Long;
    case DataType::kFp16:
      return c10::ScalarType::Half;
    case DataType::kFp32:
      return c10::ScalarType::Float;
    case DataType::kBytes:
      break;
  }
  return InvalidArgument("a TorchScript module takes no {} tensors", DataTypeName(type));
}

class TorchScriptInstance : public ModelInstance {
 public:
  TorchScriptInstance(torch::jit::Module module, const ModelConfig& config, c10::Device device,
                      bool half)
      : module_(std::move(module)), outputs_(config.outputs), device_(device), half_(half) {}

  // ModelInstance
  Status Execute(std::span<const Tensor> inputs, std::vector<Tensor>* outputs) override {
    try {
      c10::InferenceMode inference;
      std::vector<c10::IValue> arguments;
      for (const Tensor& input : inputs) {
        BRAID_ASSIGN_OR_RETURN(c10::ScalarType type, TorchType(input.dtype()));
        const std::vector<std::int64_t> sizes(input.shape().begin(), input.shape().end());
        // A copy the module owns: it may write its inputs in place, and an
        // output may be a view of one, which must outlive the request's buffers.
        at::Tensor tensor = torch::from_blob(const_cast<std::byte*>(input.data()), sizes,
                                             torch::TensorOptions().dtype(type))
                                .clone();
        if (device_ != c10::Device(c10::kCPU)) tensor = tensor.to(device_);
        if (half_ && type == c10::ScalarType::Float) tensor = tensor.to(c10::ScalarType::Half);
        arguments.emplace_back(std::move(tensor));
      }
      BRAID_ASSIGN_OR_RETURN(std::vector<at::Tensor> results, Forward(arguments));
      outputs->clear();
      for (std::size_t o = 0; o < outputs_.size(); ++o) {
        at::Tensor result = results[o];
        if (half_ && result.scalar_type() == c10::ScalarType::Half &&
            outputs_[o].datatype == DataType::kFp32)
          result = result.to(c10::ScalarType::Float);
        // A copy on the CPU (a graph's outputs are overwritten by its next replay).
        result = result.to(c10::kCPU).contiguous();
        BRAID_ASSIGN_OR_RETURN(c10::ScalarType wanted, TorchType(outputs_[o].datatype));
        if (result.scalar_type() != wanted) {
          return InvalidArgument("output '{}' came back as {}, not {}", outputs_[o].name,
                                 c10::toString(result.scalar_type()),
                                 DataTypeName(outputs_[o].datatype));
        }
        auto owner = std::make_shared<at::Tensor>(std::move(result));
        const Shape shape(owner->sizes().begin(), owner->sizes().end());
        outputs->push_back(Tensor::Wrap(outputs_[o].datatype, shape,
                                        static_cast<std::byte*>(owner->data_ptr()), owner->nbytes(),
                                        owner));
      }
      return Status::Ok();
    } catch (const c10::Error& e) {
      return InvalidArgument("the TorchScript module failed: {}", e.what_without_backtrace());
    } catch (const std::exception& e) {  // the interpreter's own errors
      return InvalidArgument("the TorchScript module failed: {}", e.what());
    }
  }

#if BRAID_TORCH_CUDA
  // Captures forward() as a CUDA graph for each batch size, on zeros: a
  // batch of that size then replays it, one launch for the whole module,
  // instead of one per kernel. Needs every input's dims fixed (checked at
  // load).
  Status CaptureGraphs(const ModelConfig& config, const std::vector<std::int64_t>& sizes) {
    c10::InferenceMode inference;
    for (std::int64_t batch : sizes) {
      auto graph = std::make_unique<Graph>();
      std::vector<c10::IValue> arguments;
      for (const auto& spec : config.inputs) {
        BRAID_ASSIGN_OR_RETURN(c10::ScalarType type, TorchType(spec.datatype));
        if (half_ && type == c10::ScalarType::Float) type = c10::ScalarType::Half;
        std::vector<std::int64_t> sizes_of{batch};
        sizes_of.insert(sizes_of.end(), spec.dims.begin(), spec.dims.end());
        graph->inputs.push_back(
            torch::zeros(sizes_of, torch::TensorOptions().dtype(type).device(device_)));
        arguments.emplace_back(graph->inputs.back());
      }
      BRAID_ASSIGN_OR_RETURN(c10::IValue captured, Capture(graph->graph, arguments));
      BRAID_ASSIGN_OR_RETURN(graph->outputs, Results(captured));
      graphs_[batch] = std::move(graph);
    }
    return Status::Ok();
  }
#endif

 private:
#if BRAID_TORCH_CUDA
  // forward() captured into `graph`, as torch.cuda.graph does it: warm-up
  // runs on a side stream (the JIT profiles its first runs), then the
  // capture on the same stream. A capture that fails is ended, so that the
  // stream does not stay in capture mode.
  Result<c10::IValue> Capture(at::cuda::CUDAGraph& graph, std::vector<c10::IValue>& arguments) {
    c10::cuda::getCurrentCUDAStream().synchronize();  // the zeros are written
    c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool();
    c10::cuda::CUDAStreamGuard on_stream(stream);
    bool capturing = false;
    try {
      for (int run = 0; run < 3; ++run) module_.forward(arguments);
      stream.synchronize();
#if TORCH_VERSION_MAJOR >= 2
      // Thread-local: other threads' CUDA calls stay legal meanwhile.
      graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
#else
      graph.capture_begin();
#endif
      capturing = true;
      c10::IValue captured = module_.forward(arguments);
      capturing = false;
      graph.capture_end();
      stream.synchronize();
      return captured;
    } catch (const std::exception& e) {
      if (capturing) {
        try {
          graph.capture_end();
        } catch (const std::exception&) {  // the capture was invalid: ended all the same
        }
      }
      const auto* error = dynamic_cast<const c10::Error*>(&e);
      return InvalidArgument("capturing a CUDA graph failed: {}",
                             error != nullptr ? error->what_without_backtrace() : e.what());
    }
  }
#endif

  // forward() on the batch: a captured graph's replay when its batch size
  // has one, else the module.
  Result<std::vector<at::Tensor>> Forward(std::vector<c10::IValue>& arguments) {
#if BRAID_TORCH_CUDA
    if (!graphs_.empty() && !arguments.empty()) {
      auto found = graphs_.find(arguments.front().toTensor().size(0));
      if (found != graphs_.end()) {
        Graph& graph = *found->second;
        for (std::size_t i = 0; i < arguments.size(); ++i)
          graph.inputs[i].copy_(arguments[i].toTensor());
        graph.graph.replay();
        return graph.outputs;
      }
    }
#endif
    return Results(module_.forward(arguments));
  }

  // forward()'s value as one tensor per config output, in config order.
  Result<std::vector<at::Tensor>> Results(const c10::IValue& value) const {
    std::vector<at::Tensor> tensors;
    if (value.isTensor()) {
      tensors.push_back(value.toTensor());
    } else if (value.isTuple()) {
      for (const auto& element : value.toTupleRef().elements()) {
        if (!element.isTensor())
          return InvalidArgument("forward() returned a non-tensor in a tuple");
        tensors.push_back(element.toTensor());
      }
    } else if (value.isTensorList()) {
      tensors = value.toTensorVector();
    } else if (value.isGenericDict()) {
      const auto dict = value.toGenericDict();
      for (const auto& spec : outputs_) {
        auto found = dict.find(spec.name);
        if (found == dict.end() || !found->value().isTensor())
          return InvalidArgument("forward() returned a dict without the tensor '{}'", spec.name);
        tensors.push_back(found->value().toTensor());
      }
    } else {
      return InvalidArgument("forward() returned {}, not a tensor, tuple, list or dict",
                             value.tagKind());
    }
    if (tensors.size() != outputs_.size()) {
      return InvalidArgument("forward() returned {} tensors; the config lists {} outputs",
                             tensors.size(), outputs_.size());
    }
    return tensors;
  }

  torch::jit::Module module_;
  std::vector<TensorSpec> outputs_;
  c10::Device device_;
  bool half_;
#if BRAID_TORCH_CUDA
  // One captured batch size: its static inputs (written before each replay)
  // and outputs (written by it).
  struct Graph {
    at::cuda::CUDAGraph graph;
    std::vector<at::Tensor> inputs, outputs;
  };
  std::map<std::int64_t, std::unique_ptr<Graph>> graphs_;
#endif
};

// parameters.cuda_graphs: the batch sizes to capture as CUDA graphs ("1,8,32"),
// checked against the config; none when it is not given.
Result<std::vector<std::int64_t>> GraphBatchSizes(const ModelConfig& config) {
  const std::string listed = config.Parameter("cuda_graphs", "");
  std::vector<std::int64_t> sizes;
  if (listed.empty()) return sizes;
  const std::string where = config.config_path().string();
  if (config.optimization.execution_provider != Optimization::Provider::kCuda)
    return InvalidArgument("{}: parameters.cuda_graphs needs execution_provider cuda", where);
  for (std::size_t start = 0; start <= listed.size();) {
    const std::size_t end = std::min(listed.find(',', start), listed.size());
    std::int64_t size = 0;
    const char* first = listed.data() + start;
    const char* last = listed.data() + end;
    while (first < last && *first == ' ') ++first;
    auto [stop, error] = std::from_chars(first, last, size);
    if (error != std::errc() || stop != last || size < 1 || size > config.max_batch_size) {
      return InvalidArgument(
          "{}: parameters.cuda_graphs must list batch sizes from 1 to max_batch_size ({}), "
          "like \"1,8,32\"; '{}' is not one",
          where, config.max_batch_size, std::string(listed.data() + start, end - start));
    }
    sizes.push_back(size);
    start = end + 1;
  }
  for (const auto& spec : config.inputs) {
    if (std::find(spec.dims.begin(), spec.dims.end(), -1) != spec.dims.end()) {
      return InvalidArgument(
          "{}: parameters.cuda_graphs needs fixed input dims; input '{}' has a variable one", where,
          spec.name);
    }
  }
  return sizes;
}

// A batch of one, zeros, variable dims 1: the warm-up.
Result<std::vector<Tensor>> WarmUpInputs(const ModelConfig& config) {
  std::vector<Tensor> inputs;
  for (const auto& spec : config.inputs) {
    Shape shape;
    if (config.max_batch_size > 0) shape.push_back(1);
    for (auto d : spec.dims) shape.push_back(d < 0 ? 1 : d);
    BRAID_ASSIGN_OR_RETURN(Tensor tensor, Tensor::Allocate(spec.datatype, shape));
    inputs.push_back(std::move(tensor));
  }
  return inputs;
}

Result<std::vector<ModelInstancePtr>> Load(const ModelConfig& config, const fs::path& version_dir) {
  const fs::path file =
      version_dir /
      (config.default_model_filename.empty() ? "model.pt" : config.default_model_filename);
  std::error_code error;
  if (!fs::exists(file, error)) return NotFound("{} does not exist", file.string());
  for (const auto* specs : {&config.inputs, &config.outputs}) {
    for (const auto& spec : *specs) BRAID_RETURN_IF_ERROR(TorchType(spec.datatype).status());
  }
  BRAID_ASSIGN_OR_RETURN(const std::vector<std::int64_t> graph_sizes, GraphBatchSizes(config));
  c10::Device device(c10::kCPU);
  switch (config.optimization.execution_provider) {
    case Optimization::Provider::kCpu:
      break;
    case Optimization::Provider::kCuda:
      if (!torch::cuda::is_available()) {
        return Unavailable(
            "{}: execution_provider cuda, but libtorch sees no CUDA device (Debian's libtorch "
            "is built for the CPU; build against a CUDA one with -DTORCH_ROOT=)",
            config.config_path().string());
      }
      device = c10::Device(c10::kCUDA);
      break;
    case Optimization::Provider::kTensorRt:
      return InvalidArgument("{}: the torchscript backend has no TensorRT execution provider",
                             config.config_path().string());
  }
#if !BRAID_TORCH_CUDA
  if (!graph_sizes.empty()) {
    return InvalidArgument(
        "{}: parameters.cuda_graphs: this build cannot capture CUDA graphs (its libtorch "
        "reported no CUDA libraries when it was configured)",
        config.config_path().string());
  }
#endif
  const bool half = config.optimization.precision == Optimization::Precision::kFp16;
  if (half && device.is_cpu()) {
    return InvalidArgument(
        "{}: precision fp16 needs execution_provider cuda (libtorch's CPU kernels have no half "
        "matrix products)",
        config.config_path().string());
  }
  if (config.optimization.precision == Optimization::Precision::kInt8) {
    return InvalidArgument("{}: the torchscript backend serves fp32 or fp16, not int8",
                           config.config_path().string());
  }
  static std::once_flag threads;
  std::call_once(threads, [] { at::set_num_threads(ProcessComputeBudget().threads()); });
  BRAID_ASSIGN_OR_RETURN(auto warm_up, WarmUpInputs(config));
  std::vector<ModelInstancePtr> instances;
  for (int i = 0; i < config.InstancesToLoad(); ++i) {
    torch::jit::Module module;
    try {
      module = torch::jit::load(file.string(), device);
      module.eval();
      if (half) module.to(c10::ScalarType::Half);
    } catch (const c10::Error& e) {
      return InvalidArgument("{}: libtorch cannot load it: {}", file.string(),
                             e.what_without_backtrace());
    } catch (const std::exception& e) {
      return InvalidArgument("{}: libtorch cannot load it: {}", file.string(), e.what());
    }
    auto instance = std::make_unique<TorchScriptInstance>(std::move(module), config, device, half);
    std::vector<Tensor> outputs;
    if (Status status = instance->Execute(warm_up, &outputs); !status.ok())
      return status.WithContext(fmt::format("{}: the warm-up batch", file.string()));
#if BRAID_TORCH_CUDA
    if (Status status = instance->CaptureGraphs(config, graph_sizes); !status.ok())
      return status.WithContext(file.string());
#endif
    instances.push_back(std::move(instance));
  }
  return instances;
}

}  // namespace

BackendFactory MakeTorchScriptBackend() { return Load; }

}  // namespace braid
