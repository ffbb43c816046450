// The graph of braid's text embedder (`text-embed`, align/text_trainer.h):
//
//   input_ids [N, max_features] INT64 (hashed n-gram features, 0 pads)
//     → Gather embedding [rows, dim] (row 0 is zero)
//     → ReduceSum over the features
//     → LpNormalization (p = 2, last axis) → text_embeds [N, dim]
#pragma once

#include <cstdint>
#include <vector>

#include "onnxgen/graph_builder.h"

namespace braid::onnxgen {

// `table` holds rows × dim floats, row-major.
void BuildTextEmbedGraph(GraphBuilder& g, std::int64_t max_features, std::int64_t rows,
                         std::int64_t dim, const std::vector<float>& table);

}  // namespace braid::onnxgen
