#include "frontends/http/routes.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/credentials.h"
#include "frontends/http/load_report.h"
#include "frontends/status_mapping.h"

namespace braid {
namespace {

std::string_view BearerToken(const HttpRequest& request) {
  if (auto header = request.Header("Authorization"); !header.empty())
    return BearerCredential(header);
  return WebSocketBearer(request);
}

// Whether `request` carries the key its endpoint needs (the admin key for
// repository load and unload when one is set).
Status AuthorizeRequest(const ApiOptions& options, const HttpRequest& request, bool admin) {
  const std::string& key =
      admin && !options.admin_key.empty() ? options.admin_key : options.api_key;
  if (key.empty()) return Status::Ok();
  if (KeyMatches(BearerToken(request), key)) return Status::Ok();
  return MakeStatus(StatusCode::kUnauthenticated,
                    "{} key is required: send 'Authorization: Bearer KEY'",
                    admin && !options.admin_key.empty() ? "an admin" : "an API");
}

class ApiHandler {
 public:
  ApiHandler(InferenceService& service, Metrics& metrics, ApiOptions options,
             std::shared_ptr<RouteTable> routes)
      : metrics_(metrics),
        options_(std::move(options)),
        routes_(std::move(routes)),
        load_reporter_({[&service] { return service.Load(); },
                        [&service] { return double(service.QueuedItems()); }}) {}

  void operator()(HttpRequest& request, HttpResponderPtr responder) {
    load_reporter_.Count();
    if (auto format = ParseLoadReportFormat(request.Header("endpoint-load-metrics-format")))
      responder =
          WithLoadReport(std::move(responder), EncodeLoadReport(load_reporter_.Current(), *format));
    const RouteTable::Match match = routes_->Find(request.method, request.path);
    const bool found = match.route != nullptr || !match.allowed.empty();
    // What no route takes is answered after the key check, like the rest:
    // a client without the key learns nothing of the endpoints.
    const RouteAccess access = found ? match.options.access : RouteAccess::kKeyed;
    if (access == RouteAccess::kKeyed || access == RouteAccess::kAdmin ||
        (access == RouteAccess::kHealth && options_.protect_health)) {
      if (Status auth = AuthorizeRequest(options_, request, access == RouteAccess::kAdmin);
          !auth.ok())
        return Reply(responder, request, JsonError(auth));
    }
    if (!found)
      return Reply(responder, request,
                   JsonError(404, routes_->NoEndpointMessage(request.method, request.path)));
    if (match.route == nullptr) {
      HttpResponse response = JsonError(
          405, fmt::format("{} takes {}, not {}", request.path, match.allowed, request.method));
      response.headers.emplace_back("Allow", match.allowed);
      return Reply(responder, request, std::move(response));
    }
    if (const std::string_view type = request.Header("Content-Type");
        match.options.check_json_depth && !request.body->empty() &&
        (type.empty() || type.find("json") != std::string_view::npos)) {
      if (Status depth = CheckJsonDepth(*request.body, options_.limits.max_json_depth); !depth.ok())
        return Reply(responder, request, JsonError(depth));
    }
    (*match.route)(request, std::move(responder), match.params);
  }

 private:
  void Reply(const HttpResponderPtr& responder, const HttpRequest& request, HttpResponse response) {
    ReplyCounted(metrics_, responder, request, std::move(response));
  }

  Metrics& metrics_;
  const ApiOptions options_;
  std::shared_ptr<RouteTable> routes_;
  LoadReporter load_reporter_;  // ORCA reports on answers (load_report.h)
};

}  // namespace

void ReplyCounted(Metrics& metrics, const HttpResponderPtr& responder, const HttpRequest& request,
                  HttpResponse response) {
  metrics.ObserveRequest("http", "", response.status, Duration{});
  spdlog::debug("{} {} -> {}", request.method, request.target, response.status);
  responder->Send(std::move(response));
}

std::map<std::string, std::map<std::int64_t, ModelMetricsInput>> CollectModelMetrics(
    InferenceService& service) {
  std::map<std::string, std::map<std::int64_t, ModelMetricsInput>> models;
  for (auto& [name, versions] : service.Stats()) {
    for (auto& [version, stats] : versions) models[name][version] = {std::move(stats)};
  }
  return models;
}

HttpAdmission MakeApiAdmission(ApiOptions options) {
  if (options.api_key.empty() && options.admin_key.empty() && !options.limiter) return nullptr;
  return [options = std::move(options)](const HttpRequest& head,
                                        bool has_body) -> std::optional<HttpResponse> {
    // Health probes come from the operator's load balancer: never limited.
    if (options.limiter && !head.path.starts_with("/v2/health/")) {
      if (auto wait = options.limiter->Take(head.peer)) {
        HttpResponse refusal = JsonError(429, "too many requests from this address; retry later");
        const auto seconds = std::chrono::ceil<std::chrono::seconds>(*wait).count();
        refusal.headers.emplace_back("Retry-After", std::to_string(std::max<long>(1, seconds)));
        return refusal;
      }
    }
    if (!has_body) return std::nullopt;
    const bool admin = head.path.starts_with("/v2/repository/models/");
    if (Status auth = AuthorizeRequest(options, head, admin); !auth.ok()) return JsonError(auth);
    return std::nullopt;
  };
}

HttpHandler MakeApiHandler(InferenceService& service, Metrics& metrics, ApiOptions options,
                           std::shared_ptr<RouteTable> routes) {
  // Shared, so that callbacks may keep pointing at it however the function is moved.
  auto handler =
      std::make_shared<ApiHandler>(service, metrics, std::move(options), std::move(routes));
  return [handler](HttpRequest& request, HttpResponderPtr responder) {
    (*handler)(request, std::move(responder));
  };
}

HttpHandler MakeMetricsHandler(InferenceService& service, Metrics& metrics, std::string api_key,
                               std::vector<MetricsSource> more) {
  return [&service, &metrics, api_key, more = std::move(more)](HttpRequest& request,
                                                               HttpResponderPtr responder) {
    if (request.path != "/metrics")
      return responder->Send(JsonError(404, "metrics are at /metrics"));
    if (!api_key.empty() && !KeyMatches(BearerToken(request), api_key))
      return responder->Send(
          JsonError(401, "an API key is required: send 'Authorization: Bearer KEY'"));
    HttpResponse response;
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    response.body = metrics.Render(CollectModelMetrics(service), service.in_flight(),
                                   service.cache_stats(), service.budget_stats());
    for (const auto& source : more) source(response.body);
    responder->Send(std::move(response));
  };
}

}  // namespace braid
