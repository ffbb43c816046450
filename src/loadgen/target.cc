#include "loadgen/target.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <mutex>
#include <thread>

#include "grpc_service.grpc.pb.h"

namespace braid {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct Endpoint {
  std::string host;
  std::string port;
};

Result<Endpoint> ParseHttpUrl(const std::string& url) {
  constexpr std::string_view kScheme = "http://";
  if (!std::string_view(url).starts_with(kScheme))
    return InvalidArgument("URL '{}' must start with http://", url);
  std::string rest = url.substr(kScheme.size());
  if (auto slash = rest.find('/'); slash != std::string::npos) rest.resize(slash);
  auto colon = rest.rfind(':');
  if (colon == std::string::npos) return Endpoint{rest, "80"};
  return Endpoint{rest.substr(0, colon), rest.substr(colon + 1)};
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

class HttpTarget : public Target {
 public:
  HttpTarget(Endpoint endpoint, tcp::endpoint address, std::vector<HttpRequestSpec> requests,
             int threads)
      : endpoint_(std::move(endpoint)), address_(address), work_(asio::make_work_guard(io_)) {
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
        connection->socket.close(ignored);
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
    connection = std::make_shared<Connection>(io_);
    connection->socket.async_connect(address_, [this, connection, &wire, done = std::move(done)](
                                                   beast::error_code error) mutable {
      if (error) return done(false);
      connection->socket.set_option(tcp::no_delay(true));
      Exchange(std::move(connection), wire, std::move(done));
    });
  }

  std::string Describe() const override {
    return "http://" + endpoint_.host + ":" + endpoint_.port + paths_.front();
  }

 private:
  struct Connection {
    explicit Connection(asio::io_context& io) : socket(io) {}
    tcp::socket socket;
    beast::flat_buffer buffer;
    std::optional<http::response_parser<http::string_body>> parser;
  };

  void Exchange(std::shared_ptr<Connection> connection, const std::string& wire, Done done) {
    asio::async_write(
        connection->socket, asio::buffer(wire),
        [this, connection, done = std::move(done)](beast::error_code error, std::size_t) mutable {
          if (error) return done(false);
          connection->parser.emplace();
          connection->parser->body_limit(std::size_t{1} << 30);
          http::async_read(
              connection->socket, connection->buffer, *connection->parser,
              [this, connection, done = std::move(done)](beast::error_code error, std::size_t) {
                if (error) return done(false);
                const auto& response = connection->parser->get();
                const bool ok = response.result_int() / 100 == 2;
                if (response.keep_alive()) {
                  std::lock_guard lock(mutex_);
                  idle_.push_back(connection);
                }
                done(ok);
              });
        });
  }

  Endpoint endpoint_;
  tcp::endpoint address_;
  std::vector<std::string> wire_;
  std::vector<std::string> paths_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::mutex mutex_;
  std::vector<std::shared_ptr<Connection>> idle_;  // guarded by mutex_
  std::vector<std::thread> threads_;
};

class GrpcTarget : public Target {
 public:
  GrpcTarget(const std::string& address, std::vector<inference::ModelInferRequest> requests,
             std::string api_key, int channels)
      : address_(address), requests_(std::move(requests)), api_key_(std::move(api_key)) {
    for (int c = 0; c < channels; ++c) {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(1 << 30);
      args.SetMaxSendMessageSize(1 << 30);
      args.SetInt("grpc.use_local_subchannel_pool", 1);  // one connection per channel
      stubs_.push_back(inference::GRPCInferenceService::NewStub(
          grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args)));
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
    stub->async()->ModelInfer(&call->context, &requests_[index % requests_.size()], &call->response,
                              [call, done = std::move(done)](grpc::Status status) {
                                delete call;
                                done(status.ok());
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
                                               std::vector<HttpRequestSpec> requests, int threads) {
  BRAID_ASSIGN_OR_RETURN(Endpoint endpoint, ParseHttpUrl(url));
  if (requests.empty()) return InvalidArgument("no requests to send");
  asio::io_context io;
  beast::error_code error;
  auto resolved = tcp::resolver(io).resolve(endpoint.host, endpoint.port, error);
  if (error || resolved.empty()) return Unavailable("cannot resolve {}: {}", url, error.message());
  const tcp::endpoint address = resolved.begin()->endpoint();
  return std::unique_ptr<Target>(
      std::make_unique<HttpTarget>(std::move(endpoint), address, std::move(requests), threads));
}

Result<std::unique_ptr<Target>> MakeGrpcTarget(const std::string& address,
                                               std::vector<inference::ModelInferRequest> requests,
                                               const std::string& api_key, int channels) {
  if (requests.empty()) return InvalidArgument("no requests to send");
  return std::unique_ptr<Target>(
      std::make_unique<GrpcTarget>(address, std::move(requests), api_key, channels));
}

Result<std::string> HttpGet(const std::string& url, const std::string& path,
                            const std::string& api_key) {
  BRAID_ASSIGN_OR_RETURN(Endpoint endpoint, ParseHttpUrl(url));
  try {
    asio::io_context io;
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(10));
    stream.connect(tcp::resolver(io).resolve(endpoint.host, endpoint.port));
    http::request<http::empty_body> request(http::verb::get, path, 11);
    request.set(http::field::host, endpoint.host);
    if (!api_key.empty()) request.set(http::field::authorization, "Bearer " + api_key);
    http::write(stream, request);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(stream, buffer, response);
    if (response.result_int() / 100 != 2)
      return Unavailable("GET {}{} answered {}: {}", url, path, response.result_int(),
                         response.body());
    return response.body();
  } catch (const std::exception& e) {
    return Unavailable("cannot reach {}: {}", url, e.what());
  }
}

}  // namespace braid
