// UtilizationWindow: the fraction of a sliding window during which a model's
// instances were busy, counting batches still running.
//
// Not thread-safe: the scheduler calls it under its own lock (at every
// batching decision) and publishes the result through an atomic for
// readers elsewhere. So Compute keeps a running sum and looks only at the
// few intervals the window's edges cut, not at every batch of the window
// (thousands a second for a fast model).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

#include "core/clock.h"

namespace braid {

// A batch running now: when it started, its expected compute then (0 when
// unknown), its priority level (0-based), the instance it runs on, and
// whether a more urgent request may stop it (ModelScheduler, preempt).
struct RunningBatch {
  TimePoint start;
  double expected_us = 0;
  std::size_t level = 0;
  std::size_t instance = 0;
  bool preemptible = false;
  bool operator==(const RunningBatch&) const = default;
};

class UtilizationWindow {
 public:
  UtilizationWindow(Duration window, int instances) : window_(window), instances_(instances) {}

  void set_instances(int instances) { instances_ = instances; }

  // A batch ran on one instance from `start` to `end`; added in about the
  // order batches end (instances racing for the lock may swap a few).
  void AddBusy(TimePoint start, TimePoint end);

  // Busy fraction in [now - window, now], in [0, 1], counting the batches
  // still `running` at `now`.
  double Compute(TimePoint now, const std::vector<RunningBatch>& running);

 private:
  struct Interval {
    TimePoint start, end;
  };
  // An interval's length and its place in the order of AddBusy.
  struct Length {
    std::uint64_t index;
    Duration length;
  };

  Duration window_;
  int instances_;
  std::deque<Interval> busy_;      // completed intervals, in the order added
  std::uint64_t first_index_ = 0;  // busy_.front()'s place in the order of AddBusy
  Duration busy_sum_{};            // Σ (end − start) over busy_
  // The longest interval of busy_ first, then the longest of those added
  // after it, and so on (a sliding-window maximum): only intervals ending
  // within that length of the window's start can begin before it.
  std::deque<Length> longest_;
  TimePoint latest_end_{};
  Duration disorder_{};  // the most an end has been added behind a later one
};

}  // namespace braid
