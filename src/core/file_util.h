// Small file helpers shared by the CLI, the repository and the tests.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "core/status.h"

namespace braid {

// The whole file; NotFound if it does not exist, InvalidArgument if it
// cannot be read or is larger than `max_bytes`.
Result<std::string> ReadFile(const std::filesystem::path& path, std::size_t max_bytes = SIZE_MAX);
Status WriteFile(const std::filesystem::path& path, std::string_view bytes);

}  // namespace braid
