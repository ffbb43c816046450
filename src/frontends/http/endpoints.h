// The HTTP endpoints braid serves, as path templates, for telling a client
// that asked for a path braid does not serve which one it probably meant
// ("no endpoint POST /v1/embedding; did you mean POST /v1/embeddings?").
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace braid {

// "METHOD /path" of the endpoint nearest to `path` (by edit distance, a
// template's {placeholders} taking the request's segments), or nullopt when
// none is near enough to be a likely typo.
std::optional<std::string> NearestEndpoint(std::string_view path);

// "no endpoint METHOD /path", with "; did you mean ...?" when one is near.
std::string NoEndpointMessage(std::string_view method, std::string_view path);

}  // namespace braid
