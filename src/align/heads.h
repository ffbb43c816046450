// The alignment heads: two linear projections, one per modality, each
// followed by L2 normalisation, and the symmetric InfoNCE (CLIP) loss that
// trains them.
#pragma once

#include <cstdint>

#include "align/pairs.h"

namespace braid::align {

struct AlignHeads {
  Matrix image_weight;   // [D, K]
  RowVector image_bias;  // [K]
  Matrix text_weight;    // [D, K]
  RowVector text_bias;   // [K]
  // log(1 / temperature): the loss scales cosine similarities by exp(log_scale).
  float log_scale = 0;

  std::int64_t input_dim() const { return image_weight.rows(); }
  std::int64_t output_dim() const { return image_weight.cols(); }
  float temperature() const;
  // Rows of `images` ([N, D]) through the image head: normalize(x W + b),
  // exactly what the exported ONNX model computes.
  Matrix ProjectImages(const Matrix& images) const;
  Matrix ProjectTexts(const Matrix& texts) const;
  EmbeddingPairs Project(const EmbeddingPairs& pairs) const;
};

// Weights N(0, 1/D) (a random projection, which roughly keeps cosines),
// biases 0, the given temperature. Deterministic for a seed.
AlignHeads InitialHeads(std::int64_t input_dim, std::int64_t output_dim, float temperature,
                        std::uint32_t seed);

// The gradient of the loss, shaped like the heads.
struct HeadGradients {
  Matrix image_weight;
  RowVector image_bias;
  Matrix text_weight;
  RowVector text_bias;
  float log_scale = 0;
};

// The symmetric InfoNCE loss of row-aligned unit vectors u and v ([N, K]):
// logits S_ij = scale * (u_i . v_j), loss = (mean_i CE(S_i., i) +
// mean_j CE(S_.j, j)) / 2. With d_u set, fills d loss / d u, d loss / d v and
// d loss / d log(scale).
double SymmetricInfoNce(const Matrix& u, const Matrix& v, float scale, Matrix* d_u = nullptr,
                        Matrix* d_v = nullptr, float* d_log_scale = nullptr);

// Back through y = z / ||z|| row by row: d loss / d z from d loss / d y,
// given y (`normalized`) and ||z|| (`norms`).
Matrix NormalizationBackward(const Matrix& normalized, const Eigen::VectorXf& norms,
                             const Matrix& d_normalized);

// The symmetric InfoNCE loss of one batch: with u_i, v_i the projected image
// and text of pair i and s = exp(log_scale), logits S_ij = s * (u_i . v_j);
// loss = (mean_i CE(S_i., i) + mean_j CE(S_.j, j)) / 2, the mean cross-entropy
// of picking the right text for each image and the right image for each text.
// Fills `gradient` (when not null) with d loss / d heads.
double ContrastiveLoss(const AlignHeads& heads, const EmbeddingPairs& batch,
                       HeadGradients* gradient);

}  // namespace braid::align
