// gpu_check: the torchscript backend on a GPU, as scripts/gpu-check runs it
// on a lent machine. One stand-in graph, a stack of CLIP's MLP blocks
// (width 512, 2048 hidden, QuickGELU, a residual around each) with seeded
// weights, written as a TorchScript module and loaded through the backend
// four ways: CPU FP32, then on the GPU FP32, FP16, and FP16 with CUDA graphs
// captured for the measured batch sizes (parameters.cuda_graphs). Each
// batch size is timed over --rounds runs (medians), and each GPU answer is
// compared with the CPU's.
//   gpu_check [--cpu] [--layers N] [--rounds N]
// --cpu: the CPU rows alone (a machine without a GPU, to check the build).
#include <fmt/core.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backends/torchscript/torchscript_backend.h"
#include "model/config.h"

namespace braid {
namespace {

constexpr std::int64_t kWidth = 512, kHidden = 2048;
constexpr std::int64_t kBatches[] = {1, 8, 32};

[[noreturn]] void Die(const Status& status) {
  fmt::print(stderr, "gpu_check: {}\n", status.ToString());
  std::exit(1);
}

// forward() of `layers` residual MLP blocks, their weights w1_i, b1_i, w2_i, b2_i.
std::string StackSource(int layers) {
  std::string source = "def forward(self, x):\n";
  for (int i = 0; i < layers; ++i) {
    source += fmt::format(
        "    h = torch.matmul(x, self.w1_{0}) + self.b1_{0}\n"
        "    x = x + torch.matmul(h * torch.sigmoid(1.702 * h), self.w2_{0}) + self.b2_{0}\n",
        i);
  }
  return source + "    return x\n";
}

void WriteStack(int layers, const std::filesystem::path& file) {
  std::mt19937 random(7);
  auto seeded = [&random](std::vector<std::int64_t> sizes, float scale) {
    std::uniform_real_distribution<float> uniform(-scale, scale);
    torch::Tensor tensor = torch::empty(sizes);
    float* values = tensor.data_ptr<float>();
    for (std::int64_t i = 0; i < tensor.numel(); ++i) values[i] = uniform(random);
    return tensor;
  };
  torch::jit::Module module("MlpStack");
  for (int i = 0; i < layers; ++i) {
    module.register_parameter(fmt::format("w1_{}", i), seeded({kWidth, kHidden}, 0.04f), false);
    module.register_parameter(fmt::format("b1_{}", i), seeded({kHidden}, 0.01f), false);
    module.register_parameter(fmt::format("w2_{}", i), seeded({kHidden, kWidth}, 0.02f), false);
    module.register_parameter(fmt::format("b2_{}", i), seeded({kWidth}, 0.01f), false);
  }
  module.define(StackSource(layers));
  module.save(file.string());
}

Result<ModelInstancePtr> Load(const std::filesystem::path& folder, const std::string& optimization,
                              const std::string& parameters) {
  const std::string yaml = fmt::format(
      "backend: torchscript\nmax_batch_size: 32\n"
      "inputs: [{{name: x, datatype: FP32, dims: [{0}]}}]\n"
      "outputs: [{{name: y, datatype: FP32, dims: [{0}]}}]\n"
      "optimization: {{{1}}}\nparameters: {{{2}}}\n",
      kWidth, optimization, parameters);
  BRAID_ASSIGN_OR_RETURN(ModelConfig config,
                         ParseModelConfig(yaml, "mlp-stack", folder, "config.yaml"));
  BRAID_ASSIGN_OR_RETURN(auto instances, MakeTorchScriptBackend()(config, folder / "1"));
  return std::move(instances.front());
}

struct Timing {
  double p50_ms = 0;
  std::vector<float> answer;  // the last run's output
};

Timing Time(ModelInstance& instance, const Tensor& batch, int rounds) {
  std::vector<Tensor> outputs;
  std::vector<double> ms;
  for (int round = -3; round < rounds; ++round) {  // three warm-up runs
    const auto start = std::chrono::steady_clock::now();
    if (Status status = instance.Execute(std::span(&batch, 1), &outputs); !status.ok()) Die(status);
    const std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - start;
    if (round >= 0) ms.push_back(took.count());
  }
  std::sort(ms.begin(), ms.end());
  const auto values = outputs.front().span<float>();
  return {ms[ms.size() / 2], std::vector<float>(values.begin(), values.end())};
}

// The largest difference from `reference`, relative to its largest value;
// infinite when the answer holds a NaN or an infinity.
double RelativeDifference(const std::vector<float>& reference, const std::vector<float>& answer) {
  double most = 0, scale = 0;
  for (std::size_t i = 0; i < reference.size(); ++i) {
    if (!std::isfinite(answer[i])) return std::numeric_limits<double>::infinity();
    most = std::max(most, static_cast<double>(std::abs(reference[i] - answer[i])));
    scale = std::max(scale, static_cast<double>(std::abs(reference[i])));
  }
  return scale > 0 ? most / scale : most;
}

// How far a variant's answer may be from the CPU's, relative: FP32 on the
// GPU differs in summation order only; half precision keeps about three
// digits, and twelve blocks add up their errors.
double Tolerance(const std::string& variant) {
  return variant.find("FP16") == std::string::npos ? 1e-4 : 3e-2;
}

int Run(bool cpu_only, int layers, int rounds) {
  const std::filesystem::path folder =
      std::filesystem::temp_directory_path() / fmt::format("gpu_check.{}", getpid());
  std::filesystem::create_directories(folder / "1");
  WriteStack(layers, folder / "1" / "model.pt");
  const bool gpu = !cpu_only && torch::cuda::is_available();
  // Each way the backend loads it; one that fails to load is said and left
  // out, so that the others' rows still come (the graphs are the newest).
  std::vector<std::pair<std::string, ModelInstancePtr>> variants;
  std::vector<std::string> wrong;  // failed to load, or answered too far from the CPU
  auto add = [&](const std::string& name, const std::string& optimization,
                 const std::string& parameters) {
    auto instance = Load(folder, optimization, parameters);
    if (instance.ok()) {
      variants.emplace_back(name, std::move(instance).value());
      return;
    }
    fmt::print(stderr, "gpu_check: {}: {}\n", name, instance.status().ToString());
    wrong.push_back(name + " (not loaded)");
  };
  add("CPU FP32", "", "");
  if (variants.empty()) Die(Internal("the CPU variant did not load"));
  if (gpu) {
    add("GPU FP32", "execution_provider: cuda", "");
    add("GPU FP16", "execution_provider: cuda, precision: fp16", "");
    add("GPU FP16 + CUDA graphs", "execution_provider: cuda, precision: fp16",
        fmt::format("cuda_graphs: '{}, {}, {}'", kBatches[0], kBatches[1], kBatches[2]));
  }
  fmt::print("{} residual MLP blocks ({}→{}→{}), {} rounds per figure (medians)\n\n", layers,
             kWidth, kHidden, kWidth, rounds);
  fmt::print(
      "| variant | batch | p50 ms | items/s | max |Δ| / max |y| vs CPU FP32 |\n"
      "|---|---:|---:|---:|---:|\n");
  std::map<std::pair<std::string, std::int64_t>, double> p50;
  std::mt19937 random(11);
  std::uniform_real_distribution<float> uniform(-1, 1);
  for (std::int64_t batch : kBatches) {
    auto x = Tensor::Allocate(DataType::kFp32, {batch, kWidth});
    if (!x.ok()) Die(x.status());
    for (float& value : x->mutable_span<float>()) value = uniform(random);
    std::vector<float> reference;
    for (auto& [name, instance] : variants) {
      const Timing timing = Time(*instance, *x, rounds);
      if (reference.empty()) reference = timing.answer;
      p50[{name, batch}] = timing.p50_ms;
      const double difference = RelativeDifference(reference, timing.answer);
      if (difference > Tolerance(name)) {
        wrong.push_back(fmt::format("{} at batch {} (answer too far from the CPU's)", name, batch));
      }
      fmt::print("| {} | {} | {:.3f} | {:.0f} | {:.1e} |\n", name, batch, timing.p50_ms,
                 1000.0 * static_cast<double>(batch) / timing.p50_ms, difference);
    }
  }
  std::filesystem::remove_all(folder);
  for (const auto& variant : wrong) fmt::print(stderr, "gpu_check: {}: failed\n", variant);
  if (!gpu) {
    fmt::print("\n{}: the GPU rows were skipped\n",
               cpu_only ? "--cpu" : "libtorch sees no CUDA device");
    return wrong.empty() ? 0 : 1;
  }
  fmt::print("\n");
  auto ratio = [&p50](const std::string& a, const std::string& b, std::int64_t batch) {
    auto x = p50.find({a, batch}), y = p50.find({b, batch});
    return x == p50.end() || y == p50.end() ? std::string("—")
                                            : fmt::format("{:.2f}×", x->second / y->second);
  };
  for (std::int64_t batch : kBatches) {
    fmt::print(
        "- batch {}: FP16 / FP32 time **{}**; with CUDA graphs / FP16 time **{}**; "
        "GPU FP16 + graphs / CPU FP32 time {}\n",
        batch, ratio("GPU FP16", "GPU FP32", batch),
        ratio("GPU FP16 + CUDA graphs", "GPU FP16", batch),
        ratio("GPU FP16 + CUDA graphs", "CPU FP32", batch));
  }
  return wrong.empty() ? 0 : 1;
}

}  // namespace
}  // namespace braid

int main(int argc, char** argv) {
  CLI::App app{"gpu_check: the torchscript backend on the GPU: FP32, FP16, FP16 with CUDA graphs"};
  bool cpu_only = false;
  int layers = 12, rounds = 50;
  app.add_flag("--cpu", cpu_only,
               "The CPU rows alone (to check the build on a machine without a GPU)");
  app.add_option("--layers", layers, "Residual MLP blocks in the stand-in")
      ->check(CLI::Range(1, 48))
      ->capture_default_str();
  app.add_option("--rounds", rounds, "Runs per figure (medians)")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  return braid::Run(cpu_only, layers, rounds);
}
