// bench_raw_ort: the in-process ceiling. Runs clip-image and clip-text
// straight through the ONNX Runtime backend (no queue, no server) at batch
// sizes 1..64 with 1 and 2 intra-op threads, and prints median latency and
// throughput per configuration, plus each throughput as a ratio of batch 1's
// measured in the same run. Later server benchmarks divide by these figures.
#include <fmt/core.h>
#include <fmt/ranges.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>

#include "backends/onnxruntime/onnxruntime_backend.h"
#include "model/model.h"
#include "model/repository.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Row {
  std::string model;
  int threads;
  int batch;
  double median_ms;
  double p90_ms;
  double items_per_s;
  int runs;
};

// Random inputs of the shape the model takes at `batch`; token ids are
// drawn below CLIP's vocabulary size.
std::vector<braid::Tensor> MakeInputs(const braid::ModelConfig& config, int batch) {
  std::mt19937 random(batch);
  std::vector<braid::Tensor> inputs;
  for (const auto& spec : config.inputs) {
    auto tensor =
        *braid::Tensor::Allocate(spec.datatype, braid::ExpectedShape(config, spec, batch));
    if (spec.datatype == braid::DataType::kInt64) {
      for (auto& v : tensor.mutable_span<std::int64_t>()) v = random() % 49407;
    } else {
      std::uniform_real_distribution<float> dist(-1, 1);
      for (auto& v : tensor.mutable_span<float>()) v = dist(random);
    }
    inputs.push_back(std::move(tensor));
  }
  return inputs;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_raw_ort: in-process ONNX Runtime throughput and latency per batch size"};
  std::string repository = BRAID_DEFAULT_MODEL_REPOSITORY;
  std::vector<std::string> models = {"clip-image", "clip-text"};
  std::vector<int> batches = {1, 2, 4, 8, 16, 32, 64};
  std::vector<int> threads = {1, 2};
  double seconds = 1.0;
  int min_runs = 3;
  std::string json_path;
  app.add_option("-m,--model-repository", repository, "Model repository");
  app.add_option("--models", models, "Models to measure");
  app.add_option("--batches", batches, "Batch sizes");
  app.add_option("--threads", threads, "intra_op_threads settings");
  app.add_option("--seconds", seconds,
                 "Measuring time per configuration (at least --min-runs runs)");
  app.add_option("--min-runs", min_runs, "Fewest timed runs per configuration");
  app.add_option("--json", json_path, "Also write the rows as JSON to this file");
  CLI11_PARSE(app, argc, argv);

  std::vector<Row> rows;
  auto factory = braid::MakeOnnxRuntimeBackend();
  for (const auto& name : models) {
    auto config = braid::LoadModelConfig(std::filesystem::path(repository) / name);
    if (!config.ok()) {
      fmt::print(stderr, "bench_raw_ort: {}\n", config.status().message());
      return 1;
    }
    auto versions = braid::ListVersions(config->directory);
    if (versions.empty()) {
      fmt::print(stderr, "bench_raw_ort: {} has no version folder\n", config->directory.string());
      return 1;
    }
    for (int thread_count : threads) {
      config->instance_group.count = 1;
      config->instance_group.intra_op_threads = thread_count;
      auto instances = factory(*config, config->directory / std::to_string(versions.back()));
      if (!instances.ok()) {
        fmt::print(stderr, "bench_raw_ort: {}\n", instances.status().message());
        return 1;
      }
      braid::Model model(*config, versions.back(), std::move(instances).value());
      for (int batch : batches) {
        if (batch > config->max_batch_size) continue;
        auto inputs = MakeInputs(*config, batch);
        std::vector<braid::Tensor> outputs;
        if (auto status = model.Execute(0, inputs, &outputs); !status.ok()) {  // warm-up
          fmt::print(stderr, "bench_raw_ort: {}\n", status.message());
          return 1;
        }
        std::vector<double> latencies;
        auto start = Clock::now();
        while (static_cast<int>(latencies.size()) < min_runs ||
               std::chrono::duration<double>(Clock::now() - start).count() < seconds) {
          auto begin = Clock::now();
          (void)model.Execute(0, inputs, &outputs);
          latencies.push_back(
              std::chrono::duration<double, std::milli>(Clock::now() - begin).count());
        }
        std::sort(latencies.begin(), latencies.end());
        double median = latencies[latencies.size() / 2];
        double p90 = latencies[std::min(latencies.size() - 1, latencies.size() * 9 / 10)];
        rows.push_back({name, thread_count, batch, median, p90, batch * 1000.0 / median,
                        static_cast<int>(latencies.size())});
        fmt::print(stderr, "  {} threads={} batch={}: {:.2f} ms\n", name, thread_count, batch,
                   median);
      }
    }
  }

  fmt::print(
      "\n| model | intra-op threads | batch | median ms | p90 ms | items/s | × batch 1 | runs |\n");
  fmt::print("|---|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& row : rows) {
    double base = 0;
    for (const auto& other : rows) {
      if (other.model == row.model && other.threads == row.threads && other.batch == 1)
        base = other.items_per_s;
    }
    fmt::print("| {} | {} | {} | {:.2f} | {:.2f} | {:.1f} | {} | {} |\n", row.model, row.threads,
               row.batch, row.median_ms, row.p90_ms, row.items_per_s,
               base > 0 ? fmt::format("{:.2f}", row.items_per_s / base) : "-", row.runs);
  }
  for (const auto& name : models) {
    const Row* best = nullptr;
    for (const auto& row : rows) {
      if (row.model == name && (!best || row.items_per_s > best->items_per_s)) best = &row;
    }
    if (best) {
      fmt::print("\nceiling {}: {:.1f} items/s at batch {} with {} intra-op threads\n", name,
                 best->items_per_s, best->batch, best->threads);
    }
  }
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << "[";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      out << fmt::format(
          R"({}{{"model":"{}","threads":{},"batch":{},"median_ms":{:.4f},"p90_ms":{:.4f},"items_per_s":{:.3f}}})",
          i ? "," : "", r.model, r.threads, r.batch, r.median_ms, r.p90_ms, r.items_per_s);
    }
    out << "]\n";
  }
  return 0;
}
