// The ONNX Runtime backend on the generated models, checked against
// computations made independently here: exact math for identity and align
// (their weights read straight from the ONNX file), and shape, finiteness,
// determinism and batch consistency for the encoders.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <fstream>
#include <random>

#include "backends/backends.h"
#include "backends/onnxruntime/onnxruntime_backend.h"
#include "model/repository.h"

namespace braid {
namespace {

using ::testing::HasSubstr;

class OnnxRuntimeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    backends_ = new BackendRegistry;
    RegisterBuiltinBackends(*backends_);
    repository_ = new ModelRepository(BRAID_TEST_MODELS, *backends_);
    ASSERT_TRUE(repository_->LoadAll().ok());
  }
  static void TearDownTestSuite() {
    delete repository_;
    delete backends_;
  }

  static ModelPtr Get(const std::string& name) {
    auto model = repository_->Get(name);
    EXPECT_TRUE(model.ok()) << model.status().ToString();
    return model.ok() ? *model : nullptr;
  }

  static Tensor RandomFloats(Shape shape, std::uint32_t seed) {
    Tensor tensor = *Tensor::Allocate(DataType::kFp32, std::move(shape));
    std::mt19937 random(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (auto& v : tensor.mutable_span<float>()) v = dist(random);
    return tensor;
  }

  static std::vector<Tensor> Run(Model& model, std::vector<Tensor> inputs) {
    std::vector<Tensor> outputs;
    Status status = model.Execute(0, inputs, &outputs);
    EXPECT_TRUE(status.ok()) << status.ToString();
    return outputs;
  }

  static BackendRegistry* backends_;
  static ModelRepository* repository_;
};

BackendRegistry* OnnxRuntimeTest::backends_ = nullptr;
ModelRepository* OnnxRuntimeTest::repository_ = nullptr;

TEST_F(OnnxRuntimeTest, AllDefaultModelsAreReady) {
  int onnx_models = 0;
  for (const auto& model : repository_->Index()) {
    EXPECT_EQ(model.state, ModelState::kReady) << model.name << ": " << model.reason;
    onnx_models += model.backend == kOnnxRuntimeBackend;
  }
  EXPECT_EQ(onnx_models, 6);  // clip-image, clip-text, align, identity, text-embed, vad
}

TEST_F(OnnxRuntimeTest, IdentityReturnsItsInputExactly) {
  ModelPtr model = Get("identity");
  Tensor input = RandomFloats({3, 16}, 1);
  auto outputs = Run(*model, {input});
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].shape(), (Shape{3, 16}));
  for (std::size_t i = 0; i < 48; ++i)
    EXPECT_EQ(outputs[0].span<float>()[i], input.span<float>()[i]);
}

// Reads a float initializer straight from the ONNX file.
std::vector<float> Initializer(const std::string& file, const std::string& name) {
  onnx::ModelProto proto;
  std::ifstream in(file, std::ios::binary);
  EXPECT_TRUE(proto.ParseFromIstream(&in));
  for (const auto& tensor : proto.graph().initializer()) {
    if (tensor.name() != name) continue;
    std::vector<float> values(tensor.raw_data().size() / sizeof(float));
    std::memcpy(values.data(), tensor.raw_data().data(), tensor.raw_data().size());
    return values;
  }
  ADD_FAILURE() << "no initializer " << name;
  return {};
}

TEST_F(OnnxRuntimeTest, AlignIsTwoLinearHeadsWithL2Normalisation) {
  ModelPtr model = Get("align");
  constexpr int kBatch = 5, kIn = 512, kOut = 128;
  Tensor image = RandomFloats({kBatch, kIn}, 2);
  Tensor text = RandomFloats({kBatch, kIn}, 3);
  auto outputs = Run(*model, {image, text});
  ASSERT_EQ(outputs.size(), 2u);

  const std::string file = std::string(BRAID_TEST_MODELS) + "/align/1/model.onnx";
  const Tensor* inputs[] = {&image, &text};
  const char* heads[] = {"image_head", "text_head"};
  for (int h = 0; h < 2; ++h) {
    auto weight = Initializer(file, std::string(heads[h]) + ".weight");
    auto bias = Initializer(file, std::string(heads[h]) + ".bias");
    ASSERT_EQ(weight.size(), std::size_t{kIn} * kOut);
    ASSERT_EQ(outputs[h].shape(), (Shape{kBatch, kOut}));
    auto x = inputs[h]->span<float>();
    for (int row = 0; row < kBatch; ++row) {
      std::vector<double> y(kOut);
      double norm = 0;
      for (int o = 0; o < kOut; ++o) {
        y[o] = bias[o];
        for (int i = 0; i < kIn; ++i) y[o] += double(x[row * kIn + i]) * weight[i * kOut + o];
        norm += y[o] * y[o];
      }
      norm = std::sqrt(norm);
      for (int o = 0; o < kOut; ++o) {
        EXPECT_NEAR(outputs[h].span<float>()[row * kOut + o], y[o] / norm, 1e-5)
            << heads[h] << " row " << row;
      }
    }
  }
}

Tensor TokenIds(int batch, std::uint32_t seed) {
  Tensor ids = *Tensor::Allocate(DataType::kInt64, {batch, 77});
  std::mt19937 random(seed);
  for (int row = 0; row < batch; ++row) {
    auto span = ids.mutable_span<std::int64_t>().subspan(row * 77, 77);
    int length = 3 + static_cast<int>(random() % 40);
    span[0] = 49406;  // start of text
    for (int t = 1; t < length; ++t) span[t] = random() % 49000;
    span[length] = 49407;  // end of text, the token CLIP pools at
  }
  return ids;
}

void ExpectBatchMatchesSingles(Model& model, const Tensor& batch,
                               const std::vector<Tensor>& batched) {
  const auto n = batch.shape()[0];
  const auto width = batched[0].shape()[1];
  for (std::int64_t row = 0; row < n; ++row) {
    std::vector<Tensor> single_out;
    std::vector<Tensor> single_in = {*batch.Slice(row, row + 1)};
    ASSERT_TRUE(model.Execute(0, single_in, &single_out).ok());
    for (std::int64_t i = 0; i < width; ++i) {
      EXPECT_NEAR(single_out[0].span<float>()[i], batched[0].span<float>()[row * width + i], 1e-5)
          << "row " << row << " element " << i;
    }
  }
}

void ExpectFiniteAndNonTrivial(const Tensor& tensor) {
  double sum_abs = 0;
  for (float v : tensor.span<float>()) {
    ASSERT_TRUE(std::isfinite(v));
    sum_abs += std::abs(v);
  }
  EXPECT_GT(sum_abs / tensor.element_count(), 1e-3);
}

TEST_F(OnnxRuntimeTest, ClipImageShapeDeterminismAndBatchConsistency) {
  ModelPtr model = Get("clip-image");
  Tensor pixels = RandomFloats({4, 3, 224, 224}, 4);
  auto first = Run(*model, {pixels});
  ASSERT_EQ(first[0].shape(), (Shape{4, 512}));
  ExpectFiniteAndNonTrivial(first[0]);
  auto second = Run(*model, {pixels});
  for (std::size_t i = 0; i < 4 * 512; ++i)
    ASSERT_EQ(first[0].span<float>()[i], second[0].span<float>()[i]);
  ExpectBatchMatchesSingles(*model, pixels, first);
  // Different images give different embeddings.
  EXPECT_NE(first[0].span<float>()[0], first[0].span<float>()[512]);
}

TEST_F(OnnxRuntimeTest, ClipTextShapeDeterminismAndBatchConsistency) {
  ModelPtr model = Get("clip-text");
  Tensor ids = TokenIds(4, 5);
  auto first = Run(*model, {ids});
  ASSERT_EQ(first[0].shape(), (Shape{4, 512}));
  ExpectFiniteAndNonTrivial(first[0]);
  auto second = Run(*model, {ids});
  for (std::size_t i = 0; i < 4 * 512; ++i)
    ASSERT_EQ(first[0].span<float>()[i], second[0].span<float>()[i]);
  ExpectBatchMatchesSingles(*model, ids, first);
}

TEST_F(OnnxRuntimeTest, ClipTextPoolsAtEndOfText) {
  // Tokens after the end-of-text token are masked by causality and pooling,
  // so changing them must not change the embedding; changing one before it must.
  ModelPtr model = Get("clip-text");
  Tensor ids = TokenIds(1, 6);
  auto span = ids.mutable_span<std::int64_t>();
  int eot = 0;
  while (span[eot] != 49407) ++eot;
  auto base = Run(*model, {ids});
  span[eot + 1] = 1234;
  auto after = Run(*model, {ids});
  span[eot - 1] = (span[eot - 1] + 1) % 49000;
  auto before = Run(*model, {ids});
  for (int i = 0; i < 512; ++i)
    ASSERT_NEAR(base[0].span<float>()[i], after[0].span<float>()[i], 1e-6);
  double difference = 0;
  for (int i = 0; i < 512; ++i)
    difference += std::abs(base[0].span<float>()[i] - before[0].span<float>()[i]);
  EXPECT_GT(difference, 1e-3);
}

TEST_F(OnnxRuntimeTest, OutOfVocabularyTokenIsAnErrorNotACrash) {
  ModelPtr model = Get("clip-text");
  Tensor ids = TokenIds(1, 7);
  ids.mutable_span<std::int64_t>()[1] = 49408;
  std::vector<Tensor> outputs;
  Status status = model->Execute(0, std::vector<Tensor>{ids}, &outputs);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("onnxruntime"));
}

TEST_F(OnnxRuntimeTest, OutputsAreWrappedNotCopied) {
  // The output tensor must outlive the ONNX Runtime call that produced it.
  ModelPtr model = Get("identity");
  Tensor result;
  {
    auto outputs = Run(*model, {RandomFloats({2, 16}, 8)});
    result = outputs[0];
  }
  EXPECT_EQ(result.byte_size(), 2u * 16 * sizeof(float));
  EXPECT_TRUE(std::isfinite(result.span<float>()[31]));
}

}  // namespace
}  // namespace braid
