// The web pages `braid serve` answers on its HTTP port: the playground at /,
// the dashboard at /dashboard, their scripts and styles under /web/, and the
// dashboard's figures at /dashboard/stats.
#pragma once

#include <string>

#include "frontends/http/routes.h"
#include "metrics/metrics.h"
#include "serving/inference_service.h"

namespace braid {

// Adds the pages and their assets (compiled in) to `routes`. They hold no
// data, so they are served without a key; what they show comes from the
// keyed API.
void AddWebPages(RouteTable& routes);

// Adds GET /dashboard/stats: cumulative figures (the page charts their
// differences between polls), open or keyed as `access` says. `service`
// and `metrics` must outlive the routes.
void AddDashboardStats(RouteTable& routes, InferenceService& service, const Metrics& metrics,
                       RouteAccess access);
std::string DashboardStatsJson(InferenceService& service, const Metrics& metrics);

}  // namespace braid
