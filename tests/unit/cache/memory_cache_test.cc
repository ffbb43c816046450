#include "cache/memory_cache.h"

#include <gtest/gtest.h>

#include <list>
#include <random>
#include <unordered_set>

#include "support/manual_clock.h"

namespace braid {
namespace {

Hash128 Key(std::uint64_t i) { return {i * 0x9E3779B97F4A7C15ull + 1, i}; }

std::vector<Tensor> Value(std::size_t floats, float fill = 1) {
  Tensor t = *Tensor::Allocate(DataType::kFp32, {static_cast<std::int64_t>(floats)});
  for (auto& v : t.mutable_span<float>()) v = fill;
  return {t};
}

TEST(MemoryCacheTest, HitsReturnTheSameBuffers) {
  testing::ManualClock clock;
  MemoryCache cache(1 << 20, clock, 1);
  auto value = Value(16, 3);
  cache.Put(Key(1), value, std::chrono::seconds(10));
  auto hit = cache.Get(Key(1));
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ((*hit)[0].data(), value[0].data()) << "no copy on a hit";
  EXPECT_FALSE(cache.Get(Key(2)).has_value());
  auto stats = cache.Stats();
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.entries, 1u);
}

TEST(MemoryCacheTest, EntriesExpireAfterTheirTtl) {
  testing::ManualClock clock;
  MemoryCache cache(1 << 20, clock, 1);
  cache.Put(Key(1), Value(4), std::chrono::seconds(5));
  clock.Advance(std::chrono::seconds(4));
  EXPECT_TRUE(cache.Get(Key(1)).has_value());
  clock.Advance(std::chrono::seconds(1));
  EXPECT_FALSE(cache.Get(Key(1)).has_value());
  EXPECT_EQ(cache.Stats().entries, 0u);
}

TEST(MemoryCacheTest, StaysWithinItsByteBudget) {
  testing::ManualClock clock;
  const std::size_t budget = 64 << 10;
  MemoryCache cache(budget, clock, 2);
  for (int i = 0; i < 1000; ++i) cache.Put(Key(i), Value(256), std::chrono::hours(1));
  auto stats = cache.Stats();
  EXPECT_LE(stats.bytes, budget);
  EXPECT_GT(stats.evictions + stats.rejections, 900u);
  EXPECT_GT(stats.entries, 10u);
  cache.Put(Key(5000), Value(1 << 20), std::chrono::hours(1));  // larger than a shard: not cached
  EXPECT_FALSE(cache.Get(Key(5000)).has_value());
}

// Plain LRU of the same capacity (entries), for the comparison below.
double LruHitRate(const std::vector<std::uint64_t>& trace, std::size_t capacity) {
  std::list<std::uint64_t> order;
  std::unordered_map<std::uint64_t, std::list<std::uint64_t>::iterator> where;
  std::size_t hits = 0;
  for (auto key : trace) {
    auto it = where.find(key);
    if (it != where.end()) {
      ++hits;
      order.splice(order.begin(), order, it->second);
      continue;
    }
    order.push_front(key);
    where[key] = order.begin();
    if (order.size() > capacity) {
      where.erase(order.back());
      order.pop_back();
    }
  }
  return double(hits) / trace.size();
}

TEST(MemoryCacheTest, TinyLfuBeatsLruOnZipfTrafficWithAScan) {
  // Zipf-distributed keys over 10,000 items with a one-off scan of 20,000
  // new keys in the middle; capacity 500 entries of equal size.
  std::mt19937_64 random(7);
  const int items = 10000;
  std::vector<double> cumulative(items);
  double total = 0;
  for (int i = 0; i < items; ++i) cumulative[i] = (total += 1.0 / (i + 1));
  auto zipf = [&] {
    double x = std::uniform_real_distribution<double>(0, total)(random);
    return static_cast<std::uint64_t>(std::lower_bound(cumulative.begin(), cumulative.end(), x) -
                                      cumulative.begin());
  };
  std::vector<std::uint64_t> trace;
  for (int i = 0; i < 30000; ++i) trace.push_back(zipf());
  for (int i = 0; i < 20000; ++i) trace.push_back(1000000 + i);
  for (int i = 0; i < 30000; ++i) trace.push_back(zipf());

  const std::size_t value_floats = 16;
  const std::size_t entry_bytes = 64 + 64 + value_floats * sizeof(float);
  const std::size_t capacity = 500;
  testing::ManualClock clock;
  MemoryCache cache(capacity * entry_bytes, clock, 1);
  std::size_t hits = 0;
  for (auto key : trace) {
    if (cache.Get(Key(key))) {
      ++hits;
    } else {
      cache.Put(Key(key), Value(value_floats), std::chrono::hours(1));
    }
  }
  const double tiny_lfu = double(hits) / trace.size();
  const double lru = LruHitRate(trace, capacity);
  std::printf("hit rate: W-TinyLFU %.3f, LRU %.3f\n", tiny_lfu, lru);
  EXPECT_GE(tiny_lfu, lru);
}

}  // namespace
TEST(MemoryCacheTest, ASliceOfABatchIsKeptWithoutTheBatch) {
  testing::ManualClock clock;
  MemoryCache cache(1 << 20, clock, 1);
  Tensor batch = *Tensor::Allocate(DataType::kFp32, {64, 512});
  batch.mutable_span<float>()[512] = 3;
  Tensor row = *batch.Slice(1, 2);
  EXPECT_EQ(row.retained_bytes(), batch.byte_size()) << "the slice pins the whole batch";
  std::weak_ptr<const void> batch_buffer = batch.owner();
  cache.Put(Key(1), {row}, std::chrono::seconds(10));
  batch = Tensor();
  row = Tensor();
  EXPECT_TRUE(batch_buffer.expired()) << "the entry holds a copy of its row, not the batch";
  auto hit = cache.Get(Key(1));
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ((*hit)[0].span<float>()[0], 3);
  EXPECT_EQ((*hit)[0].retained_bytes(), 512 * sizeof(float));
  EXPECT_LT(cache.Stats().bytes, 4096u) << "counted at the row's size";
}

}  // namespace braid
