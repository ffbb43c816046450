// bench_batching: what the scheduler's dynamic batching buys, in process.
//
// For each model: the raw ceiling (best items/s of direct batched calls),
// then closed-loop clients sending single-item requests through the
// scheduler at several concurrencies with batching off and on, then an
// open-loop overload at twice the measured peak with mixed priorities, its
// priority-1 share alone (what those requests cost each other), and lone
// requests, one at a time after an idle gap (what the gap costs a run).
// All figures come from this one run, so the ratios compare like with like.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <optional>
#include <random>
#include <thread>

#include "backends/backends.h"
#include "core/compute_budget.h"
#include "model/repository.h"
#include "scheduler/model_scheduler.h"

namespace braid {
namespace {

using Clock = std::chrono::steady_clock;

// How long after an answer the next lone request comes: an idle gap before
// every run, and no request ever waits for another.
constexpr auto kLonePause = std::chrono::milliseconds(100);

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<std::size_t>(p * values.size()))];
}

Tensor MakeInput(const ModelConfig& config, int batch, std::mt19937& random) {
  const TensorSpec& spec = config.inputs[0];
  Tensor tensor = *Tensor::Allocate(spec.datatype, ExpectedShape(config, spec, batch));
  if (spec.datatype == DataType::kInt64) {
    for (auto& v : tensor.mutable_span<std::int64_t>()) v = random() % 49407;
  } else {
    std::uniform_real_distribution<float> dist(-1, 1);
    for (auto& v : tensor.mutable_span<float>()) v = dist(random);
  }
  return tensor;
}

struct Ceiling {
  double items_per_s = 0;
  int batch = 0;
};

Ceiling MeasureCeiling(Model& model, double seconds) {
  Ceiling best;
  std::mt19937 random(1);
  for (int batch : {1, 4, 8, 16, 32}) {
    if (batch > model.config().max_batch_size) break;
    std::vector<Tensor> inputs = {MakeInput(model.config(), batch, random)};
    std::vector<Tensor> outputs;
    (void)model.Execute(0, inputs, &outputs);
    int runs = 0;
    auto start = Clock::now();
    while (runs < 3 || Seconds(Clock::now() - start) < seconds) {
      (void)model.Execute(0, inputs, &outputs);
      ++runs;
    }
    double rate = runs * batch / Seconds(Clock::now() - start);
    if (rate > best.items_per_s) best = {rate, batch};
  }
  return best;
}

struct LoadResult {
  std::vector<double> latencies_ms;  // successful requests
  double elapsed_s = 0;
  std::uint64_t executions = 0, inferences = 0;
  double throughput = 0;  // successful requests per second
  double p50_ms = 0, p99_ms = 0;
  double high_p99_ms = 0;                                 // priority-1 requests only (open loop)
  double high_queue_p99_ms = 0, high_compute_p99_ms = 0;  // their time queued and computing
  std::uint64_t preempted = 0;  // batches stopped for a more urgent one (open loop)
  std::uint64_t rejected = 0, timed_out = 0, failed = 0;
  double mean_batch = 0;
};

// `concurrency` clients, each sending one request at `priority`, waiting
// for it, and sending the next `pause` after the answer.
LoadResult ClosedLoop(ModelScheduler& scheduler, int concurrency, double seconds, int priority = 0,
                      Clock::duration pause = {}) {
  std::atomic<bool> measuring{false}, stop{false};
  std::mutex mutex;
  std::vector<double> latencies;
  std::atomic<std::uint64_t> failed{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < concurrency; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937 random(100 + c);
      Tensor input = MakeInput(scheduler.model().config(), 1, random);
      std::mutex done_mutex;
      std::condition_variable done_cv;
      std::vector<double> mine;
      while (!stop) {
        bool done = false;
        Status status;
        auto request = std::make_unique<InferenceRequest>();
        request->inputs = {input};
        request->priority = priority;
        request->on_complete = [&](InferenceResult result) {
          std::lock_guard lock(done_mutex);
          status = result.status;
          done = true;
          done_cv.notify_one();
        };
        auto begin = Clock::now();
        if (!scheduler.Enqueue(request).ok()) {
          ++failed;
          continue;
        }
        std::unique_lock lock(done_mutex);
        done_cv.wait(lock, [&] { return done; });
        if (!status.ok()) ++failed;
        if (measuring && status.ok()) mine.push_back(Seconds(Clock::now() - begin) * 1000);
        lock.unlock();
        if (pause > Clock::duration::zero()) std::this_thread::sleep_for(pause);
      }
      std::lock_guard lock(mutex);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // warm-up
  auto before = scheduler.Stats();
  measuring = true;
  auto start = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  measuring = false;
  double elapsed = Seconds(Clock::now() - start);
  auto after = scheduler.Stats();
  stop = true;
  for (auto& client : clients) client.join();
  LoadResult result;
  result.latencies_ms = std::move(latencies);
  result.elapsed_s = elapsed;
  result.failed = failed;
  result.executions = after.executions - before.executions;
  result.inferences = after.inferences - before.inferences;
  return result;
}

// Runs the closed loop in `rounds` short rounds alternating batching off and
// on (a fresh scheduler each round), so slow drifts of the machine affect
// both sides alike; returns {off, on} with the rounds merged.
std::pair<LoadResult, LoadResult> AlternatingClosedLoop(const ModelPtr& model, int concurrency,
                                                        double seconds, int rounds) {
  LoadResult merged[2];
  for (int round = 0; round < rounds; ++round) {
    for (int on = 0; on < 2; ++on) {
      SchedulerOptions options;
      options.batching = on == 1;
      options.budget = &ProcessComputeBudget();
      ModelScheduler scheduler(model, SteadyClock(), options);
      LoadResult r = ClosedLoop(scheduler, concurrency, seconds / rounds);
      LoadResult& m = merged[on];
      m.latencies_ms.insert(m.latencies_ms.end(), r.latencies_ms.begin(), r.latencies_ms.end());
      m.elapsed_s += r.elapsed_s;
      m.executions += r.executions;
      m.inferences += r.inferences;
      m.failed += r.failed;
    }
  }
  for (auto& m : merged) {
    m.throughput = m.latencies_ms.size() / m.elapsed_s;
    m.p50_ms = Percentile(m.latencies_ms, 0.5);
    m.p99_ms = Percentile(m.latencies_ms, 0.99);
    m.mean_batch = m.executions ? double(m.inferences) / m.executions : 0;
  }
  return {merged[0], merged[1]};
}

// Poisson arrivals at `rate` per second; `high_share` of them at priority 1,
// the rest at the model's default priority.
LoadResult OpenLoop(ModelScheduler& scheduler, double rate, double high_share, double seconds) {
  std::mt19937 random(7);
  Tensor input = MakeInput(scheduler.model().config(), 1, random);
  std::exponential_distribution<double> gap(rate);
  std::bernoulli_distribution high(high_share);
  std::mutex mutex;
  std::vector<double> latencies, high_latencies, high_queue, high_compute;
  std::atomic<int> outstanding{0};
  LoadResult result;
  std::uint64_t ok = 0;
  auto before = scheduler.Stats();
  auto start = Clock::now();
  auto next = start;
  while (Seconds(next - start) < seconds) {
    std::this_thread::sleep_until(next);
    auto request = std::make_unique<InferenceRequest>();
    request->inputs = {input};
    const bool is_high = high(random);
    request->priority = is_high ? 1 : 0;
    auto sent = Clock::now();
    request->on_complete = [&, sent, is_high](InferenceResult r) {
      double ms = Seconds(Clock::now() - sent) * 1000;
      std::lock_guard lock(mutex);
      if (r.status.ok()) {
        ++ok;
        latencies.push_back(ms);
        if (is_high) {
          high_latencies.push_back(ms);
          high_queue.push_back(Seconds(r.queue_time) * 1000);
          high_compute.push_back(Seconds(r.compute_time) * 1000);
        }
      } else if (r.status.code() == StatusCode::kDeadlineExceeded) {
        ++result.timed_out;
      } else {
        ++result.failed;
      }
      --outstanding;
    };
    ++outstanding;
    if (!scheduler.Enqueue(request).ok()) {
      --outstanding;
      ++result.rejected;
    }
    next += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap(random)));
  }
  double elapsed = Seconds(Clock::now() - start);
  while (outstanding > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto after = scheduler.Stats();
  std::lock_guard lock(mutex);
  result.throughput = ok / elapsed;
  result.latencies_ms = latencies;
  result.p50_ms = Percentile(latencies, 0.5);
  result.p99_ms = Percentile(latencies, 0.99);
  result.high_p99_ms = Percentile(high_latencies, 0.99);
  result.high_queue_p99_ms = Percentile(high_queue, 0.99);
  result.high_compute_p99_ms = Percentile(high_compute, 0.99);
  auto executions = after.executions - before.executions;
  result.mean_batch = executions ? double(after.inferences - before.inferences) / executions : 0;
  result.preempted = after.preempted - before.preempted;
  return result;
}

struct StormResult {
  std::vector<double> alone_ms, beside_ms;  // interactive latencies
  double storm_throughput = 0;              // background requests per second
};

// A precompute storm beside interactive traffic: Poisson arrivals at `rate`
// on `interactive` at its default priority, alone and then beside a storm
// of background work on `storm` (`storm_clients` clients keeping requests
// outstanding at the lowest priority, as uploads' precompute does), in
// `rounds` alternating rounds so that the machine's drift hits both.
StormResult PrecomputeStorm(const ModelPtr& interactive, const ModelPtr& storm, double rate,
                            int storm_clients, double seconds, int rounds) {
  StormResult result;
  double storm_seconds = 0;
  std::uint64_t storm_done = 0;
  for (int round = 0; round < rounds; ++round) {
    for (int beside = 0; beside < 2; ++beside) {
      SchedulerOptions options;
      options.budget = &ProcessComputeBudget();
      ModelScheduler scheduler(interactive, SteadyClock(), options);
      std::optional<ModelScheduler> background;
      std::thread storm_thread;
      LoadResult storm_load;
      if (beside == 1) {
        background.emplace(storm, SteadyClock(), options);
        // The storm runs through the interactive window and a little past it.
        storm_thread = std::thread([&] {
          storm_load =
              ClosedLoop(*background, storm_clients, seconds / rounds + 0.5, kLowestPriority);
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the storm is on
      }
      LoadResult load = OpenLoop(scheduler, rate, 0, seconds / rounds);
      if (storm_thread.joinable()) storm_thread.join();
      auto& into = beside == 1 ? result.beside_ms : result.alone_ms;
      into.insert(into.end(), load.latencies_ms.begin(), load.latencies_ms.end());
      if (beside == 1) {
        storm_done += storm_load.latencies_ms.size();
        storm_seconds += storm_load.elapsed_s;
      }
    }
  }
  result.storm_throughput = storm_seconds > 0 ? storm_done / storm_seconds : 0;
  return result;
}

}  // namespace
}  // namespace braid

int main(int argc, char** argv) {
  using namespace braid;
  KeepEnginesSingleThreaded(argv);
  CLI::App app{
      "bench_batching: dynamic batching vs none, in process, with closed- and open-loop load"};
  std::string repository = BRAID_DEFAULT_MODEL_REPOSITORY;
  std::vector<std::string> models = {"clip-text", "clip-image"};
  std::vector<int> concurrencies = {1, 4, 16, 64};
  double seconds = 3;
  int compute_nice = kDefaultRegularNice;
  std::string storm_model = "clip-image";
  int storm_clients = 32;
  app.add_option("-m,--model-repository", repository, "Model repository");
  app.add_option("--compute-nice", compute_nice,
                 "Nice steps of regular batches below priority instances (braid serve's "
                 "--compute-nice)")
      ->check(CLI::Range(0, 19))
      ->capture_default_str();
  app.add_option("--models", models, "Models to measure");
  app.add_option("--concurrency", concurrencies, "Closed-loop client counts");
  app.add_option("--seconds", seconds, "Measuring time per configuration");
  app.add_option("--storm-model", storm_model,
                 "Model of the precompute storm beside the first model's interactive traffic")
      ->capture_default_str();
  app.add_option("--storm-clients", storm_clients,
                 "Background requests the storm keeps outstanding")
      ->capture_default_str();
  bool no_storm = false;
  app.add_flag("--no-storm", no_storm, "Skip the precompute storm section");
  CLI11_PARSE(app, argc, argv);
  SetProcessRegularNice(compute_nice);

  BackendRegistry backends;
  RegisterBuiltinBackends(backends);
  ModelRepository repo(repository, backends);
  double first_peak = 0;  // the first model's batched peak, for the storm's interactive rate
  for (const auto& name : models) {
    if (auto status = repo.Load(name); !status.ok()) {
      fmt::print(stderr, "bench_batching: {}\n", status.message());
      return 1;
    }
    ModelPtr model = *repo.Get(name);
    fmt::print(stderr, "{}: measuring the raw ceiling\n", name);
    Ceiling ceiling = MeasureCeiling(*model, 1.0);
    fmt::print("\n### {}\n\nraw ceiling (direct calls, same run): {:.1f} items/s at batch {}\n\n",
               name, ceiling.items_per_s, ceiling.batch);
    fmt::print("| batching | concurrency | req/s | × ceiling | p50 ms | p99 ms | mean batch |\n");
    fmt::print("|---|---:|---:|---:|---:|---:|---:|\n");
    double peak = 0, unbatched_p50_c1 = 0, batched_p50_c1 = 0, batched_p99_c1 = 0, batched_c64 = 0;
    std::vector<std::pair<int, LoadResult>> rows[2];
    for (int concurrency : concurrencies) {
      fmt::print(stderr, "{}: concurrency {}, batching off and on alternately\n", name,
                 concurrency);
      auto [off, on] = AlternatingClosedLoop(model, concurrency, seconds, 3);
      rows[0].emplace_back(concurrency, off);
      rows[1].emplace_back(concurrency, on);
      peak = std::max(peak, on.throughput);
      if (concurrency == 1) {
        unbatched_p50_c1 = off.p50_ms;
        batched_p50_c1 = on.p50_ms;
        batched_p99_c1 = on.p99_ms;
      }
      if (concurrency == 64) batched_c64 = on.throughput;
    }
    for (int on = 0; on < 2; ++on) {
      for (const auto& [concurrency, r] : rows[on]) {
        fmt::print("| {} | {} | {:.1f} | {:.2f} | {:.2f} | {:.2f} | {:.1f} |\n", on ? "on" : "off",
                   concurrency, r.throughput, r.throughput / ceiling.items_per_s, r.p50_ms,
                   r.p99_ms, r.mean_batch);
      }
    }
    if (name == models.front()) first_peak = peak;
    fmt::print(stderr, "{}: overload at 2x peak\n", name);
    SchedulerOptions options;
    options.batching = true;
    options.budget = &ProcessComputeBudget();
    constexpr double kUrgentShare = 0.1;  // of the overload's arrivals, at priority 1
    const double urgent_rate = 2 * peak * kUrgentShare;
    LoadResult overload, alone, lone;
    {
      ModelScheduler scheduler(model, SteadyClock(), options);
      overload = OpenLoop(scheduler, 2 * peak, kUrgentShare, seconds * 2);
    }
    // Priority-1 arrivals at the same rate with nothing else: what they cost
    // each other (queued behind and batched with one another), which no
    // scheduling of the lower-priority load moves.
    fmt::print(stderr, "{}: the priority-1 share of that load alone\n", name);
    {
      ModelScheduler scheduler(model, SteadyClock(), options);
      alone = OpenLoop(scheduler, urgent_rate, 1.0, seconds * 2);
    }
    // Priority-1 requests one at a time, each after an idle gap: what the gap
    // costs a run on this machine, against the closed loop's requests back to
    // back (the unloaded figure).
    fmt::print(stderr, "{}: lone requests, {} ms apart\n", name, kLonePause.count());
    {
      ModelScheduler scheduler(model, SteadyClock(), options);
      lone = ClosedLoop(scheduler, 1, seconds * 4, 1, kLonePause);
    }
    const double lone_p50 = Percentile(lone.latencies_ms, 0.5);
    const double lone_p99 = Percentile(lone.latencies_ms, 0.99);
    fmt::print("\nbatched throughput at concurrency 64 / raw ceiling: **{:.2f}** (goal ≥ 0.9)\n",
               batched_c64 / ceiling.items_per_s);
    fmt::print("batched p50 − unbatched p50 at concurrency 1: **{:+.3f} ms** (goal ≤ +0.2 ms)\n",
               batched_p50_c1 - unbatched_p50_c1);
    fmt::print(
        "overload, Poisson arrivals at 2× the batched peak ({:.0f} req/s), 10% at priority 1: "
        "goodput {:.1f} req/s = "
        "**{:.2f}× peak** (goal ≥ 0.9); priority-1 p99 {:.2f} ms vs {:.2f} ms unloaded = "
        "**{:.2f}×** (goal ≤ 2; their queue time p99 {:.2f} ms, compute p99 {:.2f} ms); "
        "{} rejected at admission, {} timed out, mean batch {:.1f}, {} batches preempted\n",
        2 * peak, overload.throughput, overload.throughput / peak, overload.high_p99_ms,
        batched_p99_c1, overload.high_p99_ms / batched_p99_c1, overload.high_queue_p99_ms,
        overload.high_compute_p99_ms, overload.rejected, overload.timed_out, overload.mean_batch,
        overload.preempted);
    fmt::print(
        "priority-1 arrivals alone at the same rate ({:.0f} req/s, Poisson, nothing else running): "
        "p99 {:.2f} ms = **{:.2f}×** unloaded (queue p99 {:.2f} ms, compute p99 {:.2f} ms, mean "
        "batch {:.1f}); the overload's priority-1 p99 is {:.2f}× this\n",
        urgent_rate, alone.high_p99_ms, alone.high_p99_ms / batched_p99_c1, alone.high_queue_p99_ms,
        alone.high_compute_p99_ms, alone.mean_batch, overload.high_p99_ms / alone.high_p99_ms);
    fmt::print(
        "lone priority-1 requests (one at a time, each {} ms after the previous answer, nothing "
        "else running): p50 {:.2f} ms = {:.2f}× the closed loop's at concurrency 1 ({:.2f} ms), "
        "p99 {:.2f} ms = **{:.2f}×** unloaded: a run after an idle gap, which requests back to "
        "back do not pay\n",
        kLonePause.count(), lone_p50, lone_p50 / batched_p50_c1, batched_p50_c1, lone_p99,
        lone_p99 / batched_p99_c1);
  }
  if (no_storm || models.empty()) return 0;
  if (auto status = repo.Load(storm_model); !status.ok()) {
    fmt::print(stderr, "bench_batching: {}\n", status.message());
    return 1;
  }
  const double rate = first_peak / 2;
  fmt::print(stderr, "precompute storm on {} beside {} at {:.0f} req/s\n", storm_model,
             models.front(), rate);
  StormResult storm = PrecomputeStorm(*repo.Get(models.front()), *repo.Get(storm_model), rate,
                                      storm_clients, seconds * 2, 3);
  const double alone_p99 = Percentile(storm.alone_ms, 0.99);
  const double beside_p99 = Percentile(storm.beside_ms, 0.99);
  fmt::print(
      "\nprecompute storm: {} at {:.0f} req/s (half its batched peak), alone and beside {} "
      "clients of background work on {} ({:.1f} req/s of it done), 3 rounds each in turn: "
      "p50 {:.2f} → {:.2f} ms, p99 {:.2f} → {:.2f} ms = **{:.2f}×** (goal ≤ 1.2)\n",
      models.front(), rate, storm_clients, storm_model, storm.storm_throughput,
      Percentile(storm.alone_ms, 0.5), Percentile(storm.beside_ms, 0.5), alone_p99, beside_p99,
      beside_p99 / alone_p99);
  return 0;
}
