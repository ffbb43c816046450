#include "frontends/http/http_server.h"

#include <fmt/format.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <zlib.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <deque>
#include <mutex>
#include <type_traits>

#include "core/base64.h"
#include "frontends/http/connection.h"
#include "frontends/status_mapping.h"

namespace braid {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using http_internal::AcceptsGzip;
using http_internal::BodyCharge;
using http_internal::Connection;
using http_internal::HoldBody;
using http_internal::Http2Upgrade;
using http_internal::NowNs;
using http_internal::PlainStream;
using http_internal::ServerCore;
using http_internal::TlsStream;
using http_internal::WithoutLength;

namespace {

std::string ReasonPhrase(int status) {
  auto reason = http::obsolete_reason(static_cast<http::status>(status));
  return reason.empty() ? "Status" : std::string(reason.data(), reason.size());
}

constexpr char kPlainToTls[] = R"({"error":"this port speaks TLS: use https://"})";

// What an HTTP/2 client sends first (RFC 9113 §3.4).
constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

bool Compressible(std::string_view content_type) {
  return content_type.starts_with("application/json") || content_type.starts_with("text/");
}

}  // namespace

namespace http_internal {

bool BodyBudget::Take(std::size_t bytes) {
  std::size_t used = used_.load();
  do {
    if (bytes > limit_ - std::min(used, limit_)) return false;
  } while (!used_.compare_exchange_weak(used, used + bytes));
  return true;
}

bool BodyCharge::GrowTo(std::size_t total) {
  if (total <= bytes_) return true;
  if (!budget_->Take(total - bytes_)) return false;
  bytes_ = total;
  return true;
}

std::shared_ptr<const std::string> HoldBody(std::string bytes, BodyCharge charge) {
  struct Held {
    std::string bytes;
    BodyCharge charge;
  };
  auto held = std::make_shared<Held>(Held{std::move(bytes), std::move(charge)});
  return std::shared_ptr<const std::string>(held, &held->bytes);
}

std::string Gzip(std::string_view data) {
  z_stream stream{};
  if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK)
    return {};
  std::string out(deflateBound(&stream, data.size()), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  int result = deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return result == Z_STREAM_END ? out : std::string();
}

void CompressIfWorthIt(HttpResponse& response, bool gzip_ok, std::size_t min_bytes) {
  if (!gzip_ok || !response.tail.empty() || response.body.size() < min_bytes ||
      !Compressible(response.content_type))
    return;
  if (std::string compressed = Gzip(response.body); !compressed.empty()) {
    response.body = std::move(compressed);
    response.headers.emplace_back("Content-Encoding", "gzip");
    response.headers.emplace_back("Vary", "Accept-Encoding");
  }
}

bool AcceptsGzip(const HttpRequest& request) {
  return request.Header("Accept-Encoding").find("gzip") != std::string_view::npos;
}

NetworkContexts::NetworkContexts(int threads, std::chrono::microseconds busy_poll)
    : busy_poll_(busy_poll) {
  for (int i = 0; i < std::max(threads, 1); ++i) contexts_.push_back(std::make_unique<Context>());
}

NetworkContexts::~NetworkContexts() {
  Stop();
  for (const auto& context : contexts_) context->shutdown();
}

net::io_context& NetworkContexts::Next() {
  return *contexts_[next_.fetch_add(1, std::memory_order_relaxed) % contexts_.size()];
}

net::io_context& NetworkContexts::OfThisThread() {
  for (const auto& context : contexts_) {
    if (context->get_executor().running_in_this_thread()) return *context;
  }
  return first();
}

void NetworkContexts::Start() {
  for (const auto& context : contexts_) {
    work_.emplace_back(context->get_executor());
    threads_.emplace_back([&context = *context, busy_poll = busy_poll_] {
      if (busy_poll.count() == 0) {
        context.run();
        return;
      }
      using Steady = std::chrono::steady_clock;
      PollWindow poll(busy_poll);
      while (!context.stopped()) {
        auto last = Steady::now();
        while (Steady::now() - last < poll.window()) {
          if (context.poll() > 0) {
            last = Steady::now();
          } else {
            sched_yield();  // a thread that wants this core runs first
          }
          if (context.stopped()) return;
        }
        context.run_one();
        poll.Ended(Steady::now() - last);
      }
    });
  }
}

void NetworkContexts::Stop() {
  if (threads_.empty()) return;
  work_.clear();
  for (const auto& context : contexts_) context->stop();
  for (auto& thread : threads_) thread.join();
  threads_.clear();
}

std::int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace http_internal

std::string_view HttpRequest::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoringCase(key, name)) return value;
  }
  return {};
}

std::optional<std::string> HttpRequest::QueryParameter(std::string_view name) const {
  std::string_view rest = query;
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    const auto equals = pair.find('=');
    if (PercentDecode(pair.substr(0, equals), true) == name)
      return equals == std::string_view::npos ? "" : PercentDecode(pair.substr(equals + 1), true);
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

namespace {

// The first item of a comma-separated header value (spaces around items
// dropped) that `matches`.
template <typename Predicate>
std::optional<std::string_view> FindListItem(std::string_view list, Predicate matches) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (matches(item)) return item;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return std::nullopt;
}

bool HasToken(std::string_view list, std::string_view token) {
  return FindListItem(list,
                      [token](std::string_view item) { return EqualsIgnoringCase(item, token); })
      .has_value();
}

constexpr std::string_view kBraidProtocol = "braid";
constexpr std::string_view kBearerProtocol = "bearer.";

bool OffersBraidProtocol(std::string_view protocols) {
  return FindListItem(protocols, [](std::string_view item) { return item == kBraidProtocol; })
      .has_value();
}

// The decoded HTTP2-Settings of a request asking to go on as cleartext
// HTTP/2 (RFC 7540 §3.2); none if it does not ask, or asks wrongly.
std::optional<std::string> H2cSettings(const HttpRequest& request) {
  // Every HTTP/1.1 request is asked: the Upgrade header decides first.
  if (!HasToken(request.Header("Upgrade"), "h2c")) return std::nullopt;
  const auto settings = std::find_if(
      request.headers.begin(), request.headers.end(),
      [](const auto& field) { return EqualsIgnoringCase(field.first, "HTTP2-Settings"); });
  if (settings == request.headers.end() || !HasToken(request.Header("Connection"), "Upgrade") ||
      !HasToken(request.Header("Connection"), "HTTP2-Settings"))
    return std::nullopt;
  std::string text(settings->second);
  for (char& c : text) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  while (text.size() % 4 != 0) text += '=';
  auto decoded = Base64Decode(text);
  if (!decoded.ok()) return std::nullopt;
  return std::move(*decoded);
}

}  // namespace

bool IsWebSocketUpgrade(const HttpRequest& request) {
  return request.method == "GET" && HasToken(request.Header("Upgrade"), "websocket") &&
         HasToken(request.Header("Connection"), "upgrade");
}

std::string_view WebSocketBearer(const HttpRequest& request) {
  if (!IsWebSocketUpgrade(request)) return {};
  auto item = FindListItem(request.Header("Sec-WebSocket-Protocol"),
                           [](std::string_view item) { return item.starts_with(kBearerProtocol); });
  return item ? item->substr(kBearerProtocol.size()) : std::string_view();
}

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string PercentDecode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && std::isxdigit(text[i + 1]) &&
        std::isxdigit(text[i + 2])) {
      out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += plus_is_space && text[i] == '+' ? ' ' : text[i];
    }
  }
  return out;
}

HttpResponse Json(std::string body, int status) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

HttpResponse JsonError(int status, std::string_view message) {
  HttpResponse response;
  response.status = status;
  response.body = "{\"error\":\"";
  for (char c : message) {
    if (c == '"' || c == '\\') {
      response.body += '\\';
      response.body += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      response.body += ' ';
    } else {
      response.body += c;
    }
  }
  response.body += "\"}";
  return response;
}

HttpResponse JsonError(const Status& status) {
  return JsonError(HttpStatusFor(status.code()), status.message());
}

class HttpServer::Impl {
 public:
  Impl(HttpServerOptions options, HttpHandler handler)
      : core_(std::move(options), std::move(handler)),
        listener_(
            core_.network.first(), core_.limits, Refusal(),
            [this](Listener::Socket socket, std::string address) {
              Take(std::move(socket), std::move(address));
            },
            [this]() -> net::io_context& { return core_.network.Next(); }) {}

  template <typename Stream>
  class Session;

  ServerCore core_;
  Listener listener_;
  net::steady_timer sweeper_{core_.network.first()};
  std::mutex tls_mutex_;
  // What new TLS connections handshake with (a reload swaps it; open ones
  // keep theirs); none: plaintext.
  std::shared_ptr<ssl::context> tls_;  // guarded by tls_mutex_

  // Once a second: closes the connections whose deadline has passed.
  void Sweep();
  // Serves a connection the listener admitted.
  void Take(Listener::Socket socket, std::string address);
  // A plaintext connection is HTTP/2 if it opens with the client preface
  // (prior knowledge), HTTP/1.1 otherwise: reads until that is clear.
  void Detect(std::shared_ptr<PlainStream> stream, std::string address,
              std::shared_ptr<beast::flat_buffer> received);
  // A TLS connection is HTTP/2 if ALPN chose h2, HTTP/1.1 otherwise; a
  // client that speaks plain HTTP to it is told so (nginx's 400).
  void Handshake(std::shared_ptr<TlsStream> stream, std::string address);
  void StartHandshake(std::shared_ptr<TlsStream> stream, std::string address,
                      std::shared_ptr<beast::flat_buffer> received);

  // What a connection past the caps gets before it is closed.
  static std::string Refusal() {
    const std::string body = R"({"error":"the server takes no more connections now; retry"})";
    return fmt::format(
        "HTTP/1.1 503 Service Unavailable\r\nServer: braid\r\nContent-Type: application/json\r\n"
        "Content-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{}",
        body.size(), body);
  }
};

template <typename Stream>
class HttpServer::Impl::Session : public Connection,
                                  public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr std::size_t kDirectBodyBytes = 64 << 10;
  // What a large body's buffer starts at before its bytes arrive.
  static constexpr std::size_t kFirstBodyBytes = 1 << 20;

  // One write: the head, then the body and the parts that follow it.
  struct Outgoing {
    std::string head;
    std::string body;
    std::vector<HttpResponse::Part> tail;
    std::size_t unsent = 0;  // what it counts in unsent_ (a stream's chunk)
  };
  // A HEAD's answer: the head as GET's, Content-Length included, alone.
  static void WithoutBody(Outgoing& bytes) {
    bytes.body.clear();
    bytes.tail.clear();
  }
  static constexpr std::size_t kFirstReadBytes = 4096;
  // Most bytes handed to one write call.
  static constexpr std::size_t kWriteSliceBytes = 1 << 20;
  // How long, and up to how many bytes, a refused request's rest is read
  // and dropped before its connection closes.
  static constexpr std::chrono::seconds kLingerTime{2};
  static constexpr std::size_t kLingerBytes = std::size_t{16} << 20;

  // `address` has been counted in the server's limits; `received` holds
  // bytes already read from `stream`.
  Session(ServerCore& server, Stream stream, std::string address, beast::flat_buffer received)
      : server_(server),
        stream_(std::move(stream)),
        strand_(net::make_strand(stream_.get_executor())),
        address_(std::move(address)),
        buffer_(std::move(received)),
        charge_(server.budget) {}
  ~Session() override {
    server_.Remove(this);
    if (!handed_over_) server_.limits.Release(address_);
  }

  void Run() {
    server_.Add(this, this->weak_from_this());
    net::dispatch(strand_, [self = this->shared_from_this()] {
      if (self->server_.draining) {
        self->request_ = self->server_.requests.TryEnter();
        return self->ReadAfterDrain();
      }
      self->ReadNext();
    });
  }

  // Closes the connection if a deadline (a write without progress, a
  // request's reads, an idle wait) has passed by `now`.
  void Sweep(std::int64_t now) override {
    if (!Expired(now)) return;
    net::dispatch(strand_, [self = this->shared_from_this()] {
      const std::int64_t now = NowNs();
      if (!self->Expired(now)) return;
      // A WebSocket client that sends nothing hears why before it goes.
      const std::int64_t write = self->deadline_.load(std::memory_order_relaxed);
      if (self->ws_open_ && !self->ws_close_ && (write == 0 || now < write)) {
        self->ws_read_deadline_.store(0, std::memory_order_relaxed);
        return self->WsClose(
            1008, fmt::format("no frame for {} s", self->ws_options_.idle_timeout.count()));
      }
      self->Close();
    });
  }

  // A deadline (a write's, a WebSocket read's, or a TLS request's reads')
  // has passed by `now`.
  bool Expired(std::int64_t now) const {
    for (const auto* deadline : {&deadline_, &ws_read_deadline_, &read_deadline_}) {
      const std::int64_t at = deadline->load(std::memory_order_relaxed);
      if (at != 0 && now >= at) return true;
    }
    return false;
  }

  // The drain closes a connection only while it is idle: no byte of a
  // request read and no answer owed. Its pending read is cancelled rather
  // than the connection closed, so that a request whose bytes the read
  // already took (its completion queued behind this) is served, and one
  // that arrived meanwhile is read (ReadAfterDrain): closing with them
  // unread would reset the connection. Until that is settled the
  // connection counts as a request in flight, which the drain waits for.
  // Runs on the strand.
  void Drain() override {
    net::dispatch(strand_, [self = this->shared_from_this()] {
      if (self->ws_open_) return self->ws_handler_->OnDrain();
      if (self->request_ || self->closed_) return;
      self->request_ = self->server_.requests.TryEnter();
      self->drain_cancelled_ = true;
      beast::error_code ignored;
      self->Tcp().socket().cancel(ignored);
    });
  }

  // After the network threads stopped: a WebSocket's handler hears that its
  // connection is gone, so that it lets the session go.
  void Abandon() override {
    ws_open_ = false;
    if (auto handler = std::move(ws_handler_)) handler->OnClosed();
  }

  // HttpResponder for the request being answered. Holds the session alive.
  // An answer given inside the handler is written as it returns
  // (TakeInlineAnswer), one given on the connection's thread while it waits
  // is written at once (WaitsHere); other writes are deferred, not posted,
  // to the session's strand: called on a network thread (a stream's chunks)
  // they run on that thread once the current handler returns, without
  // waking another; called from any other thread, defer is post.
  class Responder : public HttpResponder {
   public:
    // `head`: the request is a HEAD, answered with the headers GET's answer
    // would have (its Content-Length included) and no body.
    Responder(std::shared_ptr<Session> session, bool keep_alive, bool gzip_ok, bool head = false)
        : session_(std::move(session)), keep_alive_(keep_alive), gzip_ok_(gzip_ok), head_(head) {}
    ~Responder() override {
      if (!answered_.exchange(true)) {
        Send(JsonError(500, "the request was dropped without an answer"));
      }
    }

    // HttpResponder
    void Send(HttpResponse response) override {
      answered_ = true;
      Outgoing bytes = session_->Serialize(std::move(response), keep_alive_, gzip_ok_, false);
      if (head_) WithoutBody(bytes);
      if (session_->TakeInlineAnswer(bytes, keep_alive_)) return;
      if (session_->WaitsHere()) return session_->Write(std::move(bytes), true, keep_alive_);
      net::defer(session_->strand_,
                 [session = session_, bytes = std::move(bytes), keep = keep_alive_]() mutable {
                   session->Write(std::move(bytes), true, keep);
                 });
    }
    void SendFrom(std::function<HttpResponse()> make) override {
      answered_ = true;
      if (session_->InHandler() || session_->WaitsHere()) return Send(make());
      net::defer(session_->strand_, [session = session_, make = std::move(make), keep = keep_alive_,
                                     gzip = gzip_ok_, head = head_]() mutable {
        Outgoing bytes = session->Serialize(make(), keep, gzip, false);
        if (head) WithoutBody(bytes);
        session->Write(std::move(bytes), true, keep);
      });
    }
    void StartStream(int status, std::string content_type,
                     std::vector<std::pair<std::string, std::string>> headers) override {
      answered_ = true;
      HttpResponse head;
      head.status = status;
      head.content_type = std::move(content_type);
      head.headers = std::move(headers);
      Outgoing bytes = session_->Serialize(std::move(head), keep_alive_, false, true);
      // A HEAD's stream ends with its headers; the chunks are refused.
      net::defer(session_->strand_, [session = session_, bytes = std::move(bytes), last = head_,
                                     keep = keep_alive_]() mutable {
        session->Write(std::move(bytes), last, last ? keep : true);
      });
    }
    void OnDisconnect(std::function<void()> callback) override {
      disconnect_.Set(std::move(callback));
    }
    // Runs on the session's thread when the watcher finds the client gone.
    void Disconnected() { disconnect_.Gone(); }
    void AcceptWebSocket(std::shared_ptr<WebSocketHandler> handler,
                         WebSocketOptions options) override {
      answered_ = true;
      session_->upgrade_ = Upgrade{std::move(handler), options};
    }
    bool WriteChunk(std::string data) override {
      if (session_->closed_ || head_) return false;
      if (data.empty()) return true;
      std::string chunk = fmt::format("{:x}\r\n", data.size());
      chunk += data;
      chunk += "\r\n";
      const std::size_t size = chunk.size();
      if (session_->unsent_.fetch_add(size) + size > session_->server_.options.max_unsent_bytes) {
        // The client does not read as fast as the answer comes: it is let go.
        net::defer(session_->strand_, [session = session_] { session->Close(); });
        return false;
      }
      net::defer(session_->strand_, [session = session_, chunk = std::move(chunk), size]() mutable {
        session->Write(Outgoing{std::move(chunk), {}, {}, size}, false, true);
      });
      return true;
    }
    void EndStream() override {
      if (head_) return;
      net::defer(session_->strand_, [session = session_, keep = keep_alive_]() mutable {
        session->Write(Outgoing{"0\r\n\r\n", {}, {}, 0}, true, keep);
      });
    }

   private:
    std::shared_ptr<Session> session_;
    bool keep_alive_;
    bool gzip_ok_;
    bool head_;
    std::atomic<bool> answered_{false};
    http_internal::DisconnectWatch disconnect_;
  };

 private:
  // Waits for the first byte of the next request (the connection is idle
  // until then), then reads its header.
  void ReadNext() {
    deadline_ = 0;
    ReadsExpireAfter(server_.options.idle_timeout);
    if (buffer_.size() > 0) return ReadHeader();
    ReadSide().async_read_some(
        buffer_.prepare(kFirstReadBytes),
        [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
          if (ec) return self->OnReadError(ec);
          self->buffer_.commit(n);
          self->ReadHeader();
        });
  }

  void ReadHeader() {
    request_ = server_.requests.TryEnter();
    drain_cancelled_ = false;
    parser_.emplace();
    parser_->body_limit(server_.options.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(server_.options.max_header_bytes));
    // A header already in buffer_ (read by the watcher, or pipelined) is
    // parsed here: Beast's read would find it too, but answer through a
    // posted completion, a hand-off through the context's queue.
    beast::error_code ec;
    ParseBuffered(ec);
    if (parser_->is_header_done() || ec) return OnHeader(ec);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                              self->OnHeader(ec);
                            });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    ReadsExpireAfter(server_.options.request_timeout);
    head_ = Head();
    const auto declared = parser_->content_length();
    const bool has_body = parser_->chunked() || (declared && *declared > 0);
    if (server_.options.admit) {
      if (auto refusal = server_.options.admit(head_, has_body)) {
        // Refused on its head: a body is never read, so a connection that
        // announced one cannot carry another request.
        const bool keep = !has_body && parser_->get().keep_alive();
        unread_ = has_body;
        return Write(Serialize(std::move(*refusal), keep, false, false), true, keep);
      }
    }
    // Clients such as curl hold a large body back until told to go on.
    auto expect = parser_->get()[http::field::expect];
    if (EqualsIgnoringCase(std::string_view(expect.data(), expect.size()), "100-continue")) {
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      net::async_write(stream_, net::buffer(kContinue),
                       [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                         if (ec) return self->Close();
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    // A large body of known length is read straight into its final buffer:
    // the parser's small reads cost far more per byte on big tensors.
    auto length = parser_->content_length();
    if (!parser_->chunked() && length && *length >= kDirectBodyBytes) {
      if (*length > server_.options.max_body_bytes) return OnReadError(http::error::body_limit);
      const std::size_t have = std::min<std::size_t>(buffer_.size(), *length);
      const std::size_t first = std::max(have, std::min<std::size_t>(*length, kFirstBodyBytes));
      if (!charge_.GrowTo(first)) return RefuseBody();
      auto body = std::make_shared<std::string>();
      body->resize(first);
      net::buffer_copy(net::buffer(body->data(), have), buffer_.data());
      buffer_.consume(have);
      return ReadDirect(std::move(body), have, *length);
    }
    ReadParsed();
  }

  // A small or chunked body, through the parser, charged as it grows.
  void ReadParsed() {
    beast::error_code ec;
    ParseBuffered(ec);
    if (ec) return OnReadError(ec);
    if (!charge_.GrowTo(parser_->get().body().size())) return RefuseBody();
    if (parser_->is_done()) return Dispatch(std::move(parser_->get().body()));
    http::async_read_some(stream_, buffer_, *parser_,
                          [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                            if (ec) return self->OnReadError(ec);
                            self->ReadParsed();  // charges what was read
                          });
  }

  // Puts what buffer_ holds into parser_: the header, or once it is done
  // the body, up to the message's end (bytes past it stay for the next
  // request). `ec`: a malformed message or a limit passed; needing more
  // bytes is no error.
  void ParseBuffered(beast::error_code& ec) {
    const bool header = !parser_->is_header_done();
    while (buffer_.size() > 0 && !parser_->is_done()) {
      const std::size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec == http::error::need_more) ec = {};
      if (ec || used == 0 || (header && parser_->is_header_done())) return;
    }
  }

  // Fills `body` from `filled` up to `length`, growing it only as bytes
  // arrive (doubling, from kFirstBodyBytes): a declared length alone costs
  // no memory.
  void ReadDirect(std::shared_ptr<std::string> body, std::size_t filled, std::size_t length) {
    if (filled == length) return Dispatch(std::move(*body));
    if (filled == body->size()) {
      const std::size_t grown = std::min(length, 2 * body->size());
      if (!charge_.GrowTo(grown)) return RefuseBody();
      body->resize(grown);
    }
    const std::size_t target = body->size();
    net::async_read(
        stream_, net::buffer(body->data() + filled, target - filled),
        [self = this->shared_from_this(), body, target, length](beast::error_code ec, std::size_t) {
          if (ec) return self->OnReadError(ec);
          self->ReadDirect(std::move(body), target, length);
        });
  }

  // The process-wide budget for bodies is spent: the request is refused
  // unread, and the connection closed.
  void RefuseBody() {
    charge_.Release();
    unread_ = true;
    HttpResponse busy = JsonError(503, "the server holds all the request bodies it may; retry");
    busy.headers.emplace_back("Retry-After", "1");
    Write(Serialize(std::move(busy), false, false, false), true, false);
  }

  // The request as far as its header goes (no body).
  HttpRequest Head() const {
    const auto& message = parser_->get();
    HttpRequest request;
    request.peer = address_;
    request.method = std::string(message.method_string());
    request.target = std::string(message.target());
    auto question = request.target.find('?');
    request.path = PercentDecode(std::string_view(request.target).substr(0, question));
    if (question != std::string::npos) request.query = request.target.substr(question + 1);
    for (const auto& field : message)
      request.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    return request;
  }

  // An idle connection while the server drains: bytes already here are a
  // request, read and answered (with Connection: close); otherwise it
  // closes.
  void ReadAfterDrain() {
    beast::error_code ec;
    if (buffer_.size() > 0 || Tcp().socket().available(ec) > 0) return ReadNext();
    request_.reset();
    Close();
  }

  void OnReadError(beast::error_code ec) {
    if (ec == net::error::operation_aborted && drain_cancelled_ && !closed_) {
      drain_cancelled_ = false;
      return ReadAfterDrain();
    }
    if (ec == http::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
        ec == net::error::connection_reset || ec == net::error::operation_aborted) {
      return Close();
    }
    int status = 400;
    std::string message = fmt::format("malformed HTTP request: {}", ec.message());
    unread_ = true;
    if (ec == http::error::body_limit) {
      status = 413;
      message =
          fmt::format("request body is over the {} byte limit", server_.options.max_body_bytes);
    } else if (ec == http::error::header_limit) {
      status = 431;
      message = fmt::format("request headers are over the {} byte limit",
                            server_.options.max_header_bytes);
    }
    Write(Serialize(JsonError(status, message), false, false, false), true, false);
  }

  // The request's header is in parser_; `body` is its whole body.
  void Dispatch(std::string body) {
    ReadsNeverExpire();
    answering_ = true;
    const auto& message = parser_->get();
    HttpRequest request = std::move(head_);
    const std::size_t count = request.headers.size();
    const bool keep_alive = message.keep_alive() && !server_.draining;
    request.body = HoldBody(std::move(body), std::exchange(charge_, BodyCharge(server_.budget)));
    const bool gzip_ok = AcceptsGzip(request);
    if (count > server_.options.max_header_count) {
      std::make_shared<Responder>(this->shared_from_this(), keep_alive, gzip_ok)
          ->Send(JsonError(431, fmt::format("{} headers is more than the {} allowed", count,
                                            server_.options.max_header_count)));
      return;
    }
    if constexpr (std::is_same_v<Stream, PlainStream>) {
      if (auto settings = H2cSettings(request))
        return UpgradeToHttp2(std::move(request), std::move(*settings));
    }
    auto responder = std::make_shared<Responder>(this->shared_from_this(), keep_alive, gzip_ok,
                                                 request.method == "HEAD");
    in_handler_ = true;
    server_.handler(request, responder);
    in_handler_ = false;
    if (upgrade_) return StartWebSocket();
    if (inline_answer_) {
      PendingWrite answer = std::move(*inline_answer_);
      inline_answer_.reset();
      return Write(std::move(answer.bytes), true, answer.keep_alive);
    }
    Watch(std::move(responder));
  }

  // Whether this runs inside the handler Dispatch called, on the
  // connection's thread.
  bool InHandler() { return stream_.get_executor().running_in_this_thread() && in_handler_; }

  // An answer given inside the handler (a model run inline, a cached
  // result, an error) is kept for Dispatch to write once the handler
  // returns: no hand-off through the strand, and no watch for a request
  // already answered. False elsewhere: the caller hands the answer over.
  bool TakeInlineAnswer(Outgoing& bytes, bool keep_alive) {
    if (!InHandler()) return false;
    inline_answer_.emplace(PendingWrite{std::move(bytes), true, keep_alive});
    return true;
  }

  // Whether this runs on the connection's thread while the connection
  // waits for its answer, its watch pending: an answer handed over there
  // (the router's relayed one, a batch run inline for another connection)
  // is written at once, without a hand-off through the strand. With the
  // watch pending the write's completion starts no read, so no request is
  // dispatched from inside the caller, whatever it holds.
  bool WaitsHere() { return stream_.get_executor().running_in_this_thread() && watching_; }

  // While a request is being answered, a read on the socket tells whether
  // the client has gone (end of stream or an error): the responder's
  // disconnect callback then cancels the request's queued work. Bytes that
  // arrive instead (a pipelined request) are kept for the next read. A
  // client that only ended its side (shutdown after sending) still gets the
  // answer owed to it, whatever it was by then; the connection closes after.
  void Watch(std::shared_ptr<Responder> responder) {
    // With a pipelined request already buffered the client is evidently
    // there, and that request must be read next: no watch.
    if (!answering_ || buffer_.size() > 0) return;
    watching_ = true;
    std::weak_ptr<Responder> weak = responder;
    ReadSide().async_read_some(buffer_.prepare(4096), [self = this->shared_from_this(), weak](
                                                          beast::error_code ec, std::size_t n) {
      self->watching_ = false;
      if (ec == net::error::operation_aborted && self->drain_cancelled_) {
        // The drain cancelled the wait for the next request.
        self->read_after_watch_ = false;
        return self->OnReadError(ec);
      }
      if (ec) {
        if (auto responder = weak.lock()) responder->Disconnected();
        if (ec != net::error::eof || !self->answering_) return self->Close();
        self->ended_ = true;
        return;
      }
      self->buffer_.commit(n);
      if (self->read_after_watch_) {
        self->read_after_watch_ = false;
        self->ReadNext();
      }
    });
  }

  // The WebSocket a handler was given: its calls go to the session's strand.
  // It keeps the session (and so the connection) while the handler holds it;
  // the handler lets it go when told the connection closed (OnClosed), and
  // HttpServer::Stop tells every handler still open.
  class Socket : public WebSocket {
   public:
    explicit Socket(std::shared_ptr<Session> session) : session_(std::move(session)) {}

    bool SendText(std::string text) override {
      const auto& session = session_;
      if (session->closed_ || session->ws_closing_) return false;
      const std::size_t size = text.size();
      if (session->unsent_.fetch_add(size) + size > session->ws_options_.max_unsent_bytes) {
        net::defer(session->strand_, [session] { session->WsFinish(); });
        return false;
      }
      net::defer(session->strand_, [session, text = std::move(text), size]() mutable {
        session->WsWrite(std::move(text), size);
      });
      return true;
    }
    void ReadNext() override {
      net::defer(session_->strand_, [session = session_] { session->WsRead(); });
    }
    void Close(int code, std::string reason) override {
      const auto& session = session_;
      session->ws_closing_ = true;
      net::defer(session->strand_, [session, code, reason = std::move(reason)]() mutable {
        session->WsClose(code, std::move(reason));
      });
    }

   private:
    std::shared_ptr<Session> session_;
  };

  struct Upgrade {
    std::shared_ptr<WebSocketHandler> handler;
    WebSocketOptions options;
  };
  struct Message {
    std::string text;
    std::size_t size;
  };
  // A close frame's reason is at most 123 bytes.
  static constexpr std::size_t kMaxCloseReason = 123;

  // The handler asked for a WebSocket: the handshake answers the request
  // still in parser_, then the connection carries frames only.
  void StartWebSocket() {
    Upgrade upgrade = std::move(*upgrade_);
    upgrade_.reset();
    if (!websocket::is_upgrade(parser_->get())) {
      return Write(Serialize(JsonError(400,
                                       "this endpoint speaks WebSocket only: send a GET with "
                                       "Upgrade: websocket"),
                             false, false, false),
                   true, false);
    }
    ws_handler_ = std::move(upgrade.handler);
    ws_options_ = upgrade.options;
    ws_.emplace(stream_);
    ws_->read_message_max(ws_options_.max_message_bytes);
    websocket::stream_base::timeout timeout{};
    timeout.handshake_timeout = server_.options.request_timeout;
    // Idle is timed by the sweeper, and only while a read waits: a stream
    // whose next frame the handler has not asked for yet (backpressure) is
    // not idle.
    timeout.idle_timeout = websocket::stream_base::none();
    timeout.keep_alive_pings = false;
    ws_->set_option(timeout);
    // A browser that offers the subprotocol "braid" (with its key as
    // "bearer.KEY", WebSocketBearer) must hear it selected.
    const auto offered = parser_->get()[http::field::sec_websocket_protocol];
    const bool braid_protocol =
        OffersBraidProtocol(std::string_view(offered.data(), offered.size()));
    ws_->set_option(
        websocket::stream_base::decorator([braid_protocol](websocket::response_type& response) {
          response.set(http::field::server, "braid");
          if (braid_protocol) {
            response.set(http::field::sec_websocket_protocol,
                         beast::string_view(kBraidProtocol.data(), kBraidProtocol.size()));
          }
        }));
    ws_->async_accept(parser_->get(), [self = this->shared_from_this()](beast::error_code ec) {
      if (ec) return self->WsFinish();
      self->ws_open_ = true;
      if (self->server_.draining) self->ws_closing_ = true;
      self->ws_handler_->OnOpen(std::make_shared<Socket>(self));
      if (self->server_.draining) self->ws_handler_->OnDrain();
    });
  }

  void WsRead() {
    if (!ws_open_ || ws_reading_ || ws_finished_) return;
    ws_reading_ = true;
    ws_read_deadline_.store(NowNs() + std::chrono::nanoseconds(ws_options_.idle_timeout).count(),
                            std::memory_order_relaxed);
    ws_->async_read(ws_in_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      self->ws_reading_ = false;
      self->ws_read_deadline_.store(0, std::memory_order_relaxed);
      if (ec) return self->WsFinish();
      if (self->ws_finished_) return;
      std::string data = beast::buffers_to_string(self->ws_in_.data());
      self->ws_in_.consume(self->ws_in_.size());
      self->ws_handler_->OnMessage(std::move(data), self->ws_->got_binary());
    });
  }

  void WsWrite(std::string text, std::size_t size) {
    if (ws_finished_ || ws_close_started_) {
      unsent_ -= size;
      return;
    }
    ws_out_.push_back({std::move(text), size});
    if (!ws_writing_) WsWriteFront();
  }

  void WsWriteFront() {
    if (ws_finished_) return;
    if (ws_out_.empty()) {
      if (ws_close_ && !ws_close_started_) WsStartClose();
      return;
    }
    ws_writing_ = true;
    ws_->text(true);
    SetDeadline(server_.options.write_timeout);
    ws_->async_write(net::buffer(ws_out_.front().text),
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                       self->ws_writing_ = false;
                       self->deadline_ = 0;
                       self->unsent_ -= self->ws_out_.front().size;
                       self->ws_out_.pop_front();
                       if (ec) return self->WsFinish();
                       self->WsWriteFront();
                     });
  }

  void WsClose(int code, std::string reason) {
    if (ws_finished_ || ws_close_) return;
    if (reason.size() > kMaxCloseReason) {
      // Cut at a character boundary: a split UTF-8 sequence fails the close.
      std::size_t size = kMaxCloseReason;
      while (size > 0 && (static_cast<unsigned char>(reason[size]) & 0xC0) == 0x80) --size;
      reason.resize(size);
    }
    ws_close_ = websocket::close_reason(static_cast<websocket::close_code>(code), reason);
    if (!ws_open_) return WsFinish();
    if (!ws_writing_) WsStartClose();
  }

  void WsStartClose() {
    ws_close_started_ = true;
    SetDeadline(server_.options.write_timeout);
    ws_->async_close(*ws_close_,
                     [self = this->shared_from_this()](beast::error_code) { self->WsFinish(); });
  }

  // The connection is over: the handler hears it once, the drain stops
  // waiting for it.
  void WsFinish() {
    if (ws_finished_) return;
    ws_finished_ = true;
    ws_open_ = false;
    ws_closing_ = true;
    // A message being written stays until its write completes (cancelled by
    // the Close below); the rest go now.
    const std::size_t keep = ws_writing_ ? 1 : 0;
    while (ws_out_.size() > keep) {
      unsent_ -= ws_out_.back().size;
      ws_out_.pop_back();
    }
    auto handler = std::move(ws_handler_);
    Close();
    request_.reset();
    if (handler) handler->OnClosed();
  }

  // The status line and headers, then the body and its tail as they are:
  // a response's bytes are written from where they lie, not copied.
  Outgoing Serialize(HttpResponse response, bool keep_alive, bool gzip_ok, bool chunked) {
    std::size_t tail_bytes = 0;
    for (const auto& part : response.tail) tail_bytes += part.size;
    http_internal::CompressIfWorthIt(response, gzip_ok, server_.options.gzip_min_bytes);
    Outgoing out;
    std::string& head = out.head;
    head.reserve(256);
    fmt::format_to(std::back_inserter(head), "HTTP/1.1 {} {}\r\nServer: braid\r\n", response.status,
                   ReasonPhrase(response.status));
    if (!response.content_type.empty())
      fmt::format_to(std::back_inserter(head), "Content-Type: {}\r\n", response.content_type);
    for (const auto& [name, value] : response.headers)
      fmt::format_to(std::back_inserter(head), "{}: {}\r\n", name, value);
    if (chunked) {
      head += "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n";
    } else if (!WithoutLength(response.status)) {
      fmt::format_to(std::back_inserter(head), "Content-Length: {}\r\n",
                     response.body.size() + tail_bytes);
    }
    head += keep_alive && !server_.draining ? "Connection: keep-alive\r\n\r\n"
                                            : "Connection: close\r\n\r\n";
    if (!chunked) {
      out.body = std::move(response.body);
      out.tail = std::move(response.tail);
    }
    return out;
  }

  // Runs on the session's thread. `last` ends the response; then the next
  // request is read (keep-alive) or the connection closed.
  void Write(Outgoing bytes, bool last, bool keep_alive) {
    if (closed_) return;
    writes_.push_back({std::move(bytes), last, keep_alive});
    if (writes_.size() == 1) WriteFront();
  }

  void WriteFront() {
    const Outgoing& front = writes_.front().bytes;
    buffers_.clear();
    buffers_.emplace_back(front.head.data(), front.head.size());
    if (!front.body.empty()) buffers_.emplace_back(front.body.data(), front.body.size());
    for (const auto& part : front.tail) buffers_.emplace_back(part.data, part.size);
    // The write timeout runs from the last progress: a slow reader is
    // served, one that stopped reading is let go (by the sweeper).
    SetDeadline(server_.options.write_timeout);
    if constexpr (std::is_same_v<Stream, PlainStream>) {
      if (!writing_at_once_ && WriteAtOnce()) return;
    }
    net::async_write(
        stream_, buffers_,
        [this](beast::error_code ec, std::size_t) -> std::size_t {
          if (ec) return 0;
          SetDeadline(server_.options.write_timeout);
          return kWriteSliceBytes;
        },
        [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
          self->OnWrite(ec);
        });
  }

  // Writes buffers_ with one non-blocking call, as an answer's bytes nearly
  // always fit in the socket's send buffer: true when all went, and then
  // the write's completion has run here, without a handler posted for it.
  // Otherwise drops from buffers_ what went, for the asynchronous write of
  // the rest. The completion's own writes (a pipelined request refused on
  // its head) go through the asynchronous path: no recursion.
  bool WriteAtOnce() {
    auto& socket = stream_.socket();
    beast::error_code ec;
    if (!socket.non_blocking()) socket.non_blocking(true, ec);
    const std::size_t total = net::buffer_size(buffers_);
    const std::size_t sent = ec ? 0 : socket.write_some(buffers_, ec);
    if (ec == net::error::would_block || (!ec && sent < total)) {
      std::size_t skip = sent;
      auto first = buffers_.begin();
      while (skip >= first->size()) skip -= (first++)->size();
      buffers_.erase(buffers_.begin(), first);
      buffers_.front() += skip;
      return false;
    }
    writing_at_once_ = true;
    OnWrite(ec);
    writing_at_once_ = false;
    return true;
  }

  void OnWrite(beast::error_code ec) {
    if (ec) return Close();
    PendingWrite done = std::move(writes_.front());
    writes_.pop_front();
    unsent_ -= done.bytes.unsent;
    deadline_ = 0;
    // Taken before the next request is read: a request already buffered is
    // parsed at once, and one refused on its head queues its answer and
    // starts writing it.
    const bool more = !writes_.empty();
    if (done.last) {
      answering_ = false;
      request_.reset();
      if (unread_) return LingeringClose();
      if (!done.keep_alive || server_.draining || ended_) return Close();
      if (watching_) {
        // The watcher's read is still pending: it resumes reading when
        // bytes come (they are the next request) or closes on end of
        // stream; it has no timeout of its own, so the sweeper closes the
        // connection if it stays idle.
        read_after_watch_ = true;
        SetDeadline(server_.options.idle_timeout);
      } else {
        ReadNext();
      }
    }
    if (more) WriteFront();
  }

  void Close() {
    if (closed_.exchange(true)) return;
    beast::error_code ignored;
    Tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    Tcp().close();
  }

  // A request's reads time out `from_now`, by the sweeper: the TCP
  // stream's own timer would be set and cancelled, under the reactor's lock,
  // around every read (and TLS reads bypass it).
  void ReadsExpireAfter(std::chrono::seconds from_now) {
    read_deadline_.store(NowNs() + std::chrono::nanoseconds(from_now).count(),
                         std::memory_order_relaxed);
  }
  void ReadsNeverExpire() { read_deadline_.store(0, std::memory_order_relaxed); }

  void SetDeadline(std::chrono::seconds from_now) {
    deadline_.store(NowNs() + std::chrono::nanoseconds(from_now).count(),
                    std::memory_order_relaxed);
  }

  // After an answer that left the request's bytes unread (a refusal): stops
  // sending and reads and drops what the client still sends, for a moment,
  // so that a reset does not destroy the answer before the client reads it
  // (nginx's lingering close).
  void LingeringClose() {
    if (closed_.exchange(true)) return;
    beast::error_code ignored;
    Tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    Tcp().expires_after(kLingerTime);
    Discard(0);
  }

  void Discard(std::size_t dropped) {
    buffer_.clear();
    Tcp().async_read_some(
        buffer_.prepare(kFirstReadBytes * 16),
        [self = this->shared_from_this(), dropped](beast::error_code ec, std::size_t n) {
          if (ec || dropped + n > kLingerBytes) return self->Tcp().close();
          self->Discard(dropped + n);
        });
  }

  // The TCP connection under the stream.
  PlainStream& Tcp() { return beast::get_lowest_layer(stream_); }
  // What a read between requests goes to: the bare socket, or TLS.
  decltype(auto) ReadSide() {
    if constexpr (std::is_same_v<Stream, PlainStream>) {
      return (stream_.socket());
    } else {
      return (stream_);
    }
  }

  // The request asked to go on as HTTP/2 (`settings` is its HTTP2-Settings):
  // the connection answers 101 and becomes an HTTP/2 connection whose
  // stream 1 is this request. The session lets go of it.
  void UpgradeToHttp2(HttpRequest request, std::string settings) {
    static const std::string kSwitching =
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
    handed_over_ = true;
    closed_ = true;
    answering_ = false;
    server_.Remove(this);
    const bool head = request.method == "HEAD";
    const std::string_view received(static_cast<const char*>(buffer_.cdata().data()),
                                    buffer_.size());
    ServeHttp2(server_, std::move(stream_), address_, received, kSwitching,
               Http2Upgrade{std::move(request), std::move(settings), head});
    request_.reset();
  }

  struct PendingWrite {
    Outgoing bytes;
    bool last;
    bool keep_alive;
  };

  ServerCore& server_;
  Stream stream_;
  // Where work that other threads hand the session runs (answers, a
  // WebSocket's calls, the sweep and the drain), in the order it was
  // handed over, on the thread that runs stream_'s context; the stream's
  // own handlers run there without it. Kept apart from stream_, which an
  // upgrade to HTTP/2 moves away while a drain or the sweeper may still
  // call in.
  const net::strand<typename Stream::executor_type> strand_;
  const std::string address_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpRequest head_;                    // touched only on its thread
  BodyCharge charge_;                   // the body being read; touched only on its thread
  std::atomic<std::size_t> unsent_{0};  // bytes of stream chunks queued, not yet written
  // Steady-clock nanoseconds past which the sweeper closes the connection;
  // 0: none. Writes (from their last progress) and the idle wait of a
  // pending watcher read.
  std::atomic<std::int64_t> deadline_{0};
  // Steady-clock nanoseconds past which a request's reads (from the idle
  // wait for its first byte to its body's last) have taken too long (the
  // sweeper closes the connection); 0: none.
  std::atomic<std::int64_t> read_deadline_{0};
  std::deque<PendingWrite> writes_;         // touched only on its thread
  std::vector<net::const_buffer> buffers_;  // the front write's; touched only on its thread
  // From the first byte of a request until its answer is written.
  std::optional<Gate::Holder> request_;  // touched only on its thread
  bool answering_ = false;               // touched only on its thread
  bool watching_ = false;                // touched only on its thread
  bool read_after_watch_ = false;        // touched only on its thread
  bool writing_at_once_ = false;         // in WriteAtOnce's completion; touched only on its thread
  bool in_handler_ = false;              // Dispatch is in the handler; touched only on its thread
  // The answer given inside the handler (TakeInlineAnswer); touched only on its thread.
  std::optional<PendingWrite> inline_answer_;
  bool unread_ = false;  // a refusal left the request's body unread; touched only on its thread
  // The drain cancelled the wait for a request (Drain); touched only on its thread.
  bool drain_cancelled_ = false;
  bool ended_ =
      false;  // the client ended its side while owed an answer; touched only on its thread
  std::atomic<bool> closed_{false};
  // The connection went on as HTTP/2 (UpgradeToHttp2); touched only on its thread.
  bool handed_over_ = false;
  // A WebSocket: asked for by the handler, then the stream over stream_.
  // Touched only on its thread, but ws_closing_.
  std::optional<Upgrade> upgrade_;
  std::optional<websocket::stream<Stream&>> ws_;
  std::shared_ptr<WebSocketHandler> ws_handler_;
  WebSocketOptions ws_options_;
  beast::flat_buffer ws_in_;
  std::deque<Message> ws_out_;
  std::optional<websocket::close_reason> ws_close_;
  bool ws_open_ = false;
  bool ws_reading_ = false;
  bool ws_writing_ = false;
  bool ws_close_started_ = false;
  bool ws_finished_ = false;
  std::atomic<bool> ws_closing_{false};  // no more messages are taken
  // Steady-clock nanoseconds past which a pending read finds the client
  // idle (the sweeper closes the connection); 0: no read pending.
  std::atomic<std::int64_t> ws_read_deadline_{0};
};

void HttpServer::Impl::Take(Listener::Socket socket, std::string address) {
  std::shared_ptr<ssl::context> tls;
  {
    std::lock_guard lock(tls_mutex_);
    tls = tls_;
  }
  if (tls) {
    // The connection's SSL object holds its own reference to the OpenSSL
    // context: a reload may let `tls` go while connections still use it.
    return Handshake(std::make_shared<TlsStream>(std::move(socket), tls->native_handle()),
                     std::move(address));
  }
  Detect(std::make_shared<PlainStream>(std::move(socket)), std::move(address),
         std::make_shared<beast::flat_buffer>());
}

void HttpServer::Impl::Detect(std::shared_ptr<PlainStream> stream, std::string address,
                              std::shared_ptr<beast::flat_buffer> received) {
  stream->expires_after(core_.options.idle_timeout);
  stream->async_read_some(
      received->prepare(Session<PlainStream>::kFirstReadBytes),
      [this, stream, address = std::move(address), received](beast::error_code ec,
                                                             std::size_t n) mutable {
        if (ec) {
          core_.limits.Release(address);
          return;
        }
        received->commit(n);
        const std::string_view bytes(static_cast<const char*>(received->cdata().data()),
                                     received->size());
        const std::size_t compared = std::min(bytes.size(), kHttp2Preface.size());
        const bool preface = bytes.substr(0, compared) == kHttp2Preface.substr(0, compared);
        if (preface && bytes.size() < kHttp2Preface.size())
          return Detect(std::move(stream), std::move(address), std::move(received));
        stream->expires_never();
        if (preface) {
          return ServeHttp2(core_, std::move(*stream), std::move(address), bytes, {}, std::nullopt);
        }
        std::make_shared<Session<PlainStream>>(core_, std::move(*stream), std::move(address),
                                               std::move(*received))
            ->Run();
      });
}

void HttpServer::Impl::Handshake(std::shared_ptr<TlsStream> stream, std::string address) {
  auto& tcp = beast::get_lowest_layer(*stream);
  tcp.expires_after(core_.options.request_timeout);
  auto received = std::make_shared<beast::flat_buffer>();
  tcp.async_read_some(
      received->prepare(Session<TlsStream>::kFirstReadBytes),
      [this, stream, address = std::move(address), received](beast::error_code ec,
                                                             std::size_t n) mutable {
        if (ec) {
          core_.limits.Release(address);
          return;
        }
        received->commit(n);
        // A TLS record of a handshake begins with 22.
        if (static_cast<const unsigned char*>(received->cdata().data())[0] == 22)
          return StartHandshake(std::move(stream), std::move(address), std::move(received));
        static const std::string kPlain = fmt::format(
            "HTTP/1.1 400 Bad Request\r\nServer: braid\r\nContent-Type: application/json\r\n"
            "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
            sizeof(kPlainToTls) - 1, kPlainToTls);
        net::async_write(beast::get_lowest_layer(*stream).socket(), net::buffer(kPlain),
                         [this, stream, address](beast::error_code, std::size_t) {
                           beast::error_code ignored;
                           auto& socket = beast::get_lowest_layer(*stream).socket();
                           socket.shutdown(tcp::socket::shutdown_send, ignored);
                           socket.close(ignored);
                           core_.limits.Release(address);
                         });
      });
}

void HttpServer::Impl::StartHandshake(std::shared_ptr<TlsStream> stream, std::string address,
                                      std::shared_ptr<beast::flat_buffer> received) {
  // The handshake's deadline: a TLS socket's reads bypass the TCP stream's
  // timer. The timer ends with the handshake (cancelled) or ends it
  // (closing the socket the handshake waits on).
  auto timer = std::make_shared<net::steady_timer>(stream->get_executor());
  timer->expires_after(core_.options.request_timeout);
  timer->async_wait([stream](beast::error_code ec) {
    if (!ec && stream->native_handle() != nullptr) beast::get_lowest_layer(*stream).close();
  });
  stream->async_handshake(received->cdata(), [this, stream, address = std::move(address),
                                              timer](beast::error_code ec) mutable {
    timer->cancel();
    if (ec) {
      core_.limits.Release(address);
      return;
    }
    beast::get_lowest_layer(*stream).expires_never();
    const unsigned char* protocol = nullptr;
    unsigned int length = 0;
    SSL_get0_alpn_selected(stream->native_handle(), &protocol, &length);
    if (std::string_view(reinterpret_cast<const char*>(protocol), length) == "h2") {
      return ServeHttp2(core_, std::move(*stream), std::move(address), {}, {}, std::nullopt);
    }
    std::make_shared<Session<TlsStream>>(core_, std::move(*stream), std::move(address),
                                         beast::flat_buffer())
        ->Run();
  });
}

void HttpServer::Impl::Sweep() {
  sweeper_.expires_after(std::chrono::seconds(1));
  sweeper_.async_wait([this](beast::error_code ec) {
    if (ec) return;
    const std::int64_t now = NowNs();
    for (const auto& connection : core_.Open()) connection->Sweep(now);
    Sweep();
  });
}

namespace {

// ALPN (RFC 7301): h2 when the client offers it, else http/1.1, else no
// protocol (the client speaks HTTP/1.1 without asking).
int SelectProtocol(SSL*, const unsigned char** out, unsigned char* out_length,
                   const unsigned char* offered, unsigned int offered_length, void*) {
  for (std::string_view wanted : {std::string_view("h2"), std::string_view("http/1.1")}) {
    for (unsigned int i = 0; i < offered_length;) {
      const unsigned int length = offered[i];
      if (i + 1 + length > offered_length) break;
      if (std::string_view(reinterpret_cast<const char*>(offered + i + 1), length) == wanted) {
        *out = offered + i + 1;
        *out_length = static_cast<unsigned char>(length);
        return SSL_TLSEXT_ERR_OK;
      }
      i += 1 + length;
    }
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// A server context for `files`: TLS 1.2 or later with forward-secret AEAD
// ciphers (Mozilla's "intermediate"), ALPN, and client certificates
// required when a client CA is given.
Result<std::shared_ptr<ssl::context>> MakeTlsContext(const TlsFiles& files) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(
      native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_cipher_list(native,
                          "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                          "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                          "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
  beast::error_code ec;
  context->use_certificate_chain_file(files.cert, ec);
  if (ec) return InvalidArgument("--tls-cert {}: {}", files.cert, ec.message());
  context->use_private_key_file(files.key, ssl::context::pem, ec);
  if (ec) return InvalidArgument("--tls-key {}: {}", files.key, ec.message());
  if (SSL_CTX_check_private_key(native) != 1)
    return InvalidArgument("--tls-key {} does not match --tls-cert {}", files.key, files.cert);
  if (!files.client_ca.empty()) {
    context->load_verify_file(files.client_ca, ec);
    if (ec) return InvalidArgument("--tls-client-ca {}: {}", files.client_ca, ec.message());
    context->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  // Sessions resumed under client certificates need an id context.
  static constexpr unsigned char kSessionContext[] = "braid";
  SSL_CTX_set_session_id_context(native, kSessionContext, sizeof(kSessionContext) - 1);
  SSL_CTX_set_alpn_select_cb(native, SelectProtocol, nullptr);
  return context;
}

}  // namespace

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

HttpServer::~HttpServer() { Stop(); }

Result<std::uint16_t> HttpServer::Listen(const std::string& host, std::uint16_t port) {
  if (impl_->core_.options.tls.enabled()) BRAID_RETURN_IF_ERROR(ReloadTls());
  return impl_->listener_.Listen(host, port);
}

Status HttpServer::ReloadTls() {
  if (!impl_->core_.options.tls.enabled()) return Status::Ok();
  BRAID_ASSIGN_OR_RETURN(auto context, MakeTlsContext(impl_->core_.options.tls));
  std::lock_guard lock(impl_->tls_mutex_);
  impl_->tls_ = std::move(context);
  return Status::Ok();
}

net::io_context& HttpServer::network_context() { return impl_->core_.network.OfThisThread(); }

void HttpServer::Start() {
  impl_->listener_.Start();
  impl_->Sweep();
  impl_->core_.network.Start();
}

bool HttpServer::Drain(std::chrono::steady_clock::time_point deadline) {
  impl_->core_.draining = true;
  impl_->listener_.Close();
  for (const auto& connection : impl_->core_.Open()) connection->Drain();
  return impl_->core_.requests.Wait(deadline);
}

void HttpServer::Stop() {
  if (!impl_->core_.network.running()) return;
  impl_->core_.network.Stop();
  for (const auto& connection : impl_->core_.Open()) connection->Abandon();
}

std::size_t HttpServer::open_connections() const { return impl_->core_.limits.connections(); }

std::size_t HttpServer::requests_in_flight() const { return impl_->core_.requests.in_flight(); }

std::size_t HttpServer::body_bytes_in_flight() const { return impl_->core_.budget->used(); }

}  // namespace braid
