#include "backends/backends.h"

#include "backends/onnxruntime/onnxruntime_backend.h"
#include "backends/remote/remote_backend.h"
#include "backends/whisper/whisper_backend.h"
#if BRAID_WITH_TESSERACT
#include "backends/tesseract/tesseract_backend.h"
#endif
#if BRAID_WITH_POCKETSPHINX
#include "backends/pocketsphinx/pocketsphinx_backend.h"
#endif
#if BRAID_WITH_FLITE
#include "backends/flite/flite_backend.h"
#endif
#if BRAID_WITH_TORCH
#include "backends/torchscript/torchscript_backend.h"
#endif

namespace braid {

void RegisterBuiltinBackends(BackendRegistry& registry, const ImageLimits& image,
                             const AudioLimits& audio) {
  registry.Register(kOnnxRuntimeBackend, MakeOnnxRuntimeBackend());
  registry.Register(kRemoteBackend, MakeRemoteBackend());
  registry.Register(kWhisperBackend, MakeWhisperBackend(audio));
#if BRAID_WITH_TESSERACT
  registry.Register(kTesseractBackend, MakeTesseractBackend(image));
#endif
#if BRAID_WITH_POCKETSPHINX
  registry.Register(kPocketSphinxBackend, MakePocketSphinxBackend(audio));
  registry.RegisterStreamingRecognisers(kPocketSphinxBackend, MakePocketSphinxRecognisers());
#endif
#if BRAID_WITH_FLITE
  registry.Register(kFliteBackend, MakeFliteBackend());
#endif
#if BRAID_WITH_TORCH
  registry.Register(kTorchScriptBackend, MakeTorchScriptBackend());
#endif
}

}  // namespace braid
