// One HTTP/2 connection (RFC 9113) on nghttp2, over TCP or TLS: it reads
// frames into nghttp2, turns each request stream into an HttpRequest for the
// same handler HTTP/1.1 calls, and writes the answers back as the client's
// flow-control windows allow.
//
// Everything below runs on the connection's thread (the one that runs its
// context) but the responders' entry points, which defer onto the
// connection's strand there. nghttp2 is never re-entered from its
// own callbacks: what they submit is written after the read that ran them.
//
// Limits, as HTTP/1.1 has them: header lists past max_header_bytes or
// max_header_count get 431, bodies past max_body_bytes 413, bodies past the
// process-wide budget 503; requests that do not arrive within
// request_timeout get 408; a stream whose answer makes no progress for
// write_timeout (a client that keeps its window shut) is reset; a
// connection with no stream for idle_timeout gets GOAWAY. Against abuse:
// nghttp2 answers floods of resets (CVE-2023-44487), SETTINGS, PINGs and
// CONTINUATION frames with GOAWAY, and streams whose answer is still owed
// (reset ones included, their handlers still at work) are capped by
// max_streams_owed, past which new streams are refused.
#include <fmt/format.h>
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <charconv>
#include <cstring>
#include <deque>
#include <mutex>
#include <unordered_map>

#include "frontends/http/connection.h"

namespace braid::http_internal {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;

constexpr std::size_t kReadBytes = 16 << 10;
// nghttp2's output gathered into one write.
constexpr std::size_t kWriteBytes = 64 << 10;
// What a client may send ahead on one stream, and on the connection.
constexpr std::int32_t kStreamWindowBytes = 1 << 20;
constexpr std::int32_t kConnectionWindowBytes = 16 << 20;
// nghttp2's guards, as its later releases default them: a burst of 1000
// stream resets, then 33 a second; 8 CONTINUATION frames to a header block.
constexpr std::uint64_t kResetBurst = 1000;
constexpr std::uint64_t kResetsPerSecond = 33;
constexpr std::size_t kMaxContinuations = 8;

// Header fields HTTP/2 forbids (RFC 9113 §8.2.2): dropped from answers.
bool ConnectionSpecific(std::string_view name) {
  for (std::string_view forbidden :
       {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}) {
    if (EqualsIgnoringCase(name, forbidden)) return true;
  }
  return false;
}

std::string Lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

nghttp2_nv Field(const std::string& name, const std::string& value) {
  return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(),
          value.size(), NGHTTP2_NV_FLAG_NONE};
}

// Bytes of an answer waiting for its stream's window; `owner` keeps them.
struct Piece {
  std::shared_ptr<const void> owner;
  const char* data = nullptr;
  std::size_t size = 0;
  std::size_t unsent = 0;  // what it counts in the connection's unsent_
};

Piece OwnedPiece(std::string bytes, std::size_t unsent) {
  auto owned = std::make_shared<std::string>(std::move(bytes));
  return Piece{owned, owned->data(), owned->size(), unsent};
}

// One request stream.
struct Http2Stream {
  explicit Http2Stream(std::shared_ptr<BodyBudget> budget) : charge(std::move(budget)) {}

  std::int32_t id = 0;
  HttpRequest request;
  std::size_t header_bytes = 0;
  std::size_t header_count = 0;
  std::string body;
  BodyCharge charge;
  std::optional<Gate::Holder> hold;  // until the stream closes: what a drain waits for
  std::int64_t started = 0;          // NowNs() at its first header
  bool head = false;                 // a HEAD request: the answer has no body
  bool request_done = false;         // the client ended its side
  bool dispatched = false;           // the handler has it
  bool answered = false;             // the answer's header is submitted
  bool refused = false;              // answered here; what the client still sends is dropped
  bool sent_end = false;             // the answer's last frame went out
  std::deque<Piece> out;             // the answer's bytes not yet framed
  std::size_t out_offset = 0;        // into out.front()
  bool out_end = false;              // no bytes come after `out`
  bool deferred = false;             // nghttp2 waits for bytes (resume_data)
  std::int64_t progress = 0;         // NowNs() when the answer last moved, or 0
  std::function<void()> disconnected;
};

template <typename Stream>
class Http2Connection;

// Answers one stream. Thread-safe: every method defers to the strand.
template <typename Stream>
class Http2Responder : public HttpResponder,
                       public std::enable_shared_from_this<Http2Responder<Stream>> {
 public:
  Http2Responder(std::shared_ptr<Http2Connection<Stream>> connection, std::int32_t id, bool gzip_ok)
      : connection_(std::move(connection)),
        id_(id),
        gzip_ok_(gzip_ok),
        hold_(connection_->core_.requests.TryEnter()) {
    ++connection_->owed_;
  }
  ~Http2Responder() override {
    if (!answered_.exchange(true))
      Send(JsonError(500, "the request was dropped without an answer"));
    --connection_->owed_;
  }

  void Send(HttpResponse response) override {
    answered_ = true;
    CompressIfWorthIt(response, gzip_ok_, connection_->core_.options.gzip_min_bytes);
    Post([response = std::move(response)](Http2Connection<Stream>& connection,
                                          std::int32_t id) mutable {
      connection.Respond(id, std::move(response), true);
    });
  }
  // The answer is made on any network thread, not the connection's: one
  // connection's streams are encoded in parallel.
  void SendFrom(std::function<HttpResponse()> make) override {
    answered_ = true;
    net::post(connection_->Network(), [self = this->shared_from_this(), make = std::move(make)] {
      HttpResponse response = make();
      CompressIfWorthIt(response, self->gzip_ok_, self->connection_->core_.options.gzip_min_bytes);
      self->Post([response = std::move(response)](Http2Connection<Stream>& connection,
                                                  std::int32_t id) mutable {
        connection.Respond(id, std::move(response), true);
      });
    });
  }
  void StartStream(int status, std::string content_type,
                   std::vector<std::pair<std::string, std::string>> headers) override {
    answered_ = true;
    HttpResponse head;
    head.status = status;
    head.content_type = std::move(content_type);
    head.headers = std::move(headers);
    Post([head = std::move(head)](Http2Connection<Stream>& connection, std::int32_t id) mutable {
      connection.Respond(id, std::move(head), false);
    });
  }
  bool WriteChunk(std::string data) override {
    if (connection_->closed_ || disconnect_.gone()) return false;
    if (data.empty()) return true;
    const std::size_t size = data.size();
    if (connection_->unsent_.fetch_add(size) + size > connection_->core_.options.max_unsent_bytes) {
      // The client does not read as fast as the answer comes: the stream
      // is let go.
      connection_->unsent_ -= size;
      Post([](Http2Connection<Stream>& connection, std::int32_t id) { connection.Cancel(id); });
      return false;
    }
    Post([piece = OwnedPiece(std::move(data), size)](Http2Connection<Stream>& connection,
                                                     std::int32_t id) mutable {
      connection.Append(id, std::move(piece));
    });
    return true;
  }
  void EndStream() override {
    Post([](Http2Connection<Stream>& connection, std::int32_t id) { connection.Finish(id); });
  }
  void OnDisconnect(std::function<void()> callback) override {
    disconnect_.Set(std::move(callback));
  }
  void AcceptWebSocket(std::shared_ptr<WebSocketHandler>, WebSocketOptions) override {
    Send(JsonError(400, "WebSocket needs HTTP/1.1: connect without HTTP/2"));
  }

  // On the connection's thread: the stream was reset or the connection lost.
  void Disconnected() { disconnect_.Gone(); }

 private:
  template <typename Work>
  void Post(Work work) {
    net::defer(connection_->strand_, [connection = connection_, id = id_,
                                      work = std::move(work)]() mutable { work(*connection, id); });
  }

  const std::shared_ptr<Http2Connection<Stream>> connection_;
  const std::int32_t id_;
  const bool gzip_ok_;
  // While the handler holds the responder, a drain waits for it (the
  // stream's own hold ends when the stream closes, reset ones included).
  const std::optional<Gate::Holder> hold_;
  std::atomic<bool> answered_{false};
  DisconnectWatch disconnect_;
};

template <typename Stream>
class Http2Connection : public Connection,
                        public std::enable_shared_from_this<Http2Connection<Stream>> {
 public:
  Http2Connection(ServerCore& core, Stream stream, std::string address)
      : core_(core),
        stream_(std::move(stream)),
        strand_(net::make_strand(stream_.get_executor())),
        address_(std::move(address)) {}
  ~Http2Connection() override {
    if (session_ != nullptr) nghttp2_session_del(session_);
    core_.Remove(this);
    core_.limits.Release(address_);
  }

  void Start(std::string_view received, std::string prefix, std::optional<Http2Upgrade> upgrade) {
    core_.Add(this, this->weak_from_this());
    last_active_ = NowNs();
    out_ = std::move(prefix);
    if (!OpenSession(upgrade ? &upgrade->settings : nullptr, upgrade && upgrade->head))
      return Close();
    if (upgrade) {
      // Stream 1 is the request that asked for HTTP/2, read in full.
      Http2Stream& stream = Open(1);
      stream.request_done = true;
      stream.head = upgrade->head;
      Dispatch(stream, std::move(upgrade->request));
    }
    if (!received.empty() && !Receive(received)) return;
    Flush();
    if (core_.draining) Drain();
    Read();
  }

  // Connection
  void Sweep(std::int64_t now) override {
    net::dispatch(strand_, [self = this->shared_from_this(), now] { self->CheckDeadlines(now); });
  }
  void Drain() override {
    net::dispatch(strand_, [self = this->shared_from_this()] {
      if (self->closed_ || self->goaway_) return;
      self->goaway_ = true;
      // Streams already begun are answered; later ones are not taken.
      nghttp2_submit_goaway(self->session_, NGHTTP2_FLAG_NONE,
                            nghttp2_session_get_last_proc_stream_id(self->session_),
                            NGHTTP2_NO_ERROR, nullptr, 0);
      self->Flush();
    });
  }
  void Abandon() override {}

  // Where a stream's handler or answer is made: the network threads in
  // turn (not only the connection's).
  net::io_context::executor_type Network() { return core_.network.Next().get_executor(); }

  // The responders' work, on the strand.
  void Respond(std::int32_t id, HttpResponse response, bool end) {
    if (Http2Stream* stream = Find(id)) {
      Submit(*stream, std::move(response), end);
      Flush();
    }
  }
  void Append(std::int32_t id, Piece piece) {
    Http2Stream* stream = Find(id);
    if (stream == nullptr || stream->out_end || stream->head) {
      unsent_ -= piece.unsent;
      return;
    }
    if (stream->out.empty()) stream->progress = NowNs();
    stream->out.push_back(std::move(piece));
    Resume(*stream);
    Flush();
  }
  void Finish(std::int32_t id) {
    if (Http2Stream* stream = Find(id)) {
      stream->out_end = true;
      Resume(*stream);
      Flush();
    }
  }
  // The stream's answer cannot go on (its client does not keep up).
  void Cancel(std::int32_t id) {
    if (Find(id) == nullptr) return;
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    Flush();
  }

  ServerCore& core_;
  Stream stream_;
  // Where the responders', the sweep's and the drain's work runs, in the
  // order it was handed over, on the thread that runs stream_'s context
  // (where the stream's own handlers run without it).
  const net::strand<typename Stream::executor_type> strand_;
  std::atomic<bool> closed_{false};
  // Bytes of streamed answers queued, not yet framed (any thread adds).
  std::atomic<std::size_t> unsent_{0};
  // Streams handed to the handler whose responder is still held.
  std::atomic<std::size_t> owed_{0};

 private:
  static Http2Connection& Self(void* user_data) {
    return *static_cast<Http2Connection*>(user_data);
  }

  bool OpenSession(const std::string* upgrade_settings, bool head) {
    nghttp2_session_callbacks* callbacks = nullptr;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, OnBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, OnHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, OnFrameReceived);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, OnData);
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, OnFrameSent);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, OnStreamClosed);
    nghttp2_option* option = nullptr;
    nghttp2_option_new(&option);
    nghttp2_option_set_stream_reset_rate_limit(option, kResetBurst, kResetsPerSecond);
    nghttp2_option_set_max_continuations(option, kMaxContinuations);
    const int created = nghttp2_session_server_new2(&session_, callbacks, this, option);
    nghttp2_option_del(option);
    nghttp2_session_callbacks_del(callbacks);
    if (created != 0) return false;
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, core_.options.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindowBytes},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
         static_cast<std::uint32_t>(core_.options.max_header_bytes)},
    };
    if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings)) != 0)
      return false;
    if (nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                              kConnectionWindowBytes) != 0)
      return false;
    if (upgrade_settings != nullptr &&
        nghttp2_session_upgrade2(session_,
                                 reinterpret_cast<const std::uint8_t*>(upgrade_settings->data()),
                                 upgrade_settings->size(), head ? 1 : 0, nullptr) != 0)
      return false;
    return true;
  }

  Http2Stream* Find(std::int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }

  Http2Stream& Open(std::int32_t id) {
    auto stream = std::make_unique<Http2Stream>(core_.budget);
    stream->id = id;
    stream->request.peer = address_;
    stream->hold = core_.requests.TryEnter();
    stream->started = NowNs();
    last_active_ = stream->started;
    return *streams_.emplace(id, std::move(stream)).first->second;
  }

  // Feeds bytes read to nghttp2; false (the connection ends) when it
  // finds the client broke the protocol or flooded it.
  bool Receive(std::string_view bytes) {
    const auto used = nghttp2_session_mem_recv(
        session_, reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    if (used >= 0) return true;
    nghttp2_session_terminate_session(
        session_, used == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
    Flush();
    return false;
  }

  void Read() {
    if (closed_) return;
    stream_.async_read_some(net::buffer(in_),
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
                              if (ec || self->closed_) return self->Close();
                              if (!self->Receive(std::string_view(self->in_.data(), n))) return;
                              self->Flush();
                              if (nghttp2_session_want_read(self->session_) != 0) self->Read();
                            });
  }

  // Writes what nghttp2 has to send, one write at a time; closes the
  // connection once neither side has more to say.
  void Flush() {
    if (writing_ || closed_) return;
    while (out_.size() < kWriteBytes) {
      const std::uint8_t* data = nullptr;
      const auto size = nghttp2_session_mem_send(session_, &data);
      if (size < 0) return Close();
      if (size == 0) break;
      out_.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(size));
    }
    if (out_.empty()) {
      if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0)
        Close();
      return;
    }
    writing_ = true;
    write_deadline_ = NowNs() + std::chrono::nanoseconds(core_.options.write_timeout).count();
    net::async_write(stream_, net::buffer(out_),
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                       self->writing_ = false;
                       self->write_deadline_ = 0;
                       self->out_.clear();
                       if (ec) return self->Close();
                       self->Flush();
                     });
  }

  void Close() {
    if (closed_.exchange(true)) return;
    beast::error_code ignored;
    auto& tcp = beast::get_lowest_layer(stream_);
    tcp.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
    tcp.close();
    auto streams = std::move(streams_);
    streams_.clear();
    for (auto& [id, stream] : streams) Lost(*stream);
  }

  // The stream ends without its whole answer: its work is cancelled.
  void Lost(Http2Stream& stream) {
    for (const Piece& piece : stream.out) unsent_ -= piece.unsent;
    stream.out.clear();
    if (!stream.sent_end && stream.disconnected) stream.disconnected();
  }

  void CheckDeadlines(std::int64_t now) {
    if (closed_) return;
    const auto ns = [](std::chrono::seconds s) { return std::chrono::nanoseconds(s).count(); };
    const auto& options = core_.options;
    if (writing_ && write_deadline_ != 0 && now >= write_deadline_) return Close();
    if (streams_.empty() && now - last_active_ >= ns(options.idle_timeout)) {
      if (!goaway_) {
        goaway_ = true;
        nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
      }
      return Flush();
    }
    std::vector<std::int32_t> late;
    std::vector<std::int32_t> stalled;
    for (const auto& [id, stream] : streams_) {
      if (!stream->request_done && !stream->refused &&
          now - stream->started >= ns(options.request_timeout))
        late.push_back(id);
      if (!stream->out.empty() && stream->progress != 0 &&
          now - stream->progress >= ns(options.write_timeout))
        stalled.push_back(id);
    }
    for (std::int32_t id : late) {
      Refuse(*Find(id), JsonError(408, fmt::format("the request did not arrive within {} s",
                                                   options.request_timeout.count())));
    }
    for (std::int32_t id : stalled)
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    Flush();
  }

  // The answer's header, and its body if it has one; `end`: nothing
  // follows (else WriteChunk / EndStream do).
  void Submit(Http2Stream& stream, HttpResponse response, bool end) {
    if (stream.answered) return;
    stream.answered = true;
    std::size_t length = response.body.size();
    for (const auto& part : response.tail) length += part.size;
    std::vector<std::pair<std::string, std::string>> fields;
    fields.reserve(response.headers.size() + 5);
    fields.emplace_back(":status", std::to_string(response.status));
    fields.emplace_back("server", "braid");
    if (!response.content_type.empty()) fields.emplace_back("content-type", response.content_type);
    bool cache_control = false;
    for (auto& [name, value] : response.headers) {
      if (ConnectionSpecific(name) || EqualsIgnoringCase(name, "content-length")) continue;
      cache_control = cache_control || EqualsIgnoringCase(name, "cache-control");
      fields.emplace_back(Lowercase(name), std::move(value));
    }
    if (end) {
      if (!WithoutLength(response.status))
        fields.emplace_back("content-length", std::to_string(length));
    } else if (!cache_control) {
      fields.emplace_back("cache-control", "no-cache");
    }
    std::vector<nghttp2_nv> nv;
    nv.reserve(fields.size());
    for (const auto& [name, value] : fields) nv.push_back(Field(name, value));
    if (!stream.head) {
      if (!response.body.empty()) stream.out.push_back(OwnedPiece(std::move(response.body), 0));
      for (auto& part : response.tail) stream.out.push_back({part.owner, part.data, part.size, 0});
    }
    stream.out_end = end;
    if (end && (stream.head || length == 0)) {
      nghttp2_submit_response(session_, stream.id, nv.data(), nv.size(), nullptr);
      return;
    }
    stream.progress = NowNs();
    nghttp2_data_provider provider{};
    provider.source.ptr = &stream;
    provider.read_callback = ReadAnswer;
    nghttp2_submit_response(session_, stream.id, nv.data(), nv.size(), &provider);
  }

  // Answers a stream here (a limit, a refusal): its body is not read.
  void Refuse(Http2Stream& stream, HttpResponse response) {
    stream.refused = true;
    stream.body.clear();
    stream.body.shrink_to_fit();
    stream.charge.Release();
    Submit(stream, std::move(response), true);
  }

  void Resume(Http2Stream& stream) {
    if (!stream.deferred) return;
    stream.deferred = false;
    nghttp2_session_resume_data(session_, stream.id);
  }

  void Dispatch(Http2Stream& stream, HttpRequest request) {
    stream.dispatched = true;
    auto responder = std::make_shared<Http2Responder<Stream>>(this->shared_from_this(), stream.id,
                                                              AcceptsGzip(request));
    stream.disconnected = [weak = std::weak_ptr<Http2Responder<Stream>>(responder)] {
      if (auto responder = weak.lock()) responder->Disconnected();
    };
    // On any network thread: one connection's requests are handled in
    // parallel, as many HTTP/1.1 connections' are.
    net::post(Network(), [&core = core_, request = std::move(request),
                          responder = std::move(responder)]() mutable {
      core.handler(request, std::move(responder));
    });
  }

  // The request's header block is in: checks it, and hands it on if it
  // has no body.
  void OnRequestHead(Http2Stream& stream, bool end) {
    const auto& options = core_.options;
    HttpRequest& request = stream.request;
    stream.head = request.method == "HEAD";
    stream.request_done = end;
    if (stream.header_bytes > options.max_header_bytes) {
      return Refuse(stream, JsonError(431, fmt::format("request headers are over the {} byte limit",
                                                       options.max_header_bytes)));
    }
    if (stream.header_count > options.max_header_count) {
      return Refuse(stream,
                    JsonError(431, fmt::format("{} headers is more than the {} allowed",
                                               stream.header_count, options.max_header_count)));
    }
    const auto question = request.target.find('?');
    request.path = PercentDecode(std::string_view(request.target).substr(0, question));
    if (question != std::string::npos) request.query = request.target.substr(question + 1);
    const std::string_view declared = request.Header("content-length");
    std::size_t length = 0;
    if (!declared.empty())
      std::from_chars(declared.data(), declared.data() + declared.size(), length);
    if (length > options.max_body_bytes) {
      return Refuse(stream, JsonError(413, fmt::format("request body is over the {} byte limit",
                                                       options.max_body_bytes)));
    }
    if (options.admit) {
      if (auto refusal = options.admit(request, !end)) return Refuse(stream, std::move(*refusal));
    }
    if (end) return OnRequestEnd(stream);
    if (EqualsIgnoringCase(request.Header("expect"), "100-continue")) {
      static const std::string kStatus = ":status";
      static const std::string kContinue = "100";
      const nghttp2_nv go_on = Field(kStatus, kContinue);
      nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, stream.id, nullptr, &go_on, 1, nullptr);
    }
  }

  void OnRequestEnd(Http2Stream& stream) {
    stream.request_done = true;
    if (stream.refused || stream.dispatched) return;
    HttpRequest request = std::move(stream.request);
    request.body = HoldBody(std::move(stream.body), std::move(stream.charge));
    Dispatch(stream, std::move(request));
  }

  // nghttp2's callbacks.
  static int OnBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    Http2Connection& self = Self(user_data);
    if (self.owed_ >= self.core_.options.max_streams_owed) {
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                NGHTTP2_REFUSED_STREAM);
      return 0;
    }
    self.Open(frame->hd.stream_id);
    return 0;
  }

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                      std::size_t name_length, const std::uint8_t* value, std::size_t value_length,
                      std::uint8_t, void* user_data) {
    Http2Connection& self = Self(user_data);
    Http2Stream* stream = self.Find(frame->hd.stream_id);
    if (stream == nullptr || stream->dispatched || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
      return 0;
    // Counted as HPACK counts a field (RFC 7541 §4.1); past a limit the
    // fields are dropped, not kept, and the stream is answered 431.
    // Counted before anything is copied: an HPACK bomb (a large indexed
    // field repeated) costs a count, not memory.
    stream->header_bytes += name_length + value_length + 32;
    const std::string_view key(reinterpret_cast<const char*>(name), name_length);
    if (!key.starts_with(':')) ++stream->header_count;
    const auto& options = self.core_.options;
    if (stream->header_bytes > options.max_header_bytes ||
        stream->header_count > options.max_header_count)
      return 0;
    std::string field(reinterpret_cast<const char*>(value), value_length);
    if (key.starts_with(':')) {
      if (key == ":method") stream->request.method = std::move(field);
      if (key == ":path") stream->request.target = std::move(field);
      if (key == ":authority") stream->request.headers.emplace_back("host", std::move(field));
      return 0;
    }
    stream->request.headers.emplace_back(std::string(key), std::move(field));
    return 0;
  }

  static int OnFrameReceived(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    Http2Connection& self = Self(user_data);
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
    Http2Stream* stream = self.Find(frame->hd.stream_id);
    if (stream == nullptr) return 0;
    const bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      self.OnRequestHead(*stream, end);
    } else if (end) {
      self.OnRequestEnd(*stream);
    }
    return 0;
  }

  static int OnData(nghttp2_session*, std::uint8_t, std::int32_t id, const std::uint8_t* data,
                    std::size_t length, void* user_data) {
    Http2Connection& self = Self(user_data);
    Http2Stream* stream = self.Find(id);
    if (stream == nullptr || stream->refused || stream->dispatched) return 0;
    const std::size_t total = stream->body.size() + length;
    if (total > self.core_.options.max_body_bytes) {
      self.Refuse(*stream, JsonError(413, fmt::format("request body is over the {} byte limit",
                                                      self.core_.options.max_body_bytes)));
      return 0;
    }
    if (!stream->charge.GrowTo(total)) {
      HttpResponse busy = JsonError(503, "the server holds all the request bodies it may; retry");
      busy.headers.emplace_back("Retry-After", "1");
      self.Refuse(*stream, std::move(busy));
      return 0;
    }
    stream->body.append(reinterpret_cast<const char*>(data), length);
    return 0;
  }

  static int OnFrameSent(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) return 0;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
    Http2Stream* stream = Self(user_data).Find(frame->hd.stream_id);
    if (stream == nullptr) return 0;
    stream->sent_end = true;
    // Answered before the client finished sending (a refusal): it is told
    // to stop (RFC 9113 §8.1).
    if (!stream->request_done)
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream->id, NGHTTP2_NO_ERROR);
    return 0;
  }

  static int OnStreamClosed(nghttp2_session*, std::int32_t id, std::uint32_t, void* user_data) {
    Http2Connection& self = Self(user_data);
    auto it = self.streams_.find(id);
    if (it == self.streams_.end()) return 0;
    std::unique_ptr<Http2Stream> stream = std::move(it->second);
    self.streams_.erase(it);
    self.last_active_ = NowNs();
    // Closed before the answer's end went out (reset by the client, or
    // refused by nghttp2): the handler's work is cancelled.
    self.Lost(*stream);
    return 0;
  }

  // Copies the answer's next bytes into a DATA frame.
  static ssize_t ReadAnswer(nghttp2_session*, std::int32_t, std::uint8_t* buffer,
                            std::size_t length, std::uint32_t* flags, nghttp2_data_source* source,
                            void* user_data) {
    Http2Connection& self = Self(user_data);
    auto* stream = static_cast<Http2Stream*>(source->ptr);
    std::size_t copied = 0;
    while (copied < length && !stream->out.empty()) {
      const Piece& front = stream->out.front();
      const std::size_t n = std::min(length - copied, front.size - stream->out_offset);
      std::memcpy(buffer + copied, front.data + stream->out_offset, n);
      copied += n;
      stream->out_offset += n;
      if (stream->out_offset == front.size) {
        self.unsent_ -= front.unsent;
        stream->out.pop_front();
        stream->out_offset = 0;
      }
    }
    stream->progress = stream->out.empty() ? 0 : NowNs();
    if (stream->out.empty()) {
      if (stream->out_end) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
      } else if (copied == 0) {
        stream->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
      }
    }
    return static_cast<ssize_t>(copied);
  }

  const std::string address_;
  nghttp2_session* session_ = nullptr;
  // Touched only on the connection's thread.
  std::unordered_map<std::int32_t, std::unique_ptr<Http2Stream>> streams_;
  std::array<char, kReadBytes> in_;
  std::string out_;  // being written
  bool writing_ = false;
  bool goaway_ = false;
  std::int64_t write_deadline_ = 0;
  std::int64_t last_active_ = 0;  // NowNs() when a stream last opened or closed

  friend class Http2Responder<Stream>;
};

}  // namespace

template <typename Stream>
void ServeHttp2(ServerCore& core, Stream stream, std::string address, std::string_view received,
                std::string prefix, std::optional<Http2Upgrade> upgrade) {
  auto connection =
      std::make_shared<Http2Connection<Stream>>(core, std::move(stream), std::move(address));
  connection->Start(received, std::move(prefix), std::move(upgrade));
}

template void ServeHttp2<PlainStream>(ServerCore&, PlainStream, std::string, std::string_view,
                                      std::string, std::optional<Http2Upgrade>);
template void ServeHttp2<TlsStream>(ServerCore&, TlsStream, std::string, std::string_view,
                                    std::string, std::optional<Http2Upgrade>);

}  // namespace braid::http_internal
