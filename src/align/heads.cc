#include "align/heads.h"

#include <cmath>
#include <random>

namespace braid::align {
namespace {

struct Projection {
  Matrix linear;          // x W + b
  Eigen::VectorXf norms;  // ||x W + b|| per row
  Matrix normalized;      // (x W + b) / norms
};

Projection ProjectRows(const Matrix& x, const Matrix& weight, const RowVector& bias) {
  Projection p;
  p.linear = x * weight;
  p.linear.rowwise() += bias;
  p.norms = p.linear.rowwise().norm().cwiseMax(1e-12f);
  p.normalized = p.norms.cwiseInverse().asDiagonal() * p.linear;
  return p;
}

// Back through y = z / ||z|| and z = x W + b, given d loss / d y.
void Backward(const Matrix& x, const Projection& p, const Matrix& d_normalized, Matrix* d_weight,
              RowVector* d_bias) {
  const Matrix d_linear = NormalizationBackward(p.normalized, p.norms, d_normalized);
  *d_weight = x.transpose() * d_linear;
  *d_bias = d_linear.colwise().sum();
}

// Softmax of each row of `logits`, stabilised by the row's maximum; adds
// the rows' log-sum-exp minus their diagonal entry (the cross-entropy of
// the right column) to *loss.
Matrix RowSoftmax(const Matrix& logits, double* loss) {
  Matrix out(logits.rows(), logits.cols());
  for (Eigen::Index i = 0; i < logits.rows(); ++i) {
    const float max = logits.row(i).maxCoeff();
    out.row(i) = (logits.row(i).array() - max).exp();
    const float sum = out.row(i).sum();
    out.row(i) /= sum;
    *loss += std::log(static_cast<double>(sum)) + max - logits(i, i);
  }
  return out;
}

}  // namespace

Matrix NormalizationBackward(const Matrix& normalized, const Eigen::VectorXf& norms,
                             const Matrix& d_normalized) {
  const Eigen::VectorXf along = (d_normalized.array() * normalized.array()).rowwise().sum();
  return norms.cwiseInverse().asDiagonal() *
         (d_normalized - Matrix(along.asDiagonal() * normalized));
}

double SymmetricInfoNce(const Matrix& u, const Matrix& v, float scale, Matrix* d_u, Matrix* d_v,
                        float* d_log_scale) {
  const Matrix logits = scale * (u * v.transpose());
  const auto n = static_cast<double>(u.rows());
  double loss = 0;
  const Matrix image_to_text = RowSoftmax(logits, &loss);
  const Matrix text_to_image = RowSoftmax(logits.transpose(), &loss);
  loss /= 2 * n;
  if (d_u == nullptr) return loss;
  // d loss / d logits: each direction contributes (softmax - onehot) / (2n).
  Matrix d_logits = image_to_text + text_to_image.transpose();
  d_logits.diagonal().array() -= 2.0f;
  d_logits /= static_cast<float>(2 * n);
  *d_log_scale = (d_logits.array() * logits.array()).sum();
  *d_u = scale * d_logits * v;
  *d_v = scale * d_logits.transpose() * u;
  return loss;
}

float AlignHeads::temperature() const { return std::exp(-log_scale); }

Matrix AlignHeads::ProjectImages(const Matrix& images) const {
  return ProjectRows(images, image_weight, image_bias).normalized;
}

Matrix AlignHeads::ProjectTexts(const Matrix& texts) const {
  return ProjectRows(texts, text_weight, text_bias).normalized;
}

EmbeddingPairs AlignHeads::Project(const EmbeddingPairs& pairs) const {
  return {ProjectImages(pairs.images), ProjectTexts(pairs.texts)};
}

AlignHeads InitialHeads(std::int64_t input_dim, std::int64_t output_dim, float temperature,
                        std::uint32_t seed) {
  std::mt19937 random(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f / std::sqrt(static_cast<float>(input_dim)));
  auto draw = [&] {
    Matrix weight(input_dim, output_dim);
    for (Eigen::Index i = 0; i < weight.size(); ++i) weight.data()[i] = normal(random);
    return weight;
  };
  AlignHeads heads;
  heads.image_weight = draw();
  heads.text_weight = draw();
  heads.image_bias = RowVector::Zero(output_dim);
  heads.text_bias = RowVector::Zero(output_dim);
  heads.log_scale = -std::log(temperature);
  return heads;
}

double ContrastiveLoss(const AlignHeads& heads, const EmbeddingPairs& batch,
                       HeadGradients* gradient) {
  const Projection u = ProjectRows(batch.images, heads.image_weight, heads.image_bias);
  const Projection v = ProjectRows(batch.texts, heads.text_weight, heads.text_bias);
  const float scale = std::exp(heads.log_scale);
  if (gradient == nullptr) return SymmetricInfoNce(u.normalized, v.normalized, scale);
  Matrix d_u, d_v;
  const double loss =
      SymmetricInfoNce(u.normalized, v.normalized, scale, &d_u, &d_v, &gradient->log_scale);
  Backward(batch.images, u, d_u, &gradient->image_weight, &gradient->image_bias);
  Backward(batch.texts, v, d_v, &gradient->text_weight, &gradient->text_bias);
  return loss;
}

}  // namespace braid::align
