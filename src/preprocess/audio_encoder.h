// Encodes mono float samples as a stream: 16-bit WAV, raw 16-bit PCM, or
// MP3 (LAME). Each call returns the bytes to send next, so audio can leave
// while more is still being synthesised. A streamed WAV's header carries
// the largest sizes (0xFFFFFFFF), as streaming WAV writers do, because the
// length is not known when it is sent.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/status.h"

namespace braid {

enum class AudioFormat { kWav, kPcm, kMp3 };

// "wav", "pcm", "mp3" (when built with LAME); InvalidArgument otherwise.
Result<AudioFormat> ParseAudioFormat(std::string_view name);
std::string_view AudioMediaType(AudioFormat format);
// The formats this build can write, for error messages.
std::string_view AudioFormatNames();

class AudioEncoder {
 public:
  // Samples arrive at `rate` Hz, mono.
  static Result<std::unique_ptr<AudioEncoder>> Create(AudioFormat format, int rate);
  virtual ~AudioEncoder() = default;

  // The bytes that open the stream (the WAV header; empty otherwise).
  virtual std::string Start() = 0;
  // `samples` in [-1, 1] (clipped beyond).
  virtual Result<std::string> Encode(std::span<const float> samples) = 0;
  // What is left to send (MP3's last frames).
  virtual Result<std::string> Finish() = 0;
};

// A whole clip as a WAV file with exact sizes.
std::string EncodeWav(std::span<const float> samples, int rate);

}  // namespace braid
