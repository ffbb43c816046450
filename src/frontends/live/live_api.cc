#include "frontends/live/live_api.h"

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>

#include "frontends/status_mapping.h"
#include "serving/embedder.h"

namespace braid {
namespace {

constexpr char kSpeechPath[] = "/v1/audio/transcriptions/stream";
constexpr char kVideoPath[] = "/v1/video/stream";
constexpr char kReportsPath[] = "/v1/live/reports";

// Close codes (RFC 6455 7.4.1).
constexpr int kNormal = 1000;
constexpr int kGoingAway = 1001;
constexpr int kUnsupportedData = 1003;
constexpr int kPolicy = 1008;
constexpr int kTooBig = 1009;
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

// A number in [low, high].
Result<double> NumberParameter(const HttpRequest& request, std::string_view name, double fallback,
                               double low, double high) {
  auto text = request.QueryParameter(name);
  if (!text) return fallback;
  double value = 0;
  auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (error != std::errc() || end != text->data() + text->size() || !(value >= low) ||
      !(value <= high)) {
    return InvalidArgument("query parameter {}='{}' is not a number in [{}, {}]", name, *text, low,
                           high);
  }
  return value;
}

Result<bool> FlagParameter(const HttpRequest& request, std::string_view name) {
  auto text = request.QueryParameter(name);
  if (!text || *text == "true" || *text == "1") return true;
  if (*text == "false" || *text == "0") return false;
  return InvalidArgument("query parameter {}='{}' must be true or false", name, *text);
}

// One client's stream: binary frames in, one at a time, and JSON text
// frames out. Its methods run on the connection's network thread; the
// `done` callbacks of Push and Finish on a live pool.
class LiveSocket : public WebSocketHandler, public std::enable_shared_from_this<LiveSocket> {
 public:
  using Done = std::function<void(Status)>;

  // Sends a text frame (from a live pool).
  void Send(std::string text) {
    if (auto socket = Socket()) socket->SendText(std::move(text));
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
      // last results go out.
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
      return Push(std::move(data), [self = shared_from_this()](Status status) {
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
      return Fail(kUnsupportedData, fmt::format("a text frame must be JSON: {}", Usage()));
    }
    const std::string_view type = message["type"].GetString();
    if (type == "end") return End(kNormal, "end of stream");
    if (Status status = Control(type, message); !status.ok())
      return Fail(kUnsupportedData, status.message());
    Socket()->ReadNext();
  }
  void OnClosed() override {
    std::lock_guard lock(mutex_);
    socket_.reset();
  }
  // Between two frames the stream ends at once; during one, when it is done.
  void OnDrain() override {
    bool now = false;
    {
      std::lock_guard lock(mutex_);
      draining_ = true;
      now = !busy_;
    }
    if (now) End(kGoingAway, "the server is shutting down");
  }

 protected:
  // A binary frame.
  virtual void Push(std::string data, Done done) = 0;
  // The end of the stream: what is under way is finished.
  virtual void Finish(Done done) = 0;
  // A text frame of another type than "end": InvalidArgument when unknown.
  virtual Status Control(std::string_view type, const rapidjson::Document& message) = 0;
  // What the client may send, for error messages.
  virtual std::string_view Usage() const = 0;

 private:
  static int CloseCodeFor(const Status& status) {
    switch (status.code()) {
      case StatusCode::kInvalidArgument:
        return kUnsupportedData;
      case StatusCode::kTooLarge:
        return kTooBig;
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

  // The stream is finished, then the socket closes with `code`.
  void End(int code, std::string reason) {
    if (ended_.exchange(true)) return;
    Finish([self = shared_from_this(), code, reason = std::move(reason)](Status status) {
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

  std::atomic<bool> ended_{false};
  std::mutex mutex_;
  std::shared_ptr<WebSocket> socket_;  // guarded by mutex_; none once closed
  bool busy_ = false;                  // a Push is under way; guarded by mutex_
  bool draining_ = false;              // guarded by mutex_
};

// A stream's part in a live report. Once joined, the report hears that the
// stream has ended when the stream's session lets its events go (this is
// held by them), after its last work.
class ReportFeed {
 public:
  ReportFeed(std::shared_ptr<LiveReport> report, LiveReport::Input input)
      : report_(std::move(report)), input_(input) {}
  ~ReportFeed() {
    if (joined_) report_->End(input_);
  }
  ReportFeed(const ReportFeed&) = delete;
  ReportFeed& operator=(const ReportFeed&) = delete;

  // Before the stream opens, so that a report that has the stream already
  // refuses it first.
  Status Join() {
    BRAID_RETURN_IF_ERROR(report_->Attach(input_));
    joined_ = true;
    return Status::Ok();
  }
  // The stream did not open after all.
  void Leave() {
    report_->Detach(input_);
    joined_ = false;
  }
  const std::shared_ptr<LiveReport>& report() const { return report_; }

 private:
  std::shared_ptr<LiveReport> report_;
  LiveReport::Input input_;
  bool joined_ = false;
};

// Speech: audio in, partial and final transcripts out.
class TranscriptionSocket : public LiveSocket {
 public:
  void Attach(std::shared_ptr<LiveSession> session, std::shared_ptr<LiveReport> report) {
    session_ = std::move(session);
    report_ = std::move(report);
  }

 private:
  void Push(std::string data, Done done) override {
    if (!report_) return session_->Push(std::move(data), std::move(done));
    session_->Push(std::move(data), [session = session_.get(), report = report_,
                                     done = std::move(done)](Status status) {
      if (status.ok()) report->Settle(LiveReport::Input::kSpeech, session->settled());
      done(status);
    });
  }
  void Finish(Done done) override { session_->Finish(std::move(done)); }
  Status Control(std::string_view type, const rapidjson::Document&) override {
    return InvalidArgument("unknown message type '{}': the only one is \"end\"", type);
  }
  std::string_view Usage() const override {
    return "{\"type\":\"end\"}; audio goes in binary frames";
  }

  std::shared_ptr<LiveSession> session_;
  std::shared_ptr<LiveReport> report_;  // none outside a report
};

// Video: images in, key frames' results out.
class VideoSocket : public LiveSocket {
 public:
  explicit VideoSocket(double fps) : fps_(fps) {}
  void Attach(std::shared_ptr<VideoSession> session, std::shared_ptr<LiveReport> report) {
    session_ = std::move(session);
    report_ = std::move(report);
  }

 private:
  void Push(std::string data, Done done) override {
    const double time = next_time_.value_or(double(frames_) / fps_);
    next_time_.reset();
    ++frames_;
    if (!report_) return session_->Push(std::move(data), time, std::move(done));
    session_->Push(std::move(data), time,
                   [report = report_, time, done = std::move(done)](Status status) {
                     if (status.ok()) report->Settle(LiveReport::Input::kVideo, time);
                     done(status);
                   });
  }
  void Finish(Done done) override { done(Status::Ok()); }
  Status Control(std::string_view type, const rapidjson::Document& message) override {
    if (type != "frame") {
      return InvalidArgument("unknown message type '{}': the types are \"frame\" and \"end\"",
                             type);
    }
    if (!message.HasMember("t") || !message["t"].IsNumber() || message["t"].GetDouble() < 0)
      return InvalidArgument("{{\"type\":\"frame\"}} needs \"t\": the capture time in seconds");
    next_time_ = message["t"].GetDouble();
    return Status::Ok();
  }
  std::string_view Usage() const override {
    return "{\"type\":\"frame\",\"t\":SECONDS} before a frame, or {\"type\":\"end\"}; images "
           "go in binary frames";
  }

  const double fps_;
  // Touched by Push and Control only, on the network thread, one at a time.
  std::int64_t frames_ = 0;
  std::optional<double> next_time_;
  std::shared_ptr<VideoSession> session_;
  std::shared_ptr<LiveReport> report_;  // none outside a report
};

// A report's chunks as server-sent events, started at most once.
struct ReportEvents {
  void Start() {
    std::lock_guard lock(mutex);
    if (started) return;
    started = true;
    responder->StartStream(200, "text/event-stream", {{"Cache-Control", "no-cache"}});
  }

  std::mutex mutex;
  bool started = false;  // guarded by mutex
  HttpResponderPtr responder;
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

std::string VideoEventJson(const VideoEvent& event) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.SetMaxDecimalPlaces(6);
  writer.StartObject();
  writer.Key("type");
  writer.String("scene");
  writer.Key("index");
  writer.Int64(event.index);
  writer.Key("t");
  writer.Double(event.time);
  writer.Key("change");
  writer.Double(event.change);
  writer.Key("text");
  writer.String(event.text.data(), static_cast<rapidjson::SizeType>(event.text.size()));
  writer.Key("embedding");
  writer.StartArray();
  for (float value : event.embedding) writer.Double(value);
  writer.EndArray();
  writer.EndObject();
  return buffer.GetString();
}

LiveApi::LiveApi(LiveSpeech& speech, LiveVideo& video, LiveReports& reports, LiveApiOptions options)
    : speech_(speech), video_(video), reports_(reports), options_(options) {}

void LiveApi::AddRoutes(RouteTable& routes) {
  for (const bool speech : {true, false}) {
    routes.Add("GET", speech ? kSpeechPath : kVideoPath,
               [this, speech](HttpRequest& request, HttpResponderPtr responder, const PathParams&) {
                 OpenStream(speech, request, responder);
               });
  }
  routes.Add("POST", kReportsPath,
             [this](HttpRequest& request, HttpResponderPtr responder, const PathParams&) {
               MakeReport(request, responder);
             });
  routes.Add("GET", "/v1/live/reports/{report}/events",
             [this](HttpRequest&, HttpResponderPtr responder, const PathParams& params) {
               ReadReport(std::string(params[0]), responder);
             });
}

void LiveApi::OpenStream(bool speech, HttpRequest& request, const HttpResponderPtr& responder) {
  if (!IsWebSocketUpgrade(request)) {
    responder->Send(JsonError(
        400, fmt::format("this endpoint is a WebSocket: connect with GET and Upgrade: websocket "
                         "(e.g. new WebSocket('ws://HOST{}'))",
                         speech ? "/v1/audio/transcriptions/stream?sample_rate=16000"
                                : "/v1/video/stream?fps=2")));
    return;
  }
  auto refuse = [&](const Status& status) {
    HttpResponse response = JsonError(status);
    if (status.code() == StatusCode::kResourceExhausted)
      response.headers.emplace_back("Retry-After", "1");
    responder->Send(std::move(response));
  };
  // The stream may feed a live report (report=ID); it joins once open.
  std::shared_ptr<ReportFeed> feed;
  if (auto id = request.QueryParameter("report")) {
    auto report = reports_.Find(*id);
    if (!report.ok()) return refuse(report.status());
    feed = std::make_shared<ReportFeed>(
        std::move(*report), speech ? LiveReport::Input::kSpeech : LiveReport::Input::kVideo);
  }
  std::shared_ptr<LiveReport> report = feed ? feed->report() : nullptr;
  if (!speech) {
    auto fps = NumberParameter(request, "fps", 1, 0.001, 1000);
    if (!fps.ok()) return refuse(fps.status());
    VideoStreamOptions stream;
    auto ocr = FlagParameter(request, "ocr");
    if (!ocr.ok()) return refuse(ocr.status());
    auto embed = FlagParameter(request, "embed");
    if (!embed.ok()) return refuse(embed.status());
    auto threshold = NumberParameter(request, "scene_threshold", stream.scenes.threshold, 0, 1);
    if (!threshold.ok()) return refuse(threshold.status());
    stream.ocr = *ocr;
    stream.embed = *embed;
    stream.scenes.threshold = *threshold;
    auto socket = std::make_shared<VideoSocket>(*fps);
    std::weak_ptr<VideoSocket> weak = socket;
    if (feed) {
      if (Status joined = feed->Join(); !joined.ok()) return refuse(joined);
    }
    auto session = video_.Open(stream, [weak, feed](VideoEvent event) {
      if (feed) feed->report()->Scene(event);
      if (auto socket = weak.lock()) socket->Send(VideoEventJson(event));
    });
    if (!session.ok()) {
      if (feed) feed->Leave();
      return refuse(session.status());
    }
    socket->Attach(std::move(*session), std::move(report));
    responder->AcceptWebSocket(std::move(socket), options_.video_socket);
    return;
  }
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
  if (feed) {
    if (Status joined = feed->Join(); !joined.ok()) return refuse(joined);
  }
  auto session = speech_.Open(request.QueryParameter("model").value_or("asr"), std::move(*audio),
                              [weak, feed](LiveEvent event) {
                                if (feed) feed->report()->Speech(event);
                                if (auto socket = weak.lock()) socket->Send(LiveEventJson(event));
                              });
  if (!session.ok()) {
    if (feed) feed->Leave();
    return refuse(session.status());
  }
  socket->Attach(std::move(*session), std::move(report));
  responder->AcceptWebSocket(std::move(socket), options_.socket);
}

// POST /v1/live/reports.
void LiveApi::MakeReport(HttpRequest& request, const HttpResponderPtr& responder) {
  bool speech = true, video = true;
  if (request.body && !request.body->empty()) {
    auto body = ParseJsonObject(*request.body);
    if (!body.ok()) {
      responder->Send(JsonError(body.status()));
      return;
    }
    for (auto [name, flag] : {std::pair{"speech", &speech}, std::pair{"video", &video}}) {
      if (!body->HasMember(name)) continue;
      if (!(*body)[name].IsBool()) {
        responder->Send(JsonError(400, fmt::format("'{}' must be true or false", name)));
        return;
      }
      *flag = (*body)[name].GetBool();
    }
  }
  auto report = reports_.Create(speech, video);
  if (!report.ok()) {
    HttpResponse response = JsonError(report.status());
    if (report.status().code() == StatusCode::kResourceExhausted)
      response.headers.emplace_back("Retry-After", "1");
    responder->Send(std::move(response));
    return;
  }
  const std::string& id = (*report)->id();
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  writer.Key("id");
  writer.String(id.c_str());
  writer.Key("speech_url");
  if (speech) {
    writer.String(fmt::format("{}?report={}", kSpeechPath, id).c_str());
  } else {
    writer.Null();
  }
  writer.Key("video_url");
  if (video) {
    writer.String(fmt::format("{}?report={}", kVideoPath, id).c_str());
  } else {
    writer.Null();
  }
  writer.Key("events_url");
  writer.String(fmt::format("{}/{}/events", kReportsPath, id).c_str());
  writer.EndObject();
  HttpResponse response;
  response.status = 201;
  response.body = buffer.GetString();
  responder->Send(std::move(response));
}

// GET /v1/live/reports/ID/events.
void LiveApi::ReadReport(const std::string& id, const HttpResponderPtr& responder) {
  auto report = reports_.Find(id);
  if (!report.ok()) {
    responder->Send(JsonError(report.status()));
    return;
  }
  auto events = std::make_shared<ReportEvents>();
  events->responder = responder;
  auto ticket = (*report)->Read([events](const std::string& chunk, bool last) {
    events->Start();
    if (!events->responder->WriteChunk(fmt::format("data: {}\n\n", chunk))) return false;
    if (last) events->responder->EndStream();
    return true;
  });
  if (!ticket.ok()) {
    responder->Send(JsonError(ticket.status()));
    return;
  }
  events->Start();
  responder->OnDisconnect([report = *report, ticket = *ticket] { report->Unread(ticket); });
}
}  // namespace braid
