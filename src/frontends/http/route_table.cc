#include "frontends/http/route_table.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <stdexcept>

#include "core/edit_distance.h"

namespace braid {

struct RouteTable::Node {
  struct Method {
    std::string method;
    Route route;
    RouteOptions options;
  };
  std::vector<std::pair<std::string, std::unique_ptr<Node>>> literals;
  std::unique_ptr<Node> placeholder;
  bool takes_rest = false;  // the placeholder is a last "{name...}"
  std::vector<Method> methods;
};

namespace {

// The segments of `path` ("/a/b" → a, b; "" → none).
std::vector<std::string_view> Segments(std::string_view path) {
  std::vector<std::string_view> segments;
  while (!path.empty()) {
    path.remove_prefix(1);  // the '/'
    const auto slash = path.find('/');
    segments.push_back(path.substr(0, slash));
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash);
  }
  return segments;
}

// `endpoint`'s path with each placeholder taking the request's segment at
// the same place (kept as it is where the request has none).
std::string Instantiate(std::string_view endpoint, const std::vector<std::string_view>& asked) {
  std::string path;
  const auto segments = Segments(endpoint);
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const bool placeholder = segments[i].starts_with('{');
    path += '/';
    path += placeholder && i < asked.size() ? asked[i] : segments[i];
  }
  return path;
}

}  // namespace

RouteTable::RouteTable() : root_(std::make_unique<Node>()) {}
RouteTable::~RouteTable() = default;

void RouteTable::Add(std::string_view method, std::string_view path, Route route,
                     RouteOptions options) {
  auto malformed = [&](std::string_view why) {
    throw std::logic_error(fmt::format("route {} {}: {}", method, path, why));
  };
  if (!path.starts_with('/')) malformed("a path starts with '/'");
  Node* node = root_.get();
  std::size_t placeholders = 0;
  const auto segments = Segments(path == "/" ? std::string_view() : path);
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const std::string_view segment = segments[i];
    if (segment.empty()) malformed("an empty segment");
    if (segment.starts_with('{')) {
      if (!segment.ends_with('}') || segment.size() < 3) malformed("a placeholder is {name}");
      if (++placeholders > PathParams::kMax) malformed("too many placeholders");
      const bool rest = segment.ends_with("...}");
      if (rest && i + 1 != segments.size()) malformed("only the last placeholder takes the rest");
      if (node->placeholder && node->takes_rest != rest)
        malformed("a placeholder here already takes one segment, or the rest");
      if (!node->placeholder) node->placeholder = std::make_unique<Node>();
      node->takes_rest = rest;
      node = node->placeholder.get();
      continue;
    }
    auto child = std::find_if(node->literals.begin(), node->literals.end(),
                              [&](const auto& literal) { return literal.first == segment; });
    if (child == node->literals.end()) {
      node->literals.emplace_back(std::string(segment), std::make_unique<Node>());
      child = node->literals.end() - 1;
    }
    node = child->second.get();
  }
  for (const auto& existing : node->methods) {
    if (existing.method == method) malformed("added twice");
  }
  node->methods.push_back({std::string(method), std::move(route), options});
  endpoints_.push_back({std::string(method), std::string(path)});
}

// A literal is tried before the placeholder, which is tried when the
// literal's branch leads nowhere.
const RouteTable::Node* RouteTable::Walk(const Node& node, std::string_view path,
                                         PathParams& params) {
  if (path.empty()) return node.methods.empty() ? nullptr : &node;
  path.remove_prefix(1);
  const auto slash = path.find('/');
  const std::string_view segment = path.substr(0, slash);
  if (segment.empty()) return nullptr;
  const std::string_view after =
      slash == std::string_view::npos ? std::string_view() : path.substr(slash);
  for (const auto& [literal, child] : node.literals) {
    if (literal != segment) continue;
    if (const Node* found = Walk(*child, after, params)) return found;
    break;
  }
  if (!node.placeholder || params.size_ == PathParams::kMax) return nullptr;
  const Node& next = *node.placeholder;
  if (node.takes_rest) {
    if (next.methods.empty()) return nullptr;
    params.values_[params.size_++] = path;
    return &next;
  }
  params.values_[params.size_++] = segment;
  if (const Node* found = Walk(next, after, params)) return found;
  --params.size_;
  return nullptr;
}

RouteTable::Match RouteTable::Find(std::string_view method, std::string_view path) const {
  Match match;
  if (!path.starts_with('/')) return match;
  if (path.ends_with('/')) path.remove_suffix(1);
  const Node* node = Walk(*root_, path, match.params);
  if (node == nullptr) return match;
  // HEAD is GET without the body (RFC 9110, 9.3.2) where no route takes
  // HEAD itself; the server leaves the body out.
  const auto route_for = [&](std::string_view wanted) -> const Node::Method* {
    for (const auto& entry : node->methods) {
      if (entry.method == wanted) return &entry;
    }
    return nullptr;
  };
  const Node::Method* entry = route_for(method);
  if (entry == nullptr && method == "HEAD") entry = route_for("GET");
  if (entry != nullptr) {
    match.route = &entry->route;
    match.options = entry->options;
    return match;
  }
  match.options = node->methods.front().options;
  std::vector<std::string_view> allowed;
  for (const auto& other : node->methods) allowed.push_back(other.method);
  if (route_for("GET") != nullptr && route_for("HEAD") == nullptr) allowed.push_back("HEAD");
  match.allowed = fmt::format("{}", fmt::join(allowed, ", "));
  return match;
}

std::optional<std::string> RouteTable::Nearest(std::string_view path) const {
  if (path.empty() || path.front() != '/' || path.size() > 512) return std::nullopt;
  const auto asked = Segments(path);
  std::vector<std::string> candidates;
  for (const auto& endpoint : endpoints_) candidates.push_back(Instantiate(endpoint.path, asked));
  const auto nearest = NearestName(path, candidates);
  if (!nearest) return std::nullopt;
  const auto at = std::find(candidates.begin(), candidates.end(), *nearest) - candidates.begin();
  return endpoints_[at].method + " " + candidates[at];
}

std::string RouteTable::NoEndpointMessage(std::string_view method, std::string_view path) const {
  const auto nearest = Nearest(path);
  return fmt::format("no endpoint {} {}{}", method, path,
                     nearest ? "; did you mean " + *nearest + "?" : "");
}

}  // namespace braid
