// The Redis tier against a real redis-server: values shared between two
// tiers (as between two replicas), an outage that fails nothing and costs
// only hits, and the tier coming back by itself.
#include "cache/redis_tier.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "cache/result_cache.h"
#include "support/manual_clock.h"
#include "support/pictures.h"
#include "support/redis_process.h"

namespace braid {
namespace {

constexpr auto kPatience = std::chrono::seconds(15);

std::vector<Tensor> Value(float fill) {
  Tensor t = *Tensor::Allocate(DataType::kFp32, {512});
  for (auto& v : t.mutable_span<float>()) v = fill;
  return {t, *Tensor::FromStrings({"text"}, {1})};
}

bool WaitFor(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + kPatience;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}

// A timeout that a loaded machine does not hit by accident (the server's
// default is 5 ms): a test that wants one hit gives its own.
RedisOptions OptionsFor(const testing::RedisProcess& redis,
                        Duration timeout = std::chrono::seconds(2)) {
  auto options = ParseRedisUrl(redis.url());
  EXPECT_TRUE(options.ok());
  options->timeout = timeout;
  return *options;
}

TEST(RedisUrlTest, ParsesAndRefuses) {
  auto options = ParseRedisUrl("redis://cache.internal:6380/2");
  ASSERT_TRUE(options.ok());
  EXPECT_EQ(options->host, "cache.internal");
  EXPECT_EQ(options->port, 6380);
  EXPECT_EQ(options->database, 2);
  EXPECT_EQ(ParseRedisUrl("redis://localhost")->port, 6379);
  for (const char* bad : {"http://x:1", "redis://", "redis://h:0", "redis://h:99999",
                          "redis://h:12ab", "redis://h:1/x"})
    EXPECT_FALSE(ParseRedisUrl(bad).ok()) << bad;
}

TEST(RedisTierTest, ValuesWrittenByOneTierAreReadByAnother) {
  testing::RedisProcess redis;
  RedisTier writer(OptionsFor(redis), SteadyClock());
  RedisTier reader(OptionsFor(redis), SteadyClock());
  ASSERT_TRUE(WaitFor([&] { return writer.up() && reader.up(); }));
  EXPECT_FALSE(reader.Get({1, 1}).has_value());
  writer.Put({1, 1}, Value(0.25f), std::chrono::seconds(30));
  ASSERT_TRUE(writer.Flush(kPatience));
  auto hit = reader.Get({1, 1});
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->first[0].span<float>()[511], 0.25f);
  EXPECT_EQ(FirstString(hit->first[1]), "text");
  EXPECT_GT(hit->second, std::chrono::seconds(25));
  EXPECT_LE(hit->second, std::chrono::seconds(30));
  auto stats = reader.Stats();
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(writer.Stats().writes, 1u);
}

TEST(RedisTierTest, ReplicasShareTheImagesTheyKeyedPerceptually) {
  testing::RedisProcess redis;
  RedisTier tier_a(OptionsFor(redis), SteadyClock());
  RedisTier tier_b(OptionsFor(redis), SteadyClock());
  ASSERT_TRUE(WaitFor([&] { return tier_a.up() && tier_b.up(); }));
  testing::ManualClock clock;
  ResultCache a(nullptr, &tier_a, clock), b(nullptr, &tier_b, clock);
  auto fingerprint = [](const cv::Mat& rgb) { return *Fingerprint(rgb); };
  const cv::Mat original = testing::Picture(1);
  const Hash128 key = a.PerceptualKeyFor({7, 7}, fingerprint(original));
  EXPECT_EQ(key, (Hash128{7, 7})) << "a new image keys itself";
  ASSERT_TRUE(tier_a.Flush(kPatience));

  // B never saw the picture: a near copy of it is given A's key, and A's
  // bytes are known to B from then on.
  const Hash128 near =
      b.PerceptualKeyFor({8, 8}, fingerprint(testing::NearCopy(original, 70, 0.9, 0.01)));
  EXPECT_EQ(near, key);
  const PerceptualStats stats = b.Stats().perceptual;
  EXPECT_EQ(stats.shared, 1u);
  EXPECT_EQ(stats.perceptual, 1u);
  EXPECT_EQ(b.perceptual().Known({7, 7}), key);
  ASSERT_TRUE(tier_b.Flush(kPatience));

  // Within the sync interval A does not look; after it, A learns B's near
  // copy but not its own image back. A distinct picture keys itself.
  EXPECT_EQ(a.PerceptualKeyFor({9, 9}, fingerprint(testing::Picture(2))), (Hash128{9, 9}));
  EXPECT_EQ(a.Stats().perceptual.shared, 0u);
  clock.Advance(ResultCache::kPerceptualSyncInterval);
  EXPECT_EQ(a.PerceptualKeyFor({10, 10}, fingerprint(testing::Picture(3))), (Hash128{10, 10}));
  EXPECT_EQ(a.Stats().perceptual.shared, 1u) << "B's near copy, not A's own images";
  EXPECT_EQ(a.perceptual().Known({8, 8}), key);
}

TEST(RedisTierTest, ExpiredValuesAreMisses) {
  testing::RedisProcess redis;
  RedisTier tier(OptionsFor(redis), SteadyClock());
  ASSERT_TRUE(WaitFor([&] { return tier.up(); }));
  tier.Put({2, 2}, Value(1), std::chrono::milliseconds(30));
  ASSERT_TRUE(tier.Flush(kPatience));
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_FALSE(tier.Get({2, 2}).has_value());
}

TEST(RedisTierTest, AnOutageCostsHitsAndTheTierComesBackByItself) {
  testing::RedisProcess redis;
  RedisTier tier(OptionsFor(redis), SteadyClock());
  ASSERT_TRUE(WaitFor([&] { return tier.up(); }));
  tier.Put({3, 3}, Value(3), std::chrono::seconds(30));
  ASSERT_TRUE(tier.Flush(kPatience));
  ASSERT_TRUE(tier.Get({3, 3}).has_value());

  redis.Kill();
  // The first call notices; after that lookups answer "miss" without trying.
  EXPECT_FALSE(tier.Get({3, 3}).has_value());
  EXPECT_FALSE(tier.up());
  const std::uint64_t errors = tier.Stats().errors;
  EXPECT_GE(errors, 1u);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_FALSE(tier.Get({3, 3}).has_value());
    tier.Put({4, std::uint64_t(i)}, Value(4), std::chrono::seconds(30));
  }
  EXPECT_EQ(tier.Stats().errors, errors)
      << "a down tier makes no calls (so it makes no caller wait on one)";
  EXPECT_GE(tier.Stats().dropped_writes, 1000u);

  ASSERT_TRUE(redis.Start());
  ASSERT_TRUE(WaitFor([&] { return tier.up(); })) << "the writer thread reconnects";
  EXPECT_EQ(tier.Stats().reconnects, 1u);
  tier.Put({5, 5}, Value(5), std::chrono::seconds(30));
  ASSERT_TRUE(tier.Flush(kPatience));
  auto hit = tier.Get({5, 5});
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->first[0].span<float>()[0], 5);
}

TEST(RedisTierTest, AHangingRedisCostsOneTimeoutThenNothing) {
  testing::RedisProcess redis;
  RedisTier tier(OptionsFor(redis, std::chrono::milliseconds(100)), SteadyClock());
  ASSERT_TRUE(WaitFor([&] { return tier.up(); }));
  tier.Put({7, 7}, Value(7), std::chrono::seconds(30));
  ASSERT_TRUE(tier.Flush(kPatience));
  ASSERT_TRUE(tier.Get({7, 7}).has_value());

  redis.Pause();
  EXPECT_FALSE(tier.Get({7, 7}).has_value()) << "times out";
  EXPECT_FALSE(tier.up());
  const std::uint64_t errors = tier.Stats().errors;
  EXPECT_GE(errors, 1u) << "the call that timed out";
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(tier.Get({7, 7}).has_value());
  EXPECT_EQ(tier.Stats().errors, errors) << "while down, lookups make no call, so none waits";

  redis.Resume();
  ASSERT_TRUE(WaitFor([&] { return tier.up(); }));
  EXPECT_TRUE(tier.Get({7, 7}).has_value()) << "the value survived the hang";
}

TEST(RedisTierTest, StartsWhileRedisIsDown) {
  testing::RedisProcess redis;
  redis.Kill();
  RedisTier tier(OptionsFor(redis), SteadyClock());
  EXPECT_FALSE(tier.Get({6, 6}).has_value());
  EXPECT_FALSE(tier.up());
  ASSERT_TRUE(redis.Start());
  EXPECT_TRUE(WaitFor([&] { return tier.up(); }));
  EXPECT_EQ(tier.Stats().reconnects, 0u) << "the first connection is not a reconnect";
}

TEST(RedisTierTest, AResultCacheAsksRedisOffTheCallersThread) {
  testing::RedisProcess redis;
  RedisTier tier(OptionsFor(redis), SteadyClock());
  ASSERT_TRUE(WaitFor([&] { return tier.up(); }));
  tier.Put({7, 7}, Value(0.5f), std::chrono::seconds(30));
  ASSERT_TRUE(tier.Flush(kPatience));
  MemoryCache memory(1 << 20, SteadyClock());
  ResultCache cache(&memory, &tier);
  std::promise<std::pair<std::thread::id, std::optional<ResultCache::Hit>>> answer;
  cache.Lookup({7, 7}, [&](std::optional<ResultCache::Hit> hit) {
    answer.set_value({std::this_thread::get_id(), std::move(hit)});
  });
  auto future = answer.get_future();
  ASSERT_EQ(future.wait_for(kPatience), std::future_status::ready);
  auto [thread, hit] = future.get();
  EXPECT_NE(thread, std::this_thread::get_id()) << "a network thread never waits on Redis";
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->tier, CacheTier::kRedis);
  EXPECT_EQ(hit->value[0].span<float>()[0], 0.5f);
  // The Redis hit filled the memory tier: the next lookup is answered here.
  bool here = false;
  cache.Lookup({7, 7}, [&](std::optional<ResultCache::Hit> again) {
    here = again.has_value() && again->tier == CacheTier::kMemory;
  });
  EXPECT_TRUE(here);
}

}  // namespace
}  // namespace braid
