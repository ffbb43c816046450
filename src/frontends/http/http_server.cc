#include "frontends/http/http_server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <zlib.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <deque>
#include <mutex>
#include <unordered_map>

#include "core/gate.h"
#include "frontends/status_mapping.h"

namespace braid {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

// gzip (RFC 1952) of `data`; empty on failure.
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

std::string ReasonPhrase(int status) {
  auto reason = http::obsolete_reason(static_cast<http::status>(status));
  return reason.empty() ? "Status" : std::string(reason.data(), reason.size());
}

bool Compressible(std::string_view content_type) {
  return content_type.starts_with("application/json") || content_type.starts_with("text/");
}

}  // namespace

std::string_view HttpRequest::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (IEquals(key, name)) return value;
  }
  return {};
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
      : options_(options), handler_(std::move(handler)), acceptor_(net::make_strand(io_)) {}

  class Session;

  HttpServerOptions options_;
  HttpHandler handler_;
  // Declared before io_: sessions destroyed with io_'s pending handlers
  // still update them.
  std::atomic<bool> draining_{false};
  std::atomic<std::size_t> connections_{0};
  // Held by each connection from the first byte of a request until its
  // answer is written: what the drain waits for. Never closed; the drain
  // stops admission by closing the acceptor and the idle connections.
  Gate requests_;
  std::mutex sessions_mutex_;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions_;  // guarded by sessions_mutex_
  net::io_context io_{options_.threads};
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;

  void Accept();
};

class HttpServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  static constexpr std::size_t kDirectBodyBytes = 64 << 10;
  // What a large body's buffer starts at before its bytes arrive.
  static constexpr std::size_t kFirstBodyBytes = 1 << 20;

  // One write: the head, then the body and the parts that follow it.
  struct Outgoing {
    std::string head;
    std::string body;
    std::vector<HttpResponse::Part> tail;
  };
  static constexpr std::size_t kFirstReadBytes = 4096;

  Session(Impl& server, tcp::socket socket) : server_(server), stream_(std::move(socket)) {
    ++server_.connections_;
  }
  ~Session() {
    {
      std::lock_guard lock(server_.sessions_mutex_);
      server_.sessions_.erase(this);
    }
    --server_.connections_;
  }

  void Run() {
    {
      std::lock_guard lock(server_.sessions_mutex_);
      server_.sessions_.emplace(this, weak_from_this());
    }
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (self->server_.draining_) return self->Close();
      self->ReadNext();
    });
  }

  // The drain closes a connection only while it is idle: no byte of a
  // request read and no answer owed. Runs the check on the strand.
  void CloseIfIdle() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (!self->request_) self->Close();
    });
  }

  // HttpResponder for the request being answered. Holds the session alive.
  class Responder : public HttpResponder {
   public:
    Responder(std::shared_ptr<Session> session, bool keep_alive, bool gzip_ok)
        : session_(std::move(session)), keep_alive_(keep_alive), gzip_ok_(gzip_ok) {}
    ~Responder() override {
      if (!answered_.exchange(true)) {
        Send(JsonError(500, "the request was dropped without an answer"));
      }
    }

    // HttpResponder
    void Send(HttpResponse response) override {
      answered_ = true;
      Outgoing bytes = session_->Serialize(std::move(response), keep_alive_, gzip_ok_, false);
      net::post(session_->stream_.get_executor(),
                [session = session_, bytes = std::move(bytes), keep = keep_alive_]() mutable {
                  session->Write(std::move(bytes), true, keep);
                });
    }
    void SendFrom(std::function<HttpResponse()> make) override {
      answered_ = true;
      net::post(session_->stream_.get_executor(), [session = session_, make = std::move(make),
                                                   keep = keep_alive_, gzip = gzip_ok_]() mutable {
        session->Write(session->Serialize(make(), keep, gzip, false), true, keep);
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
      net::post(session_->stream_.get_executor(),
                [session = session_, bytes = std::move(bytes)]() mutable {
                  session->Write(std::move(bytes), false, true);
                });
    }
    void OnDisconnect(std::function<void()> callback) override {
      std::lock_guard lock(disconnect_mutex_);
      if (gone_) {
        callback();
        return;
      }
      on_disconnect_ = std::move(callback);
    }
    // Runs on the strand when the watcher finds the client gone.
    void Disconnected() {
      std::function<void()> callback;
      {
        std::lock_guard lock(disconnect_mutex_);
        gone_ = true;
        callback = std::move(on_disconnect_);
      }
      if (callback) callback();
    }
    bool WriteChunk(std::string data) override {
      if (session_->closed_) return false;
      if (data.empty()) return true;
      std::string chunk = fmt::format("{:x}\r\n", data.size());
      chunk += data;
      chunk += "\r\n";
      net::post(session_->stream_.get_executor(),
                [session = session_, chunk = std::move(chunk)]() mutable {
                  session->Write(Outgoing{std::move(chunk)}, false, true);
                });
      return true;
    }
    void EndStream() override {
      net::post(session_->stream_.get_executor(),
                [session = session_, keep = keep_alive_]() mutable {
                  session->Write(Outgoing{"0\r\n\r\n"}, true, keep);
                });
    }

   private:
    std::shared_ptr<Session> session_;
    bool keep_alive_;
    bool gzip_ok_;
    std::atomic<bool> answered_{false};
    std::mutex disconnect_mutex_;
    std::function<void()> on_disconnect_;  // guarded by disconnect_mutex_
    bool gone_ = false;                    // guarded by disconnect_mutex_
  };

 private:
  // Waits for the first byte of the next request (the connection is idle
  // until then), then reads its header.
  void ReadNext() {
    stream_.expires_after(server_.options_.idle_timeout);
    if (buffer_.size() > 0) return ReadHeader();
    stream_.async_read_some(buffer_.prepare(kFirstReadBytes),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              if (ec) return self->OnReadError(ec);
                              self->buffer_.commit(n);
                              self->ReadHeader();
                            });
  }

  void ReadHeader() {
    request_ = server_.requests_.TryEnter();
    parser_.emplace();
    parser_->body_limit(server_.options_.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(server_.options_.max_header_bytes));
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    stream_.expires_after(server_.options_.request_timeout);
    const auto declared = parser_->content_length();
    if (server_.options_.admit_body && (parser_->chunked() || (declared && *declared > 0))) {
      if (auto refusal = server_.options_.admit_body(Head())) {
        // Refused on its head: the body is never read, so the connection
        // cannot carry another request.
        return Write(Serialize(std::move(*refusal), false, false, false), true, false);
      }
    }
    // Clients such as curl hold a large body back until told to go on.
    auto expect = parser_->get()[http::field::expect];
    if (IEquals(std::string_view(expect.data(), expect.size()), "100-continue")) {
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      net::async_write(stream_, net::buffer(kContinue),
                       [self = shared_from_this()](beast::error_code ec, std::size_t) {
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
      if (*length > server_.options_.max_body_bytes) return OnReadError(http::error::body_limit);
      auto body = std::make_shared<std::string>();
      const std::size_t have = std::min<std::size_t>(buffer_.size(), *length);
      body->resize(std::max(have, std::min<std::size_t>(*length, kFirstBodyBytes)));
      net::buffer_copy(net::buffer(body->data(), have), buffer_.data());
      buffer_.consume(have);
      return ReadDirect(std::move(body), have, *length);
    }
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec) return self->OnReadError(ec);
                       self->Dispatch(std::move(self->parser_->get().body()));
                     });
  }

  // Fills `body` from `filled` up to `length`, growing it only as bytes
  // arrive (doubling, from kFirstBodyBytes): a declared length alone costs
  // no memory.
  void ReadDirect(std::shared_ptr<std::string> body, std::size_t filled, std::size_t length) {
    if (filled == length) return Dispatch(std::move(*body));
    if (filled == body->size()) body->resize(std::min(length, 2 * body->size()));
    const std::size_t target = body->size();
    net::async_read(
        stream_, net::buffer(body->data() + filled, target - filled),
        [self = shared_from_this(), body, target, length](beast::error_code ec, std::size_t) {
          if (ec) return self->OnReadError(ec);
          self->ReadDirect(std::move(body), target, length);
        });
  }

  // The request as far as its header goes (no body).
  HttpRequest Head() const {
    const auto& message = parser_->get();
    HttpRequest request;
    request.method = std::string(message.method_string());
    request.target = std::string(message.target());
    auto question = request.target.find('?');
    request.path = PercentDecode(std::string_view(request.target).substr(0, question));
    if (question != std::string::npos) request.query = request.target.substr(question + 1);
    for (const auto& field : message)
      request.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    return request;
  }

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
        ec == net::error::connection_reset || ec == net::error::operation_aborted) {
      return Close();
    }
    int status = 400;
    std::string message = fmt::format("malformed HTTP request: {}", ec.message());
    if (ec == http::error::body_limit) {
      status = 413;
      message =
          fmt::format("request body is over the {} byte limit", server_.options_.max_body_bytes);
    } else if (ec == http::error::header_limit) {
      status = 431;
      message = fmt::format("request headers are over the {} byte limit",
                            server_.options_.max_header_bytes);
    }
    Write(Serialize(JsonError(status, message), false, false, false), true, false);
  }

  // The request's header is in parser_; `body` is its whole body.
  void Dispatch(std::string body) {
    stream_.expires_never();
    answering_ = true;
    const auto& message = parser_->get();
    HttpRequest request = Head();
    const std::size_t count = request.headers.size();
    const bool keep_alive = message.keep_alive() && !server_.draining_;
    request.body = std::make_shared<const std::string>(std::move(body));
    std::string_view accept = request.Header("Accept-Encoding");
    const bool gzip_ok = accept.find("gzip") != std::string_view::npos;
    auto responder = std::make_shared<Responder>(shared_from_this(), keep_alive, gzip_ok);
    if (count > server_.options_.max_header_count) {
      responder->Send(JsonError(431, fmt::format("{} headers is more than the {} allowed", count,
                                                 server_.options_.max_header_count)));
      return;
    }
    server_.handler_(request, responder);
    Watch(std::move(responder));
  }

  // While a request is being answered, a read on the socket tells whether
  // the client has gone (end of stream or an error): the responder's
  // disconnect callback then cancels the request's queued work. Bytes that
  // arrive instead (a pipelined request) are kept for the next read.
  void Watch(std::shared_ptr<Responder> responder) {
    // With a pipelined request already buffered the client is evidently
    // there, and that request must be read next: no watch.
    if (!answering_ || buffer_.size() > 0) return;
    watching_ = true;
    std::weak_ptr<Responder> weak = responder;
    stream_.socket().async_read_some(
        buffer_.prepare(4096),
        [self = shared_from_this(), weak](beast::error_code ec, std::size_t n) {
          self->watching_ = false;
          if (ec) {
            if (auto responder = weak.lock()) responder->Disconnected();
            return self->Close();
          }
          self->buffer_.commit(n);
          if (self->read_after_watch_) {
            self->read_after_watch_ = false;
            self->ReadNext();
          }
        });
  }

  // The status line and headers, then the body and its tail as they are:
  // a response's bytes are written from where they lie, not copied.
  Outgoing Serialize(HttpResponse response, bool keep_alive, bool gzip_ok, bool chunked) {
    std::size_t tail_bytes = 0;
    for (const auto& part : response.tail) tail_bytes += part.size;
    if (gzip_ok && response.tail.empty() &&
        response.body.size() >= server_.options_.gzip_min_bytes &&
        Compressible(response.content_type)) {
      if (std::string compressed = Gzip(response.body); !compressed.empty()) {
        response.body = std::move(compressed);
        response.headers.emplace_back("Content-Encoding", "gzip");
        response.headers.emplace_back("Vary", "Accept-Encoding");
      }
    }
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
    } else {
      fmt::format_to(std::back_inserter(head), "Content-Length: {}\r\n",
                     response.body.size() + tail_bytes);
    }
    head += keep_alive && !server_.draining_ ? "Connection: keep-alive\r\n\r\n"
                                             : "Connection: close\r\n\r\n";
    if (!chunked) {
      out.body = std::move(response.body);
      out.tail = std::move(response.tail);
    }
    return out;
  }

  // Runs on the session's strand. `last` ends the response; then the next
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
    net::async_write(
        stream_, buffers_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->OnWrite(ec); });
  }

  void OnWrite(beast::error_code ec) {
    if (ec) return Close();
    PendingWrite done = std::move(writes_.front());
    writes_.pop_front();
    if (done.last) {
      answering_ = false;
      request_.reset();
      if (!done.keep_alive || server_.draining_) return Close();
      if (watching_) {
        // The watcher's read is still pending: it resumes reading when
        // bytes come (they are the next request) or closes on end of stream.
        read_after_watch_ = true;
        stream_.expires_after(server_.options_.idle_timeout);
      } else {
        ReadNext();
      }
    }
    if (!writes_.empty()) WriteFront();
  }

  void Close() {
    if (closed_.exchange(true)) return;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  struct PendingWrite {
    Outgoing bytes;
    bool last;
    bool keep_alive;
  };

  Impl& server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::deque<PendingWrite> writes_;         // touched only on the strand
  std::vector<net::const_buffer> buffers_;  // the front write's; touched only on the strand
  // From the first byte of a request until its answer is written.
  std::optional<Gate::Holder> request_;  // touched only on the strand
  bool answering_ = false;               // touched only on the strand
  bool watching_ = false;                // touched only on the strand
  bool read_after_watch_ = false;        // touched only on the strand
  std::atomic<bool> closed_{false};
};

void HttpServer::Impl::Accept() {
  acceptor_.async_accept(net::make_strand(io_), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      if (connections_.load() >= options_.max_connections) {
        beast::error_code ignored;
        socket.close(ignored);
      } else {
        socket.set_option(tcp::no_delay(true));
        std::make_shared<Session>(*this, std::move(socket))->Run();
      }
    }
    Accept();
  });
}

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : impl_(std::make_unique<Impl>(options, std::move(handler))) {}

HttpServer::~HttpServer() { Stop(); }

Result<std::uint16_t> HttpServer::Listen(const std::string& host, std::uint16_t port) {
  beast::error_code ec;
  auto address = net::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) return InvalidArgument("'{}' is not an IP address to listen on", host);
  tcp::endpoint endpoint(address, port);
  auto& acceptor = impl_->acceptor_;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return Unavailable("cannot listen on {}:{}: {}", host, port, ec.message());
  return acceptor.local_endpoint().port();
}

void HttpServer::Start() {
  impl_->work_.emplace(impl_->io_.get_executor());
  impl_->Accept();
  for (int i = 0; i < impl_->options_.threads; ++i)
    impl_->threads_.emplace_back([this] { impl_->io_.run(); });
}

bool HttpServer::Drain(std::chrono::steady_clock::time_point deadline) {
  impl_->draining_ = true;
  net::post(impl_->acceptor_.get_executor(), [this] {
    beast::error_code ignored;
    impl_->acceptor_.close(ignored);
  });
  std::vector<std::shared_ptr<Impl::Session>> sessions;
  {
    std::lock_guard lock(impl_->sessions_mutex_);
    for (const auto& [raw, weak] : impl_->sessions_) {
      if (auto session = weak.lock()) sessions.push_back(std::move(session));
    }
  }
  for (const auto& session : sessions) session->CloseIfIdle();
  sessions.clear();
  return impl_->requests_.Wait(deadline);
}

void HttpServer::Stop() {
  if (impl_->threads_.empty()) return;
  impl_->work_.reset();
  impl_->io_.stop();
  for (auto& thread : impl_->threads_) thread.join();
  impl_->threads_.clear();
}

std::size_t HttpServer::open_connections() const { return impl_->connections_.load(); }

std::size_t HttpServer::requests_in_flight() const { return impl_->requests_.in_flight(); }

}  // namespace braid
