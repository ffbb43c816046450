#include "frontends/http/endpoints.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <vector>

#include "core/edit_distance.h"

namespace braid {
namespace {

constexpr std::array kEndpoints = {
    Endpoint{"GET", "/v2"},
    Endpoint{"GET", "/v2/health/live"},
    Endpoint{"GET", "/v2/health/ready"},
    Endpoint{"GET", "/v2/models/{model}"},
    Endpoint{"GET", "/v2/models/{model}/ready"},
    Endpoint{"GET", "/v2/models/{model}/config"},
    Endpoint{"GET", "/v2/models/{model}/stats"},
    Endpoint{"GET", "/v2/models/{model}/versions/{version}"},
    Endpoint{"POST", "/v2/models/{model}/infer"},
    Endpoint{"POST", "/v2/models/{model}/versions/{version}/infer"},
    Endpoint{"POST", "/v2/models/{model}/generate"},
    Endpoint{"POST", "/v2/models/{model}/generate_stream"},
    Endpoint{"GET", "/v2/models/stats"},
    Endpoint{"POST", "/v2/repository/index"},
    Endpoint{"POST", "/v2/repository/models/{model}/load"},
    Endpoint{"POST", "/v2/repository/models/{model}/unload"},
    Endpoint{"GET", "/v1/models"},
    Endpoint{"GET", "/v1/models/{model}"},
    Endpoint{"POST", "/v1/embeddings"},
    Endpoint{"POST", "/v1/chat/completions"},
    Endpoint{"POST", "/v1/audio/transcriptions"},
    Endpoint{"GET", "/v1/audio/transcriptions/stream"},
    Endpoint{"POST", "/v1/audio/speech"},
    Endpoint{"POST", "/v1/rerank"},
    Endpoint{"GET", "/v1/workflows"},
    Endpoint{"POST", "/v1/workflows/{name}/run"},
    Endpoint{"POST", "/v1/workflows/tasks/{task_id}/stop"},
    Endpoint{"POST", "/v1/files/upload"},
    Endpoint{"GET", "/v1/collections"},
    Endpoint{"GET", "/v1/collections/{name}"},
    Endpoint{"POST", "/v1/collections/{name}/items"},
    Endpoint{"POST", "/v1/collections/{name}/search"},
    Endpoint{"DELETE", "/v1/collections/{name}"},
    Endpoint{"DELETE", "/v1/collections/{name}/items/{id}"},
    Endpoint{"POST", "/v1/live/reports"},
    Endpoint{"GET", "/v1/live/reports/{id}/events"},
    Endpoint{"GET", "/v1/video/stream"},
    Endpoint{"POST", "/embed"},
    Endpoint{"POST", "/rerank"},
    Endpoint{"POST", "/tokenize"},
    Endpoint{"GET", "/info"},
    Endpoint{"GET", "/tei/embedding/info"},
    Endpoint{"GET", "/tei/reranker/info"},
    Endpoint{"POST", "/tei/reranker/rerank"},
    Endpoint{"GET", "/"},
    Endpoint{"GET", "/dashboard"},
    Endpoint{"GET", "/dashboard/stats"},
};

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

std::span<const Endpoint> Endpoints() { return kEndpoints; }

std::optional<std::string> NearestEndpoint(std::string_view path) {
  if (path.empty() || path.front() != '/' || path.size() > 512) return std::nullopt;
  const auto asked = Segments(path);
  std::vector<std::string> candidates;
  for (const auto& endpoint : kEndpoints) candidates.push_back(Instantiate(endpoint.path, asked));
  const auto nearest = NearestName(path, candidates);
  if (!nearest) return std::nullopt;
  const auto at = std::find(candidates.begin(), candidates.end(), *nearest) - candidates.begin();
  return std::string(kEndpoints[at].method) + " " + candidates[at];
}

std::string NoEndpointMessage(std::string_view method, std::string_view path) {
  const auto nearest = NearestEndpoint(path);
  return fmt::format("no endpoint {} {}{}", method, path,
                     nearest ? "; did you mean " + *nearest + "?" : "");
}

}  // namespace braid
