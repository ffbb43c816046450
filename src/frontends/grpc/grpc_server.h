// The KServe v2 GRPCInferenceService (proto/grpc_service.proto) on gRPC's
// callback API. Unary calls and ModelStreamInfer share InferenceService with
// the HTTP API; a call's deadline becomes the request's hard deadline and a
// cancelled call cancels its queued work.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "core/rate_limiter.h"
#include "core/status.h"
#include "metrics/metrics.h"
#include "serving/inference_service.h"

namespace inference {
class ModelInferRequest;
}

namespace braid {

// The request's inputs as tensors. Raw contents are wrapped, not copied:
// `owner` keeps the message that holds them alive. Errors are
// InvalidArgument with a message for the client. (Public for fuzzing.)
Result<std::map<std::string, Tensor>> InputsFromProto(const inference::ModelInferRequest& request,
                                                      std::shared_ptr<const void> owner);

struct GrpcServerOptions {
  std::string api_key;  // when set, calls need metadata "authorization: Bearer KEY"
  std::string admin_key;
  bool protect_health = false;  // ServerLive and ServerReady need the key too
  std::size_t max_message_bytes = std::size_t{64} << 20;
  // Calls a client address may make (none: no limit); health is exempt.
  std::shared_ptr<RateLimiter> limiter;
  // A connection with no call for this long is closed; one that has not
  // finished its HTTP/2 handshake after handshake_timeout too.
  std::chrono::seconds idle_timeout{60};
  std::chrono::seconds handshake_timeout{10};
  // Memory gRPC may use for its connections and messages, all together.
  std::size_t max_memory_bytes = std::size_t{1} << 30;
  // Connections in all and from one client address (0: no limit); past
  // either a new connection is closed at once.
  std::size_t max_connections = 4096;
  std::size_t max_connections_per_address = 0;
};

class GrpcServer {
 public:
  // `service`, `metrics` and `clock` must outlive the server.
  GrpcServer(InferenceService& service, Metrics& metrics, Clock& clock, GrpcServerOptions options);
  ~GrpcServer();

  // Binds host:port (0: a free port) and starts serving; returns the port.
  Result<std::uint16_t> Start(const std::string& host, std::uint16_t port);
  // Stops accepting calls (GOAWAY) and waits up to `timeout` for running ones.
  void Shutdown(Duration timeout);

 private:
  class Impl;
  friend class StreamReactor;
  std::unique_ptr<Impl> impl_;
};

}  // namespace braid
