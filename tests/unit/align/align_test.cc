// The alignment heads: the loss gradient against finite differences,
// training against the untrained heads and the synthetic oracle, the ONNX
// export against the trainer's own forward pass (run through ONNX Runtime,
// and served from a repository with the stock align config), the metrics
// on cases worked out by hand, and the errors bad pairs files give.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "align/heads.h"
#include "align/metrics.h"
#include "align/onnx_model.h"
#include "align/pairs.h"
#include "align/synthetic.h"
#include "align/trainer.h"
#include "backends/backends.h"
#include "core/npy.h"
#include "model/repository.h"
#include "support/temp_dir.h"

namespace braid::align {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

Matrix RandomMatrix(Eigen::Index rows, Eigen::Index cols, std::mt19937& random) {
  std::normal_distribution<float> normal;
  Matrix out(rows, cols);
  for (Eigen::Index i = 0; i < out.size(); ++i) out.data()[i] = normal(random);
  return out;
}

// Heads with every parameter away from its initial value, biases included.
AlignHeads PerturbedHeads(std::int64_t in, std::int64_t out, std::uint32_t seed) {
  std::mt19937 random(seed);
  AlignHeads heads = InitialHeads(in, out, 0.3f, seed);
  heads.image_bias = 0.3f * RandomMatrix(1, out, random);
  heads.text_bias = 0.3f * RandomMatrix(1, out, random);
  return heads;
}

// The directional derivative of the loss along a random direction of one
// parameter, by central differences, against the analytic gradient's.
TEST(AlignLossTest, GradientMatchesFiniteDifferences) {
  std::mt19937 random(7);
  const EmbeddingPairs batch{RandomMatrix(6, 8, random), RandomMatrix(6, 8, random)};
  const AlignHeads heads = PerturbedHeads(8, 4, 3);
  HeadGradients gradient;
  ContrastiveLoss(heads, batch, &gradient);

  auto check = [&](const char* name, auto member, auto gradient_of) {
    AlignHeads plus = heads, minus = heads;
    auto& p = plus.*member;
    const Matrix direction = RandomMatrix(p.rows(), p.cols(), random);
    constexpr float kStep = 1e-2f;
    p.array() += kStep * direction.array();
    (minus.*member).array() -= kStep * direction.array();
    const double numeric =
        (ContrastiveLoss(plus, batch, nullptr) - ContrastiveLoss(minus, batch, nullptr)) /
        (2 * kStep);
    const double analytic = (gradient_of(gradient).array() * direction.array()).sum();
    EXPECT_NEAR(analytic, numeric, 2e-3 + 2e-2 * std::abs(numeric)) << name;
    EXPECT_GT(std::abs(numeric), 1e-3) << name << ": the direction should change the loss";
  };
  check("image_weight", &AlignHeads::image_weight, [](auto& g) { return g.image_weight; });
  check("text_weight", &AlignHeads::text_weight, [](auto& g) { return g.text_weight; });
  check("image_bias", &AlignHeads::image_bias, [](auto& g) { return Matrix(g.image_bias); });
  check("text_bias", &AlignHeads::text_bias, [](auto& g) { return Matrix(g.text_bias); });

  AlignHeads hotter = heads, colder = heads;
  hotter.log_scale += 1e-2f;
  colder.log_scale -= 1e-2f;
  const double numeric =
      (ContrastiveLoss(hotter, batch, nullptr) - ContrastiveLoss(colder, batch, nullptr)) / 2e-2;
  EXPECT_NEAR(gradient.log_scale, numeric, 2e-3 + 2e-2 * std::abs(numeric));
}

TEST(AlignLossTest, PerfectlyAlignedPairsHaveLowLossAndShuffledOnesHigh) {
  std::mt19937 random(1);
  const Matrix x = RandomMatrix(16, 8, random);
  AlignHeads heads = InitialHeads(8, 8, 0.05f, 2);
  heads.text_weight = heads.image_weight;
  const double aligned = ContrastiveLoss(heads, {x, x}, nullptr);
  const double shuffled = ContrastiveLoss(heads, {x, x.colwise().reverse()}, nullptr);
  EXPECT_LT(aligned, 0.5);
  EXPECT_GT(shuffled, std::log(16.0));
}

SyntheticOptions SmallWorld(std::int64_t count, std::uint32_t seed) {
  SyntheticOptions options;
  options.count = count;
  options.seed = seed;
  return options;
}

TEST(AlignSyntheticTest, RawCosineIsNearChanceAndTheOracleIsHigh) {
  auto synthetic = GenerateSyntheticPairs(SmallWorld(1000, 5));
  ASSERT_TRUE(synthetic.ok()) << synthetic.status().ToString();
  EXPECT_EQ(synthetic->pairs.images.rows(), 1000);
  EXPECT_EQ(synthetic->pairs.images.cols(), kEmbedDim);
  EXPECT_EQ(synthetic->oracle.texts.cols(), 32);
  const auto raw = EvaluateCrossModal(synthetic->pairs);
  const auto oracle = EvaluateCrossModal(synthetic->oracle);
  const double chance = ChanceMetrics(1000).recall_at_10;
  EXPECT_LT(raw.text_to_image.recall_at_10, 3 * chance);
  EXPECT_LT(raw.image_to_text.recall_at_10, 3 * chance);
  EXPECT_GT(oracle.text_to_image.recall_at_10, 0.9);
  EXPECT_GT(oracle.image_to_text.recall_at_10, 0.9);
}

TEST(AlignSyntheticTest, SameWorldSeedSameEncodersOtherPairs) {
  auto a = GenerateSyntheticPairs(SmallWorld(50, 1));
  auto b = GenerateSyntheticPairs(SmallWorld(50, 1));
  auto c = GenerateSyntheticPairs(SmallWorld(50, 2));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->pairs.images, b->pairs.images);
  EXPECT_NE(a->pairs.images, c->pairs.images);
  // The offsets (the modality gap) belong to the world, not the draw.
  const RowVector mean_a = a->pairs.images.colwise().mean();
  const RowVector mean_c = c->pairs.images.colwise().mean();
  EXPECT_GT(mean_a.dot(mean_c) / (mean_a.norm() * mean_c.norm()), 0.5);
}

TEST(AlignSyntheticTest, RejectsBadOptions) {
  SyntheticOptions options = SmallWorld(10, 1);
  options.latent_dim = 600;
  EXPECT_THAT(GenerateSyntheticPairs(options).status().message(), HasSubstr("latent dim"));
  options = SmallWorld(0, 1);
  EXPECT_THAT(GenerateSyntheticPairs(options).status().message(), HasSubstr("count"));
}

// Training on synthetic pairs must take recall@10 on held-out pairs from
// about chance (untrained heads are a random projection) to nearly what the
// oracle reaches; a wrong gradient or a broken update stays near chance.
// Less noise than the default, so that 2400 pairs and a second of training
// get there.
TEST(AlignTrainerTest, TrainingRaisesHeldOutRecallTowardsTheOracle) {
  SyntheticOptions world = SmallWorld(3000, 11);
  world.noise = 0.5;
  auto synthetic = GenerateSyntheticPairs(world);
  ASSERT_TRUE(synthetic.ok());
  auto [train, validation] = SplitPairs(synthetic->pairs, 0.2, 4);
  const auto oracle = EvaluateCrossModal(SplitPairs(synthetic->oracle, 0.2, 4).second);
  TrainOptions options;
  options.epochs = 8;
  int epochs_seen = 0;
  auto result = TrainAlignHeads(train, validation, options,
                                [&](const EpochProgress& epoch) { epochs_seen = epoch.epoch; });
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(epochs_seen, 8);
  ASSERT_EQ(result->epochs.size(), 8u);
  EXPECT_LT(result->epochs.back().loss, result->epochs.front().loss);

  const auto untrained = EvaluateCrossModal(result->initial.Project(validation));
  const auto trained = EvaluateCrossModal(result->heads.Project(validation));
  for (auto direction : {&CrossModalMetrics::text_to_image, &CrossModalMetrics::image_to_text}) {
    const double before = (untrained.*direction).recall_at_10;
    const double after = (trained.*direction).recall_at_10;
    const double ceiling = (oracle.*direction).recall_at_10;
    EXPECT_LT(before, 0.1);
    EXPECT_GT(after, before + 0.5);
    EXPECT_GT(after, 0.9 * ceiling) << "oracle " << ceiling;
    EXPECT_GT((trained.*direction).map_at_10, (untrained.*direction).map_at_10 + 0.3);
  }
  EXPECT_DOUBLE_EQ(result->epochs.back().validation.text_to_image.recall_at_10,
                   trained.text_to_image.recall_at_10);
}

TEST(AlignTrainerTest, LearnsTheTemperatureWhenAsked) {
  auto synthetic = GenerateSyntheticPairs(SmallWorld(600, 3));
  ASSERT_TRUE(synthetic.ok());
  auto [train, validation] = SplitPairs(synthetic->pairs, 0.2, 1);
  TrainOptions options;
  options.epochs = 3;
  options.batch_size = 32;
  options.learning_rate = 0.02;
  options.temperature = 0.5;
  auto fixed = TrainAlignHeads(train, validation, options, nullptr);
  options.learn_temperature = true;
  auto learned = TrainAlignHeads(train, validation, options, nullptr);
  ASSERT_TRUE(fixed.ok() && learned.ok());
  EXPECT_FLOAT_EQ(fixed->heads.temperature(), 0.5f);
  EXPECT_LT(learned->heads.temperature(), 0.45f);
  EXPECT_GE(learned->heads.temperature(), 0.01f);
}

TEST(AlignTrainerTest, RejectsBadOptions) {
  std::mt19937 random(1);
  const EmbeddingPairs pairs{RandomMatrix(10, 4, random), RandomMatrix(10, 4, random)};
  TrainOptions options;
  options.batch_size = 1;
  EXPECT_THAT(TrainAlignHeads(pairs, pairs, options, nullptr).status().message(),
              HasSubstr("batch size"));
  options = {};
  options.temperature = 0;
  EXPECT_THAT(TrainAlignHeads(pairs, pairs, options, nullptr).status().message(),
              HasSubstr("temperature"));
  const EmbeddingPairs narrow{RandomMatrix(10, 3, random), RandomMatrix(10, 3, random)};
  EXPECT_THAT(TrainAlignHeads(pairs, narrow, {}, nullptr).status().message(),
              HasSubstr("same count and width"));
}

TEST(AlignExportTest, OnnxRuntimeGivesTheTrainersForwardPass) {
  testing::TempDir dir;
  const AlignHeads heads = PerturbedHeads(kEmbedDim, kAlignDim, 9);
  ASSERT_TRUE(ExportAlignModel(heads, dir.path() / "align.onnx").ok());
  std::mt19937 random(2);
  // More rows than one ONNX Runtime batch, so the batching is covered too.
  const EmbeddingPairs pairs{RandomMatrix(1100, kEmbedDim, random),
                             RandomMatrix(1100, kEmbedDim, random)};
  auto served = RunAlignModel(dir.path() / "align.onnx", pairs);
  ASSERT_TRUE(served.ok()) << served.status().ToString();
  const EmbeddingPairs expected = heads.Project(pairs);
  EXPECT_LT((served->images - expected.images).cwiseAbs().maxCoeff(), 1e-5f);
  EXPECT_LT((served->texts - expected.texts).cwiseAbs().maxCoeff(), 1e-5f);
  EXPECT_NEAR(served->images.row(0).norm(), 1.0f, 1e-5f);
}

// The exported file drops into a repository beside the stock config and is
// served as the newest version.
TEST(AlignExportTest, ServedByTheStockAlignConfig) {
  testing::TempDir dir;
  const auto model_dir = dir.path() / "align";
  std::filesystem::create_directories(model_dir / "2");
  std::filesystem::copy_file(std::filesystem::path(BRAID_TEST_MODELS) / "align/config.yaml",
                             model_dir / "config.yaml");
  const AlignHeads heads = PerturbedHeads(kEmbedDim, kAlignDim, 4);
  ASSERT_TRUE(ExportAlignModel(heads, model_dir / "2/model.onnx").ok());

  BackendRegistry backends;
  RegisterBuiltinBackends(backends);
  ModelRepository repository(dir.path(), backends);
  ASSERT_TRUE(repository.LoadAll().ok());
  auto model = repository.Get("align");
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_EQ((*model)->version(), 2);

  std::mt19937 random(5);
  const EmbeddingPairs pairs{RandomMatrix(3, kEmbedDim, random),
                             RandomMatrix(3, kEmbedDim, random)};
  std::vector<Tensor> inputs;
  for (const Matrix* side : {&pairs.images, &pairs.texts}) {
    Tensor tensor = *Tensor::Allocate(DataType::kFp32, {3, kEmbedDim});
    std::copy(side->data(), side->data() + side->size(), tensor.mutable_span<float>().begin());
    inputs.push_back(std::move(tensor));
  }
  std::vector<Tensor> outputs;
  ASSERT_TRUE((*model)->Execute(0, inputs, &outputs).ok());
  const EmbeddingPairs expected = heads.Project(pairs);
  ASSERT_EQ(outputs[1].shape(), (Shape{3, kAlignDim}));
  for (Eigen::Index i = 0; i < expected.texts.size(); ++i) {
    EXPECT_NEAR(outputs[1].span<float>()[i], expected.texts.data()[i], 1e-5f);
  }
}

TEST(AlignExportTest, RunRejectsAModelOfOtherWidth) {
  testing::TempDir dir;
  ASSERT_TRUE(ExportAlignModel(PerturbedHeads(16, 4, 1), dir.path() / "narrow.onnx").ok());
  std::mt19937 random(1);
  const EmbeddingPairs pairs{RandomMatrix(2, 32, random), RandomMatrix(2, 32, random)};
  auto run = RunAlignModel(dir.path() / "narrow.onnx", pairs);
  EXPECT_THAT(run.status().message(), HasSubstr("not an align model for 32-dimensional"));
  EXPECT_EQ(RunAlignModel(dir.path() / "missing.onnx", pairs).status().code(),
            StatusCode::kNotFound);
}

TEST(AlignMetricsTest, RanksWorkedOutByHand) {
  // Query i's match is gallery i. Query 0 finds it first; query 1 finds
  // gallery 0 first, its match second; query 2's match is last of 3.
  Matrix gallery(3, 2), queries(3, 2);
  gallery << 1, 0, 0, 1, -1, 0;
  queries << 1, 0.1f, 1, 0.9f, 1, 0.2f;
  const auto metrics = EvaluateRetrieval(queries, gallery);
  EXPECT_DOUBLE_EQ(metrics.recall_at_1, 1.0 / 3);
  EXPECT_DOUBLE_EQ(metrics.recall_at_5, 1.0);
  EXPECT_DOUBLE_EQ(metrics.map_at_10, (1.0 + 0.5 + 1.0 / 3) / 3);
}

TEST(AlignMetricsTest, TiesCountAgainstTheMatch) {
  const Matrix same = Matrix::Ones(20, 4);
  const auto metrics = EvaluateRetrieval(same, same);
  EXPECT_EQ(metrics.recall_at_10, 0.0);
  const Matrix identity = Matrix::Identity(20, 20);
  EXPECT_EQ(EvaluateRetrieval(identity, identity).recall_at_1, 1.0);
  EXPECT_DOUBLE_EQ(ChanceMetrics(20).recall_at_10, 0.5);
}

class AlignPairsTest : public ::testing::Test {
 protected:
  std::filesystem::path Write(const std::string& name, DataType type, Shape shape) {
    Tensor tensor = *Tensor::Allocate(type, std::move(shape));
    const auto path = dir_.path() / name;
    EXPECT_TRUE(WriteNpy(path, tensor).ok());
    return path;
  }
  std::string Error(const PairFiles& files, std::int64_t dim = kEmbedDim) {
    auto pairs = LoadPairs(files, dim);
    EXPECT_FALSE(pairs.ok());
    return pairs.status().message();
  }
  testing::TempDir dir_;
};

TEST_F(AlignPairsTest, LoadsMatchingFiles) {
  auto pairs = LoadPairs({Write("a.npy", DataType::kFp32, {4, kEmbedDim}),
                          Write("b.npy", DataType::kFp32, {4, kEmbedDim})},
                         kEmbedDim);
  ASSERT_TRUE(pairs.ok()) << pairs.status().ToString();
  EXPECT_EQ(pairs->count(), 4);
  auto [train, held] = SplitPairs(*pairs, 0.2, 1);
  EXPECT_EQ(train.count(), 3);
  EXPECT_EQ(held.count(), 1);
}

TEST_F(AlignPairsTest, BadFilesGiveClearErrors) {
  const auto good = Write("good.npy", DataType::kFp32, {4, kEmbedDim});
  EXPECT_THAT(Error({good, Write("fewer.npy", DataType::kFp32, {3, kEmbedDim})}),
              AllOf(HasSubstr("mismatched pair counts"), HasSubstr("4 image embeddings"),
                    HasSubstr("has 3 text")));
  EXPECT_THAT(Error({good, Write("narrow.npy", DataType::kFp32, {4, 256})}),
              AllOf(HasSubstr("narrow.npy"), HasSubstr("256-dimensional, expected 512")));
  EXPECT_THAT(Error({good, Write("narrow.npy", DataType::kFp32, {4, 256})}, 0),
              HasSubstr("mismatched dims"));
  EXPECT_THAT(Error({Write("ints.npy", DataType::kInt32, {4, kEmbedDim}), good}),
              AllOf(HasSubstr("ints.npy"), HasSubstr("must be FP32")));
  EXPECT_THAT(Error({Write("flat.npy", DataType::kFp32, {kEmbedDim}), good}),
              HasSubstr("must be a 2-D array"));
  EXPECT_THAT(Error({Write("empty.npy", DataType::kFp32, {0, kEmbedDim}), good}),
              HasSubstr("no embeddings"));
  EXPECT_THAT(Error({dir_.path() / "missing.npy", good}),
              AllOf(HasSubstr("missing.npy"), HasSubstr("no such file")));
  dir_.Write("junk.npy", "not an npy file");
  EXPECT_THAT(Error({dir_.path() / "junk.npy", good}), HasSubstr("junk.npy"));

  Tensor with_nan = *Tensor::Allocate(DataType::kFp32, {2, kEmbedDim});
  with_nan.mutable_span<float>()[kEmbedDim + 3] = std::nanf("");
  ASSERT_TRUE(WriteNpy(dir_.path() / "nan.npy", with_nan).ok());
  EXPECT_THAT(Error({dir_.path() / "nan.npy", good}), HasSubstr("row 1 holds a non-finite"));
}

}  // namespace
}  // namespace braid::align
