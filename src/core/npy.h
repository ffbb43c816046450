// NumPy .npy files (format versions 1, 2 and 3), for `braid infer` inputs and
// outputs and for test fixtures. Little-endian, C order, fixed-size types.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "core/status.h"
#include "core/tensor.h"

namespace braid {

// Parses the bytes of an .npy file; errors name what is wrong with it.
Result<Tensor> ParseNpy(std::string_view bytes);
Result<Tensor> ReadNpy(const std::filesystem::path& path);

// The .npy (version 1) serialisation of `tensor`. Not for BYTES tensors.
Result<std::string> SerializeNpy(const Tensor& tensor);
Status WriteNpy(const std::filesystem::path& path, const Tensor& tensor);

}  // namespace braid
