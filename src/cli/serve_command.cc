// `braid serve`: the server. KServe v2 over HTTP and gRPC, Prometheus
// metrics, graceful drain on SIGTERM/SIGINT.
#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "api/collections_api.h"
#include "api/embedder.h"
#include "api/grpc/grpc_server.h"
#include "api/http/http_server.h"
#include "api/http/routes.h"
#include "api/inference_service.h"
#include "api/openai_api.h"
#include "api/retrieval_api.h"
#include "api/speech_api.h"
#include "api/web.h"
#include "api/workflow_api.h"
#include "backends/backends.h"
#include "cli/commands.h"
#include "core/compute_budget.h"
#include "metrics/metrics.h"

namespace braid::cli {
namespace {

struct ServeOptions {
  std::string repository;
  std::string workflows;
  std::string upstream_chat;
  std::string upstream_key;
  std::string upstream_model = "default";
  std::string host = "0.0.0.0";
  std::uint16_t http_port = 8000;
  std::uint16_t grpc_port = 8001;
  std::uint16_t metrics_port = 8002;
  std::string api_key;
  std::string admin_key;
  bool protect_health = false;
  bool protect_metrics = false;
  double drain_timeout_s = 30;
  std::size_t max_body_bytes = std::size_t{64} << 20;
  std::size_t max_header_count = 100;
  std::size_t max_json_depth = 64;
  std::size_t max_upload_bytes = std::size_t{64} << 20;
  std::int64_t max_image_pixels = 40'000'000;
  double max_audio_seconds = 600;
  std::size_t cache_bytes = std::size_t{256} << 20;
  std::string redis;
  double redis_timeout_ms = 5;
  std::string data_dir;
  std::size_t max_collections = 256;
  std::size_t max_collection_items = 2'000'000;
  int http_threads = 0;
  int compute_threads = 0;
  bool no_batching = false;
  bool debug = false;
};

// Where collections persist without --data-dir: $XDG_DATA_HOME/braid, else
// ~/.local/share/braid (the XDG default), else ./braid-data.
std::filesystem::path DefaultDataDirectory() {
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && xdg[0] == '/')
    return std::filesystem::path(xdg) / "braid";
  if (const char* home = std::getenv("HOME"); home != nullptr && home[0] == '/')
    return std::filesystem::path(home) / ".local/share/braid";
  return "braid-data";
}

int RunServe(const ServeOptions& options) {
  if (options.debug) spdlog::set_level(spdlog::level::debug);
  // Block the stop signals in every thread; the main thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ImageLimits image_limits;
  image_limits.max_pixels = options.max_image_pixels;
  AudioLimits audio_limits;
  audio_limits.max_seconds = options.max_audio_seconds;
  BackendRegistry backends;
  RegisterBuiltinBackends(backends, image_limits, audio_limits);
  ModelRepository repository(ModelRepositoryOrDefault(options.repository), backends);
  std::unique_ptr<MemoryCache> memory_cache;
  if (options.cache_bytes > 0)
    memory_cache = std::make_unique<MemoryCache>(options.cache_bytes, SteadyClock());
  std::unique_ptr<RedisTier> redis;
  if (!options.redis.empty()) {
    auto redis_options = ParseRedisUrl(options.redis);
    if (!redis_options.ok()) {
      fmt::print(stderr, "braid serve: {}\n", redis_options.status().message());
      return 1;
    }
    redis_options->timeout = std::chrono::duration_cast<Duration>(
        std::chrono::duration<double, std::milli>(options.redis_timeout_ms));
    redis = std::make_unique<RedisTier>(std::move(*redis_options), SteadyClock());
  }
  std::unique_ptr<ResultCache> cache;
  if (memory_cache || redis) cache = std::make_unique<ResultCache>(memory_cache.get(), redis.get());
  if (options.compute_threads > 0) SetProcessComputeThreads(options.compute_threads);
  SchedulerOptions scheduler_options;
  scheduler_options.budget = &ProcessComputeBudget();
  spdlog::info("compute budget: {} threads", scheduler_options.budget->threads());
  if (options.no_batching) scheduler_options.batching = false;
  InferenceService service(repository, SteadyClock(), scheduler_options, cache.get());
  spdlog::info("loading models from {}", repository.root().string());
  if (Status status = service.LoadAll(); !status.ok()) {
    fmt::print(stderr, "braid serve: {}\n", status.message());
    return 1;
  }
  Metrics metrics;

  HttpServerOptions http_options;
  http_options.max_body_bytes = options.max_body_bytes;
  http_options.max_header_count = options.max_header_count;
  http_options.threads = options.http_threads > 0
                             ? options.http_threads
                             : static_cast<int>(std::max(2u, std::thread::hardware_concurrency()));
  // Collections outlive the pool whose tasks use them.
  CollectionStoreOptions collection_options;
  collection_options.directory =
      (options.data_dir.empty() ? DefaultDataDirectory()
                                : std::filesystem::path(options.data_dir)) /
      "collections";
  collection_options.max_collections = options.max_collections;
  collection_options.max_items = options.max_collection_items;
  CollectionStore collections(collection_options);
  collections.Load();
  // Workflows: their model nodes go through the same schedulers.
  ServiceModelRunner runner(service);
  ThreadPool workflow_pool(std::max(2u, std::thread::hardware_concurrency()));
  WorkflowExecutor executor(runner, workflow_pool, SteadyClock());
  executor.SetCache(cache.get());
  executor.SetMediaLimits(image_limits, audio_limits);
  if (!options.upstream_chat.empty()) {
    executor.SetUpstreamChat({options.upstream_chat, options.upstream_key, options.upstream_model});
  }
  WorkflowRegistry workflows;
  const auto workflow_dir = WorkflowsOrDefault(options.workflows);
  if (Status status = workflows.Load(workflow_dir, MakeModelCatalog(service)); !status.ok()) {
    spdlog::warn("no workflows: {}", status.message());
  }
  FileStore files(SteadyClock());
  WorkflowApi workflow_api(workflows, executor, files, options.max_upload_bytes);

  ApiOptions api_options;
  api_options.api_key = options.api_key;
  api_options.admin_key = options.admin_key;
  api_options.protect_health = options.protect_health;
  api_options.limits.max_json_depth = options.max_json_depth;
  Embedder embedder(service, executor, workflow_pool);
  OpenAiApi openai_api(service, workflows, executor, embedder);
  RetrievalApi retrieval_api(embedder, executor, openai_api);
  CollectionsApi collections_api(collections, embedder, files, workflow_pool);
  executor.SetCollections(
      &collections, [&embedder](InputType type, std::string data, int dimensions, auto done) {
        const auto kind = type == InputType::kText    ? EmbedItem::Kind::kText
                          : type == InputType::kImage ? EmbedItem::Kind::kImage
                                                      : EmbedItem::Kind::kAudio;
        embedder.EmbedAll({EmbedItem{kind, std::move(data)}}, dimensions,
                          [done](Result<std::vector<std::vector<float>>> vectors) {
                            if (!vectors.ok()) return done(vectors.status());
                            done(std::move((*vectors)[0]));
                          });
      });
  SpeechApi speech_api(service);
  std::vector<RouteHandler> keyed = {
      [&](HttpRequest& r, HttpResponderPtr& p) { return workflow_api.Handle(r, p); },
      [&](HttpRequest& r, HttpResponderPtr& p) { return retrieval_api.Handle(r, p); },
      [&](HttpRequest& r, HttpResponderPtr& p) { return collections_api.Handle(r, p); },
      [&](HttpRequest& r, HttpResponderPtr& p) { return speech_api.Handle(r, p); },
      [&](HttpRequest& r, HttpResponderPtr& p) { return openai_api.Handle(r, p); }};
  std::vector<RouteHandler> open = {MakeWebPages()};
  (options.protect_metrics ? keyed : open).push_back(MakeDashboardStats(service, metrics));
  HttpServer http(http_options, MakeApiHandler(service, metrics, SteadyClock(), api_options,
                                               std::move(keyed), std::move(open)));
  HttpServerOptions metrics_options;
  metrics_options.threads = 1;
  HttpServer metrics_http(
      metrics_options,
      MakeMetricsHandler(service, metrics, options.protect_metrics ? options.api_key : ""));
  GrpcServerOptions grpc_options;
  grpc_options.api_key = options.api_key;
  grpc_options.admin_key = options.admin_key;
  grpc_options.max_message_bytes = options.max_body_bytes;
  GrpcServer grpc(service, metrics, SteadyClock(), grpc_options);

  auto http_port = http.Listen(options.host, options.http_port);
  auto metrics_port =
      http_port.ok() ? metrics_http.Listen(options.host, options.metrics_port) : http_port;
  auto grpc_port = metrics_port.ok() ? grpc.Start(options.host, options.grpc_port) : metrics_port;
  if (!grpc_port.ok()) {
    fmt::print(stderr, "braid serve: {}\n", grpc_port.status().message());
    return 1;
  }
  http.Start();
  metrics_http.Start();
  fmt::print("braid ready http={}:{} grpc={}:{} metrics={}:{}\n", options.host, *http_port,
             options.host, *grpc_port, options.host, *metrics_port);
  std::fflush(stdout);

  int signal = 0;
  sigwait(&signals, &signal);
  spdlog::warn("{}: draining (up to {} s)", signal == SIGTERM ? "SIGTERM" : "SIGINT",
               options.drain_timeout_s);
  const auto timeout =
      std::chrono::duration_cast<Duration>(std::chrono::duration<double>(options.drain_timeout_s));
  service.BeginDrain();
  http.StopAccepting();
  std::thread grpc_drain([&] { grpc.Shutdown(timeout); });
  bool idle = service.WaitIdle(timeout);
  idle = http.WaitAnswered(std::chrono::milliseconds(1000)) && idle;
  grpc_drain.join();
  http.Stop();
  metrics_http.Stop();
  if (!idle)
    spdlog::warn("drain timeout passed with {} requests still in flight", service.in_flight());
  return 0;
}

}  // namespace

void AddServeCommand(CLI::App& app, int* exit_code) {
  auto options = std::make_shared<ServeOptions>();
  auto* serve = app.add_subcommand(
      "serve",
      "Serve the models over KServe v2 HTTP and gRPC with Prometheus metrics. With no flags it "
      "serves the "
      "embedded default repository on ports 8000 (HTTP), 8001 (gRPC) and 8002 (metrics). When "
      "ready it prints "
      "one line: 'braid ready http=HOST:PORT grpc=HOST:PORT metrics=HOST:PORT'. SIGTERM or SIGINT "
      "stops "
      "accepting, finishes in-flight requests (up to --drain-timeout) and exits 0.");
  serve->add_option("-m,--model-repository", options->repository,
                    "Model repository (default: the embedded one)");
  serve->add_option("--workflows", options->workflows,
                    "Workflow folder (default: the embedded one)");
  serve->add_option(
      "--upstream-chat", options->upstream_chat,
      "Base URL of an OpenAI-compatible chat API (http://host:port/v1) that writes the answers of "
      "workflows with remote.chat nodes; without it they answer from templates");
  serve->add_option("--upstream-key", options->upstream_key, "API key for --upstream-chat")
      ->envname("BRAID_UPSTREAM_KEY");
  serve
      ->add_option("--upstream-model", options->upstream_model,
                   "Model name to ask --upstream-chat for")
      ->capture_default_str();
  serve->add_option("--host", options->host, "Address to listen on")->capture_default_str();
  serve->add_option("--http-port", options->http_port, "HTTP port (0: pick a free one)")
      ->capture_default_str();
  serve->add_option("--grpc-port", options->grpc_port, "gRPC port (0: pick a free one)")
      ->capture_default_str();
  serve
      ->add_option("--metrics-port", options->metrics_port,
                   "Prometheus metrics port (0: pick a free one)")
      ->capture_default_str();
  serve
      ->add_option(
          "--api-key", options->api_key,
          "Require 'Authorization: Bearer KEY' on every endpoint except health, metrics and "
          "the web pages")
      ->envname("BRAID_API_KEY");
  serve->add_flag("--protect-health", options->protect_health,
                  "Health endpoints need the API key too (open by default, for probes)");
  serve->add_flag("--protect-metrics", options->protect_metrics,
                  "/metrics and /dashboard/stats need the API key too (open by default)");
  serve
      ->add_option("--admin-key", options->admin_key,
                   "Separate key required for repository load/unload")
      ->envname("BRAID_ADMIN_KEY");
  serve
      ->add_option("--drain-timeout", options->drain_timeout_s,
                   "Seconds to finish in-flight requests on shutdown")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve
      ->add_option("--max-body-bytes", options->max_body_bytes,
                   "Largest request body (HTTP) or message (gRPC)")
      ->capture_default_str();
  serve->add_option("--max-header-count", options->max_header_count, "Most HTTP header fields")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      ->add_option("--max-json-depth", options->max_json_depth,
                   "Deepest nesting of arrays and objects in a JSON body")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      ->add_option("--max-upload-bytes", options->max_upload_bytes,
                   "Largest file for /v1/files/upload and workflow file parts")
      ->capture_default_str();
  serve
      ->add_option("--max-image-pixels", options->max_image_pixels,
                   "Largest image (width × height) braid decodes; a model's max_pixels "
                   "parameter may lower it")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      ->add_option("--max-audio-seconds", options->max_audio_seconds,
                   "Longest audio braid decodes; a model's max_seconds parameter may lower it")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      ->add_option("--cache-bytes", options->cache_bytes,
                   "In-process result cache size in bytes (0: none). Caches models with "
                   "response_cache.enable and workflow nodes")
      ->capture_default_str();
  serve->add_option("--redis", options->redis,
                    "Shared result cache tier, redis://host:port[/db]; an outage only costs hits");
  serve
      ->add_option("--redis-timeout-ms", options->redis_timeout_ms,
                   "Timeout of each Redis call; past it the tier is marked down and retried")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      ->add_option("--data-dir", options->data_dir,
                   "Folder where collections persist, in collections/ (default: "
                   "$XDG_DATA_HOME/braid, else ~/.local/share/braid, else ./braid-data)")
      ->envname("BRAID_DATA_DIR");
  serve
      ->add_option("--max-collections", options->max_collections,
                   "Most collections (POST /v1/collections/{c}/items creates one)")
      ->capture_default_str();
  serve
      ->add_option("--max-collection-items", options->max_collection_items,
                   "Most items in all collections together")
      ->capture_default_str();
  serve->add_option("--http-threads", options->http_threads,
                    "Network threads (default: one per core, at least 2)");
  serve
      ->add_option("--compute-threads", options->compute_threads,
                   "Threads that compute, shared by every model and engine (default: the cores "
                   "the process may use, from its CPU affinity and cgroup quota)")
      ->check(CLI::NonNegativeNumber);
  serve->add_flag("--no-batching", options->no_batching,
                  "Run every request alone, whatever the configs say (a benchmark baseline)");
  serve->add_flag("--debug", options->debug, "Log every request (debug level) to stderr");
  serve->set_config("--config", "", "Read these options from a TOML/INI file");
  serve->callback([options, exit_code] { *exit_code = RunServe(*options); });
}

}  // namespace braid::cli
