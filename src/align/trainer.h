// Trains the alignment heads: mini-batch Adam on the symmetric InfoNCE loss
// (align/heads.h), in Eigen, on one thread.
//
// Inputs are standardised per modality (mean removed, divided by the RMS
// per coordinate) for training and the standardisation is folded back into
// the weights and biases at the end, so the heads take raw embeddings, as
// the served model does. The learning rate follows a cosine decay to zero
// over all steps. A learned temperature stays within [0.01, 1] (CLIP's clamp).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "align/heads.h"
#include "align/metrics.h"
#include "align/pairs.h"
#include "core/status.h"

namespace braid::align {

struct TrainOptions {
  int epochs = 10;
  std::int64_t batch_size = 256;  // lowered to the training count when above it
  double learning_rate = 1e-2;    // Adam's step size at the start
  double temperature = 0.07;      // fixed, or the start when learned
  bool learn_temperature = false;
  std::int64_t output_dim = kAlignDim;
  std::uint32_t seed = 1;  // initial weights and batch order
};

struct EpochProgress {
  int epoch = 0;    // 1-based
  double loss = 0;  // mean training loss over the epoch's batches
  double temperature = 0;
  CrossModalMetrics validation;
  double elapsed_s = 0;  // since training started
};

struct TrainResult {
  AlignHeads initial;  // the untrained heads training started from
  AlignHeads heads;    // the trained heads
  std::vector<EpochProgress> epochs;
  double seconds = 0;  // training time, validation included
};

// Trains on `train`, measuring retrieval on `validation` after every epoch
// and calling `on_epoch` (when set) with it. InvalidArgument for empty or
// mismatched sets, fewer than 2 training pairs, or options out of range.
// Blocks for the whole training.
Result<TrainResult> TrainAlignHeads(const EmbeddingPairs& train, const EmbeddingPairs& validation,
                                    const TrainOptions& options,
                                    const std::function<void(const EpochProgress&)>& on_epoch);

}  // namespace braid::align
