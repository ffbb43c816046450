// braid quantize: the graph rewrites on small models written here, run in
// ONNX Runtime beside the originals; calibration, samples, the drift gate,
// the models refused, and a repository serving a quantized copy by
// optimization.precision.
#include "quantize/quantize.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "backends/backends.h"
#include "core/npy.h"
#include "model/repository.h"
#include "onnxgen/graph_builder.h"
#include "quantize/tool.h"
#include "support/command.h"
#include "support/temp_dir.h"

namespace braid::quantize {
namespace {

using onnx::TensorProto;
using onnxgen::GraphBuilder;
using ::testing::HasSubstr;
using testing::TempDir;

// x [batch, 4, 32] → MatMul → Add → Relu → MatMul → y [batch, 4, 16], and a
// second output through a Gemm (transB) of the first token.
onnx::ModelProto SmallModel() {
  onnx::ModelProto model = onnxgen::NewModel("small");
  GraphBuilder g(model.mutable_graph(), 7);
  g.Input("x", TensorProto::FLOAT, {-1, 4, 32});
  auto h = g.Op("MatMul", {"x", g.Linear("w1", 32, 64)});
  h = g.Op("Relu", {g.Op("Add", {h, g.Weight("b1", {64}, 0.1f)})});
  g.Op("MatMul", {h, g.Linear("w2", 64, 16)}, "y");
  auto* first = g.Node("Gather", {"x", g.Ints("zero", {0})});
  GraphBuilder::SetInt(first, "axis", 1);
  auto flat = g.Op("Reshape", {first->output(0), g.Ints("flat_shape", {-1, 32})});
  auto* gemm =
      g.Node("Gemm", {flat, g.Weight("w3", {8, 32}, 0.2f), g.Weight("b3", {8}, 0.1f)}, "z");
  GraphBuilder::SetInt(gemm, "transB", 1);
  g.Output("y", TensorProto::FLOAT, {-1, 4, 16});
  g.Output("z", TensorProto::FLOAT, {-1, 8});
  return model;
}

std::string Bytes(const onnx::ModelProto& model) {
  auto bytes = SerializeModel(model);
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  return bytes.ok() ? *bytes : "";
}

int CountOps(const onnx::ModelProto& model, const std::string& op) {
  int count = 0;
  for (const auto& node : model.graph().node()) count += node.op_type() == op;
  return count;
}

std::vector<Sample> Samples(const onnx::ModelProto& model, int count, std::uint32_t seed) {
  auto runner = OpenOnnxModel(Bytes(model));
  if (!runner.ok()) {
    ADD_FAILURE() << runner.status().ToString();
    return {};
  }
  auto samples = SyntheticSamples(model, (*runner)->inputs(), count, seed);
  EXPECT_TRUE(samples.ok()) << samples.status().ToString();
  return samples.ok() ? *samples : std::vector<Sample>{};
}

Drift DriftOf(const onnx::ModelProto& original, const onnx::ModelProto& changed) {
  auto comparison = Compare(Bytes(original), Bytes(changed), Samples(original, 12, 3), 4, 1);
  EXPECT_TRUE(comparison.ok()) << comparison.status().ToString();
  return comparison.ok() ? comparison->drift : Drift{0, 0, 1e9, 0};
}

TEST(QuantizeTest, DynamicQuantizesEveryWeightMatrixAndStaysClose) {
  const auto model = SmallModel();
  auto quantized = QuantizeDynamic(model, {.reduce_range = true});
  ASSERT_TRUE(quantized.ok()) << quantized.status().ToString();
  EXPECT_EQ(quantized->nodes, 3);
  EXPECT_EQ(CountOps(quantized->model, "MatMulInteger"), 3);
  // x feeds the first MatMul only; the Gemm's and second MatMul's inputs differ.
  EXPECT_EQ(CountOps(quantized->model, "DynamicQuantizeLinear"), 3);
  EXPECT_EQ(CountOps(quantized->model, "MatMul"), 0);
  EXPECT_EQ(CountOps(quantized->model, "Gemm"), 0);
  for (const auto& tensor : quantized->model.graph().initializer()) {
    EXPECT_NE(tensor.name(), "w1") << "the FP32 weight is dropped";
    if (tensor.name() == "w1_quantized") {
      EXPECT_EQ(tensor.data_type(), TensorProto::INT8);
      for (char v : tensor.raw_data()) EXPECT_LE(std::abs(int(std::int8_t(v))), 63);
    }
  }
  const Drift drift = DriftOf(model, quantized->model);
  EXPECT_EQ(drift.rows, 24u);  // 12 samples, two outputs
  EXPECT_GT(drift.mean_cosine, 0.99);
  EXPECT_GT(drift.min_cosine, 0.98);
}

TEST(QuantizeTest, FullRangeWeightsUseAllEightBits) {
  auto quantized = QuantizeDynamic(SmallModel(), {.reduce_range = false});
  ASSERT_TRUE(quantized.ok());
  int widest = 0;
  for (const auto& tensor : quantized->model.graph().initializer()) {
    if (tensor.data_type() != TensorProto::INT8) continue;
    for (char v : tensor.raw_data()) widest = std::max(widest, std::abs(int(std::int8_t(v))));
  }
  EXPECT_EQ(widest, 127);
}

TEST(QuantizeTest, StaticCalibratesEachActivationOnceAndStaysClose) {
  const auto model = SmallModel();
  const auto activations = ActivationsToCalibrate(model);
  ASSERT_EQ(activations.size(), 3u);
  EXPECT_EQ(activations[0], "x");
  auto samples = Samples(model, 16, 1);
  auto minmax = Calibrate(model, samples, RangeMethod::kMinMax, 0);
  ASSERT_TRUE(minmax.ok()) << minmax.status().ToString();
  auto percentile = Calibrate(model, samples, RangeMethod::kPercentile, 99.0);
  ASSERT_TRUE(percentile.ok()) << percentile.status().ToString();
  for (const auto& name : activations) {
    ASSERT_TRUE(minmax->count(name)) << name;
    const Range& full = minmax->at(name);
    const Range& cut = percentile->at(name);
    EXPECT_LT(full.low, full.high);
    EXPECT_GE(cut.low, full.low) << name;
    EXPECT_LE(cut.high, full.high) << name;
    EXPECT_LT(cut.high - cut.low, full.high - full.low) << name << ": 1% cut off";
  }
  auto quantized = QuantizeStatic(model, *minmax, {.reduce_range = true});
  ASSERT_TRUE(quantized.ok()) << quantized.status().ToString();
  EXPECT_EQ(quantized->nodes, 3);
  EXPECT_EQ(CountOps(quantized->model, "QuantizeLinear"), 3);
  EXPECT_EQ(CountOps(quantized->model, "DequantizeLinear"), 6);
  EXPECT_GT(DriftOf(model, quantized->model).mean_cosine, 0.99);
  EXPECT_THAT(Calibrate(model, samples, RangeMethod::kPercentile, 30).status().message(),
              HasSubstr("percentile must lie in (50, 100]"));
}

TEST(QuantizeTest, StaticLeavesActivationsWithoutARangeInFp32) {
  const auto model = SmallModel();
  auto ranges = *Calibrate(model, Samples(model, 4, 1), RangeMethod::kMinMax, 0);
  ranges.erase("x");
  auto quantized = QuantizeStatic(model, ranges);
  ASSERT_TRUE(quantized.ok());
  EXPECT_EQ(quantized->nodes, 2);
  // The kept MatMul, the second rewritten, and the Gemm's MatMul (its bias an Add).
  EXPECT_EQ(CountOps(quantized->model, "MatMul"), 3);
  EXPECT_EQ(CountOps(quantized->model, "QuantizeLinear"), 2);
}

TEST(QuantizeTest, Fp16KeepsFp32InputsAndOutputs) {
  const auto model = SmallModel();
  auto half = ConvertToFp16(model);
  ASSERT_TRUE(half.ok()) << half.status().ToString();
  for (const auto& tensor : half->model.graph().initializer()) {
    if (tensor.name() == "zero" || tensor.name() == "flat_shape") continue;
    EXPECT_EQ(tensor.data_type(), TensorProto::FLOAT16) << tensor.name();
  }
  EXPECT_EQ(CountOps(half->model, "Cast"), 3);  // one input, two outputs
  for (const auto& output : half->model.graph().output()) {
    EXPECT_EQ(output.type().tensor_type().elem_type(), TensorProto::FLOAT);
  }
  const Drift drift = DriftOf(model, half->model);
  EXPECT_GT(drift.mean_cosine, 0.9999);
  EXPECT_LT(drift.max_abs_error, 0.05);
}

// One weight read by a Gemm with transB and by a MatMul: each gets its own
// orientation.
TEST(QuantizeTest, ASharedWeightIsQuantizedPerOrientation) {
  onnx::ModelProto model = onnxgen::NewModel("shared");
  GraphBuilder g(model.mutable_graph(), 3);
  g.Input("x", TensorProto::FLOAT, {-1, 8});
  const auto w = g.Weight("w", {8, 8}, 0.3f);
  auto* gemm = g.Node("Gemm", {"x", w}, "a");
  GraphBuilder::SetInt(gemm, "transB", 1);
  g.Op("MatMul", {"x", w}, "b");
  g.Output("a", TensorProto::FLOAT, {-1, 8});
  g.Output("b", TensorProto::FLOAT, {-1, 8});
  for (bool dynamic : {true, false}) {
    Ranges ranges = {{"x", {-3.f, 3.f}}};
    auto quantized = dynamic ? QuantizeDynamic(model, {.reduce_range = true})
                             : QuantizeStatic(model, ranges, {.reduce_range = true});
    ASSERT_TRUE(quantized.ok()) << quantized.status().ToString();
    int copies = 0;
    for (const auto& tensor : quantized->model.graph().initializer()) {
      copies += tensor.data_type() == TensorProto::INT8 && tensor.dims_size() == 2;
    }
    EXPECT_EQ(copies, 2) << (dynamic ? "dynamic" : "static");
    EXPECT_GT(DriftOf(model, quantized->model).min_cosine, 0.99);
  }
}

// FP16 holds at most 65504: a larger constant (a mask) is clamped there,
// not turned into infinity.
TEST(QuantizeTest, Fp16ClampsWhatFp16CannotHold) {
  onnx::ModelProto model = onnxgen::NewModel("mask");
  GraphBuilder g(model.mutable_graph(), 1);
  g.Input("x", TensorProto::FLOAT, {-1, 4});
  auto masked = g.Op("Add", {"x", g.Floats("mask", {4}, {0, 0, -1e9f, 0})});
  auto* softmax = g.Node("Softmax", {masked}, "y");
  GraphBuilder::SetInt(softmax, "axis", 1);
  g.Output("y", TensorProto::FLOAT, {-1, 4});
  auto half = ConvertToFp16(model);
  ASSERT_TRUE(half.ok()) << half.status().ToString();
  const Drift drift = DriftOf(model, half->model);
  EXPECT_GT(drift.mean_cosine, 0.999);
  EXPECT_LT(drift.max_abs_error, 0.01);
}

// A copy whose outputs overflow is as far from the original as can be:
// the gate refuses it rather than reading NaN as no drift.
TEST(QuantizeTest, OutputsThatOverflowCountAsTheWorstDrift) {
  const auto model = SmallModel();
  onnx::ModelProto broken = model;
  for (auto& tensor : *broken.mutable_graph()->mutable_initializer()) {
    if (tensor.name() != "b1") continue;
    std::vector<float> huge(64, 3e38f);
    tensor.set_raw_data(huge.data(), huge.size() * sizeof(float));
  }
  const Drift drift = DriftOf(model, broken);
  EXPECT_EQ(drift.min_cosine, -1);
  EXPECT_TRUE(std::isinf(drift.max_abs_error));
  EXPECT_LT(drift.mean_cosine, 0.6);
}

// A variable dimension of the file takes the size the model's config
// declares, so that a repository model is measured at the shape it serves.
TEST(QuantizeTest, SyntheticSamplesTakeTheDeclaredSizeOfAVariableDimension) {
  const std::vector<OnnxTensorInfo> inputs = {{"x", DataType::kFp32, {-1, -1}}};
  auto shape_with = [&](const std::map<std::string, Shape>& declared) {
    auto samples = SyntheticSamples(SmallModel(), inputs, 1, 1, declared);
    EXPECT_TRUE(samples.ok()) << samples.status().ToString();
    return samples.ok() ? (*samples)[0][0].shape() : Shape{};
  };
  EXPECT_EQ(shape_with({{"x", {77}}}), (Shape{1, 77}));
  EXPECT_EQ(shape_with({}), (Shape{1, 16})) << "nothing declared";
  EXPECT_EQ(shape_with({{"x", {-1}}}), (Shape{1, 16})) << "declared variable too";
  EXPECT_EQ(shape_with({{"x", {2, 3}}}), (Shape{1, 16})) << "another rank";
  EXPECT_EQ(shape_with({{"other", {77}}}), (Shape{1, 16})) << "another input";
}

TEST(QuantizeTest, RefusesWhatItCannotQuantize) {
  EXPECT_THAT(ParseModel("not a model").status().message(), HasSubstr("not an ONNX model"));
  EXPECT_EQ(ParseModel("").status().code(), StatusCode::kInvalidArgument);

  onnx::ModelProto integers = onnxgen::NewModel("integers");
  GraphBuilder g(integers.mutable_graph(), 1);
  g.Input("ids", TensorProto::INT64, {-1, 4});
  g.Op("Add", {"ids", g.Ints("one", {1})}, "out");
  g.Output("out", TensorProto::INT64, {-1, 4});
  EXPECT_THAT(QuantizeDynamic(integers).status().message(), HasSubstr("nothing to quantize"));
  EXPECT_THAT(QuantizeStatic(integers, {}).status().message(), HasSubstr("nothing to quantize"));
  EXPECT_THAT(ConvertToFp16(integers).status().message(), HasSubstr("nothing to convert"));

  auto old = SmallModel();
  old.mutable_opset_import(0)->set_version(10);
  EXPECT_THAT(QuantizeDynamic(old).status().message(), HasSubstr("opset 11 or later"));

  auto external = SmallModel();
  external.mutable_graph()->mutable_initializer(0)->set_data_location(TensorProto::EXTERNAL);
  std::string bytes;
  ASSERT_TRUE(external.SerializeToString(&bytes));
  EXPECT_THAT(ParseModel(bytes).status().message(), HasSubstr("external file"));

  onnx::ModelProto strings = onnxgen::NewModel("strings");
  GraphBuilder s(strings.mutable_graph(), 1);
  s.Input("text", TensorProto::STRING, {-1});
  s.Op("Identity", {"text"}, "out");
  s.Output("out", TensorProto::STRING, {-1});
  const std::vector<OnnxTensorInfo> inputs = {{"text", DataType::kBytes, {-1}}};
  EXPECT_THAT(SyntheticSamples(strings, inputs, 2, 1).status().message(),
              HasSubstr("takes strings"));
  const std::vector<OnnxTensorInfo> huge = {{"x", DataType::kFp32, {-1, 1 << 20, 1 << 20}}};
  EXPECT_THAT(SyntheticSamples(SmallModel(), huge, 2, 1).status().message(),
              HasSubstr("values per sample"));
}

class QuantizeFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    input_ = dir_.path() / "model.onnx";
    ASSERT_TRUE(onnxgen::CheckAndWriteModel(SmallModel(), input_).ok());
    request_.input = input_;
    request_.output = dir_.path() / "model.int8.onnx";
    request_.samples = 8;
    request_.batch = 4;
    request_.rounds = 1;
    request_.options.reduce_range = true;
  }

  Result<Report> Quantize() {
    return QuantizeFile(request_, [this](std::string_view step) { steps_.emplace_back(step); });
  }

  TempDir dir_;
  std::filesystem::path input_;
  Request request_;
  std::vector<std::string> steps_;
};

TEST_F(QuantizeFileTest, WritesTheModelWithinTheDrift) {
  auto report = Quantize();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->synthetic);
  EXPECT_EQ(report->nodes, 3);
  EXPECT_EQ(report->measured_samples, 2u);
  EXPECT_GT(report->comparison.drift.mean_cosine, 0.99);
  EXPECT_GT(report->comparison.reference_ms, 0);
  EXPECT_GT(report->comparison.candidate_ms, 0);
  ASSERT_TRUE(std::filesystem::exists(request_.output));
  EXPECT_FALSE(std::filesystem::exists(request_.output.string() + ".partial"));
  auto written = ReadModel(request_.output);
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  EXPECT_EQ(CountOps(*written, "MatMulInteger"), 3);
  EXPECT_THAT(steps_.back(), HasSubstr("measuring on 2 synthetic samples"));
}

TEST_F(QuantizeFileTest, RefusesAModelPastTheDrift) {
  request_.max_drift = 1e-9;
  auto report = Quantize();
  EXPECT_EQ(report.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(report.status().message(), HasSubstr("past --max-drift 1e-09: not written"));
  EXPECT_FALSE(std::filesystem::exists(request_.output));
}

TEST_F(QuantizeFileTest, CalibratesOnSamplesFromAFolderAndHoldsAQuarterAside) {
  std::mt19937 random(5);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::filesystem::create_directories(dir_.path() / "samples");
  for (int k = 0; k < 8; ++k) {
    Tensor sample = *Tensor::Allocate(DataType::kFp32, {4, 32});  // no batch dim: added
    for (auto& v : sample.mutable_span<float>()) v = normal(random);
    ASSERT_TRUE(WriteNpy(dir_.path() / "samples" / fmt::format("{}.npy", k), sample).ok());
  }
  dir_.Write("samples/notes.md", "not a sample: skipped");
  request_.mode = Mode::kInt8Static;
  request_.calibration = dir_.path() / "samples";
  request_.method = RangeMethod::kPercentile;
  auto report = Quantize();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_FALSE(report->synthetic);
  EXPECT_EQ(report->calibration_samples, 6u);
  EXPECT_EQ(report->measured_samples, 2u);
  EXPECT_THAT(steps_.front(), HasSubstr("calibrating 3 activations on 6 given samples"));
}

TEST_F(QuantizeFileTest, SamplesThatDoNotFitAreRefused) {
  Tensor wrong = *Tensor::Allocate(DataType::kFp32, {4, 31});
  std::filesystem::create_directories(dir_.path() / "bad");
  ASSERT_TRUE(WriteNpy(dir_.path() / "bad" / "0.npy", wrong).ok());
  request_.calibration = dir_.path() / "bad";
  EXPECT_THAT(Quantize().status().message(), HasSubstr("does not fit input 'x'"));

  dir_.Write("text/lines.txt", "hello\n");
  request_.calibration = dir_.path() / "text";
  EXPECT_THAT(Quantize().status().message(), HasSubstr("INT64 token ids"));

  dir_.Write("empty/readme", "");
  request_.calibration = dir_.path() / "empty";
  EXPECT_THAT(Quantize().status().message(), HasSubstr("no samples"));
  EXPECT_FALSE(std::filesystem::exists(request_.output));
}

// A repository model with optimization.precision int8 serves model.int8.onnx.
TEST(QuantizePrecisionTest, ARepositoryServesTheQuantizedCopy) {
  TempDir dir;
  const std::string config =
      "backend: onnxruntime\nmax_batch_size: 8\n"
      "inputs: [{name: x, datatype: FP32, dims: [4, 32]}]\n"
      "outputs: [{name: y, datatype: FP32, dims: [4, 16]}, {name: z, datatype: FP32, dims: [8]}]\n"
      "optimization: {precision: int8}\n";
  dir.Write("small/config.yaml", config);
  std::filesystem::create_directories(dir.path() / "small/1");
  ASSERT_TRUE(onnxgen::CheckAndWriteModel(SmallModel(), dir.path() / "small/1/model.onnx").ok());
  BackendRegistry backends;
  RegisterBuiltinBackends(backends);
  {
    ModelRepository repository(dir.path(), backends);
    ASSERT_TRUE(repository.LoadAll().ok());
    const auto index = repository.Index();
    ASSERT_EQ(index.size(), 1u);
    EXPECT_EQ(index[0].state, ModelState::kUnavailable);
    EXPECT_THAT(index[0].reason, HasSubstr("model.int8.onnx: model file missing"));
    EXPECT_THAT(index[0].reason, HasSubstr("braid models quantize small --mode int8-dynamic"));
  }
  auto quantized = QuantizeDynamic(SmallModel(), {.reduce_range = true});
  ASSERT_TRUE(quantized.ok());
  ASSERT_TRUE(
      onnxgen::CheckAndWriteModel(quantized->model, dir.path() / "small/1/model.int8.onnx").ok());
  ModelRepository repository(dir.path(), backends);
  ASSERT_TRUE(repository.LoadAll().ok());
  auto model = repository.Get("small");
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  std::vector<Tensor> inputs = {*Tensor::Allocate(DataType::kFp32, {2, 4, 32})};
  std::vector<Tensor> outputs;
  ASSERT_TRUE((*model)->Execute(0, inputs, &outputs).ok());
  EXPECT_EQ(outputs[0].shape(), (Shape{2, 4, 16}));
}

// The command line, end to end: `braid models quantize` on a copy of a
// repository writes the copy its config can then serve.
TEST(QuantizeCommandTest, ModelsQuantizeWritesBesideTheNewestVersion) {
  TempDir dir;
  dir.Write("small/config.yaml",
            "backend: onnxruntime\nmax_batch_size: 8\n"
            "inputs: [{name: x, datatype: FP32, dims: [4, 32]}]\n"
            "outputs: [{name: y, datatype: FP32, dims: [4, 16]}, {name: z, datatype: FP32, "
            "dims: [8]}]\n");
  for (const char* version : {"1", "3"}) {
    std::filesystem::create_directories(dir.path() / "small" / version);
    ASSERT_TRUE(
        onnxgen::CheckAndWriteModel(SmallModel(), dir.path() / "small" / version / "model.onnx")
            .ok());
  }
  const std::string braid = BRAID_BINARY;
  auto result =
      testing::RunCommand(braid + " models quantize small --model-repository " +
                          dir.path().string() + " --samples 8 --rounds 1 --range reduced");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out,
              HasSubstr("int8-dynamic (3 MatMul/Gemm nodes quantized, weights on 7 bits)"));
  EXPECT_THAT(result.out, ::testing::ContainsRegex("cosine similarity mean (0\\.99|1\\.00)"));
  EXPECT_THAT(result.out, HasSubstr("precision: int8"));
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "small/3/model.int8.onnx"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "small/1/model.int8.onnx"));

  result = testing::RunCommand(braid + " quantize " + (dir.path() / "small/3/model.onnx").string() +
                               " " + (dir.path() / "out.onnx").string() +
                               " --samples 8 --rounds 1 --max-drift 0");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("not written"));
  result = testing::RunCommand(braid + " models quantize nosuch --model-repository " +
                               dir.path().string());
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("nosuch"));
}

}  // namespace
}  // namespace braid::quantize
