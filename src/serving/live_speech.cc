#include "serving/live_speech.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <thread>

namespace braid {
namespace {

constexpr std::size_t kStateValues = 2 * 1 * 64;  // Silero's h and c: [2, 1, 64]

std::string Join(const std::vector<RecognisedWord>& words) {
  std::string text;
  for (const auto& word : words) {
    if (!text.empty()) text += ' ';
    text += word.word;
  }
  return text;
}

Result<Tensor> FloatTensor(std::span<const float> values, Shape shape) {
  BRAID_ASSIGN_OR_RETURN(Tensor tensor, Tensor::Allocate(DataType::kFp32, std::move(shape)));
  std::copy(values.begin(), values.end(), tensor.mutable_span<float>().begin());
  return tensor;
}

}  // namespace

Endpointer::Event Endpointer::Push(float probability) {
  if (!in_speech_) {
    if (probability < options_.start_threshold) return Event::kNone;
    in_speech_ = true;
    silent_ = 0;
    length_ = 1;
    return Event::kStart;
  }
  ++length_;
  silent_ = probability < options_.end_threshold ? silent_ + 1 : 0;
  if (silent_ >= options_.end_silence_windows || length_ >= options_.max_utterance_windows) {
    in_speech_ = false;
    return Event::kEnd;
  }
  return Event::kNone;
}

LiveSession::LiveSession(LiveSpeech& live, ModelPtr model, std::unique_ptr<AudioStream> audio,
                         std::function<void(LiveEvent)> emit)
    : live_(live),
      model_(std::move(model)),
      audio_(std::move(audio)),
      emit_(std::move(emit)),
      endpointer_(live.options_.endpointing),
      state_h_(kStateValues, 0.0f),
      state_c_(kStateValues, 0.0f) {}

LiveSession::~LiveSession() {
  if (decoder_) {
    // Ending an utterance decodes its last pass: on the pool, not on the
    // network thread that may drop the last reference.
    auto decoder = std::make_shared<std::unique_ptr<StreamingRecogniser>>(std::move(decoder_));
    live_.pool_.Submit([&live = live_, model = model_, decoder, decoding = decoding_] {
      if (decoding) (void)(*decoder)->End();
      (*decoder)->Reset();
      live.GiveBack(*model, std::move(*decoder));
    });
  }
  live_.slots_.GiveBack();
}

void LiveSession::Push(std::string bytes, Done done) {
  live_.pool_.Submit([self = shared_from_this(), bytes = std::move(bytes),
                      done = std::move(done)]() mutable {
    const std::size_t before = self->samples_.size();
    if (Status status = self->audio_->Push(bytes, &self->samples_); !status.ok())
      return done(status);
    self->live_.audio_samples_ += self->samples_.size() - before;
    if (self->audio_->seconds() > self->live_.options_.max_seconds) {
      return done(MakeStatus(StatusCode::kResourceExhausted, "the stream is over its {} s of audio",
                             self->live_.options_.max_seconds));
    }
    self->Step(std::move(done));
  });
}

void LiveSession::Step(Done done) {
  if (!decoder_) {
    auto decoder = live_.TakeDecoder(*model_);
    if (!decoder.ok()) return done(decoder.status());
    decoder_ = std::move(*decoder);
  }
  if (samples_.size() < kWindow) return done(Status::Ok());
  std::map<std::string, Tensor> inputs;
  auto input = FloatTensor(std::span(samples_).first(kWindow), {1, kWindow});
  auto h = FloatTensor(state_h_, {2, 1, 64});
  auto c = FloatTensor(state_c_, {2, 1, 64});
  auto rate = Tensor::Allocate(DataType::kInt64, {});
  if (!input.ok() || !h.ok() || !c.ok() || !rate.ok())
    return done(Internal("cannot build the voice detector's inputs"));
  rate->mutable_span<std::int64_t>()[0] = kSpeechRate;
  inputs.emplace("input", std::move(*input));
  inputs.emplace("sr", std::move(*rate));
  inputs.emplace("h", std::move(*h));
  inputs.emplace("c", std::move(*c));
  InferOptions options;
  options.priority = 1;  // live streams are interactive
  options.use_cache = false;
  live_.service_.Infer(
      live_.options_.vad_model, 0, std::move(inputs), options,
      [self = shared_from_this(), done = std::move(done)](Result<InferResponse> result) mutable {
        self->live_.pool_.Submit(
            [self, result = std::move(result), done = std::move(done)]() mutable {
              if (!result.ok()) {
                return done(Status(
                    result.status().code(),
                    fmt::format("voice activity detection failed: {}", result.status().message())));
              }
              const auto& outputs = result->outputs;
              if (outputs.size() != 3 || outputs[0].span<float>().empty() ||
                  outputs[1].span<float>().size() != kStateValues ||
                  outputs[2].span<float>().size() != kStateValues) {
                return done(
                    Internal("the '{}' model is not Silero VAD v4 (outputs output "
                             "[1,1], hn and cn [2,1,64])",
                             self->live_.options_.vad_model));
              }
              const float probability = outputs[0].span<float>()[0];
              std::copy_n(outputs[1].span<float>().begin(), kStateValues, self->state_h_.begin());
              std::copy_n(outputs[2].span<float>().begin(), kStateValues, self->state_c_.begin());
              if (Status status = self->Window(probability); !status.ok()) return done(status);
              self->Step(std::move(done));
            });
      });
}

Status LiveSession::Window(float probability) {
  const std::span<const float> window = std::span(samples_).first(kWindow);
  const Endpointer::Event event = endpointer_.Push(probability);
  if (event == Endpointer::Event::kStart) {
    BRAID_RETURN_IF_ERROR(decoder_->Begin());
    decoding_ = true;
    last_partial_.clear();
    utterance_start_ = windowed_ - static_cast<std::int64_t>(preroll_.size());
    BRAID_RETURN_IF_ERROR(Feed(preroll_));
    preroll_.clear();
  }
  if (decoding_) {
    BRAID_RETURN_IF_ERROR(Feed(window));
  } else {
    preroll_.insert(preroll_.end(), window.begin(), window.end());
    if (preroll_.size() > kPreroll)
      preroll_.erase(preroll_.begin(), preroll_.end() - static_cast<std::ptrdiff_t>(kPreroll));
  }
  windowed_ += static_cast<std::int64_t>(kWindow);
  samples_.erase(samples_.begin(), samples_.begin() + kWindow);
  if (event == Endpointer::Event::kEnd) return EndUtterance();
  if (decoding_) {
    std::string partial = decoder_->Partial();
    if (!partial.empty() && partial != last_partial_) {
      last_partial_ = partial;
      emit_({LiveEvent::Kind::kPartial,
             std::move(partial),
             Seconds(utterance_start_),
             Seconds(windowed_),
             {}});
    }
  }
  return Status::Ok();
}

Status LiveSession::Feed(std::span<const float> samples) {
  if (samples.empty()) return Status::Ok();
  const std::vector<std::int16_t> pcm = ToPcm16(samples);
  return decoder_->Feed(pcm);
}

Status LiveSession::EndUtterance() {
  if (!decoding_) return Status::Ok();
  decoding_ = false;
  BRAID_ASSIGN_OR_RETURN(std::vector<RecognisedWord> words, decoder_->End());
  if (words.empty()) return Status::Ok();
  const double offset = Seconds(utterance_start_);
  for (auto& word : words) {
    word.start += offset;
    word.end += offset;
  }
  LiveEvent final{LiveEvent::Kind::kFinal, Join(words), offset, Seconds(windowed_), {}};
  final.end = std::max(final.end, words.back().end);
  final.words = std::move(words);
  ++live_.utterances_;
  emit_(std::move(final));
  return Status::Ok();
}

double LiveSession::settled() const {
  if (decoding_) return Seconds(utterance_start_);
  return Seconds(std::max<std::int64_t>(0, windowed_ - static_cast<std::int64_t>(kPreroll)));
}

void LiveSession::Finish(Done done) {
  live_.pool_.Submit([self = shared_from_this(), done = std::move(done)]() mutable {
    self->audio_->Flush(&self->samples_);
    // What is left is under a window: it goes with the utterance under way.
    if (self->decoding_ && self->decoder_) {
      if (Status status = self->Feed(self->samples_); !status.ok()) return done(status);
      self->windowed_ += static_cast<std::int64_t>(self->samples_.size());
    }
    self->samples_.clear();
    done(self->EndUtterance());
  });
}

LiveSpeech::LiveSpeech(InferenceService& service, const BackendRegistry& backends,
                       LiveSpeechOptions options)
    : service_(service),
      backends_(backends),
      options_(std::move(options)),
      slots_(options_.max_streams),
      pool_(options_.threads > 0 ? options_.threads
                                 : std::max<std::size_t>(2, std::thread::hardware_concurrency())) {}

LiveSpeech::~LiveSpeech() { Shutdown(); }

void LiveSpeech::Shutdown() { pool_.Stop(); }

Result<std::shared_ptr<LiveSession>> LiveSpeech::Open(std::string_view model,
                                                      std::unique_ptr<AudioStream> audio,
                                                      std::function<void(LiveEvent)> emit) {
  BRAID_ASSIGN_OR_RETURN(ModelPtr speech, service_.GetModel(model));
  if (backends_.FindStreamingRecognisers(speech->config().backend) == nullptr) {
    return InvalidArgument(
        "model '{}' (backend {}) cannot recognise a live stream; use a pocketsphinx model such "
        "as asr",
        model, speech->config().backend);
  }
  if (!service_.GetModel(options_.vad_model).ok()) {
    return Unavailable(
        "live streams need the voice activity model '{}', which is not loaded (run "
        "scripts/install-silero-vad.sh and rebuild)",
        options_.vad_model);
  }
  if (!slots_.TryTake()) {
    return MakeStatus(StatusCode::kResourceExhausted, "all {} live streams are in use; retry later",
                      options_.max_streams);
  }
  return std::shared_ptr<LiveSession>(
      new LiveSession(*this, std::move(speech), std::move(audio), std::move(emit)));
}

std::string LiveSpeech::DecoderKey(const Model& model) const {
  return fmt::format("{}/{}", model.name(), model.version());
}

Result<std::unique_ptr<StreamingRecogniser>> LiveSpeech::TakeDecoder(const Model& model) {
  {
    std::lock_guard lock(mutex_);
    auto& idle = idle_[DecoderKey(model)];
    if (!idle.empty()) {
      auto decoder = std::move(idle.back());
      idle.pop_back();
      return decoder;
    }
  }
  const StreamingRecogniserFactory* factory =
      backends_.FindStreamingRecognisers(model.config().backend);
  if (factory == nullptr) return Internal("model '{}' lost its speech streams", model.name());
  auto decoder = (*factory)(model.config());
  if (decoder.ok()) ++decoders_;
  return decoder;
}

void LiveSpeech::GiveBack(const Model& model, std::unique_ptr<StreamingRecogniser> decoder) {
  std::lock_guard lock(mutex_);
  auto& idle = idle_[DecoderKey(model)];
  if (idle.size() < options_.max_streams) {
    idle.push_back(std::move(decoder));
  } else {
    --decoders_;
  }
}

void LiveSpeech::RenderMetrics(std::string& out) const {
  fmt::format_to(std::back_inserter(out),
                 "# HELP braid_live_streams Live transcription streams open now.\n"
                 "# TYPE braid_live_streams gauge\n"
                 "braid_live_streams {}\n"
                 "# HELP braid_live_streams_max Live streams that may be open at once "
                 "(--live-streams).\n"
                 "# TYPE braid_live_streams_max gauge\n"
                 "braid_live_streams_max {}\n"
                 "# HELP braid_live_streams_total Live streams asked for, by result.\n"
                 "# TYPE braid_live_streams_total counter\n"
                 "braid_live_streams_total{{result=\"opened\"}} {}\n"
                 "braid_live_streams_total{{result=\"refused\"}} {}\n"
                 "# HELP braid_live_decoders Speech decoders loaded for live streams, in use or "
                 "kept for the next.\n"
                 "# TYPE braid_live_decoders gauge\n"
                 "braid_live_decoders {}\n"
                 "# HELP braid_live_audio_seconds_total Seconds of live audio received.\n"
                 "# TYPE braid_live_audio_seconds_total counter\n"
                 "braid_live_audio_seconds_total {:.3f}\n"
                 "# HELP braid_live_utterances_total Utterances recognised in live streams (finals "
                 "sent).\n"
                 "# TYPE braid_live_utterances_total counter\n"
                 "braid_live_utterances_total {}\n",
                 slots_.open(), slots_.max(), slots_.opened(), slots_.refused(), decoders_.load(),
                 double(audio_samples_.load()) / kSpeechRate, utterances_.load());
}

}  // namespace braid
