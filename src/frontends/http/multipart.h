// multipart/form-data (RFC 7578) request bodies, as the OpenAI clients send
// audio files. Parts are views into the body.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace braid {

struct FormPart {
  std::string name;
  std::string filename;      // empty for plain fields
  std::string content_type;  // empty when the part has none
  std::string_view data;
};

// Parses `body` given the request's Content-Type (which carries the
// boundary). At most `max_parts` parts. InvalidArgument when malformed.
Result<std::vector<FormPart>> ParseMultipart(std::string_view content_type, std::string_view body,
                                             std::size_t max_parts = 64);

}  // namespace braid
