// Server: the owner of everything `braid serve` runs. It builds the
// subsystems in dependency order (repository, caches, inference service,
// collections, workflow executor, the API front ends, then the HTTP, metrics
// and gRPC listeners) and stops them in reverse, each behind its gate:
//
//   1. readiness turns false, the listeners stop accepting, idle HTTP
//      connections close; requests whose bytes are arriving are read to the
//      end and served (with `Connection: close`), gRPC calls run on;
//   2. it waits, up to the drain timeout in all, for the HTTP requests and
//      gRPC calls in flight, then for workflow runs (predictive precompute
//      included), then for model requests;
//   3. it stops the network threads, waits for the workflow pool's tasks, and
//      destroys the subsystems in reverse order of construction.
//
// Nothing outlives what it uses: every object that runs work for another
// is destroyed before it, and every queue feeding it is drained first.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/compute_budget.h"
#include "core/status.h"
#include "frontends/http/route_table.h"
#include "frontends/tls_files.h"
#include "scheduler/model_scheduler.h"

namespace braid {

struct ServerOptions {
  std::filesystem::path repository;   // model repository
  std::filesystem::path workflows;    // workflow folder
  std::filesystem::path collections;  // where collections persist
  std::string upstream_chat;
  std::string upstream_key;
  std::string upstream_model = "default";
  int upstream_timeout_s = 60;  // until its answer starts, then between two pieces
  std::string host = "0.0.0.0";
  std::uint16_t http_port = 8000;
  std::uint16_t grpc_port = 8001;
  std::uint16_t metrics_port = 8002;
  int agent_port = -1;  // HAProxy agent-check (frontends/agent); -1: none, 0: a free port
  // TLS on the HTTP and gRPC ports (and the metrics port with
  // tls_metrics); no certificate: plaintext.
  TlsFiles tls;
  bool tls_metrics = false;
  std::string api_key;
  std::string admin_key;
  bool protect_health = false;
  bool protect_metrics = false;
  std::size_t max_body_bytes = std::size_t{64} << 20;
  std::size_t max_body_bytes_in_flight = std::size_t{1} << 30;  // HTTP bodies held at once
  std::size_t max_connections = 4096;                           // HTTP, and as many gRPC
  std::size_t max_connections_per_address = 0;  // HTTP, and as many gRPC; 0: no limit
  int write_timeout_s = 60;                     // an answer the client does not read on is dropped
  int idle_timeout_s = 60;  // a connection with no request (HTTP keep-alive, gRPC) is closed
  double rate_limit = 0;    // requests a second per client address (HTTP and gRPC); 0: none
  double rate_burst = 20;
  std::size_t max_header_count = 100;
  std::size_t max_json_depth = 64;
  std::size_t max_upload_bytes = std::size_t{64} << 20;
  double sse_ping_s = 10;  // a quiet workflow event stream gets `event: ping` this often
  // Dify `remote_url` file inputs: fetched only from these hosts (none: off).
  std::vector<std::string> fetch_hosts;
  std::size_t fetch_max_bytes = std::size_t{20} << 20;
  double fetch_timeout_s = 10;
  std::int64_t max_image_pixels = 40'000'000;
  double max_audio_seconds = 600;
  std::size_t live_streams = 8;  // live transcription streams open at once
  int live_idle_s = 10;          // a live stream with no frame for this long is closed
  std::size_t cache_bytes = std::size_t{256} << 20;
  std::string redis;  // redis://host:port[/db]; empty: no shared tier
  double redis_timeout_ms = 5;
  std::size_t max_collections = 256;
  std::size_t max_collection_items = 2'000'000;
  int http_threads = 0;                    // 0: one per core, at least 2
  int http_busy_poll_us = 0;               // HttpServerOptions::busy_poll
  int grpc_response_compression = 0;       // GrpcServerOptions::response_compression
  int compute_threads = 0;                 // 0: the cores the process may use
  int compute_nice = kDefaultRegularNice;  // regular compute's nice steps below priority work
  std::int64_t inline_max_us = kDefaultInlineMaxUs;  // SchedulerOptions::inline_max_us
  bool no_batching = false;
};

// The ports actually bound (the options' 0 picks a free one).
struct ServerPorts {
  std::uint16_t http = 0;
  std::uint16_t grpc = 0;
  std::uint16_t metrics = 0;
  std::uint16_t agent = 0;  // 0: no agent
};

// What a drain left unfinished when its deadline passed (all zero: clean).
struct DrainReport {
  std::size_t http_requests = 0;
  std::size_t workflow_runs = 0;
  std::size_t model_requests = 0;
  bool clean() const { return http_requests + workflow_runs + model_requests == 0; }
};

class Server {
 public:
  // Loads the models and workflows and starts listening. Errors: a bad
  // option (InvalidArgument), a repository that does not load, a port that
  // cannot be bound (Unavailable).
  static Result<std::unique_ptr<Server>> Start(ServerOptions options);
  // Shuts down with no drain time if Shutdown() was not called.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  const ServerPorts& ports() const;
  // The HTTP port's endpoints (its route table), in the order added.
  const std::vector<Endpoint>& endpoints() const;

  // Reads the TLS files again: new connections use them, open ones go on
  // (HTTP and metrics at once; gRPC watches the files itself and takes
  // them within a second). On an error nothing changes.
  Status ReloadTls();

  // Drains (steps 1–3 above), giving in-flight work up to `timeout` in all,
  // and stops every subsystem. Blocks. Call once.
  DrainReport Shutdown(std::chrono::steady_clock::duration timeout);

 private:
  struct Parts;
  explicit Server(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace braid
