#include "server/server.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <cmath>
#include <optional>
#include <thread>

#include "backends/backends.h"
#include "core/compute_budget.h"
#include "frontends/agent/haproxy_agent.h"
#include "frontends/collections/collections_api.h"
#include "frontends/grpc/grpc_server.h"
#include "frontends/http/http_server.h"
#include "frontends/http/routes.h"
#include "frontends/kserve/generate_api.h"
#include "frontends/kserve/kserve_api.h"
#include "frontends/live/live_api.h"
#include "frontends/openai/openai_api.h"
#include "frontends/openai/rerank_api.h"
#include "frontends/openai/speech_api.h"
#include "frontends/tei/tei_api.h"
#include "frontends/web/web.h"
#include "frontends/workflow/workflow_api.h"
#include "metrics/metrics.h"
#include "serving/embedder.h"
#include "serving/inference_service.h"
#include "workflow/workflow_scheduler.h"

namespace braid {

// Declared in construction order; destroyed in reverse. Each member may use
// the ones above it, never one below, with two exceptions, both settled by
// Stop, which the destructor runs first:
//   - the executor's collection callback embeds through `embedder`, built
//     after it (the embedder runs its pipelines on the executor). Only
//     workflow runs call it, and Stop waits on the executor's run gate with
//     no deadline before anything is destroyed;
//   - `service` serves each workflow by name through a WorkflowScheduler
//     that runs on `executor`, built after it. Stop shuts the service down,
//     which shuts those schedulers down and lets them go, before it.
struct Server::Parts {
  explicit Parts(ServerOptions server_options) : options(std::move(server_options)) {}

  const ServerOptions options;
  ImageLimits image_limits;
  AudioLimits audio_limits;
  BackendRegistry backends;
  std::optional<ModelRepository> repository;
  std::unique_ptr<MemoryCache> memory_cache;
  std::unique_ptr<RedisTier> redis;
  std::unique_ptr<ResultCache> cache;
  std::optional<InferenceService> service;
  Metrics metrics;
  std::optional<CollectionStore> collections;
  std::optional<ServiceModelRunner> runner;
  // Runs workflow CPU nodes, image decoding for embeddings and collection
  // work: waited on before anything below it is destroyed.
  std::optional<ThreadPool> workflow_pool;
  std::optional<WorkflowExecutor> executor;
  WorkflowRegistry workflows;
  std::optional<FileStore> files;
  std::optional<WorkflowApi> workflow_api;
  std::optional<GenerateApi> generate_api;
  std::optional<Embedder> embedder;
  std::optional<OpenAiApi> openai_api;
  std::optional<RerankApi> rerank_api;
  std::optional<TeiApi> tei_api;
  std::optional<CollectionsApi> collections_api;
  std::optional<SpeechApi> speech_api;
  // Live streams' pool and decoders: stopped once the model requests are
  // answered, destroyed after the HTTP server (whose connections hold the
  // streams).
  std::optional<LiveSpeech> live;
  std::optional<LiveVideo> live_video;
  std::optional<LiveReports> live_reports;
  std::optional<LiveApi> live_api;
  std::optional<KserveApi> kserve_api;
  // Every front end's endpoints; the routes point into the APIs above.
  std::shared_ptr<RouteTable> routes;
  std::optional<HttpServer> http;
  std::optional<HttpServer> metrics_http;
  std::optional<GrpcServer> grpc;
  std::optional<HaproxyAgent> agent;
  ServerPorts ports;
  bool stopped = false;

  Status Build();
  Status Listen();
  DrainReport Stop(std::chrono::steady_clock::duration timeout);
};

Status Server::Parts::Build() {
  image_limits.max_pixels = options.max_image_pixels;
  audio_limits.max_seconds = options.max_audio_seconds;
  RegisterBuiltinBackends(backends, image_limits, audio_limits);
  repository.emplace(options.repository, backends);
  if (options.cache_bytes > 0)
    memory_cache = std::make_unique<MemoryCache>(options.cache_bytes, SteadyClock());
  if (!options.redis.empty()) {
    BRAID_ASSIGN_OR_RETURN(RedisOptions redis_options, ParseRedisUrl(options.redis));
    redis_options.timeout = std::chrono::duration_cast<Duration>(
        std::chrono::duration<double, std::milli>(options.redis_timeout_ms));
    redis = std::make_unique<RedisTier>(std::move(redis_options), SteadyClock());
  }
  if (memory_cache || redis) cache = std::make_unique<ResultCache>(memory_cache.get(), redis.get());
  if (options.compute_threads > 0) SetProcessComputeThreads(options.compute_threads);
  SetProcessRegularNice(options.compute_nice);
  SchedulerOptions scheduler_options;
  scheduler_options.budget = &ProcessComputeBudget();
  spdlog::info("compute budget: {} threads, regular batches {} nice steps below priority ones",
               scheduler_options.budget->threads(), scheduler_options.budget->regular_nice());
  if (options.no_batching) scheduler_options.batching = false;
  scheduler_options.inline_max_us = options.inline_max_us;
  service.emplace(*repository, SteadyClock(), scheduler_options, cache.get());
  service->SetMediaLimits(image_limits, audio_limits);
  BRAID_RETURN_IF_ERROR(service->LoadAll());

  CollectionStoreOptions collection_options;
  collection_options.directory = options.collections;
  collection_options.max_collections = options.max_collections;
  collection_options.max_items = options.max_collection_items;
  collections.emplace(collection_options);
  collections->Load();

  // Workflows: their model nodes go through the same schedulers.
  runner.emplace(*service);
  workflow_pool.emplace(std::max(2u, std::thread::hardware_concurrency()));
  executor.emplace(*runner, *workflow_pool, SteadyClock());
  executor->SetCache(cache.get());
  executor->SetMediaLimits(image_limits, audio_limits);
  if (!options.upstream_chat.empty()) {
    executor->SetUpstreamChat({options.upstream_chat, options.upstream_key, options.upstream_model,
                               options.upstream_timeout_s});
  }
  if (Status status = workflows.Load(options.workflows, MakeModelCatalog(*service)); !status.ok()) {
    spdlog::warn("no workflows: {}", status.message());
  }
  // A workflow is served by name like a model too (KServe infer over HTTP
  // and gRPC, as Triton serves an ensemble).
  for (const auto& [name, entry] : workflows.entries()) {
    if (!entry.workflow) continue;
    if (repository->Knows(name))
      spdlog::warn("workflow {} shares its name with a model: /v2/models/{}/infer runs the model",
                   name, name);
    service->Serve(name,
                   std::make_shared<WorkflowScheduler>(*executor, entry.workflow, SteadyClock()));
  }
  files.emplace(SteadyClock());
  WorkflowApiOptions workflow_options;
  workflow_options.max_upload_bytes = options.max_upload_bytes;
  workflow_options.ping_interval =
      std::chrono::milliseconds(std::llround(options.sse_ping_s * 1000));
  workflow_options.fetch.allowed_hosts = options.fetch_hosts;
  workflow_options.fetch.max_bytes = options.fetch_max_bytes;
  workflow_options.fetch.timeout =
      std::chrono::milliseconds(std::llround(options.fetch_timeout_s * 1000));
  workflow_options.precompute = executor->caching();
  workflow_api.emplace(workflows, *service, *files, std::move(workflow_options));
  generate_api.emplace(workflows, *service);
  embedder.emplace(*executor, MakeModelCatalog(*service));
  openai_api.emplace(*service, workflows, *embedder);
  rerank_api.emplace(*embedder);
  tei_api.emplace(*embedder, *service, *openai_api);
  collections_api.emplace(*collections, *embedder, *files, *workflow_pool);
  executor->SetCollections(
      &*collections, [this](InputType type, std::string data, EmbeddingSpace space, auto done) {
        const auto kind = type == InputType::kText    ? EmbedItem::Kind::kText
                          : type == InputType::kImage ? EmbedItem::Kind::kImage
                                                      : EmbedItem::Kind::kAudio;
        embedder->EmbedAll({EmbedItem{kind, std::move(data)}}, space,
                           [done](Result<std::vector<std::vector<float>>> vectors) {
                             if (!vectors.ok()) return done(vectors.status());
                             done(std::move((*vectors)[0]));
                           });
      });
  speech_api.emplace(*service);
  LiveSpeechOptions live_options;
  live_options.max_streams = options.live_streams;
  live.emplace(*service, backends, live_options);
  LiveVideoOptions video_options;
  video_options.max_streams = options.live_streams;
  video_options.image = image_limits;
  live_video.emplace(*service, &*embedder, video_options);
  LiveApiOptions live_api_options;
  live_api_options.audio = audio_limits;
  live_api_options.socket.idle_timeout = std::chrono::seconds(options.live_idle_s);
  live_api_options.video_socket.idle_timeout = live_api_options.socket.idle_timeout;
  live_reports.emplace();
  live_api.emplace(*live, *live_video, *live_reports, live_api_options);

  ApiOptions api_options;
  api_options.api_key = options.api_key;
  api_options.admin_key = options.admin_key;
  api_options.protect_health = options.protect_health;
  api_options.limits.max_json_depth = options.max_json_depth;
  kserve_api.emplace(*service, metrics, SteadyClock(), api_options.limits);
  if (options.rate_limit > 0) {
    api_options.limiter =
        std::make_shared<RateLimiter>(options.rate_limit, options.rate_burst, SteadyClock());
  }
  routes = std::make_shared<RouteTable>();
  workflow_api->AddRoutes(*routes);
  generate_api->AddRoutes(*routes);
  rerank_api->AddRoutes(*routes);
  tei_api->AddRoutes(*routes);
  collections_api->AddRoutes(*routes);
  speech_api->AddRoutes(*routes);
  live_api->AddRoutes(*routes);
  openai_api->AddRoutes(*routes);
  AddWebPages(*routes);
  AddDashboardStats(*routes, *service, metrics,
                    options.protect_metrics ? RouteAccess::kKeyed : RouteAccess::kOpen);
  kserve_api->AddRoutes(*routes);
  HttpServerOptions http_options;
  http_options.max_body_bytes = options.max_body_bytes;
  http_options.max_header_count = options.max_header_count;
  http_options.max_body_bytes_in_flight = options.max_body_bytes_in_flight;
  http_options.max_connections = options.max_connections;
  http_options.max_connections_per_address = options.max_connections_per_address;
  http_options.write_timeout = std::chrono::seconds(options.write_timeout_s);
  http_options.idle_timeout = std::chrono::seconds(options.idle_timeout_s);
  http_options.admit = MakeApiAdmission(api_options);
  http_options.tls = options.tls;
  http_options.threads = options.http_threads > 0
                             ? options.http_threads
                             : static_cast<int>(std::max(2u, std::thread::hardware_concurrency()));
  http_options.busy_poll = std::chrono::microseconds(options.http_busy_poll_us);
  http.emplace(http_options, MakeApiHandler(*service, metrics, api_options, routes));
  HttpServerOptions metrics_options;
  metrics_options.threads = 1;
  if (options.tls_metrics) metrics_options.tls = options.tls;
  metrics_http.emplace(
      metrics_options,
      MakeMetricsHandler(*service, metrics, options.protect_metrics ? options.api_key : "",
                         {[this](std::string& out) { live->RenderMetrics(out); },
                          [this](std::string& out) { live_video->RenderMetrics(out); }}));
  GrpcServerOptions grpc_options;
  grpc_options.api_key = options.api_key;
  grpc_options.tls = options.tls;
  grpc_options.admin_key = options.admin_key;
  grpc_options.protect_health = options.protect_health;
  grpc_options.max_message_bytes = options.max_body_bytes;
  grpc_options.response_compression = options.grpc_response_compression;
  grpc_options.limiter = api_options.limiter;
  grpc_options.idle_timeout = http_options.idle_timeout;
  grpc_options.max_connections = options.max_connections;
  grpc_options.max_connections_per_address = options.max_connections_per_address;
  grpc_options.live_audio = audio_limits;
  grpc_options.live_idle_timeout = std::chrono::seconds(options.live_idle_s);
  grpc.emplace(*service, metrics, SteadyClock(), &*live, grpc_options);
  if (options.agent_port >= 0) {
    agent.emplace([this] {
      AgentState state;
      state.ready = service->Ready();
      state.draining = service->draining();
      state.model_load = service->Load();
      if (auto budget = service->budget_stats()) {
        state.budget_threads = budget->threads;
        state.budget_waiting = budget->waiting[static_cast<int>(ComputeClass::kInteractive)];
      }
      return state;
    });
  }
  return Status::Ok();
}

Status Server::Parts::Listen() {
  BRAID_ASSIGN_OR_RETURN(ports.http, http->Listen(options.host, options.http_port));
  BRAID_ASSIGN_OR_RETURN(ports.metrics, metrics_http->Listen(options.host, options.metrics_port));
  BRAID_ASSIGN_OR_RETURN(ports.grpc, grpc->Start(options.host, options.grpc_port));
  if (agent) {
    if (options.agent_port > 65535)
      return InvalidArgument("--agent-port {} is not a port", options.agent_port);
    BRAID_ASSIGN_OR_RETURN(
        ports.agent, agent->Listen(options.host, static_cast<std::uint16_t>(options.agent_port)));
    agent->Start();
  }
  http->Start();
  metrics_http->Start();
  return Status::Ok();
}

DrainReport Server::Parts::Stop(std::chrono::steady_clock::duration timeout) {
  DrainReport report;
  if (stopped) return report;
  stopped = true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (service) service->BeginDrain();
  // No stream can join a live report any more: each finishes with the
  // streams it has, so that its readers end with them.
  if (live_reports) live_reports->AbandonAll();
  // 1–2: the front ends finish what they admitted, within the deadline.
  std::thread grpc_drain;
  if (grpc) {
    grpc_drain = std::thread(
        [this, timeout] { grpc->Shutdown(std::chrono::duration_cast<Duration>(timeout)); });
  }
  if (http && !http->Drain(deadline)) report.http_requests = http->requests_in_flight();
  if (grpc_drain.joinable()) grpc_drain.join();
  if (executor && !executor->Drain(deadline)) report.workflow_runs = executor->runs_in_flight();
  if (service && !service->Drain(deadline)) report.model_requests = service->in_flight();
  // 3: past the deadline, what is left is cut short in order: no network
  // thread runs, queued model requests are answered UNAVAILABLE, the
  // workflow runs left are cancelled (a remote.chat call within 100 ms),
  // then nothing is left in the pool.
  if (http) http->Stop();
  if (metrics_http) metrics_http->Stop();
  if (agent) agent->Stop();
  if (service) service->Shutdown(false);
  if (live) live->Shutdown();
  if (executor) {
    executor->CancelRuns();
    executor->Drain(std::chrono::steady_clock::time_point::max());
  }
  // After the executor: a key frame's embedding runs there.
  if (live_video) live_video->Shutdown();
  if (workflow_pool) workflow_pool->WaitIdle();
  return report;
}

namespace {

// Each connection is a descriptor: the soft limit (often 1024) is raised to
// the hard one, as servers do, so that the connection caps bind before it.
void RaiseDescriptorLimit(std::size_t wanted) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlim_t most = std::min<rlim_t>(limit.rlim_max, rlim_t{1} << 20);
  if (limit.rlim_cur < most) {
    limit.rlim_cur = most;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) getrlimit(RLIMIT_NOFILE, &limit);
  }
  if (limit.rlim_cur < wanted) {
    spdlog::warn(
        "the process may open {} files, fewer than the {} its connection limits need; "
        "raise `ulimit -n` or lower --max-connections",
        limit.rlim_cur, wanted);
  }
}

}  // namespace

Result<std::unique_ptr<Server>> Server::Start(ServerOptions options) {
  RaiseDescriptorLimit(2 * options.max_connections + 1024);
  auto parts = std::make_unique<Parts>(std::move(options));
  Status status = parts->Build();
  if (status.ok()) status = parts->Listen();
  if (!status.ok()) {
    parts->Stop(std::chrono::seconds(0));
    return status;
  }
  return std::unique_ptr<Server>(new Server(std::move(parts)));
}

Server::Server(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

Server::~Server() { parts_->Stop(std::chrono::seconds(0)); }

const ServerPorts& Server::ports() const { return parts_->ports; }

const std::vector<Endpoint>& Server::endpoints() const { return parts_->routes->endpoints(); }

Status Server::ReloadTls() {
  BRAID_RETURN_IF_ERROR(parts_->http->ReloadTls());
  return parts_->metrics_http->ReloadTls();
}

DrainReport Server::Shutdown(std::chrono::steady_clock::duration timeout) {
  return parts_->Stop(timeout);
}

}  // namespace braid
