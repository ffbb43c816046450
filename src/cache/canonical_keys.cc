#include "cache/canonical_keys.h"

#include <span>

#include "preprocess/fingerprint.h"

namespace braid {

Hash128 PerceptualImageKey(ResultCache& cache, const Hash128& exact, std::string_view bytes,
                           const ImageLimits& limits) {
  auto rgb = DecodeImage(std::as_bytes(std::span(bytes.data(), bytes.size())), limits, false,
                         kFingerprintShortSide);
  if (!rgb.ok()) return exact;  // whatever reads it says what is wrong
  auto fingerprint = Fingerprint(*rgb);
  if (!fingerprint.ok()) return exact;
  return cache.PerceptualKeyFor(exact, *fingerprint);
}

std::optional<Hash128> PcmAudioKey(ResultCache& cache, std::string_view bytes,
                                   const AudioLimits& limits) {
  auto decoded = DecodeAudio(std::as_bytes(std::span(bytes.data(), bytes.size())), limits);
  cache.CountAudioKey(decoded.ok());
  if (!decoded.ok()) return std::nullopt;
  return Hasher().Add("pcm").Add(std::as_bytes(std::span(decoded->samples))).Finish();
}

}  // namespace braid
