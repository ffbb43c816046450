#include "loadgen/load.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "loadgen/arrivals.h"

namespace braid {
namespace {

using Wall = std::chrono::steady_clock;

double Micros(Wall::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

// Collects outcomes; Take() hands over what arrived since the last Take.
class Recorder {
 public:
  // `error` empty: the request succeeded.
  void Add(double latency_us, std::string_view error) {
    std::lock_guard lock(mutex_);
    ++total_;
    if (error.empty()) {
      latencies_.push_back(latency_us);
    } else {
      error_latencies_.push_back(latency_us);
      ++errors_;
      Remember(error);
    }
  }
  // A request the open loop did not send: an error with no answer, `why`.
  void Drop(std::string_view why) {
    std::lock_guard lock(mutex_);
    ++total_;
    ++errors_;
    Remember(why);
  }
  // The first distinct error messages of the whole run and their counts.
  std::vector<std::pair<std::string, std::uint64_t>> seen() {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  struct Outcomes {
    std::vector<double> latencies, error_latencies;
    std::uint64_t errors = 0;
  };
  Outcomes Take() {
    std::lock_guard lock(mutex_);
    Outcomes taken{std::move(latencies_), std::move(error_latencies_), errors_};
    latencies_.clear();
    error_latencies_.clear();
    errors_ = 0;
    return taken;
  }
  std::uint64_t total() {
    std::lock_guard lock(mutex_);
    return total_;
  }
  LoadProgress Peek() {
    std::lock_guard lock(mutex_);
    LoadProgress progress;
    progress.requests = latencies_.size();
    progress.errors = errors_;
    if (!latencies_.empty()) {
      std::vector<double> sample(latencies_.end() - std::min<std::size_t>(latencies_.size(), 4096),
                                 latencies_.end());
      std::sort(sample.begin(), sample.end());
      progress.p50_us = Percentile(sample, 50);
    }
    return progress;
  }

 private:
  static constexpr std::size_t kMessagesKept = 3;

  void Remember(std::string_view error) {
    for (auto& [message, count] : seen_) {
      if (message == error) {
        ++count;
        return;
      }
    }
    if (seen_.size() < kMessagesKept) seen_.emplace_back(error, 1);
  }

  std::mutex mutex_;
  std::vector<double> latencies_, error_latencies_;
  std::uint64_t errors_ = 0;
  std::uint64_t total_ = 0;                                  // never reset
  std::vector<std::pair<std::string, std::uint64_t>> seen_;  // never reset
};

// The requests in flight, so that the run can wait for them to end.
class Outstanding {
 public:
  std::size_t Begin() { return ++count_; }
  void End() {
    if (--count_ == 0) {
      std::lock_guard lock(mutex_);
      idle_.notify_all();
    }
  }
  std::size_t count() const { return count_; }
  bool WaitIdle(Wall::duration timeout) {
    std::unique_lock lock(mutex_);
    return idle_.wait_for(lock, timeout, [&] { return count_ == 0; });
  }

 private:
  std::atomic<std::size_t> count_{0};
  std::mutex mutex_;
  std::condition_variable idle_;
};

struct Shared {
  Target& target;
  Recorder recorder;
  Outstanding outstanding;
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> next_index{0};
};

// A closed-loop client: sends, and sends again when answered.
void Client(const std::shared_ptr<Shared>& shared) {
  if (shared->stop) return;
  shared->outstanding.Begin();
  const auto start = Wall::now();
  shared->target.Send(shared->next_index++, [shared, start](std::string_view error) {
    shared->recorder.Add(Micros(Wall::now() - start), error);
    shared->outstanding.End();
    Client(shared);
  });
}

// The last three windows agree, and requests succeeded in them.
bool Stable(const std::vector<LatencySummary>& windows, double spread) {
  if (windows.size() < 3) return false;
  for (std::size_t i = windows.size() - 3; i < windows.size(); ++i) {
    if (windows[i].requests == 0) return false;
  }
  auto agree = [&](auto field) {
    double mean = 0;
    for (std::size_t i = windows.size() - 3; i < windows.size(); ++i) mean += field(windows[i]);
    mean /= 3;
    for (std::size_t i = windows.size() - 3; i < windows.size(); ++i) {
      if (std::abs(field(windows[i]) - mean) > spread * mean) return false;
    }
    return true;
  };
  return agree([](const LatencySummary& s) { return s.throughput; }) &&
         agree([](const LatencySummary& s) { return s.p50_us; });
}

}  // namespace

BenchPoint RunLoad(Target& target, const LoadSpec& spec, const ProgressSink& progress) {
  auto shared = std::shared_ptr<Shared>(new Shared{target});
  std::thread arrivals;
  if (spec.open_loop) {
    arrivals = std::thread([shared, spec] {
      const std::string unsent = fmt::format(
          "not sent: {} requests were already waiting for answers", spec.max_outstanding);
      PoissonArrivals gaps(spec.load, spec.seed);
      auto next = Wall::now();
      while (!shared->stop) {
        next += gaps.Next();
        std::this_thread::sleep_until(next);
        if (shared->outstanding.count() >= spec.max_outstanding) {
          shared->recorder.Drop(unsent);
          continue;
        }
        shared->outstanding.Begin();
        const auto scheduled = next;
        shared->target.Send(shared->next_index++, [shared, scheduled](std::string_view error) {
          shared->recorder.Add(Micros(Wall::now() - scheduled), error);
          shared->outstanding.End();
        });
      }
    });
  } else {
    for (int c = 0; c < static_cast<int>(spec.load); ++c) Client(shared);
  }

  // Runs one phase, reporting progress each second; returns its outcomes.
  auto phase = [&](const std::string& name, Wall::duration length) {
    const auto start = Wall::now();
    shared->recorder.Take();
    for (auto now = start; now - start < length; now = Wall::now()) {
      std::this_thread::sleep_for(
          std::min<Wall::duration>(std::chrono::seconds(1), length - (now - start)));
      if (progress) {
        LoadProgress update = shared->recorder.Peek();
        update.phase = name;
        update.elapsed_s = Micros(Wall::now() - start) / 1e6;
        update.throughput = update.elapsed_s > 0 ? update.requests / update.elapsed_s : 0;
        progress(update);
      }
    }
    return std::pair{shared->recorder.Take(), Micros(Wall::now() - start) / 1e6};
  };

  phase("warm-up", spec.warmup);
  std::vector<LatencySummary> windows;
  std::vector<Recorder::Outcomes> kept;
  std::vector<double> kept_seconds;
  const int max_windows = std::max(3, spec.max_windows);
  while (static_cast<int>(windows.size()) < max_windows) {
    auto [outcomes, seconds] = phase("window " + std::to_string(windows.size() + 1), spec.window);
    windows.push_back(
        Summarize(outcomes.latencies, outcomes.error_latencies, outcomes.errors, seconds));
    kept.push_back(std::move(outcomes));
    kept_seconds.push_back(seconds);
    if (Stable(windows, spec.stability)) break;
  }
  shared->stop = true;
  if (arrivals.joinable()) arrivals.join();
  shared->outstanding.WaitIdle(std::chrono::seconds(60));

  std::vector<double> latencies, error_latencies;
  std::uint64_t errors = 0;
  double seconds = 0;
  for (std::size_t i = kept.size() - 3; i < kept.size(); ++i) {
    latencies.insert(latencies.end(), kept[i].latencies.begin(), kept[i].latencies.end());
    error_latencies.insert(error_latencies.end(), kept[i].error_latencies.begin(),
                           kept[i].error_latencies.end());
    errors += kept[i].errors;
    seconds += kept_seconds[i];
  }
  BenchPoint point;
  point.mode = spec.open_loop ? "rate" : "concurrency";
  point.load = spec.load;
  point.summary = Summarize(std::move(latencies), std::move(error_latencies), errors, seconds);
  point.stable = Stable(windows, spec.stability);
  point.completed = shared->recorder.total();
  point.error_messages = shared->recorder.seen();
  return point;
}

}  // namespace braid
