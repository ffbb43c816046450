#include "routing/policy.h"

#include <algorithm>

#include "core/hash.h"

namespace braid {

Result<Policy> ParsePolicy(std::string_view name) {
  if (name == "round_robin") return Policy::kRoundRobin;
  if (name == "least_outstanding") return Policy::kLeastOutstanding;
  if (name == "load_weighted") return Policy::kLoadWeighted;
  if (name == "cache_affinity") return Policy::kCacheAffinity;
  return InvalidArgument(
      "unknown policy '{}' (round_robin, least_outstanding, load_weighted, cache_affinity)", name);
}

std::string_view PolicyName(Policy policy) {
  switch (policy) {
    case Policy::kRoundRobin:
      return "round_robin";
    case Policy::kLeastOutstanding:
      return "least_outstanding";
    case Policy::kLoadWeighted:
      return "load_weighted";
    case Policy::kCacheAffinity:
      return "cache_affinity";
  }
  return "?";
}

HashRing::HashRing(std::size_t replicas, int points_per_replica) : replicas_(replicas) {
  for (std::size_t r = 0; r < replicas; ++r) {
    for (int p = 0; p < points_per_replica; ++p) {
      const Hash128 h = Hasher().Add(static_cast<std::int64_t>(r)).Add(std::int64_t{p}).Finish();
      points_.emplace_back(h.low, r);
    }
  }
  std::sort(points_.begin(), points_.end());
}

std::vector<std::size_t> HashRing::Walk(std::uint64_t key) const {
  std::vector<std::size_t> order;
  if (points_.empty()) return order;
  auto it = std::lower_bound(points_.begin(), points_.end(), std::pair{key, std::size_t{0}});
  std::vector<bool> seen(replicas_, false);
  for (std::size_t step = 0; step < points_.size() && order.size() < replicas_; ++step) {
    if (it == points_.end()) it = points_.begin();
    if (!seen[it->second]) {
      seen[it->second] = true;
      order.push_back(it->second);
    }
    ++it;
  }
  return order;
}

Picker::Picker(Policy policy, std::size_t replicas, std::uint64_t seed)
    : policy_(policy), ring_(replicas), random_(seed) {}

std::optional<std::size_t> Picker::Pick(const std::vector<ReplicaView>& replicas,
                                        std::uint64_t key) {
  const std::size_t n = replicas.size();
  auto available = [&](std::size_t i) { return replicas[i].available; };
  switch (policy_) {
    case Policy::kRoundRobin:
      for (std::size_t step = 0; step < n; ++step) {
        const std::size_t i = next_++ % n;
        if (available(i)) return i;
      }
      return std::nullopt;
    case Policy::kLeastOutstanding: {
      std::optional<std::size_t> best;
      for (std::size_t step = 0; step < n; ++step) {
        const std::size_t i = (next_ + step) % n;  // rotate ties
        if (available(i) && (!best || replicas[i].outstanding < replicas[*best].outstanding))
          best = i;
      }
      ++next_;
      return best;
    }
    case Policy::kLoadWeighted: {
      std::vector<double> weights(n, 0);
      double total = 0;
      for (std::size_t i = 0; i < n; ++i) {
        if (!available(i)) continue;
        // A fully loaded replica keeps a small weight so that its load
        // report can recover.
        weights[i] = replicas[i].base_weight * std::max(0.02, 1 - replicas[i].load);
        total += weights[i];
      }
      if (total <= 0) return std::nullopt;
      std::discrete_distribution<std::size_t> draw(weights.begin(), weights.end());
      const std::size_t a = draw(random_), b = draw(random_);
      return replicas[b].outstanding < replicas[a].outstanding ? b : a;
    }
    case Policy::kCacheAffinity: {
      std::optional<std::size_t> fallback;
      for (std::size_t i : ring_.Walk(key)) {
        if (!available(i)) continue;
        if (replicas[i].load < 0.9) return i;
        if (!fallback) fallback = i;
      }
      return fallback;
    }
  }
  return std::nullopt;
}

}  // namespace braid
