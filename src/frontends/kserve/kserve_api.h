// The KServe v2 protocol over HTTP, with Triton's extensions
// (ARCHITECTURE.md): health, server and model metadata, model config and
// statistics, infer (JSON and binary tensors), and the repository's index,
// load and unload. It decodes and encodes; InferenceService serves.
//   GET  /v2/health/live | /v2/health/ready (X-Braid-Load: the load, for
//        `braid router`) | /v2 | /v2/models/stats
//   GET  /v2/models/{model}[/versions/{version}][/ready | /config | /stats]
//   POST /v2/models/{model}[/versions/{version}]/infer
//   POST /v2/repository/index | /v2/repository/models/{model}/load | unload
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "frontends/http/http_server.h"
#include "frontends/http/route_table.h"
#include "frontends/kserve/kserve.h"
#include "metrics/metrics.h"
#include "serving/inference_service.h"

namespace braid {

class KserveApi {
 public:
  // Everything passed must outlive the API.
  KserveApi(InferenceService& service, Metrics& metrics, Clock& clock, KserveLimits limits);

  // Adds the endpoints above to `routes`: health open (unless the handler
  // protects it), load and unload under the admin key, the rest keyed. None
  // but infer reads a body, whose own parser bounds its depth.
  void AddRoutes(RouteTable& routes);

 private:
  // A handler of a /v2/models/NAME[/versions/V]/... endpoint: the model's
  // name and version (0: the latest), both checked.
  using ModelRoute = void (KserveApi::*)(HttpRequest&, HttpResponderPtr, const std::string&,
                                         std::int64_t);
  // `method` /v2/models/{model}`action` and the same under /versions/{version}.
  void AddModelRoute(RouteTable& routes, std::string_view method, std::string_view action,
                     ModelRoute handler);
  void Metadata(HttpRequest& request, HttpResponderPtr responder, const std::string& name,
                std::int64_t version);
  void ModelReady(HttpRequest& request, HttpResponderPtr responder, const std::string& name,
                  std::int64_t version);
  void Config(HttpRequest& request, HttpResponderPtr responder, const std::string& name,
              std::int64_t version);
  void ModelStats(HttpRequest& request, HttpResponderPtr responder, const std::string& name,
                  std::int64_t version);
  void Infer(HttpRequest& request, HttpResponderPtr responder, const std::string& name,
             std::int64_t version);
  std::vector<std::int64_t> LoadedVersions(const std::string& name) const;
  std::string Index() const;
  std::string AllStats(const std::string& only) const;
  void Reply(const HttpResponderPtr& responder, const HttpRequest& request, HttpResponse response);

  InferenceService& service_;
  Metrics& metrics_;
  Clock& clock_;
  const KserveLimits limits_;
};

}  // namespace braid
