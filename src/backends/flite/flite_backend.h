// The speech synthesis backend (`backend: flite`): Debian's libflite with
// its bundled English voices (slt, rms, awb, kal, kal16).
//
// Inputs: text BYTES [1] (UTF-8; flite speaks ASCII English) and voice
// BYTES [1] (a flite voice name, or empty for the model's default).
// Outputs, in config order: audio FP32 [n] (mono samples in [-1, 1]) and
// sample_rate INT32 [1] (the voice's rate: 16000, or 8000 for kal).
// Parameters: voice (slt, the default voice), max_chars (4096 per request).
#pragma once

#include "model/backend.h"

namespace braid {

inline constexpr char kFliteBackend[] = "flite";

BackendFactory MakeFliteBackend();

}  // namespace braid
