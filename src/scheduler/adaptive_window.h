// AdaptiveWindow: decides, for `adaptive: true` batching, whether an idle
// instance should wait for more requests or run what is queued now.
//
// The rule. Running b queued items now costs c(b); waiting for one more
// arrival delays the b items by the expected gap g between arrivals, and the
// merged batch saves the fixed part a of a batch's compute time (c(b) + c(1)
// versus c(b+1) = a + (b+1)s when c(b) = a + b·s). So an idle instance waits
// only while g < a, i.e. when requests arrive faster than the per-batch
// overhead that merging them would save, and never past max_queue_delay_us
// from the oldest queued request. a and s are fitted online (least squares
// over exponentially averaged compute times per batch size), g is an
// exponential average of inter-arrival gaps. Until two batch sizes have been
// observed a is unknown and the window never waits: at low load latency
// equals unbatched latency, and under load batches still fill, because
// requests accumulate while every instance is busy and a freed instance takes
// all of them at once.
//
// Not thread-safe: the scheduler calls it under its own lock.
#pragma once

#include <map>
#include <optional>

#include "core/clock.h"

namespace braid {

class AdaptiveWindow {
 public:
  // A request arrived at `now`.
  void OnArrival(TimePoint now);
  // A batch of `batch` items took `compute`.
  void OnBatch(int batch, Duration compute);

  // The exponential average gap between arrivals; nullopt before two arrivals.
  std::optional<Duration> MeanGap() const;
  // The fitted fixed cost a of a batch; nullopt until two sizes were seen.
  std::optional<Duration> FixedCost() const;
  // The fitted compute time of a batch of `batch` items; nullopt without data.
  std::optional<Duration> PredictCompute(int batch) const;

  // When to stop waiting for the next arrival: the expected arrival time
  // (last arrival + gap) if waiting pays off, otherwise nullopt: run now.
  std::optional<TimePoint> WaitUntil() const;

 private:
  static constexpr double kGapWeight = 0.125;      // EWMA weight of a new gap
  static constexpr double kComputeWeight = 0.125;  // EWMA weight of a new batch time

  std::optional<TimePoint> last_arrival_;
  std::optional<double> mean_gap_us_;
  std::map<int, double> compute_us_;  // batch size → EWMA compute time
};

}  // namespace braid
