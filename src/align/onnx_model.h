// The alignment heads as the served `align` ONNX model
// (onnxgen/align_graph.h): writing trained heads, and running any model with
// that interface through ONNX Runtime, as braid serves it. And the text
// embedder as the served `text-embed` model (onnxgen/text_graph.h).
#pragma once

#include <filesystem>

#include "align/heads.h"
#include "align/pairs.h"
#include "align/text_trainer.h"
#include "core/status.h"

namespace braid::align {

// Writes `heads` as an ONNX model that takes image_embeds and text_embeds
// [N, D] and gives image_aligned and text_aligned [N, K]; the temperature
// goes into the model's metadata (braid.align.temperature).
Status ExportAlignModel(const AlignHeads& heads, const std::filesystem::path& path);

// Runs the align model in `path` with ONNX Runtime (one session, batches of
// up to 1024 rows) on both sides of `pairs`; returns the aligned rows.
// InvalidArgument, naming the file, when it cannot be loaded or its inputs
// do not take pairs.dim()-wide embeddings. Blocks.
Result<EmbeddingPairs> RunAlignModel(const std::filesystem::path& path,
                                     const EmbeddingPairs& pairs);

// Writes `encoder` into the model version folder `dir` (created when
// missing): model.onnx, which takes input_ids [N, max_features] and gives
// text_embeds [N, dim], and the tokenizer.json of its features.
Status ExportTextEmbedModel(const TextEncoder& encoder, const std::filesystem::path& dir);

}  // namespace braid::align
