// Synthetic paired embeddings with a known shared structure, so that
// alignment has something real to learn and its ceiling is known.
//
// Each pair shares a latent z ~ N(0, I_L). The two modalities see it through
// different random linear "encoders", each adding directions of its own that
// carry nothing about the pairing, isotropic noise and a constant offset
// (CLIP's modality gap):
//
//   image = A z + C_image u + noise * e + m_image,   u ~ N(0, I_M), e ~ N(0, I_D)
//   text  = B z + C_text  v + noise * f + m_text,    v ~ N(0, I_M), f ~ N(0, I_D)
//
// A and B are independent, so raw cosine between an image and a text is near
// chance, while linear heads can recover z from either side. The oracle is
// the best linear estimate of z from each side, E[z | image] and
// E[z | text], computed with the true maps: its recall is what perfect
// linear heads would reach on these pairs (the ceiling training aims at).
#pragma once

#include <cstdint>

#include "align/pairs.h"
#include "core/status.h"

namespace braid::align {

struct SyntheticOptions {
  std::int64_t count = 10000;
  std::int64_t dim = kEmbedDim;
  std::int64_t latent_dim = 32;    // L: what the pairs share
  std::int64_t nuisance_dim = 32;  // M: per-modality directions unrelated to the pairing
  double noise = 0.8;              // std of the isotropic noise per coordinate
  // Seeds the "encoders" (A, B, C_image, C_text, the offsets): sets drawn with
  // the same world_seed come from the same two embedding models.
  std::uint32_t world_seed = 1;
  std::uint32_t seed = 1;  // seeds the pairs drawn (z, u, v, e, f)
};

struct SyntheticPairs {
  EmbeddingPairs pairs;   // [count, dim] each
  EmbeddingPairs oracle;  // E[z | image] and E[z | text], [count, latent_dim] each
};

// InvalidArgument for counts or dims below 1, a latent_dim above dim, or a
// negative noise.
Result<SyntheticPairs> GenerateSyntheticPairs(const SyntheticOptions& options);

}  // namespace braid::align
