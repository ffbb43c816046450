// Whisper-shaped stand-ins: the four ONNX files of Hugging Face Optimum's
// Whisper export (encoder_model.onnx, decoder_model.onnx,
// decoder_with_past_model.onnx and decoder_model_merged.onnx, which holds
// the two decoders behind an If on its use_cache_branch input, with the
// export's input and output names, data types and dims) and a
// tokenizer.json in the real format, written for tests and benchmarks on
// machines that reach no model hub.
//
// The decoders compute what a Whisper decoder computes (token and position
// embeddings, causal self-attention over a key/value cache, cross-attention
// over the encoder's keys, a projection onto the vocabulary), but their
// logits are forced: the token at each position of `loud` or `quiet` wins
// by a wide margin, so a correct decoding loop gives exactly those tokens.
// Which script applies depends on the audio (the mean of the log-mel above
// or below -1, carried in the encoder's output), so one batch can hold
// transcripts of different lengths.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/status.h"

namespace braid::onnxgen {

struct WhisperStandIn {
  std::int64_t mel_bins = 80;
  std::int64_t d_model = 16;
  std::int64_t heads = 2;
  std::int64_t layers = 1;
  // Tokens of the vocabulary after GPT-2's 256 byte symbols, in byte-level
  // form ("Ġworld" for " world"); then `filler` more, to reach a realistic
  // vocabulary size.
  std::vector<std::string> words;
  std::int64_t filler = 0;
  // Languages with a token (<|en|>, ...), in order.
  std::vector<std::string> languages = {"en", "de"};
  // What the decoder says, one token string per position from the token
  // after <|startoftranscript|> on (the language first), <|endoftext|>
  // past the end.
  std::vector<std::string> loud, quiet;
  std::uint32_t seed = 1;
};

// Writes encoder_model.onnx, decoder_model.onnx, decoder_with_past_model.onnx,
// decoder_model_merged.onnx and tokenizer.json into `folder` (which must
// exist). InvalidArgument when a script names a token the vocabulary lacks.
Status WriteWhisperStandIn(const WhisperStandIn& spec, const std::filesystem::path& folder);

}  // namespace braid::onnxgen
