// What a load run measured, and the arithmetic behind it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace braid {

// Nearest-rank percentile of ascending `sorted` (p in [0, 100]): the
// smallest value with at least p% of the values at or below it. 0 when
// empty.
double Percentile(const std::vector<double>& sorted, double p);

struct LatencySummary {
  std::uint64_t requests = 0;  // answered successfully
  std::uint64_t errors = 0;    // failed, non-2xx, or dropped by the open loop
  double seconds = 0;          // measurement time
  double throughput = 0;       // successful requests per second
  double p50_us = 0, p90_us = 0, p99_us = 0, max_us = 0, mean_us = 0;
  // How long the server took to refuse: p99 over the answered errors (429,
  // 503, 504...; not the open loop's own drops).
  double error_p99_us = 0;
};

// Summarises successful requests' latencies and answered errors'
// latencies (microseconds, any order); `errors` counts every error.
LatencySummary Summarize(std::vector<double> latencies_us, std::vector<double> error_latencies_us,
                         std::uint64_t errors, double seconds);

// One point of a sweep: the load offered and what it got.
struct BenchPoint {
  std::string mode;  // "concurrency" or "rate"
  double load = 0;   // clients, or requests per second offered
  LatencySummary summary;
  bool stable = true;           // the last windows agreed (see LoadSpec::stability)
  std::uint64_t completed = 0;  // every request answered at this level, warm-up included
  // The first distinct error messages at this level (warm-up included), how
  // often each came.
  std::vector<std::pair<std::string, std::uint64_t>> error_messages;
};

// CSV with a header row; JSON as {"points":[...]}.
std::string PointsToCsv(const std::vector<BenchPoint>& points);
std::string PointsToJson(const std::vector<BenchPoint>& points, const std::string& target);

}  // namespace braid
