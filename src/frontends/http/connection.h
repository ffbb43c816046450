// What HttpServer's two protocols share: the server's state each
// connection works against (options, the handler, the body budget, the
// drain gate, the registry of open connections), the base every connection
// implements, and the stream types a connection runs over. Internal to
// src/frontends/http: it shows Asio and Beast, which the rest of braid never
// sees.
#pragma once

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/gate.h"
#include "frontends/http/http_server.h"
#include "frontends/http/tls_socket.h"
#include "frontends/listener.h"

namespace braid::http_internal {

// A plain connection: Beast's TCP stream on the connection's context.
using PlainStream = TlsSocket::next_layer_type;
using TlsStream = TlsSocket;

// The bytes of request bodies in memory, process-wide, against a limit.
class BodyBudget {
 public:
  explicit BodyBudget(std::size_t limit) : limit_(limit) {}

  bool Take(std::size_t bytes);
  void Give(std::size_t bytes) { used_ -= bytes; }
  std::size_t used() const { return used_.load(); }

 private:
  const std::size_t limit_;
  std::atomic<std::size_t> used_{0};
};

// One body's share of the budget, given back when it is destroyed.
class BodyCharge {
 public:
  explicit BodyCharge(std::shared_ptr<BodyBudget> budget) : budget_(std::move(budget)) {}
  BodyCharge(BodyCharge&& other) noexcept
      : budget_(std::move(other.budget_)), bytes_(std::exchange(other.bytes_, 0)) {}
  BodyCharge& operator=(BodyCharge&& other) noexcept {
    Release();
    budget_ = std::move(other.budget_);
    bytes_ = std::exchange(other.bytes_, 0);
    return *this;
  }
  ~BodyCharge() { Release(); }

  // Raises the share to `total` bytes; false if the budget has not that many.
  bool GrowTo(std::size_t total);
  void Release() {
    if (bytes_ > 0) budget_->Give(std::exchange(bytes_, 0));
  }

 private:
  std::shared_ptr<BodyBudget> budget_;
  std::size_t bytes_ = 0;
};

// The body handed to a handler: it holds its share of the budget while
// anyone holds it.
std::shared_ptr<const std::string> HoldBody(std::string bytes, BodyCharge charge);

// gzip (RFC 1952) of `data`; empty on failure.
std::string Gzip(std::string_view data);
// Gzips `response`'s body in place when the client takes gzip and the body
// is large and textual (never a response with a tail).
void CompressIfWorthIt(HttpResponse& response, bool gzip_ok, std::size_t min_bytes);
// The client takes gzip (its Accept-Encoding).
bool AcceptsGzip(const HttpRequest& request);

// Answers that have no body and send no Content-Length (RFC 9110 8.6: a
// 304's would have to be the length of the representation it stands for).
inline bool WithoutLength(int status) { return status == 204 || status == 304; }

// A responder's word that its client has gone: the callback given to
// OnDisconnect runs once, when the client goes or at once if it has gone,
// never under the lock. Thread-safe.
class DisconnectWatch {
 public:
  void Set(std::function<void()> callback) {
    {
      std::lock_guard lock(mutex_);
      if (!gone_) {
        callback_ = std::move(callback);
        return;
      }
    }
    callback();
  }
  void Gone() {
    std::function<void()> callback;
    {
      std::lock_guard lock(mutex_);
      gone_ = true;
      callback = std::move(callback_);
    }
    if (callback) callback();
  }
  bool gone() const {
    std::lock_guard lock(mutex_);
    return gone_;
  }

 private:
  mutable std::mutex mutex_;
  std::function<void()> callback_;  // guarded by mutex_
  bool gone_ = false;               // guarded by mutex_
};

// Steady-clock nanoseconds, as the connections' deadlines are kept.
std::int64_t NowNs();

// How long a network thread keeps polling after its last event before it
// sleeps, within HttpServerOptions::busy_poll (`most`). A lull the thread
// slept through although it ended within `most` (a replica's answer, a
// client's next request) widens the window to cover the next one like it;
// a longer lull (nothing was coming soon) halves it, so a thread on a quiet
// port soon stops spending its core.
class PollWindow {
 public:
  explicit PollWindow(std::chrono::nanoseconds most) : most_(most), window_(most) {}

  std::chrono::nanoseconds window() const { return window_; }
  // A lull of `lull` (last event to next, the polling included) ended.
  void Ended(std::chrono::nanoseconds lull) {
    window_ = lull <= most_ ? std::min(most_, std::max(window_, lull + lull / 4)) : window_ / 2;
  }

 private:
  const std::chrono::nanoseconds most_;
  std::chrono::nanoseconds window_;
};

// The network threads, each running an io_context of its own (concurrency
// hint 1: Asio keeps what a thread posts to itself in a private queue, and
// no other thread competes for its reactor or wakes up for its events).
// A connection lives on one context, so its handlers run on one thread
// with no strand around its reads and writes. It keeps a strand for the
// work other threads hand it (an answer's chunks), so that the work runs in
// the order it was handed over, which the context's own queue does not keep
// (what the context's thread posts waits in a private queue until its
// current handler returns; other threads' posts go ahead).
class NetworkContexts {
 public:
  // `busy_poll`: HttpServerOptions::busy_poll.
  explicit NetworkContexts(int threads, std::chrono::microseconds busy_poll = {});
  // Stops, then shuts every context down before destroying any: a pending
  // handler of one may hold a connection whose socket is on another.
  ~NetworkContexts();
  NetworkContexts(const NetworkContexts&) = delete;
  NetworkContexts& operator=(const NetworkContexts&) = delete;

  // Where the next connection, or an HTTP/2 stream's handler, goes: the
  // contexts in turn.
  boost::asio::io_context& Next();
  // The context whose thread calls; the first one from any other thread.
  boost::asio::io_context& OfThisThread();
  boost::asio::io_context& first() { return *contexts_.front(); }

  // Starts a thread per context. Non-blocking.
  void Start();
  // Stops the contexts and joins their threads; their pending handlers stay
  // until the contexts are destroyed.
  void Stop();
  bool running() const { return !threads_.empty(); }

 private:
  using WorkGuard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  // An io_context whose shutdown (its pending handlers destroyed) can run
  // apart from its destruction.
  struct Context : boost::asio::io_context {
    Context() : io_context(1) {}
    using io_context::shutdown;
  };
  std::vector<std::unique_ptr<Context>> contexts_;
  std::vector<WorkGuard> work_;
  std::vector<std::thread> threads_;
  const std::chrono::microseconds busy_poll_;
  std::atomic<std::size_t> next_{0};
};

// An open connection, of either protocol, as the server sees it. Its
// methods may be called from any thread; they run their work on the
// connection's strand.
class Connection {
 public:
  virtual ~Connection() = default;
  // Closes the connection if a deadline has passed by `now` (NowNs).
  virtual void Sweep(std::int64_t now) = 0;
  // The server drains: the connection closes once it owes no answer.
  virtual void Drain() = 0;
  // After the network threads stopped: lets go of what the connection's
  // handlers hold (a WebSocket's).
  virtual void Abandon() = 0;
};

// The server's state every connection works against.
struct ServerCore {
  ServerCore(HttpServerOptions options_in, HttpHandler handler_in)
      : options(std::move(options_in)),
        handler(std::move(handler_in)),
        budget(std::make_shared<BodyBudget>(options.max_body_bytes_in_flight)),
        limits(options.max_connections, options.max_connections_per_address),
        network(options.threads, options.busy_poll) {}

  void Add(Connection* connection, std::weak_ptr<Connection> weak) {
    std::lock_guard lock(connections_mutex);
    connections.emplace(connection, std::move(weak));
  }
  void Remove(Connection* connection) {
    std::lock_guard lock(connections_mutex);
    connections.erase(connection);
  }
  std::vector<std::shared_ptr<Connection>> Open() {
    std::vector<std::shared_ptr<Connection>> open;
    std::lock_guard lock(connections_mutex);
    open.reserve(connections.size());
    for (const auto& [raw, weak] : connections) {
      if (auto connection = weak.lock()) open.push_back(std::move(connection));
    }
    return open;
  }

  const HttpServerOptions options;
  const HttpHandler handler;
  // Shared with the bodies handed out, which may outlive the server.
  const std::shared_ptr<BodyBudget> budget;
  std::atomic<bool> draining{false};
  ConnectionLimits limits;
  // Held from the first byte of a request until its answer is written:
  // what the drain waits for. Never closed; the drain stops admission by
  // closing the acceptor and the idle connections.
  Gate requests;
  std::mutex connections_mutex;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections;  // guarded
  // Last: the connections that the contexts' pending handlers hold are
  // destroyed with them, and still update the members above.
  NetworkContexts network;
};

// An HTTP/1.1 request that asked to continue as HTTP/2 (Upgrade: h2c), read
// in full: it becomes the connection's stream 1.
struct Http2Upgrade {
  HttpRequest request;   // body included
  std::string settings;  // HTTP2-Settings, base64url-decoded
  bool head = false;     // a HEAD request
};

// Serves `stream` as HTTP/2 from here on. `received` holds bytes already
// read from it (the client's preface, in part or whole); `prefix` is
// written before the server's first frame (an upgrade's 101 answer). The
// connection counts in `core.limits` under `address` until it is destroyed
// (its last responder let go).
template <typename Stream>
void ServeHttp2(ServerCore& core, Stream stream, std::string address, std::string_view received,
                std::string prefix, std::optional<Http2Upgrade> upgrade);

extern template void ServeHttp2<PlainStream>(ServerCore&, PlainStream, std::string,
                                             std::string_view, std::string,
                                             std::optional<Http2Upgrade>);
extern template void ServeHttp2<TlsStream>(ServerCore&, TlsStream, std::string, std::string_view,
                                           std::string, std::optional<Http2Upgrade>);

}  // namespace braid::http_internal
