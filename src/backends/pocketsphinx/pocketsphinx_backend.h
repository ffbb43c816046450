// The speech recognition backend (`backend: pocketsphinx`): libpocketsphinx
// with Debian's US English acoustic model, language model and dictionary.
// One decoder per instance.
//
// Input: one BYTES element holding encoded audio (WAV, FLAC, OGG, MP3),
// decoded and resampled to 16 kHz mono. Outputs, in config order: text
// BYTES [1], words BYTES [n], timings FP32 [n,2] (start, end in seconds).
// Parameters: model_dir (/usr/share/pocketsphinx/model/en-us), max_seconds
// (600; the server's cap, when lower, wins).
//
// Live streams get decoders of their own (MakePocketSphinxRecognisers) with
// cepstral mean normalisation from what was heard so far, since a stream's
// whole utterance is not known when its first words are decoded, and a
// pruned search to keep up with real time: parameters stream_max_hmms
// (-maxhmmpf, 3000) and stream_max_words (-maxwpf, 5).
#pragma once

#include "model/backend.h"
#include "preprocess/audio.h"

namespace braid {

inline constexpr char kPocketSphinxBackend[] = "pocketsphinx";

BackendFactory MakePocketSphinxBackend(AudioLimits limits = {});
StreamingRecogniserFactory MakePocketSphinxRecognisers();

}  // namespace braid
