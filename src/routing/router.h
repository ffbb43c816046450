// Router: `braid router`, the HTTP front of several `braid serve` replicas.
// It loads no models; it picks a replica per request (see policy.h),
// forwards the request over a pooled keep-alive connection and relays the
// answer (streamed answers, such as workflow events, chunk by chunk), all
// as asynchronous I/O on the network thread that read the request.
//
// Health: an active check of GET /v2/health/ready on every replica each
// `health_interval`, answered within twice that but 1 s at least and 2 s
// at most (its X-Braid-Load header feeds load_weighted), and
// passive ejection after `eject_after_failures` consecutive failures
// (connection errors, 502/503/504), re-admitted by the next passing check
// after `eject_time`. Idempotent requests (GET, and POSTs to inference,
// embeddings, blocking workflow runs) are retried on another replica after
// a connection failure or a 503. A replica takes at most
// `max_inflight_per_replica` requests at once; with every replica at its
// cap the router answers 503. A drained replica gets no new requests while
// its in-flight ones finish.
//
// Admin endpoints: GET /router/replicas (state as JSON),
// POST /router/drain?replica=URL and /router/undrain?replica=URL.
//
// gRPC: with `grpc_replicas` (host:port of each replica's gRPC port, in the
// order of `replicas`), GrpcService() forwards every unary call by method
// name, as raw bytes, to the replica the policy picks (the same health,
// caps, drain and retries of UNAVAILABLE; cache_affinity hashes the
// request message).
//
// TLS to the replicas: https:// replica URLs (all of them, or none) are
// reached over TLS, their certificates checked against `upstream_tls.ca`
// and their names, with `upstream_tls.cert` shown to replicas that ask for
// a client certificate; their gRPC ports are then reached over TLS too.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "frontends/http/http_server.h"
#include "frontends/tls_client.h"
#include "routing/policy.h"

namespace boost::asio {
class io_context;
}
namespace grpc {
class CallbackGenericService;
}

namespace braid {

struct RouterOptions {
  std::vector<std::string> replicas;       // http://host:port or https://host:port
  std::vector<std::string> grpc_replicas;  // host:port, empty or one per replica
  Policy policy = Policy::kRoundRobin;
  Duration health_interval = std::chrono::milliseconds(500);
  int eject_after_failures = 3;
  Duration eject_time = std::chrono::seconds(5);
  std::size_t max_inflight_per_replica = 256;
  int retries = 2;  // further replicas tried for an idempotent request
  Duration connect_timeout = std::chrono::seconds(1);
  Duration upstream_timeout = std::chrono::seconds(120);
  ClientTlsFiles upstream_tls;  // for https:// replicas
};

class Router {
 public:
  // The io_context of the network thread that calls Handle
  // (HttpServer::network_context).
  using NetworkContext = std::function<boost::asio::io_context&()>;

  // Parses the replica URLs and starts the health checks. Requests are
  // forwarded on the network thread that calls Handle, whose io_context
  // `network` gives (the HttpServer's): the router must be destroyed after
  // that server stops and before the server is destroyed.
  static Result<std::unique_ptr<Router>> Create(RouterOptions options, Clock& clock,
                                                NetworkContext network);
  ~Router();

  // The HttpHandler of the router's server.
  void Handle(HttpRequest& request, HttpResponderPtr responder);

  // Any replica healthy.
  bool Ready() const;
  // The gRPC proxy to register on a grpc::Server; null without grpc_replicas.
  grpc::CallbackGenericService* GrpcService();
  std::string StatusJson() const;

  class Impl;  // in router.cc

 private:
  explicit Router(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace braid
