// ResultCache: what the server consults before computing a result. The
// in-process tier first, then the shared Redis tier (a hit there fills the
// in-process tier); fills go to both, Redis's asynchronously. Single-flight
// makes concurrent identical misses compute once: the first caller leads,
// the others wait for its result.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "cache/memory_cache.h"
#include "cache/redis_tier.h"

namespace braid {

enum class CacheTier { kMemory, kRedis };

struct ResultCacheStats {
  std::optional<CacheStats> memory;
  std::optional<RedisStats> redis;
  std::uint64_t coalesced = 0;  // misses that waited for an identical computation
};

class ResultCache {
 public:
  // Either tier may be null (not configured). Both must outlive the cache.
  ResultCache(MemoryCache* memory, RedisTier* redis);

  struct Hit {
    std::vector<Tensor> value;
    CacheTier tier;
  };
  std::optional<Hit> Get(const Hash128& key);
  void Put(const Hash128& key, const std::vector<Tensor>& value, Duration ttl);

  // Single-flight. True: no computation of `key` is under way; the caller
  // leads it and must call Land(key, ...) exactly once. False: one is under
  // way and `waiter` gets its result when it lands (on the leader's thread).
  using Waiter = std::function<void(const Result<std::vector<Tensor>>&)>;
  bool Lead(const Hash128& key, Waiter waiter);
  void Land(const Hash128& key, const Result<std::vector<Tensor>>& result);

  ResultCacheStats Stats() const;

 private:
  MemoryCache* memory_;
  RedisTier* redis_;
  mutable std::mutex flights_mutex_;
  std::unordered_map<Hash128, std::vector<Waiter>, Hash128Hasher>
      flights_;                  // guarded by flights_mutex_
  std::uint64_t coalesced_ = 0;  // guarded by flights_mutex_
};

}  // namespace braid
