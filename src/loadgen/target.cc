#include "loadgen/target.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <nghttp2/nghttp2.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <cstring>
#include <mutex>
#include <thread>
#include <type_traits>
#include <unordered_map>

#include "frontends/grpc/credentials.h"
#include "frontends/tls_client.h"
#include "grpc_service.grpc.pb.h"

namespace braid {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

// How much of an error answer's body a failure repeats.
constexpr std::size_t kAnswerBytes = 200;

// "HTTP 400: {"error":...}": a non-2xx answer, its body cut to kAnswerBytes.
std::string Answered(int status, std::string_view body) {
  return fmt::format("HTTP {}: {}", status, body.substr(0, kAnswerBytes));
}

std::string Failure(std::string_view what, const beast::error_code& error) {
  return fmt::format("{}: {}", what, error.message());
}

struct Endpoint {
  std::string host;
  std::string port;
  bool tls = false;
};

Result<Endpoint> ParseHttpUrl(const std::string& url) {
  const bool tls = std::string_view(url).starts_with("https://");
  if (!tls && !std::string_view(url).starts_with("http://"))
    return InvalidArgument("URL '{}' must start with http:// or https://", url);
  std::string rest = url.substr(tls ? 8 : 7);
  if (auto slash = rest.find('/'); slash != std::string::npos) rest.resize(slash);
  auto colon = rest.rfind(':');
  if (colon == std::string::npos) return Endpoint{rest, tls ? "443" : "80", tls};
  return Endpoint{rest.substr(0, colon), rest.substr(colon + 1), tls};
}

Result<tcp::endpoint> Resolve(const Endpoint& endpoint) {
  asio::io_context io;
  beast::error_code error;
  auto resolved = tcp::resolver(io).resolve(endpoint.host, endpoint.port, error);
  if (error || resolved.empty())
    return Unavailable("cannot resolve {}:{}: {}", endpoint.host, endpoint.port, error.message());
  return resolved.begin()->endpoint();
}

using TlsSocket = ssl::stream<tcp::socket>;

template <typename Socket, typename Executor>
Socket NewSocket(const Executor& executor, ssl::context* tls) {
  if constexpr (std::is_same_v<Socket, tcp::socket>) {
    return Socket(executor);
  } else {
    return Socket(executor, *tls);
  }
}

// Connects, and for TLS shakes hands as `host`; then `handler(error)`.
template <typename Socket, typename Handler>
void AsyncConnect(Socket& socket, const tcp::endpoint& address, const std::string& host,
                  Handler handler) {
  beast::get_lowest_layer(socket).async_connect(
      address, [&socket, host, handler = std::move(handler)](beast::error_code error) mutable {
        if (error) return handler(error);
        beast::get_lowest_layer(socket).set_option(tcp::no_delay(true));
        if constexpr (std::is_same_v<Socket, tcp::socket>) {
          handler(error);
        } else {
          ExpectServerName(socket, host);
          socket.async_handshake(ssl::stream_base::client, std::move(handler));
        }
      });
}

// The request as bytes on the wire, written once and reused.
std::string Serialize(const HttpRequestSpec& spec, const std::string& host) {
  std::string out = spec.method + " " + spec.path + " HTTP/1.1\r\nHost: " + host +
                    "\r\nConnection: keep-alive\r\n";
  if (!spec.body.empty() || spec.method == "POST") {
    out += "Content-Type: " + spec.content_type +
           "\r\nContent-Length: " + std::to_string(spec.body.size()) + "\r\n";
  }
  for (const auto& [name, value] : spec.headers) out += name + ": " + value + "\r\n";
  out += "\r\n";
  out += spec.body;
  return out;
}

std::string UrlOf(const Endpoint& endpoint, const std::string& path) {
  return (endpoint.tls ? "https://" : "http://") + endpoint.host + ":" + endpoint.port + path;
}

// HTTP/1.1 keep-alive connections over `Socket` (TCP or TLS).
template <typename Socket>
class HttpTarget : public Target {
 public:
  HttpTarget(Endpoint endpoint, tcp::endpoint address, std::vector<HttpRequestSpec> requests,
             int threads, std::shared_ptr<ssl::context> tls)
      : endpoint_(std::move(endpoint)),
        address_(address),
        tls_(std::move(tls)),
        work_(asio::make_work_guard(io_)) {
    for (const auto& spec : requests) {
      wire_.push_back(Serialize(spec, endpoint_.host));
      paths_.push_back(spec.path);
    }
    for (int t = 0; t < threads; ++t) threads_.emplace_back([this] { io_.run(); });
  }
  ~HttpTarget() override {
    work_.reset();
    {
      std::lock_guard lock(mutex_);
      for (auto& connection : idle_) {
        beast::error_code ignored;
        beast::get_lowest_layer(connection->socket).close(ignored);
      }
      idle_.clear();
    }
    io_.stop();
    for (auto& thread : threads_) thread.join();
  }

  void Send(std::size_t index, Done done) override {
    std::shared_ptr<Connection> connection;
    {
      std::lock_guard lock(mutex_);
      if (!idle_.empty()) {
        connection = std::move(idle_.back());
        idle_.pop_back();
      }
    }
    const std::string& wire = wire_[index % wire_.size()];
    if (connection) {
      Exchange(std::move(connection), wire, std::move(done));
      return;
    }
    connection = std::make_shared<Connection>(io_, tls_.get());
    AsyncConnect(
        connection->socket, address_, endpoint_.host,
        [this, connection, &wire, done = std::move(done)](beast::error_code error) mutable {
          if (error) return done(Failure("connect", error));
          Exchange(std::move(connection), wire, std::move(done));
        });
  }

  std::string Describe() const override { return UrlOf(endpoint_, paths_.front()); }

 private:
  struct Connection {
    Connection(asio::io_context& io, ssl::context* tls)
        : socket(NewSocket<Socket>(io.get_executor(), tls)) {}
    Socket socket;
    beast::flat_buffer buffer;
    std::optional<http::response_parser<http::string_body>> parser;
  };

  void Exchange(std::shared_ptr<Connection> connection, const std::string& wire, Done done) {
    asio::async_write(
        connection->socket, asio::buffer(wire),
        [this, connection, done = std::move(done)](beast::error_code error, std::size_t) mutable {
          if (error) return done(Failure("write", error));
          connection->parser.emplace();
          connection->parser->body_limit(std::size_t{1} << 30);
          http::async_read(
              connection->socket, connection->buffer, *connection->parser,
              [this, connection, done = std::move(done)](beast::error_code error, std::size_t) {
                if (error) return done(Failure("read", error));
                const auto& response = connection->parser->get();
                const std::string failure = response.result_int() / 100 == 2
                                                ? std::string()
                                                : Answered(response.result_int(), response.body());
                if (response.keep_alive()) {
                  std::lock_guard lock(mutex_);
                  idle_.push_back(connection);
                }
                done(failure);
              });
        });
  }

  Endpoint endpoint_;
  tcp::endpoint address_;
  std::shared_ptr<ssl::context> tls_;  // null: plaintext
  std::vector<std::string> wire_;
  std::vector<std::string> paths_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::mutex mutex_;
  std::vector<std::shared_ptr<Connection>> idle_;  // guarded by mutex_
  std::vector<std::thread> threads_;
};

// A request as HTTP/2 header fields and a body.
struct Http2Request {
  std::vector<std::pair<std::string, std::string>> fields;
  std::string body;
};

// One HTTP/2 connection carrying many requests at once, on its strand.
template <typename Socket>
class Http2Client : public std::enable_shared_from_this<Http2Client<Socket>> {
 public:
  using Strand = asio::strand<asio::io_context::executor_type>;

  Http2Client(asio::io_context& io, ssl::context* tls)
      : strand_(asio::make_strand(io)), socket_(NewSocket<Socket>(strand_, tls)) {}
  ~Http2Client() {
    if (session_ != nullptr) nghttp2_session_del(session_);
  }

  // Before the network threads run: connects, shakes hands and sends the
  // preface.
  Status Open(const tcp::endpoint& address, const std::string& host) {
    beast::error_code error;
    beast::get_lowest_layer(socket_).connect(address, error);
    if (error)
      return Unavailable("cannot connect to {}:{}: {}", host, address.port(), error.message());
    beast::get_lowest_layer(socket_).set_option(tcp::no_delay(true));
    if constexpr (!std::is_same_v<Socket, tcp::socket>) {
      ExpectServerName(socket_, host);
      socket_.handshake(ssl::stream_base::client, error);
      if (error) return Unavailable("TLS with {}: {}", host, error.message());
      const unsigned char* protocol = nullptr;
      unsigned length = 0;
      SSL_get0_alpn_selected(socket_.native_handle(), &protocol, &length);
      if (std::string_view(reinterpret_cast<const char*>(protocol), length) != "h2")
        return Unavailable("{} did not agree to HTTP/2 (ALPN)", host);
    }
    nghttp2_session_callbacks* callbacks = nullptr;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, OnHeader);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, OnStreamClosed);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, OnData);
    const int created = nghttp2_session_client_new(&session_, callbacks, this);
    nghttp2_session_callbacks_del(callbacks);
    if (created != 0) return Internal("nghttp2: {}", nghttp2_strerror(created));
    const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 24}};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, 1 << 30);
    asio::post(strand_, [self = this->shared_from_this()] {
      self->Read();
      self->Flush();
    });
    return Status::Ok();
  }

  void Send(const Http2Request& request, Target::Done done) {
    asio::post(strand_,
               [self = this->shared_from_this(), &request, done = std::move(done)]() mutable {
                 self->Submit(request, std::move(done));
               });
  }

  void Close() {
    asio::post(strand_, [self = this->shared_from_this()] { self->Fail(); });
  }

 private:
  struct Pending {
    Target::Done done;
    int status = 0;
    const std::string* body = nullptr;
    std::size_t sent = 0;
    std::string answer;  // the start of the response's body (kept for errors)
  };

  void Submit(const Http2Request& request, Target::Done done) {
    if (broken_) return done("the HTTP/2 connection is closed");
    std::vector<nghttp2_nv> nv;
    nv.reserve(request.fields.size());
    for (const auto& [name, value] : request.fields) {
      nv.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE});
    }
    auto pending = std::make_unique<Pending>(Pending{std::move(done), 0, &request.body, 0, {}});
    nghttp2_data_provider provider{};
    provider.source.ptr = pending.get();
    provider.read_callback = ReadBody;
    const std::int32_t id =
        nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(),
                               request.body.empty() ? nullptr : &provider, pending.get());
    if (id < 0) return pending->done(fmt::format("nghttp2: {}", nghttp2_strerror(id)));
    pending_.emplace(id, std::move(pending));
    Flush();
  }

  void Read() {
    socket_.async_read_some(asio::buffer(in_), [self = this->shared_from_this()](
                                                   beast::error_code error, std::size_t n) {
      if (error) return self->Fail();
      if (nghttp2_session_mem_recv(self->session_, self->in_.data(), n) < 0) return self->Fail();
      self->Flush();
      self->Read();
    });
  }

  void Flush() {
    if (writing_ || broken_) return;
    out_.clear();
    while (out_.size() < (64 << 10)) {
      const std::uint8_t* data = nullptr;
      const auto n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) return Fail();
      if (n == 0) break;
      out_.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    }
    if (out_.empty()) return;
    writing_ = true;
    asio::async_write(socket_, asio::buffer(out_),
                      [self = this->shared_from_this()](beast::error_code error, std::size_t) {
                        self->writing_ = false;
                        if (error) return self->Fail();
                        self->Flush();
                      });
  }

  // The connection is gone: every request on it failed.
  void Fail() {
    if (broken_) return;
    broken_ = true;
    beast::error_code ignored;
    beast::get_lowest_layer(socket_).close(ignored);
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& [id, request] : pending) request->done("the HTTP/2 connection broke");
  }

  static int OnHeader(nghttp2_session* session, const nghttp2_frame* frame,
                      const std::uint8_t* name, std::size_t name_length, const std::uint8_t* value,
                      std::size_t value_length, std::uint8_t, void*) {
    if (std::string_view(reinterpret_cast<const char*>(name), name_length) != ":status") return 0;
    auto* pending =
        static_cast<Pending*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
    if (pending != nullptr)
      std::from_chars(reinterpret_cast<const char*>(value),
                      reinterpret_cast<const char*>(value) + value_length, pending->status);
    return 0;
  }

  static int OnData(nghttp2_session* session, std::uint8_t, std::int32_t id,
                    const std::uint8_t* data, std::size_t length, void*) {
    auto* pending = static_cast<Pending*>(nghttp2_session_get_stream_user_data(session, id));
    if (pending != nullptr && pending->answer.size() < kAnswerBytes)
      pending->answer.append(reinterpret_cast<const char*>(data),
                             std::min(length, kAnswerBytes - pending->answer.size()));
    return 0;
  }

  static int OnStreamClosed(nghttp2_session*, std::int32_t id, std::uint32_t error_code,
                            void* user_data) {
    auto& self = *static_cast<Http2Client*>(user_data);
    auto it = self.pending_.find(id);
    if (it == self.pending_.end()) return 0;
    std::unique_ptr<Pending> pending = std::move(it->second);
    self.pending_.erase(it);
    if (error_code != NGHTTP2_NO_ERROR) {
      pending->done(fmt::format("HTTP/2 stream reset: {}", nghttp2_http2_strerror(error_code)));
    } else if (pending->status / 100 != 2) {
      pending->done(Answered(pending->status, pending->answer));
    } else {
      pending->done({});
    }
    return 0;
  }

  static ssize_t ReadBody(nghttp2_session*, std::int32_t, std::uint8_t* buffer, std::size_t length,
                          std::uint32_t* flags, nghttp2_data_source* source, void*) {
    auto* pending = static_cast<Pending*>(source->ptr);
    const std::size_t n = std::min(length, pending->body->size() - pending->sent);
    std::memcpy(buffer, pending->body->data() + pending->sent, n);
    pending->sent += n;
    if (pending->sent == pending->body->size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

  Strand strand_;
  Socket socket_;
  nghttp2_session* session_ = nullptr;
  // Touched only on the strand.
  std::array<std::uint8_t, 16 << 10> in_;
  std::string out_;
  bool writing_ = false;
  bool broken_ = false;
  std::unordered_map<std::int32_t, std::unique_ptr<Pending>> pending_;
};

// HTTP/2: requests spread over a few connections, each carrying as many
// streams as the server allows at once (nghttp2 queues the rest).
template <typename Socket>
class Http2Target : public Target {
 public:
  Http2Target(Endpoint endpoint, std::vector<HttpRequestSpec> requests, int threads)
      : endpoint_(std::move(endpoint)), work_(asio::make_work_guard(io_)) {
    for (auto& spec : requests) {
      Http2Request request;
      request.fields = {{":method", spec.method},
                        {":scheme", endpoint_.tls ? "https" : "http"},
                        {":authority", endpoint_.host},
                        {":path", spec.path}};
      if (!spec.body.empty() || spec.method == "POST") {
        request.fields.emplace_back("content-type", spec.content_type);
        request.fields.emplace_back("content-length", std::to_string(spec.body.size()));
      }
      for (const auto& [name, value] : spec.headers) {
        std::string lower = name;
        for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        request.fields.emplace_back(std::move(lower), value);
      }
      request.body = std::move(spec.body);
      paths_.push_back(spec.path);
      requests_.push_back(std::move(request));
    }
    threads_count_ = threads;
  }
  ~Http2Target() override {
    for (auto& client : clients_) client->Close();
    work_.reset();
    for (auto& thread : threads_) thread.join();
  }

  Status Open(const tcp::endpoint& address, int connections, ssl::context* tls) {
    for (int c = 0; c < connections; ++c) {
      auto client = std::make_shared<Http2Client<Socket>>(io_, tls);
      BRAID_RETURN_IF_ERROR(client->Open(address, endpoint_.host));
      clients_.push_back(std::move(client));
    }
    for (int t = 0; t < threads_count_; ++t) threads_.emplace_back([this] { io_.run(); });
    return Status::Ok();
  }

  void Send(std::size_t index, Done done) override {
    clients_[next_++ % clients_.size()]->Send(requests_[index % requests_.size()], std::move(done));
  }

  std::string Describe() const override { return UrlOf(endpoint_, paths_.front()) + " (HTTP/2)"; }

 private:
  Endpoint endpoint_;
  std::vector<Http2Request> requests_;
  std::vector<std::string> paths_;
  int threads_count_ = 2;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::shared_ptr<Http2Client<Socket>>> clients_;
  std::vector<std::thread> threads_;
  std::atomic<std::size_t> next_{0};
};

template <typename Socket>
Result<std::unique_ptr<Target>> MakeHttp2Target(Endpoint endpoint, const tcp::endpoint& address,
                                                std::vector<HttpRequestSpec> requests,
                                                const HttpClientOptions& options,
                                                ssl::context* tls) {
  auto target = std::make_unique<Http2Target<Socket>>(std::move(endpoint), std::move(requests),
                                                      options.threads);
  BRAID_RETURN_IF_ERROR(target->Open(address, std::max(1, options.connections), tls));
  return std::unique_ptr<Target>(std::move(target));
}

class GrpcTarget : public Target {
 public:
  GrpcTarget(const std::string& address, std::vector<inference::ModelInferRequest> requests,
             std::string api_key, int channels,
             std::shared_ptr<grpc::ChannelCredentials> credentials)
      : address_(address), requests_(std::move(requests)), api_key_(std::move(api_key)) {
    for (int c = 0; c < channels; ++c) {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(1 << 30);
      args.SetMaxSendMessageSize(1 << 30);
      args.SetInt("grpc.use_local_subchannel_pool", 1);  // one connection per channel
      stubs_.push_back(inference::GRPCInferenceService::NewStub(
          grpc::CreateCustomChannel(address, credentials, args)));
    }
  }

  void Send(std::size_t index, Done done) override {
    struct Call {
      grpc::ClientContext context;
      inference::ModelInferResponse response;
    };
    auto* call = new Call;
    if (!api_key_.empty()) call->context.AddMetadata("authorization", "Bearer " + api_key_);
    auto& stub = stubs_[next_++ % stubs_.size()];
    stub->async()->ModelInfer(
        &call->context, &requests_[index % requests_.size()], &call->response,
        [call, done = std::move(done)](grpc::Status status) {
          delete call;
          done(status.ok() ? std::string()
                           : fmt::format("gRPC {}: {}", static_cast<int>(status.error_code()),
                                         status.error_message()));
        });
  }

  std::string Describe() const override {
    return "grpc://" + address_ + "/" + requests_.front().model_name();
  }

 private:
  std::string address_;
  std::vector<inference::ModelInferRequest> requests_;
  std::string api_key_;
  std::vector<std::unique_ptr<inference::GRPCInferenceService::Stub>> stubs_;
  std::atomic<std::size_t> next_{0};
};

}  // namespace

Result<std::unique_ptr<Target>> MakeHttpTarget(const std::string& url,
                                               std::vector<HttpRequestSpec> requests,
                                               const HttpClientOptions& options) {
  BRAID_ASSIGN_OR_RETURN(Endpoint endpoint, ParseHttpUrl(url));
  if (requests.empty()) return InvalidArgument("no requests to send");
  BRAID_ASSIGN_OR_RETURN(const tcp::endpoint address, Resolve(endpoint));
  if (!endpoint.tls) {
    if (options.http2) {
      return MakeHttp2Target<tcp::socket>(std::move(endpoint), address, std::move(requests),
                                          options, nullptr);
    }
    return std::unique_ptr<Target>(std::make_unique<HttpTarget<tcp::socket>>(
        std::move(endpoint), address, std::move(requests), options.threads, nullptr));
  }
  BRAID_ASSIGN_OR_RETURN(auto tls,
                         MakeClientTls({options.tls_ca}, options.http2 ? "h2" : "http/1.1"));
  if (options.http2) {
    return MakeHttp2Target<TlsSocket>(std::move(endpoint), address, std::move(requests), options,
                                      tls.get());
  }
  return std::unique_ptr<Target>(std::make_unique<HttpTarget<TlsSocket>>(
      std::move(endpoint), address, std::move(requests), options.threads, std::move(tls)));
}

Result<std::unique_ptr<Target>> MakeGrpcTarget(const std::string& address,
                                               std::vector<inference::ModelInferRequest> requests,
                                               const std::string& api_key, int channels, bool tls,
                                               const std::string& tls_ca) {
  if (requests.empty()) return InvalidArgument("no requests to send");
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (tls) {
    BRAID_ASSIGN_OR_RETURN(credentials, MakeGrpcClientTls({tls_ca}));
  }
  return std::unique_ptr<Target>(std::make_unique<GrpcTarget>(address, std::move(requests), api_key,
                                                              channels, std::move(credentials)));
}

Result<std::string> HttpGet(const std::string& url, const std::string& path,
                            const std::string& api_key, const std::string& tls_ca) {
  BRAID_ASSIGN_OR_RETURN(Endpoint endpoint, ParseHttpUrl(url));
  http::request<http::empty_body> request(http::verb::get, path, 11);
  request.set(http::field::host, endpoint.host);
  if (!api_key.empty()) request.set(http::field::authorization, "Bearer " + api_key);
  http::response<http::string_body> response;
  try {
    asio::io_context io;
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(10));
    stream.connect(tcp::resolver(io).resolve(endpoint.host, endpoint.port));
    beast::flat_buffer buffer;
    if (endpoint.tls) {
      BRAID_ASSIGN_OR_RETURN(auto tls, MakeClientTls({tls_ca}, "http/1.1"));
      beast::ssl_stream<beast::tcp_stream&> secure(stream, *tls);
      ExpectServerName(secure, endpoint.host);
      secure.handshake(ssl::stream_base::client);
      http::write(secure, request);
      http::read(secure, buffer, response);
    } else {
      http::write(stream, request);
      http::read(stream, buffer, response);
    }
  } catch (const std::exception& e) {
    return Unavailable("cannot reach {}: {}", url, e.what());
  }
  if (response.result_int() / 100 != 2)
    return Unavailable("GET {}{} answered {}: {}", url, path, response.result_int(),
                       response.body());
  return response.body();
}

}  // namespace braid
