// The two-tier lookup order and single-flight, with the memory tier only
// (the Redis tier has its own test against a real redis-server).
#include "cache/result_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "support/manual_clock.h"

namespace braid {
namespace {

std::vector<Tensor> Value(float fill) {
  Tensor t = *Tensor::Allocate(DataType::kFp32, {4});
  for (auto& v : t.mutable_span<float>()) v = fill;
  return {t};
}

TEST(ResultCacheTest, PutThenGetFromTheMemoryTier) {
  testing::ManualClock clock;
  MemoryCache memory(1 << 20, clock);
  ResultCache cache(&memory, nullptr);
  EXPECT_FALSE(cache.Get({1, 2}).has_value());
  cache.Put({1, 2}, Value(7), std::chrono::seconds(1));
  auto hit = cache.Get({1, 2});
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->tier, CacheTier::kMemory);
  EXPECT_EQ(hit->value[0].span<float>()[0], 7);
  auto stats = cache.Stats();
  ASSERT_TRUE(stats.memory.has_value());
  EXPECT_FALSE(stats.redis.has_value());
  EXPECT_EQ(stats.memory->hits, 1u);
}

TEST(ResultCacheTest, ConcurrentIdenticalMissesComputeOnce) {
  ResultCache cache(nullptr, nullptr);
  const Hash128 key{42, 42};
  std::atomic<int> leaders{0}, answered{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&] {
      auto waiter = [&](const Result<std::vector<Tensor>>& result) {
        EXPECT_TRUE(result.ok());
        EXPECT_EQ((*result)[0].span<float>()[0], 3);
        ++answered;
      };
      if (cache.Lead(key, waiter)) ++leaders;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(leaders, 1);
  EXPECT_EQ(answered, 0) << "followers wait for the leader";
  cache.Land(key, Value(3));
  EXPECT_EQ(answered, 15);
  EXPECT_EQ(cache.Stats().coalesced, 15u);
  // The flight is over: the next miss leads a new one.
  EXPECT_TRUE(cache.Lead(key, [](const Result<std::vector<Tensor>>&) {}));
  cache.Land(key, Value(0));
}

TEST(ResultCacheTest, FollowersLearnOfTheLeadersFailure) {
  ResultCache cache(nullptr, nullptr);
  ASSERT_TRUE(cache.Lead({1, 1}, [](const Result<std::vector<Tensor>>&) {}));
  StatusCode seen = StatusCode::kOk;
  EXPECT_FALSE(cache.Lead(
      {1, 1}, [&](const Result<std::vector<Tensor>>& result) { seen = result.status().code(); }));
  EXPECT_TRUE(cache.Lead({2, 2}, [](const Result<std::vector<Tensor>>&) {})) << "another key";
  cache.Land({1, 1}, Status(StatusCode::kCancelled, "client left"));
  EXPECT_EQ(seen, StatusCode::kCancelled);
  cache.Land({2, 2}, Value(1));
}

}  // namespace
}  // namespace braid
