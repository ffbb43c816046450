#include "frontends/openai/speech_api.h"

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <spdlog/spdlog.h>

#include <map>
#include <mutex>

#include "frontends/status_mapping.h"
#include "preprocess/audio.h"
#include "preprocess/audio_encoder.h"

namespace braid {
namespace {

// Sentences synthesised at once: enough to keep two tts instances busy
// while the first sentence streams, few enough to leave room in the queue.
constexpr std::size_t kWindow = 3;

// OpenAI's voice names, mapped onto flite's voices; flite's own names pass.
Result<std::string> FliteVoice(const std::string& voice) {
  static const std::map<std::string, std::string> kVoices = {
      {"alloy", "slt"}, {"ash", "rms"},     {"ballad", "awb"}, {"coral", "slt"},
      {"echo", "rms"},  {"fable", "awb"},   {"nova", "slt"},   {"onyx", "rms"},
      {"sage", "slt"},  {"shimmer", "slt"}, {"verse", "rms"},  {"slt", "slt"},
      {"rms", "rms"},   {"awb", "awb"},     {"kal", "kal"},    {"kal16", "kal16"}};
  auto it = kVoices.find(voice);
  if (it == kVoices.end()) {
    std::string names;
    for (const auto& [name, flite] : kVoices) names += (names.empty() ? "" : ", ") + name;
    return InvalidArgument("unknown voice '{}' (voices: {})", voice, names);
  }
  return it->second;
}

// One response: the sentences, the encoder, and the order they leave in.
class SpeechStream : public std::enable_shared_from_this<SpeechStream> {
 public:
  SpeechStream(InferenceService& service, HttpResponderPtr responder,
               std::vector<std::string> sentences, std::string voice, AudioFormat format,
               std::unique_ptr<AudioEncoder> encoder)
      : service_(service),
        responder_(std::move(responder)),
        sentences_(std::move(sentences)),
        voice_(std::move(voice)),
        format_(format),
        encoder_(std::move(encoder)),
        cancellation_(std::make_shared<CancellationToken>()) {}

  void Begin() {
    responder_->OnDisconnect([token = cancellation_] { token->Cancel(); });
    std::unique_lock lock(mutex_);
    auto work = TakeWorkLocked();
    lock.unlock();
    Submit(work);
  }

 private:
  // The sentences to start now: up to kWindow ahead of the next to send.
  std::vector<std::size_t> TakeWorkLocked() {
    std::vector<std::size_t> work;
    while (next_submit_ < sentences_.size() && next_submit_ - next_send_ < kWindow && !done_)
      work.push_back(next_submit_++);
    return work;
  }

  // Outside the lock: a cached sentence may be answered on this thread.
  void Submit(const std::vector<std::size_t>& work) {
    for (const std::size_t index : work) {
      InferOptions options;
      options.cancellation = cancellation_;
      std::map<std::string, Tensor> inputs = {
          {"text", *Tensor::FromStrings({sentences_[index]}, {1})},
          {"voice", *Tensor::FromStrings({voice_}, {1})}};
      service_.Infer("tts", 0, std::move(inputs), options,
                     [self = shared_from_this(), index](Result<InferResponse> result) {
                       self->Arrived(index, std::move(result));
                     });
    }
  }

  void Arrived(std::size_t index, Result<InferResponse> result) {
    Result<std::vector<float>> audio =
        result.ok() ? Resample(result->outputs[0].span<float>(),
                               result->outputs[1].span<std::int32_t>()[0], SpeechApi::kRate)
                    : Result<std::vector<float>>(result.status());
    std::unique_lock lock(mutex_);
    ready_.emplace(index, std::move(audio));
    // Send what is ready, in order.
    while (!done_ && ready_.contains(next_send_)) {
      auto node = ready_.extract(next_send_);
      ++next_send_;
      if (!node.mapped().ok()) {
        FailLocked(node.mapped().status());
        break;
      }
      auto bytes = encoder_->Encode(*node.mapped());
      if (!bytes.ok()) {
        FailLocked(bytes.status());
        break;
      }
      std::string chunk = std::move(*bytes);
      if (!started_) {
        started_ = true;
        responder_->StartStream(200, std::string(AudioMediaType(format_)),
                                {{"X-Sample-Rate", std::to_string(SpeechApi::kRate)}});
        chunk = encoder_->Start() + chunk;
      }
      if (!responder_->WriteChunk(std::move(chunk))) {
        done_ = true;
        cancellation_->Cancel();
        break;
      }
      if (next_send_ == sentences_.size()) {
        auto tail = encoder_->Finish();
        if (tail.ok() && !tail->empty()) responder_->WriteChunk(std::move(*tail));
        responder_->EndStream();
        done_ = true;
      }
    }
    auto work = TakeWorkLocked();
    lock.unlock();
    Submit(work);
  }

  // Before any audio left, the client gets the error; after, the stream
  // ends early (the status line is gone).
  void FailLocked(const Status& status) {
    done_ = true;
    cancellation_->Cancel();
    if (!started_) {
      responder_->Send(JsonError(status));
      return;
    }
    spdlog::warn("speech stream cut short: {}", status.message());
    responder_->EndStream();
  }

  InferenceService& service_;
  const HttpResponderPtr responder_;
  const std::vector<std::string> sentences_;
  const std::string voice_;
  const AudioFormat format_;
  std::mutex mutex_;
  std::unique_ptr<AudioEncoder> encoder_;  // guarded by mutex_
  std::shared_ptr<CancellationToken> cancellation_;
  std::size_t next_submit_ = 0;                              // guarded by mutex_
  std::size_t next_send_ = 0;                                // guarded by mutex_
  std::map<std::size_t, Result<std::vector<float>>> ready_;  // guarded by mutex_
  bool started_ = false;                                     // guarded by mutex_
  bool done_ = false;                                        // guarded by mutex_
};

}  // namespace

std::vector<std::string> SplitSentences(std::string_view text, std::size_t max_chars) {
  std::vector<std::string> sentences;
  std::string current;
  auto flush = [&] {
    const auto first = current.find_first_not_of(" \t\r\n");
    if (first != std::string::npos) {
      const auto last = current.find_last_not_of(" \t\r\n");
      sentences.push_back(current.substr(first, last - first + 1));
    }
    current.clear();
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    current += c == '\n' || c == '\r' || c == '\t' ? ' ' : c;
    const bool end =
        c == '\n' ||
        ((c == '.' || c == '!' || c == '?' || c == ';') &&
         (i + 1 == text.size() || std::isspace(static_cast<unsigned char>(text[i + 1]))));
    if (end) {
      flush();
    } else if (current.size() >= max_chars) {
      const auto space = current.rfind(' ');
      if (space == std::string::npos || space == 0) {
        flush();
      } else {
        std::string rest = current.substr(space + 1);
        current.resize(space);
        flush();
        current = std::move(rest);
      }
    }
  }
  flush();
  return sentences;
}

SpeechApi::SpeechApi(InferenceService& service) : service_(service) {}

void SpeechApi::AddRoutes(RouteTable& routes) {
  routes.Add("POST", "/v1/audio/speech", RouteTo(this, &SpeechApi::Speak));
}

void SpeechApi::Speak(HttpRequest& request, HttpResponderPtr responder) {
  auto fail = [&](int code, std::string message) { responder->Send(JsonError(code, message)); };
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(request.body->data(), request.body->size());
  if (doc.HasParseError() || !doc.IsObject()) return fail(400, "the body must be a JSON object");
  auto text_field = [&](const char* name, const char* fallback) -> Result<std::string> {
    if (!doc.HasMember(name)) {
      if (fallback == nullptr) return InvalidArgument("'{}' is required", name);
      return std::string(fallback);
    }
    if (!doc[name].IsString()) return InvalidArgument("'{}' must be a string", name);
    return std::string(doc[name].GetString(), doc[name].GetStringLength());
  };
  auto model = text_field("model", "tts");
  auto input = text_field("input", nullptr);
  auto voice = text_field("voice", "alloy");
  auto format_name = text_field("response_format", "mp3");
  for (const auto* field : {&model, &input, &voice, &format_name}) {
    if (!field->ok()) return fail(400, std::string(field->status().message()));
  }
  if (*model != "tts" && *model != "tts-1" && *model != "tts-1-hd" && *model != "gpt-4o-mini-tts")
    return fail(404, fmt::format("unknown speech model '{}' (available: tts)", *model));
  if (input->size() > kMaxInputChars)
    return fail(400, fmt::format("'input' has {} characters; at most {} are spoken at once",
                                 input->size(), kMaxInputChars));
  if (doc.HasMember("speed") && (!doc["speed"].IsNumber() || doc["speed"].GetDouble() != 1.0))
    return fail(400, "'speed' other than 1.0 is not supported");
  auto flite_voice = FliteVoice(*voice);
  if (!flite_voice.ok()) return fail(400, std::string(flite_voice.status().message()));
  // OpenAI's default is mp3; a build without LAME answers wav instead.
  if (*format_name == "mp3" && !ParseAudioFormat("mp3").ok() && !doc.HasMember("response_format"))
    *format_name = "wav";
  auto format = ParseAudioFormat(*format_name);
  if (!format.ok()) return fail(400, std::string(format.status().message()));
  auto sentences = SplitSentences(*input);
  if (sentences.empty()) return fail(400, "'input' has nothing to speak");
  auto encoder = AudioEncoder::Create(*format, kRate);
  if (!encoder.ok()) return fail(500, std::string(encoder.status().message()));
  std::make_shared<SpeechStream>(service_, std::move(responder), std::move(sentences),
                                 std::move(*flite_voice), *format, std::move(*encoder))
      ->Begin();
}

}  // namespace braid
