// Audio decoding to 16 kHz mono float, and Whisper's log-mel frontend.
//
// DecodeAudio reads WAV (PCM 16/24/32, float), FLAC, OGG/Vorbis and MP3
// through libsndfile from memory, checks the header (rate, channels,
// duration) before decoding a sample, downmixes to mono and resamples with
// soxr's high-quality converter.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"

namespace braid {

inline constexpr int kSpeechRate = 16000;

struct AudioLimits {
  double max_seconds = 600;
  int max_channels = 2;
  int min_rate = 4000;
  int max_rate = 192000;
};

struct Audio {
  std::vector<float> samples;  // mono, kSpeechRate Hz, in [-1, 1]
  int source_rate = 0;
  int source_channels = 0;

  double seconds() const { return double(samples.size()) / kSpeechRate; }
};

// InvalidArgument for empty, corrupt or unsupported data and for rates or
// channel counts outside the limits; TooLarge past max_seconds.
Result<Audio> DecodeAudio(std::span<const std::byte> bytes, const AudioLimits& limits = {});

// Samples in [-1, 1] as 16-bit integers (clamped, rounded).
std::vector<std::int16_t> ToPcm16(std::span<const float> samples);

// Resamples mono `input` from `from_rate` to `to_rate` (soxr, high quality).
Result<std::vector<float>> Resample(std::span<const float> input, int from_rate, int to_rate);

inline constexpr int kMelBins = 80;
inline constexpr int kMelFrames = 3000;  // 30 s at a 10 ms hop

// Whisper's log-mel spectrogram of 16 kHz mono audio: padded or trimmed to
// 30 s, STFT with n_fft 400 (periodic Hann), hop 160, centre reflect
// padding, power spectrum, 80 Slaney-scale mel filters (Slaney
// normalisation), log10 (floor 1e-10), clamped to max − 8, then (x + 4) / 4.
// Returns [80, 3000] row-major. Thread-safe.
std::vector<float> WhisperLogMel(std::span<const float> samples);

// The [80, 201] mel filterbank used above, row-major.
const std::vector<float>& WhisperMelFilters();

}  // namespace braid
