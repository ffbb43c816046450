// bench_cache: what the result cache costs and saves, in process.
//   - hashing throughput of a 602 KB image tensor (XXH3-128 through Hasher);
//   - memory-tier hit latency (p50, the lookup alone: the key is hashed
//     beforehand) for a 2 KB embedding among 10,000 entries;
//   - Redis-tier hit latency (p50) against a running redis-server (--redis);
//   - image-text-match runs: cold (a picture never seen, a new question),
//     a cached picture with a new question, and a repeated request; p50
//     over --runs runs each.
// bench/cache/run.sh adds the redis-benchmark baseline and the HTTP figures.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <condition_variable>
#include <opencv2/imgcodecs.hpp>
#include <random>

#include "backends/backends.h"
#include "core/file_util.h"
#include "frontends/workflow/workflow_api.h"
#include "serving/inference_service.h"

namespace braid {
namespace {

using Wall = std::chrono::steady_clock;

double Micros(Wall::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

std::vector<Tensor> Embedding(float fill) {
  Tensor t = *Tensor::Allocate(DataType::kFp32, {1, 512});
  for (auto& v : t.mutable_span<float>()) v = fill;
  return {t};
}

Hash128 Key(int i) { return Hasher().Add("bench").Add(std::int64_t{i}).Finish(); }

double HashingGbPerSecond() {
  Tensor pixels = *Tensor::Allocate(DataType::kFp32, {1, 3, 224, 224});
  std::mt19937 random(1);
  for (auto& v : pixels.mutable_span<float>()) v = std::uniform_real_distribution<float>()(random);
  const int iterations = 2000;
  std::uint64_t sink = 0;
  const auto start = Wall::now();
  for (int i = 0; i < iterations; ++i) sink ^= Hasher().Add(pixels).Finish().low;
  const double seconds = Micros(Wall::now() - start) / 1e6;
  if (sink == 42) fmt::print("");
  return iterations * double(pixels.byte_size()) / seconds / 1e9;
}

// p50 of single lookups of random present keys.
template <typename Lookup>
double HitMedianMicros(int keys, int lookups, Lookup lookup) {
  std::mt19937 random(2);
  std::vector<double> samples;
  samples.reserve(lookups);
  for (int i = 0; i < lookups; ++i) {
    const Hash128 key = Key(std::uniform_int_distribution<int>(0, keys - 1)(random));
    const auto start = Wall::now();
    const bool hit = lookup(key);
    samples.push_back(Micros(Wall::now() - start));
    if (!hit) fmt::print(stderr, "bench_cache: expected a hit\n");
  }
  return Median(samples);
}

double RunMillis(WorkflowExecutor& executor, const WorkflowPtr& workflow, NamedTensors inputs,
                 int* cached_nodes) {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  int cached = 0;
  const auto start = Wall::now();
  executor.Start(workflow, std::move(inputs), {}, [&](const WorkflowEvent& event) {
    std::lock_guard lock(mutex);
    cached += event.type == WorkflowEvent::Type::kNodeFinished && event.cached;
    if (event.type == WorkflowEvent::Type::kError) fmt::print(stderr, "{}\n", event.text);
    if (event.type == WorkflowEvent::Type::kWorkflowFinished ||
        event.type == WorkflowEvent::Type::kError) {
      done = true;
      done_cv.notify_all();
    }
  });
  std::unique_lock lock(mutex);
  done_cv.wait(lock, [&] { return done; });
  *cached_nodes = cached;
  return Micros(Wall::now() - start) / 1000;
}

}  // namespace
}  // namespace braid

int main(int argc, char** argv) {
  using namespace braid;
  CLI::App app{"bench_cache: result cache costs and savings, in process"};
  std::string redis_url;
  std::string repository = BRAID_DEFAULT_MODEL_REPOSITORY;
  std::string workflows_dir = BRAID_DEFAULT_WORKFLOWS;
  std::string fixtures = BRAID_FIXTURES;
  int runs = 10;
  app.add_option("--redis", redis_url, "redis://host:port of a running redis-server");
  app.add_option("-m,--model-repository", repository, "Model repository");
  app.add_option("--workflows", workflows_dir, "Workflow folder");
  app.add_option("--fixtures", fixtures, "Fixture folder (tests/fixtures/generate.sh output)");
  app.add_option("--runs", runs, "Timed workflow runs per case");
  CLI11_PARSE(app, argc, argv);

  fmt::print("- hashing a 602 KB image tensor: **{:.1f} GB/s** (XXH3-128, one core)\n",
             HashingGbPerSecond());

  constexpr int kKeys = 10000;
  MemoryCache memory(std::size_t{256} << 20, SteadyClock());
  for (int i = 0; i < kKeys; ++i) memory.Put(Key(i), Embedding(i), std::chrono::hours(1));
  const double memory_us = HitMedianMicros(
      kKeys, 200000, [&](const Hash128& key) { return memory.Get(key).has_value(); });
  fmt::print(
      "- memory tier hit, 2 KB embedding among {} entries: p50 **{:.2f} µs** (goal ≤ 5 µs)\n",
      kKeys, memory_us);

  if (!redis_url.empty()) {
    auto options = ParseRedisUrl(redis_url);
    if (!options.ok()) {
      fmt::print(stderr, "bench_cache: {}\n", options.status().message());
      return 1;
    }
    options->timeout = std::chrono::milliseconds(100);
    RedisTier redis(*options, SteadyClock());
    for (int wait = 0; wait < 100 && !redis.up(); ++wait)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    constexpr int kRedisKeys = 2000;
    for (int i = 0; i < kRedisKeys; ++i) redis.Put(Key(i), Embedding(i), std::chrono::hours(1));
    redis.Flush(std::chrono::seconds(30));
    const double redis_us = HitMedianMicros(
        kRedisKeys, 20000, [&](const Hash128& key) { return redis.Get(key).has_value(); });
    fmt::print("redis_hit_p50_us={:.1f}\n", redis_us);
  }

  // Workflow: a cached image with a new question vs a picture never seen.
  BackendRegistry backends;
  RegisterBuiltinBackends(backends);
  ModelRepository models(repository, backends);
  ResultCache cache(&memory, nullptr);
  InferenceService service(models, SteadyClock(), {}, &cache);
  if (Status s = service.LoadAll(); !s.ok()) {
    fmt::print(stderr, "bench_cache: {}\n", s.message());
    return 1;
  }
  WorkflowRegistry registry;
  if (Status s = registry.Load(workflows_dir, MakeModelCatalog(service)); !s.ok()) {
    fmt::print(stderr, "bench_cache: {}\n", s.message());
    return 1;
  }
  ServiceModelRunner runner(service);
  ThreadPool pool(2);
  WorkflowExecutor executor(runner, pool, SteadyClock());
  executor.SetCache(&cache);
  const WorkflowPtr workflow = *registry.Get("image-text-match");
  const std::string picture = *ReadFile(fixtures + "/images/text_1_DejaVu-Sans_40.png");
  auto inputs = [&](const std::string& image, int question) {
    return NamedTensors{
        {"image", *Tensor::FromStrings({image}, {1})},
        {"text", *Tensor::FromStrings({fmt::format("question number {}", question)}, {1})}};
  };
  // A picture never seen: the fixture with a block of pixels changed.
  auto fresh_picture = [&](int seed) {
    cv::Mat pixels = cv::imdecode(
        cv::Mat(1, static_cast<int>(picture.size()), CV_8U, const_cast<char*>(picture.data())),
        cv::IMREAD_COLOR);
    pixels(cv::Rect(0, 0, 16, 16)).setTo(cv::Scalar(seed % 256, seed / 256 % 256, 7));
    std::vector<unsigned char> png;
    cv::imencode(".png", pixels, png);
    return std::string(png.begin(), png.end());
  };
  std::vector<double> cold, warm, repeat;
  int cold_cached = 0, warm_cached = 0, repeat_cached = 0, question = 0;
  RunMillis(executor, workflow, inputs(picture, question++), &cold_cached);  // fills the cache
  for (int r = 0; r < runs; ++r) {
    cold.push_back(
        RunMillis(executor, workflow, inputs(fresh_picture(r + 1), question++), &cold_cached));
    warm.push_back(RunMillis(executor, workflow, inputs(picture, question++), &warm_cached));
    repeat.push_back(RunMillis(executor, workflow, inputs(picture, 0), &repeat_cached));
  }
  const double cold_ms = Median(cold), warm_ms = Median(warm), repeat_ms = Median(repeat);
  fmt::print(
      "- image-text-match p50: cold (new picture, new question) {:.2f} ms; cached picture, new "
      "question {:.2f} ms (**{:.1f}×** faster, {} of 7 nodes cached); repeated request {:.2f} ms "
      "(**{:.0f}×** faster, {} of 7 cached)\n",
      cold_ms, warm_ms, cold_ms / warm_ms, warm_cached, repeat_ms, cold_ms / repeat_ms,
      repeat_cached);
  if (cold_cached != 0) fmt::print(stderr, "bench_cache: a cold run hit the cache\n");
  return 0;
}
