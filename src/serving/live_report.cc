#include "serving/live_report.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <limits>

#include "core/random_id.h"

namespace braid {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void String(Writer& writer, std::string_view text) {
  writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
}

}  // namespace

LiveReport::LiveReport(std::string id, bool speech, bool video)
    : id_(std::move(id)), created_(std::chrono::steady_clock::now()) {
  speech_.expected = speech;
  video_.expected = video;
}

Status LiveReport::Attach(Input input) {
  std::lock_guard lock(mutex_);
  Stream& stream = StreamFor(input);
  const char* name = input == Input::kSpeech ? "speech" : "video";
  if (!stream.expected)
    return MakeStatus(StatusCode::kFailedPrecondition, "report {} was made without {}", id_, name);
  if (stream.attached)
    return MakeStatus(StatusCode::kFailedPrecondition, "report {} already has its {} stream", id_,
                      name);
  if (stream.ended)
    return MakeStatus(StatusCode::kFailedPrecondition, "report {} takes no more {}", id_, name);
  stream.attached = true;
  return Status::Ok();
}

void LiveReport::Detach(Input input) {
  std::lock_guard lock(mutex_);
  StreamFor(input).attached = false;
}

void LiveReport::Abandon() {
  std::lock_guard lock(mutex_);
  for (Stream* stream : {&speech_, &video_}) {
    if (!stream->attached) stream->ended = true;
  }
  ReleaseLocked();
}

void LiveReport::Speech(const LiveEvent& event) {
  if (event.kind != LiveEvent::Kind::kFinal) return;
  Item item;
  item.order = 1;
  item.speech = event;
  std::lock_guard lock(mutex_);
  item.time = std::max(event.start, speech_.settled);
  WaitLocked(std::move(item));
}

void LiveReport::Scene(const VideoEvent& event) {
  Item item;
  item.order = 0;
  item.scene_index = event.index;
  item.scene_text = event.text;
  std::lock_guard lock(mutex_);
  // A frame stamped before one already settled is put at that point: the
  // timeline only moves forward.
  item.time = std::max(event.time, video_.settled);
  WaitLocked(std::move(item));
}

void LiveReport::WaitLocked(Item item) {
  if (chunks_.size() + waiting_.size() >= kMaxChunks) {
    ++dropped_;
    return;
  }
  waiting_.emplace(std::pair(item.time, item.order), std::move(item));
}

void LiveReport::Settle(Input input, double seconds) {
  std::lock_guard lock(mutex_);
  Stream& stream = StreamFor(input);
  stream.settled = std::max(stream.settled, seconds);
  ReleaseLocked();
}

void LiveReport::End(Input input) {
  std::lock_guard lock(mutex_);
  StreamFor(input).ended = true;
  ReleaseLocked();
}

void LiveReport::ReleaseLocked() {
  constexpr double kAll = std::numeric_limits<double>::infinity();
  const auto frontier = [](const Stream& stream) {
    return !stream.expected || stream.ended ? kAll : stream.settled;
  };
  const double until = std::min(frontier(speech_), frontier(video_));
  while (!waiting_.empty() && waiting_.begin()->first.first <= until) {
    Item item = std::move(waiting_.begin()->second);
    waiting_.erase(waiting_.begin());
    rapidjson::StringBuffer buffer;
    Writer writer(buffer);
    writer.SetMaxDecimalPlaces(3);
    writer.StartObject();
    writer.Key("type");
    if (item.order == 0) {
      scene_ = item.scene_index;
      scene_text_ = std::move(item.scene_text);
      ++scenes_;
      writer.String("scene");
      writer.Key("t");
      writer.Double(item.time);
      writer.Key("index");
      writer.Int64(scene_);
      writer.Key("text");
      String(writer, scene_text_);
    } else {
      ++utterances_;
      writer.String("speech");
      writer.Key("start");
      writer.Double(item.speech.start);
      writer.Key("end");
      writer.Double(item.speech.end);
      writer.Key("text");
      String(writer, item.speech.text);
      writer.Key("scene");
      writer.Int64(scene_);
      if (scene_ >= 0) {
        writer.Key("scene_text");
        String(writer, scene_text_);
      }
    }
    writer.EndObject();
    DeliverLocked(buffer.GetString());
  }
  if (!done_ && until == kAll) {
    done_ = true;
    finished_ = std::chrono::steady_clock::now();
    rapidjson::StringBuffer buffer;
    Writer writer(buffer);
    writer.StartObject();
    writer.Key("type");
    writer.String("done");
    writer.Key("utterances");
    writer.Int(utterances_);
    writer.Key("scenes");
    writer.Int(scenes_);
    if (dropped_ > 0) {
      writer.Key("dropped");
      writer.Uint64(dropped_);
    }
    writer.EndObject();
    DeliverLocked(buffer.GetString());
  }
}

void LiveReport::DeliverLocked(std::string chunk) {
  chunks_.push_back(std::move(chunk));
  if (reader_ && (!reader_(chunks_.back(), done_) || done_)) reader_ = nullptr;
}

Result<std::uint64_t> LiveReport::Read(Reader reader) {
  std::lock_guard lock(mutex_);
  if (reader_)
    return MakeStatus(StatusCode::kFailedPrecondition, "report {} already has a reader", id_);
  for (std::size_t i = 0; i < chunks_.size(); ++i) {
    if (!reader(chunks_[i], done_ && i + 1 == chunks_.size())) return ++ticket_;
  }
  if (!done_) reader_ = std::move(reader);
  return ++ticket_;
}

void LiveReport::Unread(std::uint64_t ticket) {
  std::lock_guard lock(mutex_);
  if (ticket == ticket_) reader_ = nullptr;
}

bool LiveReport::done() const {
  std::lock_guard lock(mutex_);
  return done_;
}

bool LiveReport::active() const {
  std::lock_guard lock(mutex_);
  return (speech_.attached && !speech_.ended) || (video_.attached && !video_.ended);
}

std::chrono::steady_clock::time_point LiveReport::finished() const {
  std::lock_guard lock(mutex_);
  return finished_;
}

Result<std::shared_ptr<LiveReport>> LiveReports::Create(bool speech, bool video) {
  if (!speech && !video) return InvalidArgument("a report needs speech, video or both");
  std::lock_guard lock(mutex_);
  ForgetOldLocked();
  if (reports_.size() >= options_.max_reports) {
    return MakeStatus(StatusCode::kResourceExhausted, "all {} live reports are kept; retry later",
                      options_.max_reports);
  }
  auto report = std::make_shared<LiveReport>(RandomId("report-"), speech, video);
  reports_.emplace(report->id(), report);
  return report;
}

Result<std::shared_ptr<LiveReport>> LiveReports::Find(const std::string& id) {
  std::lock_guard lock(mutex_);
  ForgetOldLocked();
  auto it = reports_.find(id);
  if (it == reports_.end()) return NotFound("no live report '{}'", id);
  return it->second;
}

void LiveReports::AbandonAll() {
  std::lock_guard lock(mutex_);
  for (auto& [id, report] : reports_) report->Abandon();
}

void LiveReports::ForgetOldLocked() {
  const auto now = std::chrono::steady_clock::now();
  std::erase_if(reports_, [&](const auto& entry) {
    LiveReport& report = *entry.second;
    if (!report.done() && now - report.created() > options_.keep && !report.active())
      report.Abandon();
    return report.done() && now - report.finished() > options_.keep;
  });
}

}  // namespace braid
