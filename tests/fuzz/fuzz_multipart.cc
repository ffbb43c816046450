// multipart/form-data: the first line is the Content-Type header value,
// the rest the body.
#include <string_view>

#include "frontends/http/multipart.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto newline = text.find('\n');
  if (newline == std::string_view::npos) return 0;
  (void)braid::ParseMultipart(text.substr(0, newline), text.substr(newline + 1));
  return 0;
}
