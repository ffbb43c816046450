// The HTTP endpoints braid serves, as path templates, for telling a client
// that asked for a path braid does not serve which one it probably meant
// ("no endpoint POST /v1/embedding; did you mean POST /v1/embeddings?").
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace braid {

struct Endpoint {
  std::string_view method;
  std::string_view path;  // segments in braces take any value
};

// Every endpoint of `braid serve`'s HTTP port. The routes that serve them are
// the front ends' handlers; ServeTest.EveryListedEndpointIsServed keeps the
// two in step.
std::span<const Endpoint> Endpoints();

// "METHOD /path" of the endpoint nearest to `path` (by edit distance, a
// template's {placeholders} taking the request's segments), or nullopt when
// none is near enough to be a likely typo.
std::optional<std::string> NearestEndpoint(std::string_view path);

// "no endpoint METHOD /path", with "; did you mean ...?" when one is near.
std::string NoEndpointMessage(std::string_view method, std::string_view path);

}  // namespace braid
