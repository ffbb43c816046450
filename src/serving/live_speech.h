// Live speech recognition: audio that arrives as it is recorded becomes
// partial and final transcripts while the speaker is still talking.
//
// Each stream runs the audio through voice activity detection (the `vad`
// model, Silero VAD, served by the onnxruntime backend at interactive
// priority, its LSTM state carried by the stream) in 32 ms windows. The
// Endpointer turns the speech probabilities into utterances: an utterance
// starts at the first speech window (with the 300 ms before it, so the first
// sound is not cut) and ends after a stretch of silence. During an utterance
// the audio goes to a decoder of the speech model's backend as it comes
// (StreamingRecogniser), whose best guess is sent as a partial each time it
// changes; the end of the utterance sends its final words with times.
//
// Decoders are slow to load and large (PocketSphinx: about 0.5 s and 90 MB),
// so they are kept for reuse, and the number of streams open at once is
// capped. A stream's work runs on the service's pool, one piece at a time:
// the caller gives the next audio only when the last is done, so a client
// that sends faster than it is recognised is slowed, not buffered.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "model/backend.h"
#include "preprocess/audio_stream.h"
#include "serving/inference_service.h"
#include "serving/stream_slots.h"

namespace braid {

struct EndpointerOptions {
  float start_threshold = 0.5f;     // a window at or above it is speech
  float end_threshold = 0.35f;      // below it, silence
  int end_silence_windows = 19;     // about 600 ms of silence ends an utterance
  int max_utterance_windows = 938;  // about 30 s: an utterance is cut there
};

// Utterance boundaries from one speech probability per window.
class Endpointer {
 public:
  enum class Event { kNone, kStart, kEnd };
  explicit Endpointer(EndpointerOptions options = {}) : options_(options) {}

  Event Push(float probability);
  bool in_speech() const { return in_speech_; }

 private:
  EndpointerOptions options_;
  bool in_speech_ = false;
  int silent_ = 0;
  int length_ = 0;
};

// What a stream tells its client.
struct LiveEvent {
  enum class Kind { kPartial, kFinal };
  Kind kind = Kind::kPartial;
  std::string text;
  double start = 0;  // seconds from the stream's first sample
  double end = 0;
  std::vector<RecognisedWord> words;  // finals only, times from the stream's start
};

struct LiveSpeechOptions {
  std::size_t max_streams = 8;  // open at once; each holds a decoder
  std::string vad_model = "vad";
  double max_seconds = 3600;  // of audio in one stream
  EndpointerOptions endpointing;
  std::size_t threads = 0;  // the pool; 0: one per core
};

class LiveSpeech;

// One stream. Push() and Finish() are called one at a time: the next only
// after the previous one's `done`.
class LiveSession : public std::enable_shared_from_this<LiveSession> {
 public:
  using Done = std::function<void(Status)>;
  ~LiveSession();

  // Recognises `bytes` of audio; `done` runs on the pool once they are,
  // with an error that ends the stream (bad audio, over max_seconds, a
  // failed model).
  void Push(std::string bytes, Done done);
  // The end of the audio: the utterance under way is ended (its final is
  // emitted), then `done`.
  void Finish(Done done);

  // The speech model the stream runs.
  const Model& model() const { return *model_; }
  // No final still to come starts before this many seconds: the start of
  // the utterance under way, or the earliest a next one could start (with
  // its preroll). Read between pieces of work (from a `done`).
  double settled() const;

 private:
  friend class LiveSpeech;
  static constexpr std::size_t kWindow = 512;  // Silero's window at 16 kHz
  static constexpr std::size_t kPreroll = 300 * kSpeechRate / 1000;

  LiveSession(LiveSpeech& live, ModelPtr model, std::unique_ptr<AudioStream> audio,
              std::function<void(LiveEvent)> emit);
  // Runs the windows that are complete, one voice detection at a time.
  void Step(Done done);
  Status Window(float probability);
  Status Feed(std::span<const float> samples);
  Status EndUtterance();
  double Seconds(std::int64_t samples) const { return double(samples) / kSpeechRate; }

  LiveSpeech& live_;
  ModelPtr model_;
  std::unique_ptr<AudioStream> audio_;
  std::function<void(LiveEvent)> emit_;
  Endpointer endpointer_;
  std::unique_ptr<StreamingRecogniser> decoder_;
  bool decoding_ = false;       // the decoder is inside an utterance
  std::vector<float> samples_;  // 16 kHz samples not yet windowed
  std::vector<float> preroll_;  // the last samples before an utterance
  std::int64_t windowed_ = 0;   // samples put through detection so far
  std::int64_t utterance_start_ = 0;
  std::string last_partial_;
  std::vector<float> state_h_, state_c_;
};

class LiveSpeech {
 public:
  // `service` and `backends` must outlive it.
  LiveSpeech(InferenceService& service, const BackendRegistry& backends,
             LiveSpeechOptions options = {});
  ~LiveSpeech();
  LiveSpeech(const LiveSpeech&) = delete;
  LiveSpeech& operator=(const LiveSpeech&) = delete;

  // A stream of `model` (a backend that recognises speech as it arrives)
  // reading `audio`; `emit` runs on the pool for each event. NotFound for
  // an unknown model, InvalidArgument for one that cannot stream,
  // Unavailable when the voice detector is not loaded, ResourceExhausted
  // when max_streams are open.
  Result<std::shared_ptr<LiveSession>> Open(std::string_view model,
                                            std::unique_ptr<AudioStream> audio,
                                            std::function<void(LiveEvent)> emit);
  // Runs the queued work and stops the pool; later work is dropped. Call
  // once the model requests are answered (InferenceService::Shutdown).
  void Shutdown();

  // braid_live_* in Prometheus text: streams open, opened and refused,
  // decoders loaded, audio received, utterances finished.
  void RenderMetrics(std::string& out) const;

 private:
  friend class LiveSession;
  Result<std::unique_ptr<StreamingRecogniser>> TakeDecoder(const Model& model);
  void GiveBack(const Model& model, std::unique_ptr<StreamingRecogniser> decoder);
  std::string DecoderKey(const Model& model) const;

  InferenceService& service_;
  const BackendRegistry& backends_;
  const LiveSpeechOptions options_;
  StreamSlots slots_;
  std::atomic<std::uint64_t> decoders_{0};       // loaded, held or idle
  std::atomic<std::uint64_t> audio_samples_{0};  // 16 kHz samples received
  std::atomic<std::uint64_t> utterances_{0};
  mutable std::mutex mutex_;
  // Loaded decoders no stream holds, by model and version.
  std::map<std::string, std::vector<std::unique_ptr<StreamingRecogniser>>>
      idle_;  // guarded by mutex_
  ThreadPool pool_;
};

}  // namespace braid
