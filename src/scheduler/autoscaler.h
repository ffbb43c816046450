// Autoscaler: how many of a model's instances should take work, decided
// from the utilisation of the active instances and the arrival rate, one
// sample per tick.
//
//   - scale up when the mean utilisation over the window exceeds
//     `scale_up_utilization`, or when the arrival trend (a least-squares
//     line through the window's rates, extended half a window ahead)
//     predicts it will; to the count that brings the load to the middle of
//     the band, at least one more;
//   - scale down when both the mean and the prediction are below
//     `scale_down_utilization` and no change happened for `cooldown`; to
//     the count that brings the load to the middle of the band, at least one
//     fewer, never below min_instances;
//   - after a change the window restarts (its samples describe the old
//     count), so a decision always rests on at least three fresh samples.
// The gap between the thresholds, the cool-down and the fresh window keep
// it from thrashing.
//
// Deterministic: time comes in with each sample. Not thread-safe.
#pragma once

#include <deque>

#include "core/clock.h"

namespace braid {

struct AutoscalePolicy {
  int min_instances = 1;
  int max_instances = 1;
  double scale_up_utilization = 0.8;
  double scale_down_utilization = 0.3;
  Duration window = std::chrono::seconds(10);
  Duration cooldown = std::chrono::seconds(30);
};

class Autoscaler {
 public:
  Autoscaler(AutoscalePolicy policy, int instances, TimePoint now);

  // One tick: the active instances' utilisation and the arrivals per
  // second since the last tick. Returns the instance count to run now.
  int Observe(TimePoint now, double utilization, double arrival_rate);

  int instances() const { return instances_; }
  // Utilisation the trend predicts half a window ahead (last Observe).
  double predicted_utilization() const { return predicted_; }

 private:
  struct Sample {
    TimePoint at;
    double utilization;
    double rate;
  };
  void Change(int instances, TimePoint now);

  AutoscalePolicy policy_;
  int instances_;
  TimePoint last_change_;
  std::deque<Sample> samples_;
  double predicted_ = 0;
};

}  // namespace braid
