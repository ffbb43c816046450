// The Whisper backend (`backend: whisper`): speech recognition with an
// export of OpenAI's Whisper made by Hugging Face Optimum
// (`optimum-cli export onnx --model openai/whisper-tiny DIR`), run by ONNX
// Runtime on the process's compute budget.
//
// The version folder holds encoder_model.onnx, decoder_model.onnx and
// decoder_with_past_model.onnx (or, instead of those two,
// decoder_model_merged.onnx, which holds both behind its use_cache_branch
// input) and the tokenizer (tokenizer.json, or
// vocab.json with added_tokens.json) and, when present,
// generation_config.json (an English-only model's is_multilingual false:
// no language or task tokens in its prompt). A batch's audio is cut into 30 s
// windows; each round encodes the next window of every clip that has one
// (the encoder batches across requests), detects the language on the first
// window when the config does not fix it, then decodes: greedily, or by
// beam search with beam_size above 1. The first step runs decoder_model on
// the prompt (<|startoftranscript|>, language, task, and <|notimestamps|>
// without timestamps), every later step runs decoder_with_past_model on one
// new token per hypothesis with the key/value cache the steps before
// returned, the hypotheses of all windows batched together (a window that
// is done leaves the batch; the cache's rows follow each hypothesis's
// parent). A window whose text repeats itself (zlib compresses it more than
// 2.4 times) or whose tokens average a log-probability below -1 is decoded
// again by sampling at temperatures 0.2, 0.4, ... 1.0 (Whisper's fallback).
// Timestamp tokens follow Whisper's rules (pairs, never decreasing, the
// first within 1 s) and cut
// the window's tokens into segments; the next window starts where the last
// complete segment ended, so speech cut at a window's edge is heard again
// whole. Tokens become text through the byte-level BPE's symbols.
//
// Config: one input (`audio` BYTES [1], any container DecodeAudio reads) and
// three outputs, BYTES [1] each: `text`, `language` (the code, "en") and
// `segments` (a JSON array of {id, seek, start, end, text, tokens,
// avg_logprob, temperature, compression_ratio}). parameters: language (a
// code, or auto: detected), task (transcribe or translate), timestamps
// (true or false), max_new_tokens per window (default 224), beam_size
// (default 1), temperature_fallback (true or false), kv_cache (false
// re-runs decoder_model on the whole sequence each step: for measuring the
// cache), max_seconds.
#pragma once

#include "model/backend.h"
#include "preprocess/audio.h"

namespace braid {

inline constexpr char kWhisperBackend[] = "whisper";

BackendFactory MakeWhisperBackend(const AudioLimits& server);

}  // namespace braid
