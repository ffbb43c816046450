// HttpServer: HTTP/1.1 on Boost.Asio/Beast and HTTP/2 on nghttp2, plaintext
// or TLS (OpenSSL), behind a small interface so that the rest of braid never
// sees the libraries. Both protocols call the same handlers.
//
// Each connection reads one request at a time and answers it before reading
// the next, so pipelined requests are answered in order. Handlers run on a
// network thread and must not block: they hand work elsewhere and answer
// through the HttpResponder later, from any thread. Keep-alive, chunked
// request bodies, chunked (streamed) responses and gzip of large textual
// responses are handled here, as are the limits on header size and count,
// body size and idle or slow clients.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/status.h"
#include "frontends/tls_files.h"

namespace boost::asio {
class io_context;
}

namespace braid {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query as sent
  std::string path;    // percent-decoded path without the query
  std::string query;
  std::string peer;  // the client's IP address
  std::vector<std::pair<std::string, std::string>> headers;
  std::shared_ptr<const std::string> body;

  // The first header named `name` (case-insensitive), or empty.
  std::string_view Header(std::string_view name) const;
  // The first query parameter named `name`, percent-decoded; none when the
  // query has no such parameter.
  std::optional<std::string> QueryParameter(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Bytes sent after `body` without being copied into it (binary output
  // tensors); `owner` keeps each part alive until it is written. A response
  // with a tail is never gzipped.
  struct Part {
    const char* data = nullptr;
    std::size_t size = 0;
    std::shared_ptr<const void> owner;
  };
  std::vector<Part> tail;
};

// One accepted WebSocket connection (RFC 6455). Thread-safe.
class WebSocket {
 public:
  virtual ~WebSocket() = default;
  // Queues a text message; false once the connection is closing or gone, or
  // when the client leaves more than WebSocketOptions::max_unsent_bytes
  // unread (the connection is then dropped).
  virtual bool SendText(std::string text) = 0;
  // Reads the next message: one message is read per call, so a sender the
  // handler cannot keep up with is slowed by TCP instead of buffered.
  virtual void ReadNext() = 0;
  // Sends a close frame with `code` (1000 normal, 1003 unsupported data,
  // 1008 policy, 1011 server error) after the queued messages, then closes.
  virtual void Close(int code, std::string reason) = 0;
};

// What a WebSocket route does with its connection. Its methods run on the
// connection's network thread, one at a time, and must not block.
class WebSocketHandler {
 public:
  virtual ~WebSocketHandler() = default;
  // The handshake is done; nothing is read until `socket->ReadNext()`.
  virtual void OnOpen(std::shared_ptr<WebSocket> socket) = 0;
  virtual void OnMessage(std::string data, bool binary) = 0;
  // The connection is gone (closed by either side, a timeout, an error or
  // a message over the limit). Called once, last.
  virtual void OnClosed() = 0;
  // The server drains: finish soon and Close().
  virtual void OnDrain() {}
};

struct WebSocketOptions {
  std::size_t max_message_bytes = std::size_t{1} << 20;
  // With no frame from the client for this long while the handler waits
  // for one (ReadNext), the connection closes (checked once a second).
  std::chrono::seconds idle_timeout{30};
  std::size_t max_unsent_bytes = std::size_t{4} << 20;
};

// A GET asking to become a WebSocket (Upgrade: websocket).
bool IsWebSocketUpgrade(const HttpRequest& request);
// The API key of a WebSocket handshake that offers it as the subprotocol
// "bearer.KEY" (a browser's WebSocket cannot send Authorization; it offers
// "braid" beside it, which the server selects); empty otherwise.
std::string_view WebSocketBearer(const HttpRequest& request);

// Answers one request. Thread-safe; every method may be called from any
// thread. Exactly one of Send(), StartStream()…EndStream() or
// AcceptWebSocket() is used.
class HttpResponder {
 public:
  virtual ~HttpResponder() = default;
  virtual void Send(HttpResponse response) = 0;
  // Runs `make` on the connection's network thread and sends what it
  // returns: for responses that are costly to encode, so that the caller
  // (a scheduler thread) hands the work back to the network.
  virtual void SendFrom(std::function<HttpResponse()> make) = 0;
  // Starts a chunked response; the body follows through WriteChunk().
  virtual void StartStream(int status, std::string content_type,
                           std::vector<std::pair<std::string, std::string>> headers = {}) = 0;
  // Queues a chunk; false once the client has gone.
  virtual bool WriteChunk(std::string data) = 0;
  virtual void EndStream() = 0;
  // `callback` runs (once, on a network thread) if the client disconnects
  // before the answer is written; at once if it already has.
  virtual void OnDisconnect(std::function<void()> callback) = 0;
  // Turns the connection into a WebSocket served by `handler` (for a
  // request IsWebSocketUpgrade accepts; others are answered 400). Must be
  // called from within the HttpHandler, before it returns. The connection
  // counts as a request in flight until it closes, so a drain waits for it
  // (after telling the handler, OnDrain).
  virtual void AcceptWebSocket(std::shared_ptr<WebSocketHandler> handler,
                               WebSocketOptions options) = 0;
};
using HttpResponderPtr = std::shared_ptr<HttpResponder>;

using HttpHandler = std::function<void(HttpRequest& request, HttpResponderPtr responder)>;
// Decides on a request's head (method, target, path, peer, headers; no body
// yet) whether it may go on: an answer refuses it. A refused request that
// declared a body (`has_body`) is answered with `Connection: close` before a
// byte of its body is read or buffered.
using HttpAdmission =
    std::function<std::optional<HttpResponse>(const HttpRequest& head, bool has_body)>;

struct HttpServerOptions {
  std::size_t max_body_bytes = std::size_t{64} << 20;
  std::size_t max_header_bytes = 16 << 10;
  std::size_t max_header_count = 100;
  // Bytes of request bodies held in memory at once, process-wide: past it a
  // request is refused 503 (Retry-After) as its body would grow beyond it.
  std::size_t max_body_bytes_in_flight = std::size_t{1} << 30;
  std::size_t max_connections = 4096;
  std::size_t max_connections_per_address = 0;  // 0: no limit
  std::chrono::seconds idle_timeout{60};        // keep-alive connection with no request
  std::chrono::seconds request_timeout{30};     // to receive a whole request once it started
  std::chrono::seconds write_timeout{60};       // an answer the client does not read on
  // A streamed answer's bytes queued and not yet taken by the client: past
  // it the connection closes (the client cannot keep up).
  std::size_t max_unsent_bytes = std::size_t{16} << 20;
  std::size_t gzip_min_bytes = 1024;
  int threads = 2;
  // After its last event a network thread keeps polling for the next one
  // before it sleeps, at most this long: an answer that comes back within
  // it (a proxied replica's, a fast model's) is taken without a wake-up, at
  // the cost of that much CPU per lull. Each thread fits its window to the
  // lulls it sees (http_internal::PollWindow). 0: sleep at once.
  std::chrono::microseconds busy_poll{0};
  // Asked for every request on its head (none: every request goes on).
  HttpAdmission admit;
  // Set: every connection speaks TLS (1.2 or later), and ALPN picks HTTP/2
  // or HTTP/1.1. Unset: HTTP/1.1, and HTTP/2 for a client that opens with
  // its preface (prior knowledge) or asks with `Upgrade: h2c`.
  TlsFiles tls;
  // HTTP/2: streams a connection may have open at once, and streams whose
  // answer is still owed (reset ones included) past which new ones are
  // refused (REFUSED_STREAM).
  std::uint32_t max_concurrent_streams = 128;
  std::size_t max_streams_owed = 256;
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens; port 0 picks a free port. Returns the bound port.
  // With TLS, loads the certificate first.
  Result<std::uint16_t> Listen(const std::string& host, std::uint16_t port);
  // Reads the TLS files again: new connections handshake with them, open
  // ones go on with what they have. On an error nothing changes.
  Status ReloadTls();
  // Starts the network threads. Non-blocking.
  void Start();
  // Stops accepting and closes the idle connections. A request whose first
  // byte has arrived is read to the end and handled; its answer carries
  // `Connection: close` and the connection closes after it. Blocks until
  // every such request is answered and written, or `deadline` passes; true
  // if none is left.
  bool Drain(std::chrono::steady_clock::time_point deadline);
  // Stops the network threads and closes every connection. Blocks.
  void Stop();

  // The io_context of the network thread that calls (a handler's), the
  // first one from any other thread: for a handler that does its own
  // network I/O (the router's upstream connections) on the thread that read
  // the request instead of handing it to another. Objects bound to it must
  // be destroyed before the server.
  boost::asio::io_context& network_context();

  std::size_t open_connections() const;
  // Requests being read, handled or written.
  std::size_t requests_in_flight() const;
  // Bytes of request bodies held in memory (read, or handed to a handler
  // that still holds them).
  std::size_t body_bytes_in_flight() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// A response whose body is the JSON `body`.
HttpResponse Json(std::string body, int status = 200);
// An {"error": message} response.
HttpResponse JsonError(int status, std::string_view message);
// The JSON error for a failed `status`, with its HTTP status (status_mapping.h).
HttpResponse JsonError(const Status& status);

// ASCII letters compared without case, as HTTP compares header names and
// tokens.
bool EqualsIgnoringCase(std::string_view a, std::string_view b);

// %XX escapes decoded; with `plus_is_space` (query strings) '+' becomes ' '.
std::string PercentDecode(std::string_view text, bool plus_is_space = false);

}  // namespace braid
