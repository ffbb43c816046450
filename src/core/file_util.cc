#include "core/file_util.h"

#include <fstream>
#include <system_error>

namespace braid {

Result<std::string> ReadFile(const std::filesystem::path& path, std::size_t max_bytes) {
  std::error_code error;
  auto status = std::filesystem::status(path, error);
  if (error || !std::filesystem::exists(status)) return NotFound("{}: no such file", path.string());
  if (std::filesystem::is_directory(status))
    return InvalidArgument("{}: is a directory", path.string());
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgument("{}: cannot open for reading", path.string());
  in.seekg(0, std::ios::end);
  auto size = static_cast<std::size_t>(in.tellg());
  if (size > max_bytes) {
    return Status(StatusCode::kTooLarge, fmt::format("{}: {} bytes is over the {} byte limit",
                                                     path.string(), size, max_bytes));
  }
  in.seekg(0);
  std::string bytes(size, '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(size))) {
    return InvalidArgument("{}: read failed", path.string());
  }
  return bytes;
}

Status WriteFile(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return InvalidArgument("{}: cannot open for writing", path.string());
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) return InvalidArgument("{}: write failed", path.string());
  return Status::Ok();
}

}  // namespace braid
