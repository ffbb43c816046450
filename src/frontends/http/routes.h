// The HTTP API: KServe v2 with Triton's extensions (ARCHITECTURE.md), and
// the metrics endpoint. Request-path errors become {"error": ...} responses
// through HttpStatusFor.
#pragma once

#include <string>

#include "frontends/http/http_server.h"
#include "frontends/kserve/kserve.h"
#include "metrics/metrics.h"
#include "serving/inference_service.h"

namespace braid {

struct ApiOptions {
  std::string api_key;    // when set, every endpoint but health needs "Authorization: Bearer KEY"
  std::string admin_key;  // when set, repository load/unload need it instead of api_key
  bool protect_health = false;  // health endpoints need the API key too
  KserveLimits limits;
};

// A further set of endpoints: answers and returns true when the request is
// one of its own. Called after authentication.
using RouteHandler = std::function<bool(HttpRequest& request, HttpResponderPtr& responder)>;

// `service`, `metrics` and `clock` must outlive the handler; `extra` routes
// (workflows, OpenAI-compatible) are tried before the KServe ones, `open`
// routes (the web pages) before authentication.
HttpHandler MakeApiHandler(InferenceService& service, Metrics& metrics, Clock& clock,
                           ApiOptions options, std::vector<RouteHandler> extra = {},
                           std::vector<RouteHandler> open = {});
// The header-time check of MakeApiHandler's keys, for HttpServerOptions::
// admit_body: a request with a body but without its key is refused before
// the body is read. Null when no key is set.
HttpAdmission MakeApiAdmission(ApiOptions options);
// GET /metrics; when `api_key` is set a scrape must send it as a bearer token.
HttpHandler MakeMetricsHandler(InferenceService& service, Metrics& metrics,
                               std::string api_key = {});

// Scheduler statistics and instance counts in the form Metrics::Render takes.
std::map<std::string, std::map<std::int64_t, ModelMetricsInput>> CollectModelMetrics(
    InferenceService& service);

}  // namespace braid
