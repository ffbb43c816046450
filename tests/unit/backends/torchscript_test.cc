// The torchscript backend on modules this test writes with libtorch's own
// TorchScript compiler (Module::define, then save): what forward() returns
// in each of its shapes, fp16, the checks at load, and the backend serving
// from a model repository like any other.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <fstream>

#include "backends/backends.h"
#include "backends/torchscript/torchscript_backend.h"
#include "model/config.h"
#include "model/repository.h"
#include "support/temp_dir.h"

namespace braid {
namespace {

using ::testing::HasSubstr;

// y = x W + b with W[i][j] = i - j, b = (1, 2): known answers.
torch::jit::Module Linear(const std::string& returns) {
  torch::jit::Module module("Linear");
  auto weight = torch::arange(4, torch::kFloat).unsqueeze(1) - torch::arange(2, torch::kFloat);
  module.register_parameter("weight", weight, false);
  module.register_parameter("bias", torch::tensor({1.0f, 2.0f}), false);
  module.define(R"(
def forward(self, x):
    y = torch.matmul(x, self.weight) + self.bias
    best = torch.argmax(y, dim=1)
    return )" + returns +
                "\n");
  return module;
}

std::string Config(const std::string& outputs, const std::string& extra = "") {
  return "backend: torchscript\nmax_batch_size: 8\n"
         "inputs: [{name: x, datatype: FP32, dims: [4]}]\n"
         "outputs:\n" +
         outputs + extra;
}

constexpr char kY[] = "  - {name: y, datatype: FP32, dims: [2]}\n";
constexpr char kYAndBest[] =
    "  - {name: y, datatype: FP32, dims: [2]}\n  - {name: best, datatype: INT64, dims: []}\n";

class TorchScriptTest : public ::testing::Test {
 protected:
  Result<std::vector<ModelInstancePtr>> Load(const std::string& returns, const std::string& yaml) {
    std::filesystem::create_directories(dir_.path() / "1");
    Linear(returns).save((dir_.path() / "1" / "model.pt").string());
    BRAID_ASSIGN_OR_RETURN(ModelConfig config,
                           ParseModelConfig(yaml, "linear", dir_.path(), "config.yaml"));
    return MakeTorchScriptBackend()(config, dir_.path() / "1");
  }

  // Rows (1, 0, 0, 0) and (0, 1, 1, 0) through the instance.
  static std::vector<Tensor> Run(ModelInstance& instance) {
    auto x = *Tensor::Allocate(DataType::kFp32, {2, 4});
    auto values = x.mutable_span<float>();
    values[0] = 1;
    values[5] = values[6] = 1;
    std::vector<Tensor> outputs;
    auto status = instance.Execute(std::span(&x, 1), &outputs);
    EXPECT_TRUE(status.ok()) << status.ToString();
    return outputs;
  }

  testing::TempDir dir_;
};

TEST_F(TorchScriptTest, OneTensorOut) {
  auto instances = Load("y", Config(kY));
  ASSERT_TRUE(instances.ok()) << instances.status().ToString();
  auto outputs = Run(*(*instances)[0]);
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].shape(), (Shape{2, 2}));
  // Row 0 of W is (0, -1); rows 1 + 2 are (1, 0) + (2, 1).
  EXPECT_THAT(std::vector<float>(outputs[0].span<float>().begin(), outputs[0].span<float>().end()),
              ::testing::ElementsAre(1, 1, 4, 3));
}

TEST_F(TorchScriptTest, TuplesAndDictsGiveSeveralOutputs) {
  for (const std::string returns : {"(y, best)", "{'best': best, 'y': y}"}) {
    auto instances = Load(returns, Config(kYAndBest));
    ASSERT_TRUE(instances.ok()) << returns << ": " << instances.status().ToString();
    auto outputs = Run(*(*instances)[0]);
    ASSERT_EQ(outputs.size(), 2u) << returns;
    EXPECT_EQ(outputs[0].span<float>()[2], 4.0f) << returns;
    EXPECT_EQ(outputs[1].dtype(), DataType::kInt64);
    EXPECT_THAT(std::vector<std::int64_t>(outputs[1].span<std::int64_t>().begin(),
                                          outputs[1].span<std::int64_t>().end()),
                ::testing::ElementsAre(0, 0))
        << returns;
  }
}

TEST_F(TorchScriptTest, Fp16ComputesInHalfOnTheGpuAndAnswersInFp32) {
  auto instances = Load("y", Config(kY, "optimization: {precision: fp16}\n"));
  if (!torch::cuda::is_available()) {
    EXPECT_THAT(instances.status().message(), HasSubstr("fp16 needs execution_provider cuda"));
    return;
  }
  instances = Load("y", Config(kY, "optimization: {precision: fp16, execution_provider: cuda}\n"));
  ASSERT_TRUE(instances.ok()) << instances.status().ToString();
  auto outputs = Run(*(*instances)[0]);
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].dtype(), DataType::kFp32);
  EXPECT_EQ(outputs[0].span<float>()[2], 4.0f) << "small integers are exact in half";
}

// parameters.cuda_graphs: checked on any build; on a GPU the captured batch
// size answers as the module does, and other sizes still run. (A build
// without graph support refuses the parameter on a GPU, so this cannot pass
// there without graphs.)
TEST_F(TorchScriptTest, CudaGraphsAreCheckedAndReplayTheModulesAnswers) {
  EXPECT_THAT(Load("y", Config(kY, "parameters: {cuda_graphs: '2'}\n")).status().message(),
              HasSubstr("cuda_graphs needs execution_provider cuda"));
  const std::string cuda = "optimization: {execution_provider: cuda}\n";
  EXPECT_THAT(Load("y", Config(kY, cuda + "parameters: {cuda_graphs: '2,9'}\n")).status().message(),
              HasSubstr("'9' is not one"));
  EXPECT_THAT(Load("y", Config(kY, cuda + "parameters: {cuda_graphs: '2,x'}\n")).status().message(),
              HasSubstr("from 1 to max_batch_size (8)"));
  auto variable = Load("y",
                       "backend: torchscript\nmax_batch_size: 8\n"
                       "inputs: [{name: x, datatype: FP32, dims: [-1]}]\noutputs:\n" +
                           std::string(kY) + cuda + "parameters: {cuda_graphs: '2'}\n");
  EXPECT_THAT(variable.status().message(), HasSubstr("input 'x' has a variable one"));
  auto graphs = Load("y", Config(kY,
                                 "optimization: {execution_provider: cuda, precision: fp16}\n"
                                 "parameters: {cuda_graphs: '1, 2'}\n"));
  if (!torch::cuda::is_available()) {
    EXPECT_EQ(graphs.status().code(), StatusCode::kUnavailable);
    return;
  }
  ASSERT_TRUE(graphs.ok()) << graphs.status().ToString();
  // Rows of v: y = (6v + 1, 2v + 2), exact in half. A new v each time, so a
  // replay that left an earlier batch's inputs or outputs behind shows.
  for (int v = 1; v <= 3; ++v) {
    auto x = *Tensor::Allocate(DataType::kFp32, {2, 4});
    for (float& value : x.mutable_span<float>()) value = static_cast<float>(v);
    std::vector<Tensor> outputs;
    ASSERT_TRUE((*graphs)[0]->Execute(std::span(&x, 1), &outputs).ok());
    ASSERT_EQ(outputs.size(), 1u);
    EXPECT_EQ(outputs[0].shape(), (Shape{2, 2}));
    EXPECT_THAT(
        std::vector<float>(outputs[0].span<float>().begin(), outputs[0].span<float>().end()),
        ::testing::ElementsAre(6 * v + 1, 2 * v + 2, 6 * v + 1, 2 * v + 2));
  }
  auto three = *Tensor::Allocate(DataType::kFp32, {3, 4});
  std::vector<Tensor> outputs;
  ASSERT_TRUE((*graphs)[0]->Execute(std::span(&three, 1), &outputs).ok()) << "no graph: the module";
  EXPECT_EQ(outputs[0].shape(), (Shape{3, 2}));
}

TEST_F(TorchScriptTest, WhatTheConfigGetsWrongIsRefusedAtLoad) {
  EXPECT_THAT(Load("y", Config("  - {name: y, datatype: INT32, dims: [2]}\n")).status().message(),
              HasSubstr("output 'y' came back as Float, not INT32"));
  EXPECT_THAT(Load("y", Config(kYAndBest)).status().message(),
              HasSubstr("forward() returned 1 tensors; the config lists 2 outputs"));
  EXPECT_THAT(Load("{'y': y}", Config(kYAndBest)).status().message(),
              HasSubstr("without the tensor 'best'"));
  auto gpu = Load("y", Config(kY, "optimization: {execution_provider: cuda}\n"));
  if (!torch::cuda::is_available()) {
    EXPECT_EQ(gpu.status().code(), StatusCode::kUnavailable);
  }
  auto bytes = Load("y",
                    "backend: torchscript\nmax_batch_size: 8\n"
                    "inputs: [{name: x, datatype: BYTES, dims: [1]}]\noutputs:\n" +
                        std::string(kY));
  EXPECT_THAT(bytes.status().message(), HasSubstr("no BYTES tensors"));
  std::filesystem::remove(dir_.path() / "1" / "model.pt");
  auto config = ParseModelConfig(Config(kY), "linear", dir_.path(), "config.yaml");
  EXPECT_EQ(MakeTorchScriptBackend()(*config, dir_.path() / "1").status().code(),
            StatusCode::kNotFound);
}

TEST_F(TorchScriptTest, InputsAreTheModulesOwnToWriteAndToReturn) {
  // forward() doubles its input in place and returns it: the request's
  // buffer must stay as it was, and the output must not be a view of it.
  std::filesystem::create_directories(dir_.path() / "1");
  torch::jit::Module module("InPlace");
  module.define(R"(
def forward(self, x):
    return x.mul_(2.0)
)");
  module.save((dir_.path() / "1" / "model.pt").string());
  auto config = ParseModelConfig(
      "backend: torchscript\nmax_batch_size: 8\n"
      "inputs: [{name: x, datatype: FP32, dims: [2]}]\n"
      "outputs: [{name: y, datatype: FP32, dims: [2]}]\n",
      "inplace", dir_.path(), "config.yaml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  auto instances = MakeTorchScriptBackend()(*config, dir_.path() / "1");
  ASSERT_TRUE(instances.ok()) << instances.status().ToString();
  auto x = *Tensor::Allocate(DataType::kFp32, {1, 2});
  x.mutable_span<float>()[0] = 3;
  x.mutable_span<float>()[1] = 4;
  std::vector<Tensor> outputs;
  ASSERT_TRUE((*instances)[0]->Execute(std::span(&x, 1), &outputs).ok());
  EXPECT_EQ(x.span<float>()[0], 3.0f) << "the request's buffer is left alone";
  x.mutable_span<float>()[0] = 99;
  EXPECT_EQ(outputs[0].span<float>()[0], 6.0f) << "the output has a buffer of its own";
  EXPECT_EQ(outputs[0].span<float>()[1], 8.0f);
}

TEST_F(TorchScriptTest, ServedFromARepositoryLikeAnyBackend) {
  testing::TempDir root;
  std::filesystem::create_directories(root.path() / "linear" / "1");
  Linear("y").save((root.path() / "linear" / "1" / "model.pt").string());
  std::ofstream(root.path() / "linear" / "config.yaml") << Config(kY);
  BackendRegistry backends;
  RegisterBuiltinBackends(backends);
  ModelRepository repository(root.path(), backends);
  ASSERT_TRUE(repository.LoadAll().ok());
  auto model = repository.Get("linear");
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_EQ((*model)->config().backend, "torchscript");
}

}  // namespace
}  // namespace braid
