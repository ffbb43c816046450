// Metrics: request counters and latency histograms recorded by the front
// ends, plus the schedulers' statistics and the process's CPU and memory,
// rendered in the Prometheus text format with names prefixed braid_.
//
// Thread-safe. Each recording thread writes its own shard (Envoy's
// per-thread stats): a lock no other thread takes except the scrape, and a
// lookup that builds no string once a series exists. Rendering merges the
// shards and reads scheduler statistics at scrape time, so the hot path
// records only what no scheduler already counts.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "cache/result_cache.h"
#include "core/clock.h"
#include "core/compute_budget.h"
#include "scheduler/model_scheduler.h"

namespace braid {

struct ModelMetricsInput {
  SchedulerStats stats;
};

class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // One finished request of `protocol` ("http", "grpc") for `model` (may be
  // empty for non-model endpoints) with HTTP-style status `code`.
  void ObserveRequest(std::string_view protocol, std::string_view model, int code,
                      Duration duration);

  // Everything, as Prometheus text. `models` maps name → version → input.
  // `cache` holds the result cache's figures when there is one, `budget`
  // the compute budget's.
  std::string Render(const std::map<std::string, std::map<std::int64_t, ModelMetricsInput>>& models,
                     std::size_t in_flight,
                     const std::optional<ResultCacheStats>& cache = std::nullopt,
                     const std::optional<ComputeBudgetStats>& budget = std::nullopt) const;

  // The latency of model requests over every protocol, merged: counts at or
  // under each bound, cumulative as in Prometheus. For the dashboard.
  struct Latency {
    std::vector<double> bounds_s;
    std::vector<std::uint64_t> cumulative;
    std::uint64_t count = 0;
    double sum_s = 0;
  };
  Latency ModelRequestLatency() const;

 private:
  static void RenderBudget(const ComputeBudgetStats& budget, std::string& out);
  static constexpr std::array<double, 16> kBucketsS = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  struct Histogram {
    std::array<std::uint64_t, kBucketsS.size()> buckets{};
    std::uint64_t count = 0;
    double sum = 0;
  };

  // Orders keys and views of keys alike, so that a lookup builds no string.
  struct KeyOrder {
    using is_transparent = void;
    using RequestView = std::tuple<std::string_view, std::string_view, int>;
    using SeriesView = std::pair<std::string_view, std::string_view>;
    static RequestView View(const RequestView& key) { return key; }
    static RequestView View(const std::tuple<std::string, std::string, int>& key) {
      return {std::get<0>(key), std::get<1>(key), std::get<2>(key)};
    }
    static SeriesView View(const SeriesView& key) { return key; }
    static SeriesView View(const std::pair<std::string, std::string>& key) {
      return {key.first, key.second};
    }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return View(a) < View(b);
    }
  };
  // (protocol, model, code) → count
  using RequestCounts =
      std::map<std::tuple<std::string, std::string, int>, std::uint64_t, KeyOrder>;
  // (protocol, model) → latency
  using Durations = std::map<std::pair<std::string, std::string>, Histogram, KeyOrder>;
  struct Shard {
    std::mutex mutex;        // taken by its thread to record, by a scrape to read
    RequestCounts requests;  // guarded by mutex
    Durations durations;     // guarded by mutex
  };
  // The calling thread's shard, created on its first recording.
  Shard& LocalShard();
  // Every shard's figures, summed.
  void Merge(RequestCounts* requests, Durations* durations) const;

  const std::uint64_t id_;  // tells this object's shards from an earlier one's at its address
  mutable std::mutex shards_mutex_;
  std::vector<std::unique_ptr<Shard>> shards_;  // guarded by shards_mutex_; never shrinks
};

}  // namespace braid
