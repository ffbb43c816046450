// bench_torchscript: the torchscript backend (libtorch) against the
// onnxruntime backend on the same stand-in graph, written both ways with the
// same seeded weights: CLIP's MLP block (512 → 2048, QuickGELU, → 512) as an
// ONNX file (libonnx) and a TorchScript module (libtorch's compiler), each
// loaded through its backend with the whole compute budget (ONNX Runtime's
// shared pool; libtorch's OpenMP pool sized to the same number of threads,
// and the OpenBLAS its matrix products call too: the bench starts itself
// again with OPENBLAS_NUM_THREADS set, which OpenBLAS reads only at load).
// The two take turns on the same batches; figures are medians of --rounds.
// The outputs' largest difference is printed to show it is one graph.
#include <fmt/core.h>
#include <torch/script.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <fstream>
#include <random>

#include "backends/backends.h"
#include "core/compute_budget.h"
#include "model/config.h"
#include "onnxgen/graph_builder.h"
#include "support/exit_on_error.h"
#include "support/temp_dir.h"

namespace braid {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::int64_t kWidth = 512, kHidden = 2048;

using testing::Check;
using testing::Fail;

std::vector<float> Seeded(std::size_t count, float scale, std::mt19937& random) {
  std::uniform_real_distribution<float> uniform(-scale, scale);
  std::vector<float> values(count);
  for (float& v : values) v = uniform(random);
  return values;
}

struct Weights {
  std::vector<float> w1, b1, w2, b2;
};

void WriteOnnx(const Weights& w, const std::filesystem::path& file) {
  onnx::ModelProto model = onnxgen::NewModel("mlp");
  onnxgen::GraphBuilder g(model.mutable_graph(), 1);
  g.Input("x", onnx::TensorProto::FLOAT, {-1, kWidth});
  auto h = g.Op("Add", {g.Op("MatMul", {"x", g.Floats("w1", {kWidth, kHidden}, w.w1)}),
                        g.Floats("b1", {kHidden}, w.b1)});
  auto gate = g.Op("Sigmoid", {g.Op("Mul", {h, g.Scalar("quick", 1.702f)})});
  auto activated = g.Op("Mul", {h, gate});
  g.Op("Add",
       {g.Op("MatMul", {activated, g.Floats("w2", {kHidden, kWidth}, w.w2)}),
        g.Floats("b2", {kWidth}, w.b2)},
       "y");
  g.Output("y", onnx::TensorProto::FLOAT, {-1, kWidth});
  if (auto status = onnxgen::CheckAndWriteModel(model, file); !status.ok()) Fail(status);
}

void WriteTorchScript(const Weights& w, const std::filesystem::path& file) {
  auto tensor = [](const std::vector<float>& values, std::vector<std::int64_t> sizes) {
    return torch::from_blob(const_cast<float*>(values.data()), sizes).clone();
  };
  torch::jit::Module module("Mlp");
  module.register_parameter("w1", tensor(w.w1, {kWidth, kHidden}), false);
  module.register_parameter("b1", tensor(w.b1, {kHidden}), false);
  module.register_parameter("w2", tensor(w.w2, {kHidden, kWidth}), false);
  module.register_parameter("b2", tensor(w.b2, {kWidth}), false);
  module.define(R"(
def forward(self, x):
    h = torch.matmul(x, self.w1) + self.b1
    h = h * torch.sigmoid(1.702 * h)
    return torch.matmul(h, self.w2) + self.b2
)");
  module.save(file.string());
}

std::unique_ptr<ModelInstance> Load(const BackendRegistry& backends,
                                    const std::filesystem::path& folder,
                                    const std::string& backend) {
  const std::string yaml = fmt::format(
      "backend: {}\nmax_batch_size: 64\n"
      "inputs: [{{name: x, datatype: FP32, dims: [{}]}}]\n"
      "outputs: [{{name: y, datatype: FP32, dims: [{}]}}]\n"
      "instance_group: {{count: 1, intra_op_threads: 0}}\n",
      backend, kWidth, kWidth);
  auto config = Check(ParseModelConfig(yaml, backend, folder, "config.yaml"));
  auto instances = Check((*backends.Find(backend))(config, folder / "1"));
  return std::move(instances.front());
}

double Millis(ModelInstance& instance, const Tensor& batch, std::vector<Tensor>* outputs) {
  const auto start = Clock::now();
  if (auto status = instance.Execute(std::span(&batch, 1), outputs); !status.ok()) Fail(status);
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

int Run(int rounds) {
  std::mt19937 random(7);
  Weights weights{Seeded(kWidth * kHidden, 0.04f, random), Seeded(kHidden, 0.01f, random),
                  Seeded(kHidden * kWidth, 0.02f, random), Seeded(kWidth, 0.01f, random)};
  testing::TempDir onnx_dir, torch_dir;
  std::filesystem::create_directories(onnx_dir.path() / "1");
  std::filesystem::create_directories(torch_dir.path() / "1");
  WriteOnnx(weights, onnx_dir.path() / "1" / "model.onnx");
  WriteTorchScript(weights, torch_dir.path() / "1" / "model.pt");
  BackendRegistry backends;
  RegisterBuiltinBackends(backends);
  auto ort = Load(backends, onnx_dir.path(), "onnxruntime");
  auto torch = Load(backends, torch_dir.path(), "torchscript");
  fmt::print("the same MLP block ({}→{}→{}), {} threads each (the compute budget)\n\n", kWidth,
             kHidden, kWidth, ProcessComputeBudget().threads());
  fmt::print(
      "| batch | onnxruntime ms | torchscript ms | torchscript / onnxruntime time | max |Δ| |\n");
  fmt::print("|---:|---:|---:|---:|---:|\n");
  for (std::int64_t batch : {1, 8, 32}) {
    auto x = *Tensor::Allocate(DataType::kFp32, {batch, kWidth});
    auto values = Seeded(static_cast<std::size_t>(batch * kWidth), 1.0f, random);
    std::copy(values.begin(), values.end(), x.mutable_span<float>().begin());
    std::vector<Tensor> a, b;
    Millis(*ort, x, &a);  // warm-up
    Millis(*torch, x, &b);
    float difference = 0;
    for (std::size_t i = 0; i < a[0].span<float>().size(); ++i)
      difference = std::max(difference, std::abs(a[0].span<float>()[i] - b[0].span<float>()[i]));
    std::vector<double> ort_ms, torch_ms;
    for (int round = 0; round < rounds; ++round) {
      ort_ms.push_back(Millis(*ort, x, &a));
      torch_ms.push_back(Millis(*torch, x, &b));
    }
    std::sort(ort_ms.begin(), ort_ms.end());
    std::sort(torch_ms.begin(), torch_ms.end());
    const double o = ort_ms[ort_ms.size() / 2], t = torch_ms[torch_ms.size() / 2];
    fmt::print("| {} | {:.3f} | {:.3f} | {:.2f}× | {:.1e} |\n", batch, o, t, t / o, difference);
  }
  return 0;
}

}  // namespace
}  // namespace braid

int main(int argc, char** argv) {
  if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) {
    setenv("OPENBLAS_NUM_THREADS", std::to_string(braid::AvailableCores()).c_str(), 1);
    execv("/proc/self/exe", argv);
  }
  CLI::App app{"bench_torchscript: the torchscript backend beside onnxruntime on one graph"};
  int rounds = 50;
  app.add_option("--rounds", rounds, "Runs per batch size; figures are medians")
      ->check(CLI::Range(1, 10000));
  CLI11_PARSE(app, argc, argv);
  return braid::Run(rounds);
}
