// `braid serve`: the server. KServe v2 over HTTP and gRPC, Prometheus
// metrics, graceful drain on SIGTERM/SIGINT.
#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "cli/commands.h"
#include "core/clock.h"
#include "server/server.h"

namespace braid::cli {
namespace {

// The flags: the server's options, and what the command itself resolves.
struct ServeOptions : ServerOptions {
  std::string repository_flag;
  std::string workflows_flag;
  std::string data_dir;
  double drain_timeout_s = 30;
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

int RunServe(const ServeOptions& flags) {
  // A server says what it is doing while it starts (each model as it loads).
  spdlog::set_level(flags.debug ? spdlog::level::debug : spdlog::level::info);
  // Block the stop signals in every thread; the main thread waits for them.
  const sigset_t signals = BlockStopSignals();

  ServerOptions options = flags;
  options.repository = ModelRepositoryOrDefault(flags.repository_flag);
  options.workflows = WorkflowsOrDefault(flags.workflows_flag);
  options.collections =
      (flags.data_dir.empty() ? DefaultDataDirectory() : std::filesystem::path(flags.data_dir)) /
      "collections";
  auto server = Server::Start(std::move(options));
  if (!server.ok()) {
    fmt::print(stderr, "braid serve: {}\n", server.status().message());
    return 1;
  }
  const ServerPorts& ports = (*server)->ports();
  fmt::print("braid ready http={}:{} grpc={}:{} metrics={}:{}{}\n", flags.host, ports.http,
             flags.host, ports.grpc, flags.host, ports.metrics,
             ports.agent ? fmt::format(" agent={}:{}", flags.host, ports.agent) : "");
  std::fflush(stdout);

  const int signal = WaitForStop(signals, flags.tls, [&] { return (*server)->ReloadTls(); });
  spdlog::warn("{}: draining (up to {} s)", signal == SIGTERM ? "SIGTERM" : "SIGINT",
               flags.drain_timeout_s);
  const DrainReport report = (*server)->Shutdown(
      std::chrono::duration_cast<Duration>(std::chrono::duration<double>(flags.drain_timeout_s)));
  if (!report.clean()) {
    spdlog::warn(
        "drain timeout passed with {} HTTP requests, {} workflow runs and {} model requests "
        "still in flight",
        report.http_requests, report.workflow_runs, report.model_requests);
  }
  server->reset();
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
  serve->add_option("-m,--model-repository", options->repository_flag,
                    "Model repository (default: the embedded one)");
  serve->add_option("--workflows", options->workflows_flag,
                    "Workflow folder (default: the embedded one)");
  serve->add_option(
      "--upstream-chat", options->upstream_chat,
      "Base URL of an OpenAI-compatible chat API (http://host:port/v1) that writes the answers of "
      "workflows with remote.chat nodes; without it they answer from templates");
  serve
      ->add_option("--upstream-timeout", options->upstream_timeout_s,
                   "Seconds --upstream-chat may take to start its answer, and then between two "
                   "of its pieces")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
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
      ->add_option("--agent-port", options->agent_port,
                   "Answer HAProxy's agent-check on this port (0: pick a free one): a weight "
                   "that falls with load, 'drain' while draining (deploy/haproxy)")
      ->check(CLI::Range(0, 65535));
  CLI::Option* tls_cert = AddTlsFlags(*serve, options->tls, "HTTP and gRPC");
  serve
      ->add_flag("--tls-metrics", options->tls_metrics,
                 "The metrics port speaks TLS too (default: plaintext, for scrapers inside the "
                 "cluster)")
      ->needs(tls_cert);
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
  serve
      ->add_option("--max-body-bytes-in-flight", options->max_body_bytes_in_flight,
                   "HTTP request bodies held in memory at once, all clients together; past it "
                   "requests are refused 503 with Retry-After")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      ->add_option("--max-connections", options->max_connections,
                   "Most HTTP connections, and as many gRPC ones")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      ->add_option("--max-connections-per-address", options->max_connections_per_address,
                   "Most HTTP connections from one client address, and as many gRPC ones "
                   "(0: no limit). Off by default, as in nginx and Envoy: behind a proxy or a "
                   "gateway every client has one address; set it when clients reach braid "
                   "directly")
      ->capture_default_str();
  serve
      ->add_option("--write-timeout", options->write_timeout_s,
                   "Seconds an answer may wait for its client to read on before the connection "
                   "is dropped")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      ->add_option("--idle-timeout", options->idle_timeout_s,
                   "Seconds a connection may stay open with no request (HTTP keep-alive, gRPC)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      ->add_option("--rate-limit", options->rate_limit,
                   "Requests a second each client address may make, HTTP and gRPC together "
                   "(token bucket; 429 / RESOURCE_EXHAUSTED past it; health is exempt). "
                   "0: no limit")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve
      ->add_option("--rate-burst", options->rate_burst,
                   "Requests a client address may make at once above --rate-limit")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
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
      ->add_option("--sse-ping-interval", options->sse_ping_s,
                   "Seconds after which a quiet workflow event stream gets an `event: ping` "
                   "(keeps proxies from closing it)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      ->add_option("--fetch-hosts", options->fetch_hosts,
                   "Hosts whose http:// URLs workflow inputs may name (Dify remote_url files); "
                   "'*.example.com' allows subdomains. None by default: remote files are refused")
      ->delimiter(',');
  serve
      ->add_option("--fetch-max-bytes", options->fetch_max_bytes,
                   "Largest remote file fetched (also capped by --max-upload-bytes)")
      ->capture_default_str();
  serve
      ->add_option("--fetch-timeout", options->fetch_timeout_s,
                   "Seconds a remote file may take, connect to last byte")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
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
      ->add_option("--live-streams", options->live_streams,
                   "Live transcription WebSockets (/v1/audio/transcriptions/stream) open at "
                   "once; each holds a speech decoder (PocketSphinx: about 90 MB)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve
      ->add_option("--live-idle-seconds", options->live_idle_s,
                   "A live stream whose client sends no frame for this long is closed (1008)")
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
      ->add_option("--http-busy-poll-us", options->http_busy_poll_us,
                   "The most an HTTP network thread keeps polling after its last event before it "
                   "sleeps (each fits it to its recent lulls, and stops while they are long): "
                   "a client's next request is read without a wake-up, for at most that much "
                   "CPU per lull, which models and a router on the same cores then lack (0: "
                   "sleep at once)")
      ->check(CLI::Range(0, 10000))
      ->capture_default_str();
  const std::map<std::string, int> compression_levels = {
      {"none", 0}, {"low", 1}, {"medium", 2}, {"high", 3}};
  serve
      ->add_option("--grpc-response-compression", options->grpc_response_compression,
                   "How hard gRPC ModelInfer answers of 1 KiB or more are compressed for a "
                   "client that accepts compression (gzip or deflate, as it accepts). Tensors "
                   "compress poorly for the CPU it costs: a 602 KB answer at 'low' cut throughput "
                   "4.5x on loopback; worth it only on slow links")
      ->transform(CLI::CheckedTransformer(compression_levels, CLI::ignore_case))
      ->option_text("none|low|medium|high (none)");
  serve
      ->add_option("--compute-threads", options->compute_threads,
                   "Threads that compute, shared by every model and engine (default: the cores "
                   "the process may use, from its CPU affinity and cgroup quota)")
      ->check(CLI::NonNegativeNumber);
  serve
      ->add_option("--compute-nice", options->compute_nice,
                   "How many nice steps the threads of regular batches run below those of "
                   "priority instances, so that an urgent batch beside a long one gets the cores "
                   "(0: one priority for all)")
      ->check(CLI::Range(0, 19))
      ->capture_default_str();
  serve
      ->add_option("--inline-max-us", options->inline_max_us,
                   "A request to a model whose batches take at most this long (measured) runs "
                   "on the network thread that read it when an instance is idle and nothing is "
                   "queued, instead of being handed to the model's worker and back (0: never)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  serve->add_flag("--no-batching", options->no_batching,
                  "Run every request alone, whatever the configs say (a benchmark baseline)");
  serve->add_flag("--debug", options->debug, "Log every request (debug level) to stderr");
  serve->footer(
      "Options can also come from a TOML file, under its [serve] table "
      "(http-port = 9000): braid serve --config braid.toml");
  serve->callback([options, exit_code] { *exit_code = RunServe(*options); });
}

}  // namespace braid::cli
