#include "cache/result_cache.h"

namespace braid {

ResultCache::ResultCache(MemoryCache* memory, RedisTier* redis) : memory_(memory), redis_(redis) {}

std::optional<ResultCache::Hit> ResultCache::Get(const Hash128& key) {
  if (memory_ != nullptr) {
    if (auto value = memory_->Get(key)) return Hit{std::move(*value), CacheTier::kMemory};
  }
  if (redis_ != nullptr) {
    if (auto found = redis_->Get(key)) {
      auto& [value, left] = *found;
      if (memory_ != nullptr) memory_->Put(key, value, left);
      return Hit{std::move(value), CacheTier::kRedis};
    }
  }
  return std::nullopt;
}

void ResultCache::Put(const Hash128& key, const std::vector<Tensor>& value, Duration ttl) {
  if (memory_ != nullptr) memory_->Put(key, value, ttl);
  if (redis_ != nullptr) redis_->Put(key, value, ttl);
}

bool ResultCache::Lead(const Hash128& key, Waiter waiter) {
  std::lock_guard lock(flights_mutex_);
  auto [flight, inserted] = flights_.try_emplace(key);
  if (inserted) return true;
  flight->second.push_back(std::move(waiter));
  ++coalesced_;
  return false;
}

void ResultCache::Land(const Hash128& key, const Result<std::vector<Tensor>>& result) {
  std::vector<Waiter> waiters;
  {
    std::lock_guard lock(flights_mutex_);
    auto flight = flights_.find(key);
    if (flight == flights_.end()) return;
    waiters.swap(flight->second);
    flights_.erase(flight);
  }
  for (auto& waiter : waiters) waiter(result);
}

ResultCacheStats ResultCache::Stats() const {
  ResultCacheStats stats;
  if (memory_ != nullptr) stats.memory = memory_->Stats();
  if (redis_ != nullptr) stats.redis = redis_->Stats();
  std::lock_guard lock(flights_mutex_);
  stats.coalesced = coalesced_;
  return stats;
}

}  // namespace braid
