// MemoryCache: the in-process result cache tier. Sharded by key; each shard
// is bounded by bytes and runs W-TinyLFU: new entries enter a small LRU
// window (1% of the shard); an entry leaving the window competes with the
// main space's eviction candidate and is admitted only if a count-min
// sketch of recent accesses says it is used more often. The main space is a
// segmented LRU (probation, then protected once hit again). Entries expire
// after their TTL. Scans of one-off keys thus cannot flush the popular ones,
// which plain LRU lets happen.
//
// Thread-safe; one lock per shard, held only for map and list updates.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/hash.h"
#include "core/tensor.h"

namespace braid {

struct CacheStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t insertions = 0;
  std::uint64_t evictions = 0;
  std::uint64_t rejections = 0;  // candidates the frequency filter turned away
  std::size_t bytes = 0;
  std::size_t entries = 0;
};

struct Hash128Hasher {
  std::size_t operator()(const Hash128& h) const {
    return static_cast<std::size_t>(h.low ^ (h.high * 0x9E3779B97F4A7C15ull));
  }
};

class MemoryCache {
 public:
  // `max_bytes` is split evenly across `shards`. `clock` must outlive the cache.
  MemoryCache(std::size_t max_bytes, Clock& clock, std::size_t shards = 8);
  ~MemoryCache();

  // The cached tensors for `key`, if present and fresh. Counts a hit or a miss.
  std::optional<std::vector<Tensor>> Get(const Hash128& key);
  // Caches `value` for `ttl`, sharing its buffers except where a tensor is
  // a slice of a larger one (a request's rows of a batch output): that one
  // is copied, so that an entry keeps alive only the bytes it counts. A
  // value larger than a shard is not cached.
  void Put(const Hash128& key, std::vector<Tensor> value, Duration ttl);

  CacheStats Stats() const;

 private:
  class Shard;
  std::vector<std::unique_ptr<Shard>> shards_;
  Clock& clock_;

  Shard& ShardFor(const Hash128& key);
};

}  // namespace braid
