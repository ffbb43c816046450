// Tensors as JSON for `braid infer`: reading a file of nested arrays or
// {"shape": [...], "data": [...]}, and printing outputs in the KServe v2
// response shape.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"
#include "core/tensor.h"

namespace braid::cli {

// Parses `text` into a tensor of `type`. Nested arrays give the shape by
// their nesting (and must be rectangular); an object gives it explicitly
// with a flat "data" list.
Result<Tensor> ParseTensorJson(std::string_view text, DataType type);

// {"name":..., "datatype":..., "shape":[...], "data":[...]}
Result<std::string> TensorToJson(const std::string& name, const Tensor& tensor);

}  // namespace braid::cli
