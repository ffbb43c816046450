// The graph of the served `align` model, shared by the seeded stand-in
// (tools/modelgen) and the heads `braid align train` writes, so that both
// have the same inputs, outputs and operators:
//
//   {modality}_embeds [N, in_dim]
//     → MatMul {modality}_head.weight [in_dim, out_dim]
//     → Add {modality}_head.bias [out_dim]
//     → LpNormalization (p = 2, last axis) → {modality}_aligned [N, out_dim]
//
// for modality image and text, in that order.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "onnxgen/graph_builder.h"

namespace braid::onnxgen {

inline constexpr const char* kAlignModalities[] = {"image", "text"};

// Adds the initializers of one head: `weight` [in_dim, out_dim] and `bias`
// [out_dim], named as given.
using AddHeadWeights = std::function<void(GraphBuilder& g, const std::string& modality,
                                          const std::string& weight, const std::string& bias)>;

void BuildAlignGraph(GraphBuilder& g, std::int64_t in_dim, std::int64_t out_dim,
                     const AddHeadWeights& add_weights);

}  // namespace braid::onnxgen
