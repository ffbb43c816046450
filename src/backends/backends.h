// The backends compiled into this build.
#pragma once

#include "model/backend.h"

namespace braid {

// Registers every backend this build has (onnxruntime, and the optional
// ones whose libraries were found at configure time).
void RegisterBuiltinBackends(BackendRegistry& registry);

}  // namespace braid
