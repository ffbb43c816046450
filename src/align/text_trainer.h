// braid's own text embedder: hashed word and character n-gram features
// (preprocess/ngram_tokenizer.h), one learned vector per feature, summed and
// L2-normalised. Trained here with the symmetric InfoNCE loss of
// align/heads.h over text pairs (both sides through the same encoder, the
// other pairs of the batch as negatives) by Adam with lazy sparse updates:
// a step touches only the rows of the features its batch holds. One thread,
// seeded, so the same pairs and options give the same weights.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "align/pairs.h"
#include "align/wordnet.h"
#include "core/status.h"
#include "preprocess/ngram_tokenizer.h"

namespace braid::align {

// Changes whenever the features, the pairs or the training change, so that
// models trained before are not taken for what the code trains now.
inline constexpr int kTextEmbedRevision = 1;

struct TextEncoder {
  NgramSpec spec;
  Matrix table;  // [spec.rows(), dim]; row kPadFeature stays zero

  std::int64_t dim() const { return table.cols(); }
  // The L2-normalised embeddings of `texts`, [N, dim]: what the exported
  // model computes from the tokenizer's ids.
  Matrix Encode(std::span<const std::string> texts) const;
};

struct TextTrainOptions {
  int epochs = 4;
  std::int64_t batch_size = 512;
  double learning_rate = 0.02;  // Adam's step size at the start, cosine decay to 0
  double temperature = 0.1;
  std::int64_t dim = 96;
  std::uint32_t seed = 1;  // initial weights and batch order
};

struct TextEpoch {
  int epoch = 0;    // 1-based
  double loss = 0;  // mean training loss over the epoch's batches
  double elapsed_s = 0;
};

// Trains on `pairs`. InvalidArgument for fewer than 2 pairs or options out
// of range. Calls `on_epoch` (when set) after each epoch. Blocks throughout.
Result<TextEncoder> TrainTextEncoder(const std::vector<TextPair>& pairs, const NgramSpec& spec,
                                     const TextTrainOptions& options,
                                     const std::function<void(const TextEpoch&)>& on_epoch);

}  // namespace braid::align
