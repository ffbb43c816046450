// Tensors from JSON files for `braid infer`: nested arrays or
// {"shape": [...], "data": [...]}.
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

}  // namespace braid::cli
