// How `braid router` picks a replica for a request.
//
//   round_robin        in turn;
//   least_outstanding  the replica with the fewest requests in flight;
//   load_weighted      weight = base weight × (1 − reported load), sampled
//                      in proportion to weight, two at a time, keeping the
//                      one with fewer requests in flight (power of two
//                      choices: a stale load report cannot send everyone
//                      to the same replica);
//   cache_affinity     consistent hashing of the request's content, so a
//                      repeated input lands where its cached result is; a
//                      hot replica (at its in-flight cap or load ≥ 0.9)
//                      passes the request to the next one on the ring.
//
// Pure functions of the replicas' current state: unit-testable without a
// network.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace braid {

enum class Policy { kRoundRobin, kLeastOutstanding, kLoadWeighted, kCacheAffinity };

Result<Policy> ParsePolicy(std::string_view name);
std::string_view PolicyName(Policy policy);

// What the policy sees of a replica.
struct ReplicaView {
  bool available = true;  // healthy, not ejected, not draining, under its in-flight cap
  double base_weight = 1;
  double load = 0;  // last reported, in [0, 1]
  std::size_t outstanding = 0;
  std::size_t max_outstanding = 0;  // 0: no cap
};

// A ring of 100 points per replica (XXH3 of "index#point").
class HashRing {
 public:
  explicit HashRing(std::size_t replicas, int points_per_replica = 100);
  // Replica indices in ring order starting at `key`'s position, each once.
  std::vector<std::size_t> Walk(std::uint64_t key) const;

 private:
  std::vector<std::pair<std::uint64_t, std::size_t>> points_;  // sorted by hash
  std::size_t replicas_;
};

class Picker {
 public:
  Picker(Policy policy, std::size_t replicas, std::uint64_t seed = 1);
  // The replica for a request whose content hashes to `key` (used by
  // cache_affinity only); nullopt when none is available. Not thread-safe.
  std::optional<std::size_t> Pick(const std::vector<ReplicaView>& replicas, std::uint64_t key);
  Policy policy() const { return policy_; }

 private:
  Policy policy_;
  HashRing ring_;
  std::size_t next_ = 0;
  std::mt19937_64 random_;
};

}  // namespace braid
