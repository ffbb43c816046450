// `braid router --replica URL ...`: the HTTP front of several `braid serve`
// replicas (see routing/router.h).
#include <fmt/core.h>
#include <grpcpp/grpcpp.h>

#include <thread>

#include "cli/commands.h"
#include "frontends/grpc/credentials.h"
#include "frontends/http/http_server.h"
#include "routing/router.h"

namespace braid::cli {
namespace {

struct RouterCommandOptions {
  std::vector<std::string> replicas;
  std::vector<std::string> grpc_replicas;
  std::uint16_t grpc_port = 8001;
  std::string policy = "round_robin";
  std::string host = "0.0.0.0";
  std::uint16_t http_port = 8000;
  double health_interval_ms = 500;
  int eject_after = 3;
  double eject_s = 5;
  std::size_t max_inflight = 256;
  int retries = 2;
  double upstream_timeout_s = 120;
  int threads = 0;  // 0: one per core, at least 2
  int busy_poll_us = 500;
  TlsFiles tls;  // the router's own ports
  ClientTlsFiles upstream_tls;
};

int RunRouter(const RouterCommandOptions& flags) {
  const sigset_t signals = BlockStopSignals();

  auto policy = ParsePolicy(flags.policy);
  if (!policy.ok()) {
    fmt::print(stderr, "braid router: {}\n", policy.status().message());
    return 1;
  }
  auto milliseconds = [](double ms) {
    return std::chrono::duration_cast<Duration>(std::chrono::duration<double, std::milli>(ms));
  };
  RouterOptions options;
  options.replicas = flags.replicas;
  options.grpc_replicas = flags.grpc_replicas;
  options.policy = *policy;
  options.health_interval = milliseconds(flags.health_interval_ms);
  options.eject_after_failures = flags.eject_after;
  options.eject_time = milliseconds(flags.eject_s * 1000);
  options.max_inflight_per_replica = flags.max_inflight;
  options.retries = flags.retries;
  options.upstream_timeout = milliseconds(flags.upstream_timeout_s * 1000);
  options.upstream_tls = flags.upstream_tls;
  HttpServerOptions http_options;
  http_options.max_body_bytes = std::size_t{1} << 30;
  http_options.tls = flags.tls;
  http_options.threads = flags.threads > 0
                             ? flags.threads
                             : static_cast<int>(std::max(2u, std::thread::hardware_concurrency()));
  http_options.busy_poll = std::chrono::microseconds(flags.busy_poll_us);
  // The router forwards on the server's network threads: it is created once
  // the server exists and destroyed once the server has stopped.
  std::unique_ptr<Router> router;
  HttpServer http(http_options, [&router](HttpRequest& request, HttpResponderPtr responder) {
    router->Handle(request, std::move(responder));
  });
  auto created = Router::Create(options, SteadyClock(), [&http]() -> boost::asio::io_context& {
    return http.network_context();
  });
  if (!created.ok()) {
    fmt::print(stderr, "braid router: {}\n", created.status().message());
    return 1;
  }
  router = std::move(*created);
  auto port = http.Listen(flags.host, flags.http_port);
  if (!port.ok()) {
    fmt::print(stderr, "braid router: {}\n", port.status().message());
    return 1;
  }
  std::unique_ptr<grpc::Server> grpc_server;
  int grpc_port = 0;
  if (auto* service = router->GrpcService()) {
    auto credentials = GrpcServerCredentials(flags.tls);
    if (!credentials.ok()) {
      fmt::print(stderr, "braid router: {}\n", credentials.status().message());
      return 1;
    }
    grpc::ServerBuilder builder;
    builder.AddListeningPort(flags.host + ":" + std::to_string(flags.grpc_port), *credentials,
                             &grpc_port);
    builder.SetMaxReceiveMessageSize(-1);
    builder.SetMaxSendMessageSize(-1);
    builder.RegisterCallbackGenericService(service);
    grpc_server = builder.BuildAndStart();
    if (!grpc_server || grpc_port == 0) {
      fmt::print(stderr, "braid router: cannot listen for gRPC on {}:{}\n", flags.host,
                 flags.grpc_port);
      return 1;
    }
  }
  http.Start();
  fmt::print("braid router ready http={}:{}{} policy={} replicas={}\n", flags.host, *port,
             grpc_server ? fmt::format(" grpc={}:{}", flags.host, grpc_port) : "", flags.policy,
             flags.replicas.size());
  std::fflush(stdout);
  WaitForStop(signals, flags.tls, [&] { return http.ReloadTls(); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::thread http_drain([&] { http.Drain(deadline); });
  if (grpc_server)
    grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(30));
  http_drain.join();
  http.Stop();
  grpc_server.reset();
  router.reset();
  return 0;
}

}  // namespace

void AddRouterCommand(CLI::App& app, int* exit_code) {
  auto options = std::make_shared<RouterCommandOptions>();
  auto* router = app.add_subcommand(
      "router",
      "Balance HTTP requests over several braid serve replicas: policies, health checks, "
      "ejection, retries, drain");
  router
      ->add_option("--replica", options->replicas,
                   "A replica's URL, http://host:port or https://host:port (repeat; all of one "
                   "scheme)")
      ->required();
  router->add_option("--grpc-replica", options->grpc_replicas,
                     "A replica's gRPC host:port, one per --replica in the same order (repeat); "
                     "enables the gRPC proxy");
  router->add_option("--grpc-port", options->grpc_port, "gRPC port with --grpc-replica (0: free)")
      ->capture_default_str();
  router
      ->add_option("--policy", options->policy,
                   "round_robin, least_outstanding, load_weighted or cache_affinity")
      ->capture_default_str();
  router->add_option("--host", options->host, "Address to listen on")->capture_default_str();
  router->add_option("--http-port", options->http_port, "Port (0: a free one)")
      ->capture_default_str();
  router
      ->add_option("--health-interval-ms", options->health_interval_ms,
                   "Active readiness check period per replica")
      ->capture_default_str();
  router
      ->add_option("--eject-after", options->eject_after,
                   "Consecutive failures that take a replica out")
      ->capture_default_str();
  router
      ->add_option("--eject-seconds", options->eject_s,
                   "Least time out before a passing check re-admits it")
      ->capture_default_str();
  router
      ->add_option("--max-inflight", options->max_inflight,
                   "Requests in flight per replica at most (503 when all are full)")
      ->capture_default_str();
  router
      ->add_option("--retries", options->retries,
                   "Other replicas tried for an idempotent request after a failure or 503")
      ->capture_default_str();
  router
      ->add_option("--upstream-timeout", options->upstream_timeout_s,
                   "Seconds a replica has to answer a forwarded request, from sending it to the "
                   "answer's last byte (then 504, and the replica counts a failure)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  router->add_option("--threads", options->threads,
                     "Network threads, which also forward (default: one per core, at least 2)");
  router
      ->add_option("--busy-poll-us", options->busy_poll_us,
                   "The most a network thread keeps polling after its last event before it "
                   "sleeps: a replica's answer that comes back within it is relayed without a "
                   "wake-up. Each thread polls as long as its recent short lulls lasted and "
                   "halves that after a longer one (0: sleep at once)")
      ->check(CLI::Range(0, 10000))
      ->capture_default_str();
  AddTlsFlags(*router, options->tls, "router's HTTP and gRPC");
  router
      ->add_option("--upstream-ca", options->upstream_tls.ca,
                   "https:// replicas: the PEM CA their certificates must chain to (default: the "
                   "system's CAs)")
      ->check(CLI::ExistingFile);
  auto* upstream_cert =
      router
          ->add_option("--upstream-cert", options->upstream_tls.cert,
                       "https:// replicas: PEM certificate the router shows them (for replicas "
                       "started with --tls-client-ca)")
          ->check(CLI::ExistingFile);
  auto* upstream_key =
      router->add_option("--upstream-key", options->upstream_tls.key, "PEM key of --upstream-cert")
          ->check(CLI::ExistingFile);
  upstream_cert->needs(upstream_key);
  upstream_key->needs(upstream_cert);
  router->callback([options, exit_code] { *exit_code = RunRouter(*options); });
}

}  // namespace braid::cli
