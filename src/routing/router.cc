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
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "core/hash.h"
#include "frontends/grpc/credentials.h"

namespace braid {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

// A connection to a replica: TCP for http:// replicas, TLS for https://.
// On a network thread's io_context, named by its executor's concrete type
// rather than Asio's type-erased any_io_executor, through which every
// handler would be copied and dispatched.
using PlainUpstream = beast::basic_stream<tcp, asio::io_context::executor_type>;
using TlsUpstream = beast::ssl_stream<PlainUpstream>;
template <typename Stream>
constexpr bool kTls = std::is_same_v<Stream, TlsUpstream>;

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
    if (EqualsIgnoringCase(name, hop)) return true;
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
  int consecutive_failures = 0;  // guarded by mutex
  TimePoint ejected_until{};     // guarded by mutex
  // Keep-alive connections not in use, of the replicas' one kind; guarded by
  // mutex.
  std::vector<std::unique_ptr<PlainUpstream>> idle;
  std::vector<std::unique_ptr<TlsUpstream>> idle_tls;
  std::unique_ptr<grpc::GenericStub> grpc;  // set when the router proxies gRPC

  template <typename Stream>
  std::vector<std::unique_ptr<Stream>>& Idle() {
    if constexpr (kTls<Stream>) {
      return idle_tls;
    } else {
      return idle;
    }
  }
  void ForgetIdle() {  // with mutex held
    idle.clear();
    idle_tls.clear();
  }
};

// How one try on a replica ended. kAnswered: the client has its answer.
// kRelayedFailure: the client has the replica's 502/504, which still counts
// against the replica. kUnavailable (its 503 to an idempotent request) and
// kFailed (no answer) leave the answer for another replica or for last_.
enum class Outcome { kAnswered, kRelayedFailure, kUnavailable, kFailed };

template <typename Stream>
class Forwarding;

}  // namespace

class Router::Impl : public grpc::CallbackGenericService {
 public:
  Impl(RouterOptions options, Clock& clock, Router::NetworkContext network)
      : options_(std::move(options)),
        clock_(clock),
        network_(std::move(network)),
        picker_(options_.policy, options_.replicas.size()) {}

  ~Impl() {
    {
      std::lock_guard lock(health_mutex_);
      stopping_ = true;
    }
    health_wake_.notify_all();
    if (health_thread_.joinable()) health_thread_.join();
  }

  Status Init() {
    if (options_.replicas.empty()) return InvalidArgument("give at least one --replica URL");
    const bool tls = options_.replicas.front().starts_with("https://");
    if (tls) {
      BRAID_ASSIGN_OR_RETURN(tls_, MakeClientTls(options_.upstream_tls, "http/1.1"));
    }
    for (const auto& url : options_.replicas) {
      const std::string_view scheme = tls ? "https://" : "http://";
      if (!std::string_view(url).starts_with(scheme)) {
        return InvalidArgument(
            "replica '{}' must be an {} URL: the replicas are all http:// or all https://", url,
            scheme);
      }
      auto replica = std::make_unique<Replica>();
      replica->url = url;
      std::string rest = url.substr(scheme.size());
      if (!rest.empty() && rest.back() == '/') rest.pop_back();
      auto colon = rest.rfind(':');
      replica->host = colon == std::string::npos ? rest : rest.substr(0, colon);
      replica->port = colon == std::string::npos ? (tls ? "443" : "80") : rest.substr(colon + 1);
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
      std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
      if (tls) {
        BRAID_ASSIGN_OR_RETURN(credentials, MakeGrpcClientTls(options_.upstream_tls));
      }
      for (std::size_t i = 0; i < replicas_.size(); ++i) {
        grpc::ChannelArguments args;
        args.SetMaxReceiveMessageSize(-1);
        args.SetMaxSendMessageSize(-1);
        replicas_[i]->grpc = std::make_unique<grpc::GenericStub>(
            grpc::CreateCustomChannel(options_.grpc_replicas[i], credentials, args));
      }
    }
    CheckAll();
    health_thread_ = std::thread([this] { HealthLoop(); });
    return Status::Ok();
  }

  // Answers the router's own endpoints; forwards the rest (Forwarding).
  void Handle(HttpRequest& request, HttpResponderPtr responder);

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

  // The most recently returned idle connection on the calling network
  // thread's io_context: its answer then completes on this thread, without
  // a wake-up of another.
  template <typename Stream>
  std::unique_ptr<Stream> TakeIdle(Replica& replica) {
    asio::execution_context& here = network();
    std::lock_guard lock(replica.mutex);
    auto& idle = replica.Idle<Stream>();
    for (auto it = idle.rbegin(); it != idle.rend(); ++it) {
      if (&asio::query((*it)->get_executor(), asio::execution::context) != &here) continue;
      auto stream = std::move(*it);
      idle.erase(std::next(it).base());
      return stream;
    }
    return nullptr;
  }

  template <typename Stream>
  void ReturnIdle(Replica& replica, std::unique_ptr<Stream> stream) {
    std::lock_guard lock(replica.mutex);
    replica.Idle<Stream>().push_back(std::move(stream));
  }

  // A connection not yet made, of the replicas' kind.
  template <typename Stream, typename Executor>
  std::unique_ptr<Stream> NewStream(Executor executor) {
    if constexpr (kTls<Stream>) {
      return std::make_unique<Stream>(std::move(executor), *tls_);
    } else {
      return std::make_unique<Stream>(std::move(executor));
    }
  }

  const RouterOptions& options() const { return options_; }
  Replica& replica(std::size_t index) { return *replicas_[index]; }
  std::size_t replica_count() const { return replicas_.size(); }
  // The calling network thread's io_context.
  asio::io_context& network() { return network_(); }

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
      replica.ForgetIdle();
      spdlog::warn("replica {} ejected after {} consecutive failures", replica.url,
                   replica.consecutive_failures);
    }
  }

  // GET /v2/health/ready on one replica: healthy on 200; its X-Braid-Load
  // header updates the load.
  void Check(Replica& replica) {
    bool ok = false;
    try {
      const http::response<http::string_body> response =
          tls_ ? AskReady<TlsUpstream>(replica) : AskReady<PlainUpstream>(replica);
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
    if (!ok) replica.ForgetIdle();
  }

  // The replica's answer to GET /v2/health/ready, on a connection of its
  // own; throws when there is none.
  template <typename Stream>
  http::response<http::string_body> AskReady(const Replica& replica) {
    std::unique_ptr<Stream> stream = NewStream<Stream>(io_.get_executor());
    beast::get_lowest_layer(*stream).expires_after(std::clamp<Duration>(
        options_.health_interval * 2, std::chrono::seconds(1), std::chrono::seconds(2)));
    beast::get_lowest_layer(*stream).connect(replica.address);
    if constexpr (kTls<Stream>) {
      ExpectServerName(*stream, replica.host);
      stream->handshake(ssl::stream_base::client);
    }
    http::request<http::empty_body> request(http::verb::get, "/v2/health/ready", 11);
    request.set(http::field::host, replica.host);
    http::write(*stream, request);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(*stream, buffer, response);
    return response;
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
  const Router::NetworkContext network_;  // forwarding runs on the HTTP server's threads
  asio::io_context io_;                   // for the health checks' blocking sockets; never run
  std::shared_ptr<ssl::context> tls_;     // set for https:// replicas; outlives their connections
  std::vector<std::unique_ptr<Replica>> replicas_;
  std::mutex picker_mutex_;
  Picker picker_;  // guarded by picker_mutex_
  std::mutex health_mutex_;
  std::condition_variable health_wake_;
  bool stopping_ = false;  // guarded by health_mutex_
  std::thread health_thread_;
};

namespace {

// One forwarded HTTP request, as a chain of asynchronous operations on the
// network threads (no thread is handed the request or blocked on the
// replica): pick a replica, send the request over a pooled keep-alive
// connection (a fresh one when the pooled one turns out closed), relay the
// answer (a chunked one chunk by chunk), and try another replica where
// that is safe. `Stream` is the replicas' kind of connection.
template <typename Stream>
class Forwarding : public std::enable_shared_from_this<Forwarding<Stream>> {
 public:
  Forwarding(Router::Impl& router, const HttpRequest& request, HttpResponderPtr responder)
      : router_(router),
        responder_(std::move(responder)),
        body_(request.body),
        head_request_(request.method == "HEAD"),
        idempotent_(Idempotent(request)),
        attempts_left_(1 + (idempotent_ ? router.options().retries : 0)),
        tried_(router.replica_count(), false) {
    if (router.options().policy == Policy::kCacheAffinity)
      key_ = Hasher().Add(request.method).Add(request.path).Add(*request.body).Finish().low;
    upstream_.method_string(request.method);
    upstream_.target(request.target);
    upstream_.version(11);
    for (const auto& [name, value] : request.headers) {
      if (!HopByHop(name)) upstream_.insert(name, value);
    }
    if (auto type = request.Header("Content-Type"); !type.empty())
      upstream_.set(http::field::content_type, std::string(type));
    upstream_.keep_alive(true);
    upstream_.body() = {body_->data(), body_->size()};
  }

  void Start() { NextTry(); }

 private:
  static constexpr std::size_t kChunkBytes = 64 << 10;

  void NextTry() {
    std::optional<std::size_t> index;
    if (attempts_left_-- > 0) index = router_.Choose(key_, tried_);
    if (!index) return responder_->Send(std::move(last_));
    tried_[*index] = true;
    replica_ = &router_.replica(*index);
    ++replica_->outstanding;
    ++replica_->requests;
    upstream_.set(http::field::host, replica_->host + ":" + replica_->port);
    upstream_.prepare_payload();
    stream_ = router_.TakeIdle<Stream>(*replica_);
    if (stream_) return Exchange(/*pooled=*/true);
    Connect();
  }

  void Connect() {
    // On this network thread's io_context, which one thread runs: the
    // stream's timeout and its operations complete in order. The connect
    // timeout covers the TLS handshake too.
    stream_ = router_.NewStream<Stream>(router_.network().get_executor());
    auto& socket = beast::get_lowest_layer(*stream_);
    socket.expires_after(router_.options().connect_timeout);
    socket.async_connect(replica_->address, [self = this->shared_from_this()](
                                                beast::error_code error) {
      if (error) {
        self->last_ = JsonError(502, fmt::format("replica {} is unreachable: {}",
                                                 self->replica_->url, error.message()));
        return self->TryEnded(Outcome::kFailed);
      }
      beast::get_lowest_layer(*self->stream_).socket().set_option(tcp::no_delay(true), error);
      if constexpr (kTls<Stream>) {
        ExpectServerName(*self->stream_, self->replica_->host);
        self->stream_->async_handshake(ssl::stream_base::client, [self](beast::error_code error) {
          if (error) {
            self->last_ = JsonError(502, fmt::format("TLS with replica {} failed: {}",
                                                     self->replica_->url, error.message()));
            return self->TryEnded(Outcome::kFailed);
          }
          beast::get_lowest_layer(*self->stream_).expires_never();
          self->Exchange(/*pooled=*/false);
        });
      } else {
        beast::get_lowest_layer(*self->stream_).expires_never();
        self->Exchange(/*pooled=*/false);
      }
    });
  }

  // Sends the request and reads the answer's head. A pooled connection the
  // replica closed meanwhile fails at once; then a fresh one is tried
  // before the replica counts as failed.
  void Exchange(bool pooled) {
    ArmDeadline();
    http::async_write(
        *stream_, upstream_,
        [self = this->shared_from_this(), pooled](beast::error_code error, std::size_t) {
          if (error) return self->ExchangeFailed(pooled, error);
          self->buffer_.clear();
          self->parser_.emplace();
          self->parser_->body_limit(std::uint64_t{1} << 34);
          self->parser_->skip(self->head_request_);
          http::async_read_header(*self->stream_, self->buffer_, *self->parser_,
                                  [self, pooled](beast::error_code error, std::size_t) {
                                    if (error) return self->ExchangeFailed(pooled, error);
                                    self->OnHead();
                                  });
        });
  }

  // The exchange's deadline (upstream_timeout) closes the connection its
  // write and reads wait on; one timer for them all, where the stream's
  // own would be set and cancelled around each. A try that ends cancels
  // it, and a later try's timer is not this one's.
  void ArmDeadline() {
    timed_out_ = false;
    deadline_.expires_after(router_.options().upstream_timeout);
    deadline_.async_wait(
        [self = this->shared_from_this(), exchange = ++exchanges_](beast::error_code error) {
          if (error || exchange != self->exchanges_ || !self->stream_) return;
          self->timed_out_ = true;
          beast::get_lowest_layer(*self->stream_).close();
        });
  }

  // The client's answer when the deadline passed.
  HttpResponse TimedOut(std::string_view what) const {
    return JsonError(
        504,
        fmt::format("replica {} did not {} within {:g} s", replica_->url, what,
                    std::chrono::duration<double>(router_.options().upstream_timeout).count()));
  }

  void ExchangeFailed(bool pooled, beast::error_code error) {
    deadline_.cancel();
    if (timed_out_) {
      last_ = TimedOut("answer");
      return TryEnded(Outcome::kFailed);
    }
    if (pooled) return Connect();
    last_ = JsonError(502, fmt::format("replica {} failed: {}", replica_->url, error.message()));
    TryEnded(Outcome::kFailed);
  }

  void OnHead() {
    const auto& head = parser_->get();
    status_ = head.result_int();
    headers_.clear();
    content_type_ = "application/json";
    for (const auto& field : head) {
      if (beast::iequals(field.name_string(), "content-type")) {
        content_type_ = std::string(field.value());
      } else if (!HopByHop({field.name_string().data(), field.name_string().size()})) {
        headers_.emplace_back(std::string(field.name_string()), std::string(field.value()));
      }
    }
    streamed_ = parser_->chunked() && !(status_ == 503 && idempotent_);
    if (streamed_) {
      chunk_ = std::make_unique<char[]>(kChunkBytes);
      responder_->StartStream(status_, content_type_, headers_);
    }
    answer_.clear();
    ReadBody();
  }

  // A streamed answer is read as it comes and relayed chunk by chunk; any
  // other is read into answer_ (sized from its Content-Length).
  void ReadBody() {
    if (parser_->is_done()) return BodyEnded(true);
    auto& body = parser_->get().body();
    if (streamed_) {
      body.data = chunk_.get();
      body.size = kChunkBytes;
    } else {
      const std::size_t want =
          std::max<std::size_t>(1, parser_->content_length_remaining().value_or(kChunkBytes));
      const std::size_t filled = answer_.size();
      answer_.resize(filled + want);
      body.data = answer_.data() + filled;
      body.size = want;
    }
    // What was read with the head (most often the whole body) is put into
    // the parser here: Beast's read would find it too, but answer through
    // a posted completion.
    if (buffer_.size() > 0) {
      beast::error_code error;
      const std::size_t used = parser_->put(buffer_.data(), error);
      buffer_.consume(used);
      if (error == http::error::need_buffer || error == http::error::need_more) error = {};
      if (used > 0 || error) return OnBody(error);
    }
    auto done = [self = this->shared_from_this()](beast::error_code error, std::size_t) {
      if (error == http::error::need_buffer) error = {};
      self->OnBody(error);
    };
    if (streamed_) {
      http::async_read_some(*stream_, buffer_, *parser_, std::move(done));
    } else {
      http::async_read(*stream_, buffer_, *parser_, std::move(done));
    }
  }

  void OnBody(beast::error_code error) {
    const std::size_t unused = parser_->get().body().size;
    if (streamed_) {
      const std::size_t got = kChunkBytes - unused;
      if (got > 0 && !responder_->WriteChunk(std::string(chunk_.get(), got)))
        return BodyEnded(false);  // the client has gone
    } else {
      answer_.resize(answer_.size() - unused);
    }
    if (error) return BodyEnded(false);
    ReadBody();
  }

  void BodyEnded(bool complete) {
    deadline_.cancel();
    if (complete && parser_->get().keep_alive()) router_.ReturnIdle(*replica_, std::move(stream_));
    stream_.reset();
    if (streamed_) {
      responder_->EndStream();
      return TryEnded(Outcome::kAnswered);  // what arrived is what the client gets
    }
    if (!complete) {
      last_ = timed_out_
                  ? TimedOut("finish its answer")
                  : JsonError(502, fmt::format("replica {} broke off its answer", replica_->url));
      return TryEnded(Outcome::kFailed);
    }
    HttpResponse response{status_, std::move(content_type_), std::move(answer_),
                          std::move(headers_)};
    if (status_ == 503 && idempotent_) {
      last_ = std::move(response);
      return TryEnded(Outcome::kUnavailable);
    }
    responder_->Send(std::move(response));
    TryEnded(status_ == 502 || status_ == 504 ? Outcome::kRelayedFailure : Outcome::kAnswered);
  }

  void TryEnded(Outcome outcome) {
    --replica_->outstanding;
    if (outcome == Outcome::kAnswered) return router_.Succeeded(*replica_);
    router_.Failed(*replica_);
    if (outcome == Outcome::kRelayedFailure) return;
    if (outcome == Outcome::kFailed && !idempotent_) return responder_->Send(std::move(last_));
    NextTry();
  }

  Router::Impl& router_;
  HttpResponderPtr responder_;
  std::shared_ptr<const std::string> body_;  // upstream_'s body points into it
  const bool head_request_;                  // its answer has no body to read
  const bool idempotent_;
  int attempts_left_;
  std::vector<bool> tried_;
  std::uint64_t key_ = 0;
  http::request<http::span_body<const char>> upstream_;
  HttpResponse last_ = JsonError(503, "no replica is available");

  // The try in progress.
  Replica* replica_ = nullptr;
  std::unique_ptr<Stream> stream_;
  asio::steady_timer deadline_{router_.network()};  // see ArmDeadline
  std::uint64_t exchanges_ = 0;                     // tries sent so far
  bool timed_out_ = false;                          // the try's deadline passed
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::buffer_body>> parser_;
  int status_ = 0;
  std::string content_type_;
  std::vector<std::pair<std::string, std::string>> headers_;
  bool streamed_ = false;
  std::unique_ptr<char[]> chunk_;  // a streamed answer's chunk
  std::string answer_;             // any other answer's body
};

}  // namespace

void Router::Impl::Handle(HttpRequest& request, HttpResponderPtr responder) {
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
  if (tls_)
    return std::make_shared<Forwarding<TlsUpstream>>(*this, request, std::move(responder))->Start();
  std::make_shared<Forwarding<PlainUpstream>>(*this, request, std::move(responder))->Start();
}

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

Result<std::unique_ptr<Router>> Router::Create(RouterOptions options, Clock& clock,
                                               NetworkContext network) {
  auto impl = std::make_unique<Impl>(std::move(options), clock, std::move(network));
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
