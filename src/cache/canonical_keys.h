// Keys of encoded media by a canonical form rather than their bytes, for
// workflow inputs (`cache_key: perceptual|pcm`) and models
// (`response_cache.key: perceptual|pcm`) that declare one. Each decodes
// the media: call them off the network threads.
#pragma once

#include <optional>
#include <string_view>

#include "cache/result_cache.h"
#include "core/hash.h"
#include "preprocess/audio.h"
#include "preprocess/image.h"

namespace braid {

// Image bytes whose content key is `exact`, keyed by what they look like:
// an earlier near duplicate's key (ResultCache::PerceptualKeyFor), or
// `exact` when they are new or do not decode.
Hash128 PerceptualImageKey(ResultCache& cache, const Hash128& exact, std::string_view bytes,
                           const ImageLimits& limits);

// Audio bytes keyed by their decoded 16 kHz mono samples, whatever the
// container and metadata; nullopt when they do not decode. Counted in the
// cache's CanonicalStats either way.
std::optional<Hash128> PcmAudioKey(ResultCache& cache, std::string_view bytes,
                                   const AudioLimits& limits);

}  // namespace braid
