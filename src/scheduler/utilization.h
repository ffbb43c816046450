// UtilizationWindow: the fraction of a sliding window during which a model's
// instances were busy, counting batches still running.
//
// Not thread-safe: the scheduler calls it under its own lock and publishes
// the result through an atomic for readers elsewhere.
#pragma once

#include <cstddef>
#include <deque>
#include <utility>
#include <vector>

#include "core/clock.h"

namespace braid {

// A batch running now: when it started, its expected compute then (0 when
// unknown), and its priority level (0-based).
struct RunningBatch {
  TimePoint start;
  double expected_us = 0;
  std::size_t level = 0;
  bool operator==(const RunningBatch&) const = default;
};

class UtilizationWindow {
 public:
  UtilizationWindow(Duration window, int instances) : window_(window), instances_(instances) {}

  void set_instances(int instances) { instances_ = instances; }

  // A batch ran on one instance from `start` to `end`.
  void AddBusy(TimePoint start, TimePoint end);

  // Busy fraction in [now - window, now], in [0, 1], counting the batches
  // still `running` at `now`.
  double Compute(TimePoint now, const std::vector<RunningBatch>& running);

 private:
  Duration window_;
  int instances_;
  std::deque<std::pair<TimePoint, TimePoint>> busy_;  // completed intervals, oldest first
};

}  // namespace braid
