// One point of a load sweep: offer a load to a Target, warm up, then
// measure in windows until the last three agree (throughput and p50 within
// ±`stability` of their mean) or `max_windows` pass. The result summarises
// the last three windows.
//
// Closed loop (`concurrency` clients, each sending its next request when
// the previous one answers) or open loop (requests offered at Poisson
// arrival times whatever the answers; a request's latency counts from its
// scheduled time, so a stalled server cannot hide its queueing).
#pragma once

#include <functional>

#include "core/clock.h"
#include "loadgen/stats.h"
#include "loadgen/target.h"

namespace braid {

struct LoadSpec {
  bool open_loop = false;
  double load = 1;  // clients (closed loop) or requests per second (open loop)
  Duration warmup = std::chrono::seconds(1);
  Duration window = std::chrono::seconds(3);
  int max_windows = 6;                 // at least 3
  double stability = 0.15;             // allowed relative spread of the last three windows
  std::size_t max_outstanding = 4096;  // open loop: past this, arrivals count as errors
  std::uint64_t seed = 1;
};

// Called about once a second from the measuring thread.
struct LoadProgress {
  std::string phase;  // "warm-up" or "window N"
  double elapsed_s = 0;
  std::uint64_t requests = 0;
  std::uint64_t errors = 0;
  double throughput = 0;  // of the current phase so far
  double p50_us = 0;
};
using ProgressSink = std::function<void(const LoadProgress&)>;

BenchPoint RunLoad(Target& target, const LoadSpec& spec, const ProgressSink& progress = {});

}  // namespace braid
