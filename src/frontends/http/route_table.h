// The endpoints of the HTTP port in one table. Each front end adds its own
// (method, path template, handler); the API handler finds a request's route
// by walking the path's segments through the table (no regex, no handler
// tried in turn), and answers from the table what no route takes: 405 with
// the methods the path has, 404 naming the nearest endpoint ("no endpoint
// POST /v1/embedding; did you mean POST /v1/embeddings?").
#pragma once

#include <array>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "frontends/http/http_server.h"

namespace braid {

// Who may call an endpoint.
enum class RouteAccess {
  kOpen,    // anyone: the web pages, which hold no data
  kHealth,  // anyone, unless --protect-health asks for the API key
  kKeyed,   // the API key, when one is set
  kAdmin,   // the admin key when one is set, else the API key
};

struct RouteOptions {
  RouteAccess access = RouteAccess::kKeyed;
  // A JSON body is checked for nesting depth before the handler runs; off
  // for a handler whose own parser bounds it (KServe infer).
  bool check_json_depth = true;
};

// The values a request's path gave a template's placeholders, in order.
class PathParams {
 public:
  static constexpr std::size_t kMax = 4;
  std::string_view operator[](std::size_t i) const { return values_[i]; }
  std::size_t size() const { return size_; }

 private:
  friend class RouteTable;
  std::array<std::string_view, kMax> values_{};
  std::size_t size_ = 0;
};

using Route =
    std::function<void(HttpRequest& request, HttpResponderPtr responder, const PathParams& params)>;

// A route calling `object`'s `handler` with the request and its responder,
// for an endpoint whose path has no placeholders.
template <typename T, typename Request>
Route RouteTo(T* object, void (T::*handler)(Request&, HttpResponderPtr)) {
  return [object, handler](HttpRequest& request, HttpResponderPtr responder, const PathParams&) {
    (object->*handler)(request, std::move(responder));
  };
}

struct Endpoint {
  std::string method;
  std::string path;  // the template, as added
};

class RouteTable {
 public:
  RouteTable();
  ~RouteTable();
  RouteTable(const RouteTable&) = delete;
  RouteTable& operator=(const RouteTable&) = delete;

  // `path` is '/' followed by segments: literals, "{name}" taking one
  // non-empty segment, or a last "{name...}" taking the rest of the path.
  // A literal wins over a placeholder where both continue to a route. At
  // most PathParams::kMax placeholders. Adding a method and path that is
  // already there, or a malformed template, throws std::logic_error (a
  // programming error, found when the server is built).
  void Add(std::string_view method, std::string_view path, Route route, RouteOptions options = {});

  struct Match {
    // The route for the method, or null: either the path has none
    // (`allowed` is empty: no endpoint) or only other methods (`allowed`
    // lists them, "GET, DELETE").
    const Route* route = nullptr;
    RouteOptions options;  // the route's; for a wrong method, the path's first
    PathParams params;
    std::string allowed;
  };
  // One trailing '/' is ignored ("/dashboard/" is "/dashboard"). HEAD
  // takes a path's GET route where it has no HEAD route of its own.
  Match Find(std::string_view method, std::string_view path) const;

  // Every endpoint, in the order added.
  const std::vector<Endpoint>& endpoints() const { return endpoints_; }

  // "METHOD /path" of the endpoint nearest to `path` (by edit distance, a
  // template's placeholders taking the request's segments), or nullopt when
  // none is near enough to be a likely typo.
  std::optional<std::string> Nearest(std::string_view path) const;
  // "no endpoint METHOD /path", with "; did you mean ...?" when one is near.
  std::string NoEndpointMessage(std::string_view method, std::string_view path) const;

 private:
  struct Node;
  // The node with methods that `path` (what follows `node`'s segment: empty
  // or "/segment...") leads to, its placeholders' values appended to
  // `params`; null when it leads nowhere.
  static const Node* Walk(const Node& node, std::string_view path, PathParams& params);

  std::unique_ptr<Node> root_;
  std::vector<Endpoint> endpoints_;
};

}  // namespace braid
