#include "frontends/web/web.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <vector>

#include "core/hash.h"
#include "frontends/kserve/kserve.h"
#include "frontends/web/web_assets.h"

namespace braid {
namespace {

std::string_view ContentType(std::string_view name) {
  if (name.ends_with(".html")) return "text/html; charset=utf-8";
  if (name.ends_with(".js")) return "text/javascript; charset=utf-8";
  if (name.ends_with(".css")) return "text/css; charset=utf-8";
  if (name.ends_with(".svg")) return "image/svg+xml";
  if (name.ends_with(".png")) return "image/png";
  if (name.ends_with(".wav")) return "audio/wav";
  return "application/octet-stream";
}

// An embedded file and its ETag, hashed once.
struct Page {
  const EmbeddedFile* file;
  std::string etag;
};

// The embedded file named `name`, or null.
const Page* Lookup(const std::vector<Page>& pages, std::string_view name) {
  for (const auto& page : pages) {
    if (page.file->name == name) return &page;
  }
  return nullptr;
}

std::string ModelJson(const std::string& name, std::int64_t version, const SchedulerStats& s) {
  std::string quoted;
  AppendJsonString(quoted, name);
  // Sizes up to the largest seen (the vector runs to max_batch_size).
  std::size_t sizes = s.batch_sizes.size();
  while (sizes > 0 && s.batch_sizes[sizes - 1] == 0) --sizes;
  const std::span<const std::uint64_t> batch_sizes(s.batch_sizes.data(), sizes);
  return fmt::format(
      R"({{"name":{},"version":{},"success":{},"failure":{},"rejected":{},"timed_out":{},)"
      R"("inferences":{},"executions":{},"batch_sizes":[{}],"queue_depth":[{}],)"
      R"("instances":{},"utilization":{:.4f}}})",
      quoted, version, s.success, s.failure, s.rejected, s.timed_out, s.inferences, s.executions,
      fmt::join(batch_sizes, ","), fmt::join(s.queue_depth, ","), s.active_instances,
      s.utilization);
}

std::string CacheJson(const std::optional<ResultCacheStats>& cache) {
  if (!cache) return "null";
  std::string memory = "null", redis = "null";
  if (cache->memory) {
    memory =
        fmt::format(R"({{"hits":{},"misses":{},"bytes":{},"entries":{}}})", cache->memory->hits,
                    cache->memory->misses, cache->memory->bytes, cache->memory->entries);
  }
  if (cache->redis) {
    redis = fmt::format(R"({{"hits":{},"misses":{},"up":{}}})", cache->redis->hits,
                        cache->redis->misses, cache->redis->up);
  }
  const PerceptualStats& images = cache->perceptual;
  const CanonicalStats& canonical = cache->canonical;
  const SemanticStats& semantic = cache->semantic;
  return fmt::format(
      R"({{"memory":{},"redis":{},"coalesced":{},"images":{{"exact":{},"perceptual":{},"new":{},"verified":{},"rejected":{},"shared":{}}},"texts":{{"normalized":{},"as_sent":{}}},"audio":{{"pcm":{},"bytes":{}}},"semantic":{{"hits":{},"misses":{},"refused":{}}}}})",
      memory, redis, cache->coalesced, images.exact, images.perceptual, images.new_images,
      images.verified, images.rejected, images.shared, canonical.text_normalized,
      canonical.text_as_sent, canonical.audio_pcm, canonical.audio_bytes, semantic.hits,
      semantic.misses, semantic.refused);
}

// The compute budget: threads, leases held now and waiting by class
// ([interactive, background]), preemptions, and leases held per model.
std::string ComputeJson(const std::optional<ComputeBudgetStats>& budget) {
  if (!budget) return "null";
  std::vector<std::string> models;
  for (const auto& [model, held] : budget->in_use_by_model) {
    std::string quoted;
    AppendJsonString(quoted, model);
    models.push_back(fmt::format("{}:[{}]", quoted, fmt::join(held, ",")));
  }
  return fmt::format(
      R"({{"threads":{},"in_use":[{}],"waiting":[{}],"waited":[{}],"preemptions":{},)"
      R"("models":{{{}}}}})",
      budget->threads, fmt::join(budget->in_use, ","), fmt::join(budget->waiting, ","),
      fmt::join(budget->waited, ","), budget->preemptions, fmt::join(models, ","));
}

}  // namespace

void AddWebPages(RouteTable& routes) {
  auto pages = std::make_shared<std::vector<Page>>();
  for (const auto& file : WebAssets()) {
    pages->push_back(
        {&file, fmt::format("\"{}\"", HashBytes(std::as_bytes(std::span(file.data))).ToHex())});
  }
  // Sends the file named `name`: 404 when there is none, 304 when the
  // client's copy is current.
  auto serve = [pages](std::string_view name, const HttpRequest& request,
                       const HttpResponderPtr& responder) {
    const Page* page = Lookup(*pages, name);
    if (page == nullptr)
      return responder->Send(JsonError(404, fmt::format("no page {}", request.path)));
    HttpResponse response;
    response.content_type = ContentType(page->file->name);
    response.headers.emplace_back("ETag", page->etag);
    response.headers.emplace_back("Cache-Control", "no-cache");
    if (request.Header("If-None-Match") == page->etag) {
      response.status = 304;
    } else {
      response.body = page->file->data;
    }
    responder->Send(std::move(response));
  };
  const RouteOptions open{RouteAccess::kOpen};
  for (const auto& [path, name] :
       {std::pair{"/", "index.html"}, std::pair{"/index.html", "index.html"},
        std::pair{"/dashboard", "dashboard.html"}, std::pair{"/favicon.ico", "favicon.svg"}}) {
    routes.Add(
        "GET", path,
        [serve, name](HttpRequest& request, HttpResponderPtr responder, const PathParams&) {
          serve(name, request, responder);
        },
        open);
  }
  routes.Add(
      "GET", "/web/{file...}",
      [serve](HttpRequest& request, HttpResponderPtr responder, const PathParams& params) {
        serve(params[0], request, responder);
      },
      open);
}

std::string DashboardStatsJson(InferenceService& service, const Metrics& metrics) {
  std::vector<std::string> models;
  for (const auto& [name, versions] : service.Stats()) {
    for (const auto& [version, stats] : versions) models.push_back(ModelJson(name, version, stats));
  }
  const Metrics::Latency latency = metrics.ModelRequestLatency();
  const double now =
      std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  return fmt::format(
      R"({{"time_s":{:.6f},"in_flight":{},"models":[{}],)"
      R"("latency":{{"bounds_s":[{}],"cumulative":[{}],"count":{},"sum_s":{:.6f}}},"cache":{},)"
      R"("compute":{}}})",
      now, service.in_flight(), fmt::join(models, ","), fmt::join(latency.bounds_s, ","),
      fmt::join(latency.cumulative, ","), latency.count, latency.sum_s,
      CacheJson(service.cache_stats()), ComputeJson(service.budget_stats()));
}

void AddDashboardStats(RouteTable& routes, InferenceService& service, const Metrics& metrics,
                       RouteAccess access) {
  routes.Add("GET", "/dashboard/stats",
             [&service, &metrics](HttpRequest&, HttpResponderPtr responder, const PathParams&) {
               HttpResponse response;
               response.body = DashboardStatsJson(service, metrics);
               response.headers.emplace_back("Cache-Control", "no-store");
               responder->Send(std::move(response));
             },
             {access});
}

}  // namespace braid
