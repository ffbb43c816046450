// Base64 (RFC 4648, standard alphabet) and data: URLs.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace braid {

Result<std::string> Base64Decode(std::string_view text);
std::string Base64Encode(std::string_view bytes);

struct DataUrl {
  std::string media_type;  // "image/png"; "text/plain" when absent
  std::string data;        // decoded bytes
};

// Parses "data:[<media type>][;base64],<data>"; InvalidArgument otherwise.
Result<DataUrl> ParseDataUrl(std::string_view url);

}  // namespace braid
