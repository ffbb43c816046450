// The autoscaler against synthetic load: offered work W(t) in instances'
// worth of compute; with n instances running, utilisation is min(1, W/n)
// and requests arrive at 100·W per second. One sample per second.
#include "scheduler/autoscaler.h"

#include <gtest/gtest.h>

#include <functional>

namespace braid {
namespace {

struct Trace {
  std::vector<int> instances;  // after each tick
  int changes = 0;
  int max_instances = 0;
};

Trace Simulate(const std::function<double(int)>& work, int seconds, AutoscalePolicy policy,
               int start = 1) {
  const TimePoint t0{};
  Autoscaler scaler(policy, start, t0);
  Trace trace;
  int n = scaler.instances();
  for (int s = 1; s <= seconds; ++s) {
    const double w = work(s);
    const int next = scaler.Observe(t0 + std::chrono::seconds(s), std::min(1.0, w / n), 100 * w);
    trace.changes += next != n;
    n = next;
    trace.instances.push_back(n);
    trace.max_instances = std::max(trace.max_instances, n);
  }
  return trace;
}

AutoscalePolicy Policy() {
  AutoscalePolicy policy;
  policy.min_instances = 1;
  policy.max_instances = 4;
  return policy;
}

TEST(AutoscalerTest, RampScalesUpBeforeSaturationAndStaysWithinBounds) {
  // Work grows from 0.2 to 3 instances' worth over 120 s.
  auto ramp = [](int s) { return 0.2 + 2.8 * std::min(1.0, s / 120.0); };
  Trace trace = Simulate(ramp, 150, Policy());
  EXPECT_EQ(trace.instances.back(), 4) << "3 instances' worth needs the maximum to stay under 0.8";
  EXPECT_LE(trace.max_instances, 4);
  // The trend acts early: the first scale-up comes before one instance is 80% busy.
  int first_up = 0;
  while (trace.instances[first_up] == 1) ++first_up;
  EXPECT_LT(ramp(first_up + 1), 0.8) << "scaled up at t=" << first_up + 1;
  EXPECT_LE(trace.changes, 4) << "one step per level at most";
}

TEST(AutoscalerTest, SpikeScalesUpThenDownAfterTheCooldown) {
  auto spike = [](int s) { return s >= 30 && s < 45 ? 2.5 : 0.3; };
  Trace trace = Simulate(spike, 150, Policy());
  EXPECT_GE(trace.max_instances, 3);
  // Back to the minimum once the cool-down after the last change has passed.
  EXPECT_EQ(trace.instances.back(), 1);
  EXPECT_LE(trace.changes, 4);
  // Not down again while the spike lasts.
  for (int s = 35; s < 45; ++s) EXPECT_GE(trace.instances[s - 1], 2) << "t=" << s;
}

TEST(AutoscalerTest, OscillationDoesNotThrash) {
  // Work alternating every 2 s between 0.85 and 0.25 of two instances.
  auto wobble = [](int s) { return (s / 2) % 2 ? 1.7 : 0.5; };
  AutoscalePolicy policy = Policy();
  Trace trace = Simulate(wobble, 300, policy, 2);
  EXPECT_LE(trace.changes, 2) << "changes over 5 minutes";
}

TEST(AutoscalerTest, IdleGoesToTheMinimumAndNeverBelow) {
  AutoscalePolicy policy = Policy();
  policy.min_instances = 2;
  Trace trace = Simulate([](int) { return 0.0; }, 200, policy, 4);
  EXPECT_EQ(trace.instances.back(), 2);
  for (int n : trace.instances) EXPECT_GE(n, 2);
}

}  // namespace
}  // namespace braid
