// The two-tier lookup order and single-flight, with the memory tier only
// (the Redis tier has its own test against a real redis-server).
#include "cache/result_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "scheduler/request.h"
#include "support/manual_clock.h"

namespace braid {
namespace {

std::vector<Tensor> Value(float fill) {
  Tensor t = *Tensor::Allocate(DataType::kFp32, {4});
  for (auto& v : t.mutable_span<float>()) v = fill;
  return {t};
}

// A lookup that the memory tier answers, on the caller's thread.
std::optional<ResultCache::Hit> LookUpHere(ResultCache& cache, const Hash128& key) {
  std::optional<ResultCache::Hit> found;
  bool answered = false;
  cache.Lookup(key, [&](std::optional<ResultCache::Hit> hit) {
    found = std::move(hit);
    answered = true;
  });
  EXPECT_TRUE(answered) << "without Redis a lookup is answered before it returns";
  return found;
}

TEST(ResultCacheTest, PutThenGetFromTheMemoryTier) {
  testing::ManualClock clock;
  MemoryCache memory(1 << 20, clock);
  ResultCache cache(&memory, nullptr);
  EXPECT_FALSE(LookUpHere(cache, {1, 2}).has_value());
  cache.Put({1, 2}, Value(7), std::chrono::seconds(1));
  auto hit = LookUpHere(cache, {1, 2});
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
      if (cache.Lead(key, 0, waiter) == ResultCache::Flight::kLead) ++leaders;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(leaders, 1);
  EXPECT_EQ(answered, 0) << "followers wait for the leader";
  cache.Land(key, Value(3));
  EXPECT_EQ(answered, 15);
  EXPECT_EQ(cache.Stats().coalesced, 15u);
  // The flight is over: the next miss leads a new one.
  EXPECT_EQ(cache.Lead(key, 0, [](const Result<std::vector<Tensor>>&) {}),
            ResultCache::Flight::kLead);
  cache.Land(key, Value(0));
}

TEST(ResultCacheTest, FollowersLearnOfTheLeadersFailure) {
  ResultCache cache(nullptr, nullptr);
  ASSERT_EQ(cache.Lead({1, 1}, 0, [](const Result<std::vector<Tensor>>&) {}),
            ResultCache::Flight::kLead);
  StatusCode seen = StatusCode::kOk;
  EXPECT_EQ(
      cache.Lead({1, 1}, 0,
                 [&](const Result<std::vector<Tensor>>& result) { seen = result.status().code(); }),
      ResultCache::Flight::kWait);
  EXPECT_EQ(cache.Lead({2, 2}, 0, [](const Result<std::vector<Tensor>>&) {}),
            ResultCache::Flight::kLead)
      << "another key";
  cache.Land({1, 1}, Status(StatusCode::kCancelled, "client left"));
  EXPECT_EQ(seen, StatusCode::kCancelled);
  cache.Land({2, 2}, Value(1));
}

// An interactive request never waits behind a less urgent computation of
// the same key (a precompute the off-peak policy may defer, a lower level);
// a less urgent one still waits for a more urgent leader.
TEST(ResultCacheTest, AMoreUrgentMissLeadsBesideALessUrgentLeader) {
  ResultCache cache(nullptr, nullptr);
  auto ignore = [](const Result<std::vector<Tensor>>&) {};
  ASSERT_EQ(cache.Lead({1, 1}, kLowestPriority, ignore), ResultCache::Flight::kLead);
  EXPECT_EQ(cache.Lead({1, 1}, 0, ignore), ResultCache::Flight::kBypass) << "default vs background";
  EXPECT_EQ(cache.Lead({1, 1}, 0, ignore), ResultCache::Flight::kWait)
      << "the default level now leads too: a second one waits for it";
  EXPECT_EQ(cache.Lead({1, 1}, 1, ignore), ResultCache::Flight::kBypass);
  EXPECT_EQ(cache.Lead({1, 1}, kLowestPriority, ignore), ResultCache::Flight::kWait);
  ASSERT_EQ(cache.Lead({2, 2}, 1, ignore), ResultCache::Flight::kLead);
  EXPECT_EQ(cache.Lead({2, 2}, 2, ignore), ResultCache::Flight::kWait);
  EXPECT_EQ(cache.Lead({2, 2}, 0, ignore), ResultCache::Flight::kWait);
  EXPECT_EQ(cache.Stats().bypassed, 2u);
  EXPECT_EQ(cache.Stats().coalesced, 4u);
  cache.Land({1, 1}, Value(1));
  cache.Land({2, 2}, Value(2));
}

// Whichever leader lands first answers the waiters; the other's landing
// finds no flight.
TEST(ResultCacheTest, TheFirstOfTwoLeadersToLandAnswersTheWaiters) {
  ResultCache cache(nullptr, nullptr);
  auto ignore = [](const Result<std::vector<Tensor>>&) {};
  std::vector<float> answered;
  auto record = [&](const Result<std::vector<Tensor>>& result) {
    answered.push_back(result->at(0).span<float>()[0]);
  };
  ASSERT_EQ(cache.Lead({3, 3}, kLowestPriority, ignore), ResultCache::Flight::kLead);
  ASSERT_EQ(cache.Lead({3, 3}, 1, ignore), ResultCache::Flight::kBypass);
  ASSERT_EQ(cache.Lead({3, 3}, 1, record), ResultCache::Flight::kWait);
  cache.Land({3, 3}, Value(7));
  cache.Land({3, 3}, Value(8));
  EXPECT_EQ(answered, std::vector<float>{7});
}

}  // namespace
}  // namespace braid
