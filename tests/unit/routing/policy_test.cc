#include "routing/policy.h"

#include <gtest/gtest.h>

#include <map>

namespace braid {
namespace {

std::vector<ReplicaView> Replicas(std::size_t n) { return std::vector<ReplicaView>(n); }

TEST(PolicyTest, ParsesNames) {
  for (auto name : {"round_robin", "least_outstanding", "load_weighted", "cache_affinity"})
    EXPECT_EQ(PolicyName(*ParsePolicy(name)), name);
  EXPECT_FALSE(ParsePolicy("random").ok());
}

TEST(PolicyTest, RoundRobinTakesTurnsAndSkipsUnavailable) {
  Picker picker(Policy::kRoundRobin, 3);
  auto replicas = Replicas(3);
  std::map<std::size_t, int> count;
  for (int i = 0; i < 300; ++i) ++count[*picker.Pick(replicas, 0)];
  EXPECT_EQ(count[0], 100);
  EXPECT_EQ(count[1], 100);
  EXPECT_EQ(count[2], 100);
  replicas[1].available = false;
  for (int i = 0; i < 10; ++i) EXPECT_NE(*picker.Pick(replicas, 0), 1u);
  for (auto& r : replicas) r.available = false;
  EXPECT_FALSE(picker.Pick(replicas, 0).has_value());
}

TEST(PolicyTest, LeastOutstandingPicksTheIdlest) {
  Picker picker(Policy::kLeastOutstanding, 3);
  auto replicas = Replicas(3);
  replicas[0].outstanding = 5;
  replicas[1].outstanding = 2;
  replicas[2].outstanding = 9;
  EXPECT_EQ(*picker.Pick(replicas, 0), 1u);
  replicas[1].available = false;
  EXPECT_EQ(*picker.Pick(replicas, 0), 0u);
}

TEST(PolicyTest, LoadWeightedSendsLessToTheLoadedReplica) {
  Picker picker(Policy::kLoadWeighted, 3, 7);
  auto replicas = Replicas(3);
  replicas[2].load = 0.8;  // weight 0.2 against 1 and 1
  std::map<std::size_t, int> count;
  for (int i = 0; i < 30000; ++i) ++count[*picker.Pick(replicas, 0)];
  // Two weighted draws, the first kept on ties (all idle here): share ∝ weight.
  EXPECT_NEAR(count[2] / 30000.0, 0.2 / 2.2, 0.02);
  EXPECT_NEAR(count[0] / 30000.0, 1 / 2.2, 0.02);
  // Power of two choices: of two draws, the replica with less in flight wins.
  replicas[0].outstanding = 50;
  count.clear();
  for (int i = 0; i < 30000; ++i) ++count[*picker.Pick(replicas, 0)];
  EXPECT_LT(count[0], count[1] / 2) << "a busy replica loses most of its draws";
}

TEST(PolicyTest, CacheAffinityIsStickyAndFallsBackWhenHot) {
  Picker picker(Policy::kCacheAffinity, 4);
  auto replicas = Replicas(4);
  std::map<std::size_t, int> spread;
  for (std::uint64_t key = 0; key < 4000; ++key) {
    const std::uint64_t mixed = key * 0x9E3779B97F4A7C15ull;
    const std::size_t first = *picker.Pick(replicas, mixed);
    EXPECT_EQ(*picker.Pick(replicas, mixed), first) << "the same key, the same replica";
    ++spread[first];
  }
  for (const auto& [replica, count] : spread) EXPECT_GT(count, 600) << replica;
  const std::uint64_t key = 12345 * 0x9E3779B97F4A7C15ull;
  const std::size_t home = *picker.Pick(replicas, key);
  replicas[home].load = 0.95;
  const std::size_t next = *picker.Pick(replicas, key);
  EXPECT_NE(next, home) << "a hot replica passes the key on";
  replicas[home].load = 0;
  replicas[home].available = false;
  EXPECT_EQ(*picker.Pick(replicas, key), next) << "the same successor when it is down";
}

TEST(HashRingTest, RemovingAReplicaMovesOnlyItsKeys) {
  HashRing four(4), three(3);
  int moved = 0, total = 0;
  for (std::uint64_t key = 0; key < 10000; ++key) {
    const std::uint64_t mixed = key * 0x9E3779B97F4A7C15ull;
    const std::size_t before = four.Walk(mixed)[0];
    if (before == 3) continue;  // replica 3 left: its keys must move
    ++total;
    moved += three.Walk(mixed)[0] != before;
  }
  EXPECT_EQ(moved, 0) << "of " << total << " keys on the remaining replicas";
}

}  // namespace
}  // namespace braid
