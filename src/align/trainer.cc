#include "align/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numbers>
#include <numeric>
#include <random>
#include <span>

namespace braid::align {
namespace {

constexpr float kMinLogScale = 0.0f;          // temperature 1
const float kMaxLogScale = std::log(100.0f);  // temperature 0.01

// x' = (x - mean) / scale, with scale the RMS of (x - mean) per coordinate.
struct Standardization {
  RowVector mean;
  float scale = 1;

  explicit Standardization(const Matrix& x) {
    mean = x.colwise().mean();
    const double squares = (x.rowwise() - mean).squaredNorm();
    scale = static_cast<float>(std::sqrt(squares / static_cast<double>(x.size())));
    if (!(scale > 0)) scale = 1;
  }
  Matrix Apply(const Matrix& x) const { return (x.rowwise() - mean) / scale; }
  // Heads on standardised inputs as heads on raw ones: x' W + b =
  // x (W / scale) + (b - mean W / scale).
  void Fold(const Matrix& weight, const RowVector& bias, Matrix* raw_weight,
            RowVector* raw_bias) const {
    *raw_weight = weight / scale;
    *raw_bias = bias - mean * *raw_weight;
  }
};

// Adam's moment estimates for one parameter.
template <typename T>
struct Moments {
  T first;
  T second;
  explicit Moments(const T& like)
      : first(T::Zero(like.rows(), like.cols())), second(T::Zero(like.rows(), like.cols())) {}

  void Step(T& parameter, const T& gradient, float rate, float correction1, float correction2) {
    constexpr float kBeta1 = 0.9f, kBeta2 = 0.999f, kEpsilon = 1e-8f;
    first = kBeta1 * first + (1 - kBeta1) * gradient;
    second = kBeta2 * second + (1 - kBeta2) * gradient.cwiseAbs2();
    parameter.array() -=
        rate * (first.array() / correction1) / ((second.array() / correction2).sqrt() + kEpsilon);
  }
};

Status CheckInputs(const EmbeddingPairs& train, const EmbeddingPairs& validation,
                   const TrainOptions& options) {
  if (train.count() < 2) {
    return InvalidArgument("training needs at least 2 pairs, not {}", train.count());
  }
  if (validation.count() < 1) return InvalidArgument("validation needs at least 1 pair");
  for (const auto* set : {&train, &validation}) {
    if (set->texts.rows() != set->count() || set->texts.cols() != set->dim() ||
        set->dim() != train.dim()) {
      return InvalidArgument("image and text embeddings must have the same count and width");
    }
  }
  if (options.epochs < 1) {
    return InvalidArgument("epochs must be at least 1, not {}", options.epochs);
  }
  if (options.batch_size < 2) {
    return InvalidArgument("batch size must be at least 2 (InfoNCE needs negatives), not {}",
                           options.batch_size);
  }
  if (!(options.learning_rate > 0)) {
    return InvalidArgument("learning rate must be above 0, not {}", options.learning_rate);
  }
  if (!(options.temperature >= 0.01 && options.temperature <= 1)) {
    return InvalidArgument("temperature must be between 0.01 and 1, not {}", options.temperature);
  }
  if (options.output_dim < 1) {
    return InvalidArgument("output dim must be at least 1, not {}", options.output_dim);
  }
  return Status::Ok();
}

}  // namespace

Result<TrainResult> TrainAlignHeads(const EmbeddingPairs& train, const EmbeddingPairs& validation,
                                    const TrainOptions& options,
                                    const std::function<void(const EpochProgress&)>& on_epoch) {
  BRAID_RETURN_IF_ERROR(CheckInputs(train, validation, options));
  const auto start = std::chrono::steady_clock::now();
  const Standardization image_standard(train.images), text_standard(train.texts);
  const EmbeddingPairs standardized{image_standard.Apply(train.images),
                                    text_standard.Apply(train.texts)};
  auto to_raw = [&](const AlignHeads& heads) {
    AlignHeads raw = heads;
    image_standard.Fold(heads.image_weight, heads.image_bias, &raw.image_weight, &raw.image_bias);
    text_standard.Fold(heads.text_weight, heads.text_bias, &raw.text_weight, &raw.text_bias);
    return raw;
  };

  AlignHeads heads = InitialHeads(train.dim(), options.output_dim,
                                  static_cast<float>(options.temperature), options.seed);
  TrainResult result;
  result.initial = to_raw(heads);

  Moments<Matrix> image_weight(heads.image_weight), text_weight(heads.text_weight);
  Moments<RowVector> image_bias(heads.image_bias), text_bias(heads.text_bias);
  Moments<Eigen::Matrix<float, 1, 1>> log_scale(Eigen::Matrix<float, 1, 1>::Zero());

  const std::int64_t batch = std::min(options.batch_size, train.count());
  const std::int64_t steps_per_epoch = train.count() / batch;
  const std::int64_t total_steps = steps_per_epoch * options.epochs;
  std::vector<std::int64_t> order(train.count());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 random(options.seed);
  std::int64_t step = 0;
  HeadGradients gradient;
  for (int epoch = 1; epoch <= options.epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), random);
    double loss_sum = 0;
    for (std::int64_t b = 0; b < steps_per_epoch; ++b) {
      std::span<const std::int64_t> rows(order.data() + b * batch, batch);
      const EmbeddingPairs pairs{GatherRows(standardized.images, rows),
                                 GatherRows(standardized.texts, rows)};
      loss_sum += ContrastiveLoss(heads, pairs, &gradient);
      ++step;
      const float rate = static_cast<float>(
          options.learning_rate * 0.5 *
          (1 + std::cos(std::numbers::pi * static_cast<double>(step - 1) / total_steps)));
      const float correction1 = 1 - std::pow(0.9f, static_cast<float>(step));
      const float correction2 = 1 - std::pow(0.999f, static_cast<float>(step));
      image_weight.Step(heads.image_weight, gradient.image_weight, rate, correction1, correction2);
      image_bias.Step(heads.image_bias, gradient.image_bias, rate, correction1, correction2);
      text_weight.Step(heads.text_weight, gradient.text_weight, rate, correction1, correction2);
      text_bias.Step(heads.text_bias, gradient.text_bias, rate, correction1, correction2);
      if (options.learn_temperature) {
        Eigen::Matrix<float, 1, 1> value{heads.log_scale}, grad{gradient.log_scale};
        log_scale.Step(value, grad, rate, correction1, correction2);
        heads.log_scale = std::clamp(value(0), kMinLogScale, kMaxLogScale);
      }
    }
    EpochProgress progress;
    progress.epoch = epoch;
    progress.loss = loss_sum / static_cast<double>(steps_per_epoch);
    progress.temperature = heads.temperature();
    progress.validation = EvaluateCrossModal(to_raw(heads).Project(validation));
    progress.elapsed_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.epochs.push_back(progress);
    if (on_epoch) on_epoch(progress);
  }
  result.heads = to_raw(heads);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace braid::align
