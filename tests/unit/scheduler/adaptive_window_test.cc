#include "scheduler/adaptive_window.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "scheduler/utilization.h"

namespace braid {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

const TimePoint kStart = TimePoint{} + std::chrono::hours(1);

TEST(AdaptiveWindowTest, FitsFixedCostFromTwoBatchSizes) {
  AdaptiveWindow window;
  EXPECT_FALSE(window.FixedCost().has_value());
  window.OnBatch(1, microseconds(5100));
  EXPECT_FALSE(window.FixedCost().has_value())
      << "one size cannot separate fixed and per-item cost";
  window.OnBatch(8, microseconds(5800));
  ASSERT_TRUE(window.FixedCost().has_value());
  EXPECT_NEAR(ToMicros(*window.FixedCost()), 5000, 1);
  EXPECT_NEAR(ToMicros(*window.PredictCompute(4)), 5400, 1);
}

TEST(AdaptiveWindowTest, NeverWaitsAtLowArrivalRate) {
  AdaptiveWindow window;
  window.OnBatch(1, microseconds(1100));
  window.OnBatch(4, microseconds(1400));  // fixed cost 1 ms
  TimePoint t = kStart;
  for (int i = 0; i < 20; ++i, t += milliseconds(10)) window.OnArrival(t);  // a request every 10 ms
  EXPECT_FALSE(window.WaitUntil().has_value());
}

TEST(AdaptiveWindowTest, WaitsForTheNextArrivalAtHighRate) {
  AdaptiveWindow window;
  window.OnBatch(1, microseconds(1100));
  window.OnBatch(4, microseconds(1400));  // fixed cost 1 ms
  TimePoint t = kStart;
  for (int i = 0; i < 20; ++i, t += microseconds(100)) window.OnArrival(t);  // every 100 us
  auto until = window.WaitUntil();
  ASSERT_TRUE(until.has_value());
  EXPECT_NEAR(ToMicros(*until - (t - microseconds(100))), 100, 1)
      << "the next arrival is one gap away";
}

TEST(AdaptiveWindowTest, FollowsAChangingRate) {
  AdaptiveWindow window;
  window.OnBatch(1, microseconds(1100));
  window.OnBatch(4, microseconds(1400));
  TimePoint t = kStart;
  for (int i = 0; i < 30; ++i, t += microseconds(100)) window.OnArrival(t);
  EXPECT_TRUE(window.WaitUntil().has_value());
  for (int i = 0; i < 30; ++i, t += milliseconds(5)) window.OnArrival(t);
  EXPECT_FALSE(window.WaitUntil().has_value()) << "the rate fell: stop waiting";
}

TEST(UtilizationWindowTest, CountsCompletedAndRunningBatches) {
  UtilizationWindow window(milliseconds(100), 2);
  window.AddBusy(kStart, kStart + milliseconds(50));
  EXPECT_NEAR(window.Compute(kStart + milliseconds(100), {}), 0.25, 1e-9);
  std::vector<RunningBatch> running = {{kStart + milliseconds(80)}};
  EXPECT_NEAR(window.Compute(kStart + milliseconds(100), running), 0.35, 1e-9);
  // Half of the completed interval has slid out of the window.
  EXPECT_NEAR(window.Compute(kStart + milliseconds(125), {}), 0.125, 1e-9);
  EXPECT_EQ(window.Compute(kStart + milliseconds(500), {}), 0.0);
}

// The running sum gives what summing every interval of the window gives:
// random batches on three instances (some long, some ending out of
// order as racing instances add them), the window read after each.
TEST(UtilizationWindowTest, MatchesSummingEveryIntervalOfTheWindow) {
  std::mt19937 random(7);
  const auto window_length = milliseconds(100);
  UtilizationWindow window(window_length, 3);
  std::vector<std::pair<TimePoint, TimePoint>> all;
  TimePoint now = kStart, at = kStart;
  for (int i = 0; i < 5000; ++i) {
    now += microseconds(std::uniform_int_distribution<int>(0, 400)(random));
    const auto length =
        microseconds(random() % 200 == 0 ? std::uniform_int_distribution<int>(0, 20'000)(random)
                                         : std::uniform_int_distribution<int>(0, 300)(random));
    const TimePoint end = now - microseconds(random() % 300);
    window.AddBusy(end - length, end);
    all.emplace_back(end - length, end);
    // Read a little behind the latest end, never behind an earlier read.
    at = std::max(at, now - microseconds(random() % 200));
    const std::vector<RunningBatch> running = {{at - microseconds(random() % 2000)}};
    const TimePoint from = at - window_length;
    Duration expected{};
    for (const auto& [start, finish] : all) {
      if (finish > from) expected += std::min(finish, at) - std::max(start, from);
    }
    expected += at - std::max(running[0].start, from);
    const double fraction = ToMicros(expected) / (ToMicros(window_length) * 3);
    ASSERT_LT(fraction, 1) << "a load the window does not clamp";
    ASSERT_NEAR(window.Compute(at, running), std::max(0.0, fraction), 1e-9)
        << "after " << i + 1 << " batches";
  }
}

}  // namespace
}  // namespace braid
