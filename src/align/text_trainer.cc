#include "align/text_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numbers>
#include <numeric>
#include <random>
#include <unordered_map>

#include "align/heads.h"

namespace braid::align {
namespace {

// Every distinct text of the pairs once, as its feature ids.
struct FeaturedTexts {
  std::vector<std::int32_t> features;  // all texts' features, one after another
  std::vector<std::size_t> offsets;    // text t: [offsets[t], offsets[t + 1])

  std::span<const std::int32_t> Of(std::size_t text) const {
    return {features.data() + offsets[text], offsets[text + 1] - offsets[text]};
  }
};

// Sums the table rows of each text's features: [texts.size(), dim].
Matrix SumRows(const Matrix& table, const FeaturedTexts& featured,
               std::span<const std::size_t> texts) {
  Matrix sums = Matrix::Zero(static_cast<Eigen::Index>(texts.size()), table.cols());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    for (std::int32_t f : featured.Of(texts[i]))
      sums.row(static_cast<Eigen::Index>(i)) += table.row(f);
  }
  return sums;
}

// Adam over the rows a step touched; the moments of the other rows wait
// (lazy Adam).
class SparseAdam {
 public:
  SparseAdam(Eigen::Index rows, Eigen::Index cols)
      : gradient_(Matrix::Zero(rows, cols)),
        first_(Matrix::Zero(rows, cols)),
        second_(Matrix::Zero(rows, cols)),
        touched_flag_(static_cast<std::size_t>(rows), false) {}

  void Add(std::int32_t row, const Eigen::Ref<const RowVector>& gradient) {
    if (!touched_flag_[row]) {
      touched_flag_[row] = true;
      touched_.push_back(row);
    }
    gradient_.row(row) += gradient;
  }

  void Step(Matrix& table, float rate, std::int64_t step) {
    constexpr float kBeta1 = 0.9f, kBeta2 = 0.999f, kEpsilon = 1e-8f;
    const float correction1 = 1 - std::pow(kBeta1, static_cast<float>(step));
    const float correction2 = 1 - std::pow(kBeta2, static_cast<float>(step));
    for (std::int32_t row : touched_) {
      auto g = gradient_.row(row).array();
      auto m = first_.row(row).array();
      auto v = second_.row(row).array();
      m = kBeta1 * m + (1 - kBeta1) * g;
      v = kBeta2 * v + (1 - kBeta2) * g.square();
      table.row(row).array() -= rate * (m / correction1) / ((v / correction2).sqrt() + kEpsilon);
      gradient_.row(row).setZero();
      touched_flag_[row] = false;
    }
    touched_.clear();
  }

 private:
  Matrix gradient_, first_, second_;
  std::vector<bool> touched_flag_;
  std::vector<std::int32_t> touched_;
};

Status CheckOptions(const std::vector<TextPair>& pairs, const NgramSpec& spec,
                    const TextTrainOptions& options) {
  if (pairs.size() < 2)
    return InvalidArgument("training needs at least 2 pairs, not {}", pairs.size());
  if (options.epochs < 1)
    return InvalidArgument("epochs must be at least 1, not {}", options.epochs);
  if (options.batch_size < 2) {
    return InvalidArgument("batch size must be at least 2 (InfoNCE needs negatives), not {}",
                           options.batch_size);
  }
  if (!(options.learning_rate > 0))
    return InvalidArgument("learning rate must be above 0, not {}", options.learning_rate);
  if (!(options.temperature >= 0.01 && options.temperature <= 1))
    return InvalidArgument("temperature must be between 0.01 and 1, not {}", options.temperature);
  if (options.dim < 1) return InvalidArgument("dim must be at least 1, not {}", options.dim);
  if (spec.rows() > std::numeric_limits<std::int32_t>::max())
    return InvalidArgument("{} feature rows do not fit 32-bit ids", spec.rows());
  return Status::Ok();
}

}  // namespace

Matrix TextEncoder::Encode(std::span<const std::string> texts) const {
  FeaturedTexts featured;
  featured.offsets.push_back(0);
  for (const auto& text : texts) {
    for (std::int64_t f : NgramFeatures(text, spec))
      featured.features.push_back(static_cast<std::int32_t>(f));
    featured.offsets.push_back(featured.features.size());
  }
  std::vector<std::size_t> all(texts.size());
  std::iota(all.begin(), all.end(), 0);
  return NormalizedRows(SumRows(table, featured, all));
}

Result<TextEncoder> TrainTextEncoder(const std::vector<TextPair>& pairs, const NgramSpec& spec,
                                     const TextTrainOptions& options,
                                     const std::function<void(const TextEpoch&)>& on_epoch) {
  BRAID_RETURN_IF_ERROR(CheckOptions(pairs, spec, options));
  const auto start = std::chrono::steady_clock::now();

  FeaturedTexts featured;
  featured.offsets.push_back(0);
  std::unordered_map<std::string_view, std::size_t> index;
  auto text_index = [&](const std::string& text) {
    auto [it, added] = index.emplace(text, featured.offsets.size() - 1);
    if (added) {
      for (std::int64_t f : NgramFeatures(text, spec))
        featured.features.push_back(static_cast<std::int32_t>(f));
      featured.offsets.push_back(featured.features.size());
    }
    return it->second;
  };
  std::vector<std::pair<std::size_t, std::size_t>> indexed;
  indexed.reserve(pairs.size());
  for (const auto& pair : pairs)
    indexed.emplace_back(text_index(pair.first), text_index(pair.second));

  TextEncoder encoder;
  encoder.spec = spec;
  encoder.table = Matrix(spec.rows(), options.dim);
  std::mt19937 random(options.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f / std::sqrt(static_cast<float>(options.dim)));
  for (Eigen::Index i = 0; i < encoder.table.size(); ++i) encoder.table.data()[i] = normal(random);
  encoder.table.row(kPadFeature).setZero();

  SparseAdam adam(encoder.table.rows(), encoder.table.cols());
  const auto batch = static_cast<std::size_t>(
      std::min<std::int64_t>(options.batch_size, static_cast<std::int64_t>(indexed.size())));
  const std::size_t steps_per_epoch = indexed.size() / batch;
  const auto total_steps = static_cast<double>(steps_per_epoch * options.epochs);
  const auto scale = static_cast<float>(1 / options.temperature);
  std::vector<std::size_t> order(indexed.size());
  std::iota(order.begin(), order.end(), 0);
  std::vector<std::size_t> firsts(batch), seconds(batch);
  std::int64_t step = 0;
  for (int epoch = 1; epoch <= options.epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), random);
    double loss_sum = 0;
    for (std::size_t b = 0; b < steps_per_epoch; ++b) {
      for (std::size_t i = 0; i < batch; ++i) {
        std::tie(firsts[i], seconds[i]) = indexed[order[b * batch + i]];
      }
      const Matrix z_first = SumRows(encoder.table, featured, firsts);
      const Matrix z_second = SumRows(encoder.table, featured, seconds);
      const Eigen::VectorXf n_first = z_first.rowwise().norm().cwiseMax(1e-12f);
      const Eigen::VectorXf n_second = z_second.rowwise().norm().cwiseMax(1e-12f);
      const Matrix u = n_first.cwiseInverse().asDiagonal() * z_first;
      const Matrix v = n_second.cwiseInverse().asDiagonal() * z_second;
      Matrix d_u, d_v;
      float d_log_scale = 0;
      loss_sum += SymmetricInfoNce(u, v, scale, &d_u, &d_v, &d_log_scale);
      const Matrix d_first = NormalizationBackward(u, n_first, d_u);
      const Matrix d_second = NormalizationBackward(v, n_second, d_v);
      for (std::size_t i = 0; i < batch; ++i) {
        for (std::int32_t f : featured.Of(firsts[i]))
          adam.Add(f, d_first.row(static_cast<Eigen::Index>(i)));
        for (std::int32_t f : featured.Of(seconds[i]))
          adam.Add(f, d_second.row(static_cast<Eigen::Index>(i)));
      }
      ++step;
      const auto rate = static_cast<float>(
          options.learning_rate * 0.5 *
          (1 + std::cos(std::numbers::pi * static_cast<double>(step - 1) / total_steps)));
      adam.Step(encoder.table, rate, step);
    }
    TextEpoch progress;
    progress.epoch = epoch;
    progress.loss = loss_sum / static_cast<double>(steps_per_epoch);
    progress.elapsed_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (on_epoch) on_epoch(progress);
  }
  return encoder;
}

}  // namespace braid::align
