// Lowering an ONNX model's precision, as graph rewrites over libonnx's
// ModelProto (`braid quantize`, `braid models quantize`):
//   - int8 dynamic: every MatMul or Gemm whose second input is an FP32
//     weight matrix gets the weight as INT8, symmetric per output channel,
//     and its activation quantized to UINT8 at run time
//     (DynamicQuantizeLinear → MatMulInteger → Cast → Mul by the two
//     scales, the pattern ONNX Runtime fuses into one kernel);
//   - int8 static: the same weights in QDQ form, each activation with a
//     fixed UINT8 scale and zero point from calibration ranges
//     (QuantizeLinear → DequantizeLinear before the MatMul or Gemm);
//   - fp16: every FP32 initializer, constant and intermediate tensor in FP16,
//     the model's inputs and outputs kept FP32 by casts at the edges.
// Other nodes are left as they are; Conv weights stay FP32, and so do
// initializers listed as graph inputs (the caller may override them).
#pragma once

#include <onnx/onnx_pb.h>

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace braid::quantize {

enum class Mode { kInt8Dynamic, kInt8Static, kFp16 };

// "int8-dynamic", "int8-static", "fp16".
std::string_view ModeName(Mode mode);

// Parses an ONNX model and runs ONNX's checker on it. InvalidArgument for
// bytes that are not a model, a model the checker refuses, or weights held
// in external files (not supported).
Result<onnx::ModelProto> ParseModel(std::string_view bytes);
Result<onnx::ModelProto> ReadModel(const std::filesystem::path& path);

// Serialises `model` after running ONNX's checker on it.
Result<std::string> SerializeModel(const onnx::ModelProto& model);

// The range an activation took during calibration.
struct Range {
  float low = 0;
  float high = 0;
};
using Ranges = std::map<std::string, Range>;

// Whether this CPU multiplies INT8 with VNNI (AVX-VNNI or AVX512-VNNI), whose
// sums do not pass through 16 bits; true off x86.
bool CpuHasVnni();

struct Options {
  // Weights on 7 bits ([-63, 63]): ONNX Runtime's UINT8×INT8 kernels on x86
  // without VNNI add pairs of products in 16 bits, which full-range weights
  // can overflow.
  bool reduce_range = false;
};

struct Quantized {
  onnx::ModelProto model;
  int nodes = 0;  // MatMul and Gemm nodes quantized, or tensors converted (fp16)
};

// The activations static quantization needs a range for: the first input of
// every MatMul or Gemm it would quantize.
std::vector<std::string> ActivationsToCalibrate(const onnx::ModelProto& model);

// A copy of `model` that also outputs `tensors` (for calibration), typed FP32
// without a shape: ONNX Runtime runs it, the ONNX checker would refuse it.
onnx::ModelProto WithOutputs(const onnx::ModelProto& model,
                             const std::vector<std::string>& tensors);

// InvalidArgument when the model has no FP32 MatMul or Gemm weight to
// quantize (int8) or no FP32 tensor at all (fp16). The result is checked
// when it is serialised (SerializeModel), not before.
Result<Quantized> QuantizeDynamic(const onnx::ModelProto& model, const Options& options = {});
// Activations without a range in `ranges` stay FP32.
Result<Quantized> QuantizeStatic(const onnx::ModelProto& model, const Ranges& ranges,
                                 const Options& options = {});
Result<Quantized> ConvertToFp16(const onnx::ModelProto& model);

}  // namespace braid::quantize
