#include "backends/backends.h"

#include "backends/onnxruntime/onnxruntime_backend.h"

namespace braid {

void RegisterBuiltinBackends(BackendRegistry& registry) {
  registry.Register(kOnnxRuntimeBackend, MakeOnnxRuntimeBackend());
}

}  // namespace braid
