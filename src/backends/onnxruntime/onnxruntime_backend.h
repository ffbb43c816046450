// The ONNX Runtime backend (`backend: onnxruntime`).
//
// Each instance is one Ort::Session created from <version>/model.onnx (or
// the config's default_model_filename) with the config's thread counts,
// graph optimisation level and execution provider. At load the backend
// checks the config's inputs and outputs against those the ONNX file
// declares and runs one warm-up batch per instance. Inputs are bound to
// ONNX Runtime without copying (the tensors' buffers are handed to it
// directly) and outputs are wrapped, not copied, when they come back.
#pragma once

#include "model/backend.h"

namespace braid {

inline constexpr char kOnnxRuntimeBackend[] = "onnxruntime";

BackendFactory MakeOnnxRuntimeBackend();

// The version of the ONNX Runtime library in use, e.g. "1.21.0".
std::string OnnxRuntimeVersion();

}  // namespace braid
