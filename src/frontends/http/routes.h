// The HTTP API's dispatcher (one route table for every front end's
// endpoints, keys, rate limits, JSON depth, ORCA load reports) and the
// metrics endpoint. Request-path errors become {"error": ...} responses
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

// The handler that serves `routes`, which holds every front end's endpoints
// (KServe, workflows, OpenAI, TEI, collections, live, web pages): it finds a
// request's route, checks the key its access asks for, bounds a JSON body's
// depth and calls the route; what no route takes is answered 404 or 405
// from the table. `service` (for load reports) and `metrics` must outlive
// the handler.
HttpHandler MakeApiHandler(InferenceService& service, Metrics& metrics, ApiOptions options,
                           std::shared_ptr<RouteTable> routes);
// Sends `response`, counting it in the HTTP request metrics (no model label)
// and logging it at debug level: how endpoints without a model answer.
void ReplyCounted(Metrics& metrics, const HttpResponderPtr& responder, const HttpRequest& request,
                  HttpResponse response);
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
