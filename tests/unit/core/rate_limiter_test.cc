#include "core/rate_limiter.h"

#include <gtest/gtest.h>

#include <chrono>

#include "../../support/manual_clock.h"

namespace braid {
namespace {

using std::chrono::milliseconds;

TEST(RateLimiterTest, ABurstPassesThenTheRateHolds) {
  testing::ManualClock clock;
  RateLimiter limiter(10, 3, clock);
  EXPECT_FALSE(limiter.Take("a"));
  EXPECT_FALSE(limiter.Take("a"));
  EXPECT_FALSE(limiter.Take("a"));
  auto wait = limiter.Take("a");
  ASSERT_TRUE(wait);
  // Empty: a token comes in 100 ms (10 a second).
  EXPECT_EQ(std::chrono::duration_cast<milliseconds>(*wait).count(), 100);
  clock.Advance(milliseconds(50));
  EXPECT_TRUE(limiter.Take("a"));
  clock.Advance(milliseconds(50));
  EXPECT_FALSE(limiter.Take("a"));
  EXPECT_TRUE(limiter.Take("a"));
}

TEST(RateLimiterTest, ClientsHaveBucketsOfTheirOwn) {
  testing::ManualClock clock;
  RateLimiter limiter(1, 1, clock);
  EXPECT_FALSE(limiter.Take("a"));
  EXPECT_TRUE(limiter.Take("a"));
  EXPECT_FALSE(limiter.Take("b"));
}

TEST(RateLimiterTest, ABucketRefillsNoFurtherThanTheBurst) {
  testing::ManualClock clock;
  RateLimiter limiter(1, 2, clock);
  EXPECT_FALSE(limiter.Take("a"));
  clock.Advance(std::chrono::hours(1));
  EXPECT_FALSE(limiter.Take("a"));
  EXPECT_FALSE(limiter.Take("a"));
  EXPECT_TRUE(limiter.Take("a"));
}

TEST(RateLimiterTest, TheTableDropsTheLeastRecentlySeenClient) {
  testing::ManualClock clock;
  RateLimiter limiter(1, 1, clock, 2);
  EXPECT_FALSE(limiter.Take("a"));
  EXPECT_FALSE(limiter.Take("b"));
  EXPECT_TRUE(limiter.Take("a"));   // a is now the most recent
  EXPECT_FALSE(limiter.Take("c"));  // b goes
  EXPECT_EQ(limiter.clients(), 2u);
  EXPECT_TRUE(limiter.Take("a"));   // a kept its empty bucket
  EXPECT_FALSE(limiter.Take("b"));  // b starts afresh
}

}  // namespace
}  // namespace braid
