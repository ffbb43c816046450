// The backends compiled into this build.
#pragma once

#include "model/backend.h"
#include "preprocess/audio.h"
#include "preprocess/image.h"

namespace braid {

// Registers every backend this build has (onnxruntime, and the optional
// ones whose libraries were found at configure time). The OCR and speech
// backends decode media within `image` and `audio` (a model's own
// parameters may lower them).
void RegisterBuiltinBackends(BackendRegistry& registry, const ImageLimits& image = {},
                             const AudioLimits& audio = {});

}  // namespace braid
