// The HTTP API: KServe v2 with Triton's extensions (ARCHITECTURE.md), and
// the metrics endpoint. Request-path errors become {"error": ...} responses
// through HttpStatusFor.
#pragma once

#include <memory>
#include <string>

#include "core/rate_limiter.h"
#include "frontends/http/http_server.h"
#include "frontends/http/route_table.h"
#include "frontends/kserve/kserve.h"
#include "metrics/metrics.h"
#include "serving/inference_service.h"

namespace braid {

struct ApiOptions {
  std::string api_key;    // when set, every endpoint but health needs "Authorization: Bearer KEY"
  std::string admin_key;  // when set, repository load/unload need it instead of api_key
  bool protect_health = false;  // health endpoints need the API key too
  KserveLimits limits;
  // Requests a client address may make (none: no limit); health is exempt.
  std::shared_ptr<RateLimiter> limiter;
};

// Adds the KServe v2 and health endpoints to `routes`, which holds the other
// front ends' (workflows, OpenAI, TEI, collections, live, web pages), and
// returns the handler that serves them all: it finds a request's route,
// checks the key its access asks for, bounds a JSON body's depth and calls
// the route; what no route takes is answered 404 or 405 from the table.
// `service`, `metrics` and `clock` must outlive the handler.
HttpHandler MakeApiHandler(InferenceService& service, Metrics& metrics, Clock& clock,
                           ApiOptions options, std::shared_ptr<RouteTable> routes);
// The header-time checks, for HttpServerOptions::admit: a request past its
// address's rate is refused 429 (with Retry-After), and one with a body but
// without its key 401, before the body is read. Null when there is neither a
// key nor a limiter.
HttpAdmission MakeApiAdmission(ApiOptions options);
// What a subsystem outside the model service adds to a scrape (Prometheus
// text appended to `out`).
using MetricsSource = std::function<void(std::string& out)>;

// GET /metrics; when `api_key` is set a scrape must send it as a bearer token.
HttpHandler MakeMetricsHandler(InferenceService& service, Metrics& metrics,
                               std::string api_key = {}, std::vector<MetricsSource> more = {});

// Scheduler statistics and instance counts in the form Metrics::Render takes.
std::map<std::string, std::map<std::int64_t, ModelMetricsInput>> CollectModelMetrics(
    InferenceService& service);

}  // namespace braid
