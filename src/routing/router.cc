#include "routing/router.h"

#include <fmt/format.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "core/hash.h"
#include "core/thread_pool.h"

namespace braid {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// The value of `name` in a query string, decoded; empty if absent.
std::string QueryValue(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    if (pair.starts_with(name) && pair.size() > name.size() && pair[name.size()] == '=')
      return PercentDecode(pair.substr(name.size() + 1), /*plus_is_space=*/true);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return "";
}

bool HopByHop(std::string_view name) {
  for (std::string_view hop :
       {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "upgrade",
        "expect", "accept-encoding", "content-type", "proxy-connection", "trailer"}) {
    if (name.size() == hop.size() &&
        std::equal(name.begin(), name.end(), hop.begin(),
                   [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; }))
      return true;
  }
  return false;
}

// Safe to send twice: reads, and POSTs whose effect is only their answer.
bool Idempotent(const HttpRequest& request) {
  if (request.method == "GET" || request.method == "HEAD") return true;
  if (request.method != "POST") return false;
  const std::string& path = request.path;
  if (path.starts_with("/v2/models/") && path.ends_with("/infer")) return true;
  if (path == "/v1/embeddings" || path == "/v1/audio/transcriptions") return true;
  return path.starts_with("/v1/workflows/") && path.ends_with("/run") &&
         request.body->find("\"streaming\"") == std::string::npos;
}

struct Replica {
  std::string url;
  std::string host;
  std::string port;
  tcp::endpoint address;
  std::atomic<std::size_t> outstanding{0};
  std::atomic<double> load{0};
  std::atomic<bool> healthy{false};
  std::atomic<bool> draining{false};
  std::atomic<bool> ejected{false};
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> failures{0};
  std::mutex mutex;
  int consecutive_failures = 0;                          // guarded by mutex
  TimePoint ejected_until{};                             // guarded by mutex
  std::vector<std::unique_ptr<beast::tcp_stream>> idle;  // guarded by mutex
  std::unique_ptr<grpc::GenericStub> grpc;               // set when the router proxies gRPC
};

enum class Outcome { kAnswered, kUnavailable, kFailed };

}  // namespace

class Router::Impl : public grpc::CallbackGenericService {
 public:
  Impl(RouterOptions options, Clock& clock)
      : options_(std::move(options)),
        clock_(clock),
        picker_(options_.policy, options_.replicas.size()),
        pool_(static_cast<std::size_t>(std::max(1, options_.threads))) {}

  ~Impl() {
    {
      std::lock_guard lock(health_mutex_);
      stopping_ = true;
    }
    health_wake_.notify_all();
    if (health_thread_.joinable()) health_thread_.join();
    pool_.WaitIdle();
  }

  Status Init() {
    if (options_.replicas.empty()) return InvalidArgument("give at least one --replica URL");
    for (const auto& url : options_.replicas) {
      constexpr std::string_view kScheme = "http://";
      if (!std::string_view(url).starts_with(kScheme))
        return InvalidArgument("replica '{}' must be an http:// URL", url);
      auto replica = std::make_unique<Replica>();
      replica->url = url;
      std::string rest = url.substr(kScheme.size());
      if (!rest.empty() && rest.back() == '/') rest.pop_back();
      auto colon = rest.rfind(':');
      replica->host = colon == std::string::npos ? rest : rest.substr(0, colon);
      replica->port = colon == std::string::npos ? "80" : rest.substr(colon + 1);
      beast::error_code error;
      auto resolved = tcp::resolver(io_).resolve(replica->host, replica->port, error);
      if (error || resolved.empty())
        return InvalidArgument("cannot resolve replica '{}': {}", url, error.message());
      replica->address = resolved.begin()->endpoint();
      replicas_.push_back(std::move(replica));
    }
    if (!options_.grpc_replicas.empty()) {
      if (options_.grpc_replicas.size() != replicas_.size())
        return InvalidArgument("give one --grpc-replica per --replica ({} and {})",
                               options_.grpc_replicas.size(), replicas_.size());
      for (std::size_t i = 0; i < replicas_.size(); ++i) {
        grpc::ChannelArguments args;
        args.SetMaxReceiveMessageSize(-1);
        args.SetMaxSendMessageSize(-1);
        replicas_[i]->grpc = std::make_unique<grpc::GenericStub>(grpc::CreateCustomChannel(
            options_.grpc_replicas[i], grpc::InsecureChannelCredentials(), args));
      }
    }
    CheckAll();
    health_thread_ = std::thread([this] { HealthLoop(); });
    return Status::Ok();
  }

  void Handle(HttpRequest& request, HttpResponderPtr responder) {
    const std::string& path = request.path;
    if (path == "/v2/health/live")
      return responder->Send({200, "application/json", "{\"live\":true}"});
    if (path == "/v2/health/ready") {
      return responder->Send(Ready() ? HttpResponse{200, "application/json", "{\"ready\":true}"}
                                     : JsonError(503, "no replica is ready"));
    }
    if (path == "/router/replicas") return responder->Send({200, "application/json", StatusJson()});
    if (path == "/router/drain" || path == "/router/undrain") {
      if (request.method != "POST") return responder->Send(JsonError(405, path + " takes POST"));
      const std::string wanted = QueryValue(request.query, "replica");
      for (auto& replica : replicas_) {
        if (replica->url == wanted || replica->host + ":" + replica->port == wanted) {
          replica->draining = path == "/router/drain";
          spdlog::warn("replica {} {}", replica->url, replica->draining ? "draining" : "undrained");
          return responder->Send({200, "application/json", StatusJson()});
        }
      }
      return responder->Send(JsonError(404, fmt::format("no replica '{}'", wanted)));
    }
    pool_.Submit([this, request, responder] { Forward(request, responder); });
  }

  bool proxies_grpc() const { return !options_.grpc_replicas.empty(); }

  // grpc::CallbackGenericService: one reactor per call.
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override;

  bool Ready() const {
    return std::any_of(replicas_.begin(), replicas_.end(),
                       [](const auto& r) { return r->healthy && !r->ejected; });
  }

  std::string StatusJson() const {
    std::string out =
        fmt::format("{{\"policy\":\"{}\",\"replicas\":[", PolicyName(options_.policy));
    for (std::size_t i = 0; i < replicas_.size(); ++i) {
      const Replica& r = *replicas_[i];
      fmt::format_to(std::back_inserter(out),
                     "{}{{\"url\":\"{}\",\"healthy\":{},\"ejected\":{},\"draining\":{},"
                     "\"outstanding\":{},\"load\":{:.3f},\"requests\":{},\"failures\":{}}}",
                     i ? "," : "", r.url, r.healthy.load(), r.ejected.load(), r.draining.load(),
                     r.outstanding.load(), r.load.load(), r.requests.load(), r.failures.load());
    }
    return out + "]}";
  }

  // Used by the HTTP forwarding here and by GrpcCall.
  std::optional<std::size_t> Choose(std::uint64_t key, const std::vector<bool>& tried) {
    std::vector<ReplicaView> views;
    for (std::size_t i = 0; i < replicas_.size(); ++i) {
      const Replica& r = *replicas_[i];
      ReplicaView view;
      view.outstanding = r.outstanding;
      view.load = r.load;
      view.max_outstanding = options_.max_inflight_per_replica;
      view.available = !tried[i] && r.healthy && !r.ejected && !r.draining &&
                       view.outstanding < options_.max_inflight_per_replica;
      views.push_back(view);
    }
    std::lock_guard lock(picker_mutex_);
    return picker_.Pick(views, key);
  }

  void Forward(const HttpRequest& request, const HttpResponderPtr& responder) {
    const bool idempotent = Idempotent(request);
    std::uint64_t key = 0;
    if (options_.policy == Policy::kCacheAffinity)
      key = Hasher().Add(request.method).Add(request.path).Add(*request.body).Finish().low;
    std::vector<bool> tried(replicas_.size(), false);
    HttpResponse last = JsonError(503, "no replica is available");
    const int attempts = 1 + (idempotent ? options_.retries : 0);
    for (int attempt = 0; attempt < attempts; ++attempt) {
      auto index = Choose(key, tried);
      if (!index) break;
      tried[*index] = true;
      Replica& replica = *replicas_[*index];
      ++replica.outstanding;
      ++replica.requests;
      const Outcome outcome = Exchange(replica, request, responder, idempotent, &last);
      --replica.outstanding;
      if (outcome == Outcome::kAnswered) {
        Succeeded(replica);
        return;
      }
      Failed(replica);
      if (outcome == Outcome::kFailed && !idempotent) break;
    }
    responder->Send(std::move(last));
  }

  // One try on `replica`. kAnswered: the answer went to the client.
  // kUnavailable (503) and kFailed (no answer) leave `*last` holding what
  // to send if no other replica answers.
  Outcome Exchange(Replica& replica, const HttpRequest& request, const HttpResponderPtr& responder,
                   bool idempotent, HttpResponse* last) {
    http::request<http::string_body> upstream;
    upstream.method_string(request.method);
    upstream.target(request.target);
    upstream.version(11);
    for (const auto& [name, value] : request.headers) {
      if (!HopByHop(name)) upstream.insert(name, value);
    }
    upstream.set(http::field::host, replica.host + ":" + replica.port);
    if (auto type = request.Header("Content-Type"); !type.empty())
      upstream.set(http::field::content_type, std::string(type));
    upstream.keep_alive(true);
    upstream.body() = *request.body;
    upstream.prepare_payload();

    // A pooled connection the replica closed meanwhile fails at once; then
    // a fresh one is tried before counting the replica as failed.
    for (int fresh = 0; fresh < 2; ++fresh) {
      std::unique_ptr<beast::tcp_stream> stream = fresh == 0 ? TakeIdle(replica) : nullptr;
      const bool pooled = stream != nullptr;
      if (!stream) {
        stream = std::make_unique<beast::tcp_stream>(io_);
        stream->expires_after(options_.connect_timeout);
        beast::error_code error;
        stream->connect(replica.address, error);
        if (error) {
          *last = JsonError(
              502, fmt::format("replica {} is unreachable: {}", replica.url, error.message()));
          return Outcome::kFailed;
        }
        stream->socket().set_option(tcp::no_delay(true));
      } else if (fresh == 1) {
        continue;
      }
      stream->expires_after(options_.upstream_timeout);
      beast::error_code error;
      http::write(*stream, upstream, error);
      beast::flat_buffer buffer;
      http::response_parser<http::buffer_body> parser;
      parser.body_limit(std::uint64_t{1} << 34);
      if (!error) http::read_header(*stream, buffer, parser, error);
      if (error) {
        if (pooled) continue;
        *last = JsonError(502, fmt::format("replica {} failed: {}", replica.url, error.message()));
        return Outcome::kFailed;
      }
      return Relay(replica, std::move(stream), buffer, parser, responder, idempotent, last);
    }
    return Outcome::kFailed;
  }

  Outcome Relay(Replica& replica, std::unique_ptr<beast::tcp_stream> stream,
                beast::flat_buffer& buffer, http::response_parser<http::buffer_body>& parser,
                const HttpResponderPtr& responder, bool idempotent, HttpResponse* last) {
    const auto& head = parser.get();
    const int status = head.result_int();
    std::vector<std::pair<std::string, std::string>> headers;
    std::string content_type = "application/json";
    for (const auto& field : head) {
      if (beast::iequals(field.name_string(), "content-type")) {
        content_type = std::string(field.value());
      } else if (!HopByHop({field.name_string().data(), field.name_string().size()})) {
        headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
      }
    }
    const bool stream_body = parser.chunked() && !(status == 503 && idempotent);
    if (stream_body) responder->StartStream(status, content_type, headers);
    std::string body;
    char chunk[64 * 1024];
    beast::error_code error;
    while (!parser.is_done()) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof(chunk);
      http::read(*stream, buffer, parser, error);
      if (error == http::error::need_buffer) error = {};
      if (error) break;
      const std::size_t got = sizeof(chunk) - parser.get().body().size;
      if (got == 0) continue;
      if (stream_body) {
        if (!responder->WriteChunk(std::string(chunk, got))) break;
      } else {
        body.append(chunk, got);
      }
    }
    const bool complete = parser.is_done() && !error;
    if (complete && parser.get().keep_alive()) {
      std::lock_guard lock(replica.mutex);
      replica.idle.push_back(std::move(stream));
    }
    if (stream_body) {
      responder->EndStream();
      return Outcome::kAnswered;  // what arrived is what the client gets
    }
    if (!complete) {
      *last = JsonError(502, fmt::format("replica {} broke off its answer", replica.url));
      return Outcome::kFailed;
    }
    HttpResponse response{status, content_type, std::move(body), std::move(headers)};
    if (status == 503 && idempotent) {
      *last = std::move(response);
      return Outcome::kUnavailable;
    }
    responder->Send(std::move(response));
    return status == 502 || status == 504 ? Outcome::kFailed : Outcome::kAnswered;
  }

  std::unique_ptr<beast::tcp_stream> TakeIdle(Replica& replica) {
    std::lock_guard lock(replica.mutex);
    if (replica.idle.empty()) return nullptr;
    auto stream = std::move(replica.idle.back());
    replica.idle.pop_back();
    return stream;
  }

  void Succeeded(Replica& replica) {
    std::lock_guard lock(replica.mutex);
    replica.consecutive_failures = 0;
  }

  void Failed(Replica& replica) {
    ++replica.failures;
    std::lock_guard lock(replica.mutex);
    if (++replica.consecutive_failures >= options_.eject_after_failures && !replica.ejected) {
      replica.ejected = true;
      replica.ejected_until = clock_.Now() + options_.eject_time;
      replica.idle.clear();
      spdlog::warn("replica {} ejected after {} consecutive failures", replica.url,
                   replica.consecutive_failures);
    }
  }

  // GET /v2/health/ready on one replica: healthy on 200; its X-Braid-Load
  // header updates the load.
  void Check(Replica& replica) {
    bool ok = false;
    try {
      beast::tcp_stream stream(io_);
      stream.expires_after(
          std::min<Duration>(options_.health_interval * 2, std::chrono::seconds(2)));
      stream.connect(replica.address);
      http::request<http::empty_body> request(http::verb::get, "/v2/health/ready", 11);
      request.set(http::field::host, replica.host);
      http::write(stream, request);
      beast::flat_buffer buffer;
      http::response<http::string_body> response;
      http::read(stream, buffer, response);
      ok = response.result_int() == 200;
      if (auto load = response.find("X-Braid-Load"); load != response.end()) {
        double value = 0;
        const std::string text(load->value());
        if (std::from_chars(text.data(), text.data() + text.size(), value).ec == std::errc())
          replica.load = std::clamp(value, 0.0, 1.0);
      }
    } catch (const std::exception&) {
      ok = false;
    }
    if (ok != replica.healthy.exchange(ok))
      spdlog::warn("replica {} is {}", replica.url, ok ? "healthy" : "not ready");
    std::lock_guard lock(replica.mutex);
    if (ok && replica.ejected && clock_.Now() >= replica.ejected_until) {
      replica.ejected = false;
      replica.consecutive_failures = 0;
      spdlog::warn("replica {} re-admitted", replica.url);
    }
    if (!ok) replica.idle.clear();
  }

  void CheckAll() {
    for (auto& replica : replicas_) Check(*replica);
  }

  void HealthLoop() {
    std::unique_lock lock(health_mutex_);
    while (!stopping_) {
      clock_.WaitUntil(lock, health_wake_, clock_.Now() + options_.health_interval);
      if (stopping_) break;
      lock.unlock();
      CheckAll();
      lock.lock();
    }
  }

 private:
  const RouterOptions options_;
  Clock& clock_;
  asio::io_context io_;  // for the blocking sockets; never run
  std::vector<std::unique_ptr<Replica>> replicas_;
  std::mutex picker_mutex_;
  Picker picker_;  // guarded by picker_mutex_
  std::mutex health_mutex_;
  std::condition_variable health_wake_;
  bool stopping_ = false;  // guarded by health_mutex_
  std::thread health_thread_;
  ThreadPool pool_;
};

namespace {

// One proxied unary call: read the request, call a replica, write back its
// answer (or try another replica on UNAVAILABLE).
class GrpcCall : public grpc::ServerGenericBidiReactor {
 public:
  GrpcCall(Router::Impl& router, grpc::GenericCallbackServerContext* context,
           std::vector<Replica*> replicas, int retries, bool hash)
      : router_(router),
        context_(context),
        replicas_(std::move(replicas)),
        tried_(replicas_.size(), false),
        attempts_left_(1 + retries),
        hash_(hash) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no request message"));
    if (hash_) {
      std::vector<grpc::Slice> slices;
      request_.Dump(&slices);
      Hasher hasher;
      hasher.Add(context_->method());
      for (const auto& slice : slices)
        hasher.Add(std::span(reinterpret_cast<const std::byte*>(slice.begin()), slice.size()));
      key_ = hasher.Finish().low;
    }
    Attempt();
  }
  void OnWriteDone(bool ok) override {
    Finish(ok ? grpc::Status::OK : grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
  }
  void OnDone() override { delete this; }

 private:
  void Attempt();

  Router::Impl& router_;
  grpc::GenericCallbackServerContext* context_;
  std::vector<Replica*> replicas_;
  std::vector<bool> tried_;
  int attempts_left_;
  bool hash_;
  std::uint64_t key_ = 0;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  std::unique_ptr<grpc::ClientContext> client_;
};

}  // namespace

grpc::ServerGenericBidiReactor* Router::Impl::CreateReactor(
    grpc::GenericCallbackServerContext* context) {
  std::vector<Replica*> replicas;
  for (auto& replica : replicas_) replicas.push_back(replica.get());
  return new GrpcCall(*this, context, std::move(replicas), options_.retries,
                      options_.policy == Policy::kCacheAffinity);
}

void GrpcCall::Attempt() {
  auto index = router_.Choose(key_, tried_);
  if (!index || attempts_left_-- <= 0)
    return Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "no replica is available"));
  tried_[*index] = true;
  Replica& replica = *replicas_[*index];
  ++replica.outstanding;
  ++replica.requests;
  client_ = std::make_unique<grpc::ClientContext>();
  client_->set_deadline(context_->deadline());
  for (const auto& [name, value] : context_->client_metadata()) {
    const std::string key(name.data(), name.size());
    if (key == "authorization" || key.starts_with("x-"))
      client_->AddMetadata(key, std::string(value.data(), value.size()));
  }
  response_.Clear();
  replica.grpc->UnaryCall(client_.get(), context_->method(), grpc::StubOptions(), &request_,
                          &response_, [this, &replica](grpc::Status status) {
                            --replica.outstanding;
                            if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
                              router_.Failed(replica);
                              return Attempt();
                            }
                            router_.Succeeded(replica);
                            if (!status.ok()) return Finish(status);
                            StartWrite(&response_);
                          });
}

Router::Router(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Router::~Router() = default;

Result<std::unique_ptr<Router>> Router::Create(RouterOptions options, Clock& clock) {
  auto impl = std::make_unique<Impl>(std::move(options), clock);
  BRAID_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<Router>(new Router(std::move(impl)));
}

void Router::Handle(HttpRequest& request, HttpResponderPtr responder) {
  impl_->Handle(request, std::move(responder));
}

bool Router::Ready() const { return impl_->Ready(); }
grpc::CallbackGenericService* Router::GrpcService() {
  return impl_->proxies_grpc() ? impl_.get() : nullptr;
}
std::string Router::StatusJson() const { return impl_->StatusJson(); }

}  // namespace braid
