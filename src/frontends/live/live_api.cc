#include "frontends/live/live_api.h"

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>
#include <mutex>

#include "frontends/status_mapping.h"

namespace braid {
namespace {

constexpr char kPath[] = "/v1/audio/transcriptions/stream";

// Close codes (RFC 6455 7.4.1).
constexpr int kNormal = 1000;
constexpr int kGoingAway = 1001;
constexpr int kUnsupportedData = 1003;
constexpr int kPolicy = 1008;
constexpr int kServerError = 1011;

std::string ErrorJson(std::string_view message) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  writer.Key("type");
  writer.String("error");
  writer.Key("error");
  writer.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
  writer.EndObject();
  return buffer.GetString();
}

Result<int> IntParameter(const HttpRequest& request, std::string_view name, int fallback) {
  auto text = request.QueryParameter(name);
  if (!text) return fallback;
  int value = 0;
  auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (error != std::errc() || end != text->data() + text->size())
    return InvalidArgument("query parameter {}='{}' is not an integer", name, *text);
  return value;
}

// One client's stream: frames in, events out. Its methods run on the
// connection's network thread; the session's `done` callbacks on the live
// pool.
class TranscriptionSocket : public WebSocketHandler,
                            public std::enable_shared_from_this<TranscriptionSocket> {
 public:
  void Attach(std::shared_ptr<LiveSession> session) { session_ = std::move(session); }

  // Sends `event` (from the live pool).
  void Emit(const LiveEvent& event) {
    if (auto socket = Socket()) socket->SendText(LiveEventJson(event));
  }

  // WebSocketHandler
  void OnOpen(std::shared_ptr<WebSocket> socket) override {
    {
      std::lock_guard lock(mutex_);
      socket_ = std::move(socket);
    }
    Socket()->ReadNext();
  }
  void OnMessage(std::string data, bool binary) override {
    if (ended_) {
      // A drain ended the stream: what is still coming is dropped while the
      // last final goes out.
      std::lock_guard lock(mutex_);
      if (draining_) return;
    }
    if (ended_) return Fail(kPolicy, "nothing may follow {\"type\":\"end\"}");
    if (binary) {
      if (data.empty()) return Socket()->ReadNext();
      {
        std::lock_guard lock(mutex_);
        busy_ = true;
      }
      return session_->Push(std::move(data), [self = shared_from_this()](Status status) {
        bool draining = false;
        {
          std::lock_guard lock(self->mutex_);
          self->busy_ = false;
          draining = self->draining_;
        }
        if (!status.ok()) return self->Fail(CloseCodeFor(status), status.message());
        if (draining) return self->End(kGoingAway, "the server is shutting down");
        if (auto socket = self->Socket()) socket->ReadNext();
      });
    }
    rapidjson::Document message;
    message.Parse(data.data(), data.size());
    if (message.HasParseError() || !message.IsObject() || !message.HasMember("type") ||
        !message["type"].IsString()) {
      return Fail(kUnsupportedData,
                  "a text frame must be JSON {\"type\":\"end\"}; audio goes in binary frames");
    }
    const std::string_view type = message["type"].GetString();
    if (type != "end") {
      return Fail(kUnsupportedData,
                  fmt::format("unknown message type '{}': the only one is \"end\"", type));
    }
    End(kNormal, "end of stream");
  }
  void OnClosed() override {
    std::lock_guard lock(mutex_);
    socket_.reset();
  }
  // Between two pieces of audio the stream ends at once; during one, when
  // it is done.
  void OnDrain() override {
    bool now = false;
    {
      std::lock_guard lock(mutex_);
      draining_ = true;
      now = !busy_;
    }
    if (now) End(kGoingAway, "the server is shutting down");
  }

 private:
  static int CloseCodeFor(const Status& status) {
    switch (status.code()) {
      case StatusCode::kInvalidArgument:
        return kUnsupportedData;
      case StatusCode::kResourceExhausted:
        return kPolicy;
      default:
        return kServerError;
    }
  }

  std::shared_ptr<WebSocket> Socket() {
    std::lock_guard lock(mutex_);
    return socket_;
  }

  // The last utterance is finished, then the socket closes with `code`.
  void End(int code, std::string reason) {
    if (ended_.exchange(true)) return;
    session_->Finish([self = shared_from_this(), code, reason = std::move(reason)](Status status) {
      if (!status.ok()) return self->Fail(kServerError, status.message());
      if (auto socket = self->Socket()) socket->Close(code, reason);
    });
  }

  void Fail(int code, std::string_view message) {
    ended_ = true;
    if (auto socket = Socket()) {
      socket->SendText(ErrorJson(message));
      socket->Close(code, std::string(message));
    }
  }

  std::shared_ptr<LiveSession> session_;
  std::atomic<bool> ended_{false};
  std::mutex mutex_;
  std::shared_ptr<WebSocket> socket_;  // guarded by mutex_; none once closed
  bool busy_ = false;                  // a Push is under way; guarded by mutex_
  bool draining_ = false;              // guarded by mutex_
};

}  // namespace

std::string LiveEventJson(const LiveEvent& event) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.SetMaxDecimalPlaces(3);
  writer.StartObject();
  writer.Key("type");
  writer.String(event.kind == LiveEvent::Kind::kFinal ? "final" : "partial");
  writer.Key("text");
  writer.String(event.text.data(), static_cast<rapidjson::SizeType>(event.text.size()));
  writer.Key("start");
  writer.Double(event.start);
  writer.Key("end");
  writer.Double(event.end);
  if (event.kind == LiveEvent::Kind::kFinal) {
    writer.Key("words");
    writer.StartArray();
    for (const auto& word : event.words) {
      writer.StartObject();
      writer.Key("word");
      writer.String(word.word.data(), static_cast<rapidjson::SizeType>(word.word.size()));
      writer.Key("start");
      writer.Double(word.start);
      writer.Key("end");
      writer.Double(word.end);
      writer.EndObject();
    }
    writer.EndArray();
  }
  writer.EndObject();
  return buffer.GetString();
}

LiveApi::LiveApi(LiveSpeech& live, LiveApiOptions options) : live_(live), options_(options) {}

bool LiveApi::Handle(HttpRequest& request, HttpResponderPtr& responder) {
  if (request.path != kPath) return false;
  if (!IsWebSocketUpgrade(request)) {
    responder->Send(JsonError(
        400,
        "this endpoint is a WebSocket: connect with GET and Upgrade: websocket "
        "(e.g. new WebSocket('ws://HOST/v1/audio/transcriptions/stream?sample_rate=16000'))"));
    return true;
  }
  auto refuse = [&](const Status& status) {
    HttpResponse response = JsonError(status);
    if (status.code() == StatusCode::kResourceExhausted)
      response.headers.emplace_back("Retry-After", "1");
    responder->Send(std::move(response));
    return true;
  };
  auto encoding = ParseStreamEncoding(request.QueryParameter("encoding").value_or("pcm_s16le"));
  if (!encoding.ok()) return refuse(encoding.status());
  auto rate = IntParameter(request, "sample_rate", kSpeechRate);
  if (!rate.ok()) return refuse(rate.status());
  auto channels = IntParameter(request, "channels", 1);
  if (!channels.ok()) return refuse(channels.status());
  auto audio = AudioStream::Open(*encoding, *rate, *channels, options_.audio);
  if (!audio.ok()) return refuse(audio.status());
  auto socket = std::make_shared<TranscriptionSocket>();
  std::weak_ptr<TranscriptionSocket> weak = socket;
  auto session = live_.Open(request.QueryParameter("model").value_or("asr"), std::move(*audio),
                            [weak](LiveEvent event) {
                              if (auto socket = weak.lock()) socket->Emit(event);
                            });
  if (!session.ok()) return refuse(session.status());
  socket->Attach(std::move(*session));
  responder->AcceptWebSocket(std::move(socket), options_.socket);
  return true;
}

}  // namespace braid
