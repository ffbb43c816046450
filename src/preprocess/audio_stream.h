// Audio that arrives in pieces (a live stream's frames), turned into 16 kHz
// mono samples as it comes.
//
// Raw little-endian 16-bit PCM at a stated rate and channel count, or a WAV
// stream whose header comes first (PCM 16-bit; the data chunk's size is not
// trusted, since a recorder does not know it yet). Channels are averaged;
// other rates are resampled with soxr's streaming converter, so the pieces
// join without clicks. A sample split between two pieces is kept for the
// next.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "preprocess/audio.h"

namespace braid {

enum class StreamEncoding { kPcmS16le, kWav };

// "pcm_s16le" or "wav".
Result<StreamEncoding> ParseStreamEncoding(std::string_view name);

class AudioStream {
 public:
  // For kWav the rate and channels come from the header and these are
  // ignored. InvalidArgument for a rate or channel count outside `limits`.
  static Result<std::unique_ptr<AudioStream>> Open(StreamEncoding encoding, int sample_rate,
                                                   int channels, const AudioLimits& limits = {});
  ~AudioStream();
  AudioStream(const AudioStream&) = delete;
  AudioStream& operator=(const AudioStream&) = delete;

  // Appends the samples `bytes` complete to `out` (16 kHz, mono, [-1, 1]).
  // InvalidArgument for a WAV header braid cannot read; the stream is then
  // unusable.
  Status Push(std::string_view bytes, std::vector<float>* out);
  // The resampler's last samples, at the end of the stream.
  void Flush(std::vector<float>* out);

  // Seconds of input taken so far.
  double seconds() const;

 private:
  AudioStream(StreamEncoding encoding, int rate, int channels, AudioLimits limits);
  Status ReadWavHeader(std::vector<float>* out);
  Status StartConverter();
  void Convert(std::span<const float> mono, std::vector<float>* out);

  StreamEncoding encoding_;
  int rate_;
  int channels_;
  AudioLimits limits_;
  bool header_done_;
  std::string pending_;  // bytes of an unread header or of a split frame
  std::int64_t frames_ = 0;
  struct Converter;
  std::unique_ptr<Converter> converter_;  // only when rate_ differs from kSpeechRate
};

}  // namespace braid
