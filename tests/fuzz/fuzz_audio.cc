// Audio decoding (WAV, FLAC, OGG, MP3 through libsndfile), resampling and
// the log-mel front end, with a duration cap.
#include "preprocess/audio.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  braid::AudioLimits limits;
  limits.max_seconds = 30;
  auto audio =
      braid::DecodeAudio(std::span(reinterpret_cast<const std::byte*>(data), size), limits);
  if (audio.ok()) (void)braid::WhisperLogMel(audio->samples);
  return 0;
}
