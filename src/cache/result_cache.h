// ResultCache: what the server consults before computing a result. The
// in-process tier first, then the shared Redis tier (a hit there fills the
// in-process tier) on the cache's own threads, so that no caller (a network
// thread) waits on Redis; fills go to both, Redis's asynchronously. Single-flight
// makes concurrent identical misses compute once: the first caller leads,
// the others wait for its result.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "cache/memory_cache.h"
#include "cache/perceptual_index.h"
#include "cache/redis_tier.h"
#include "core/thread_pool.h"

namespace braid {

enum class CacheTier { kMemory, kRedis };

// Workflow inputs keyed by a canonical form rather than their bytes.
struct CanonicalStats {
  std::uint64_t text_normalized = 0;  // texts their canonical form changed
  std::uint64_t text_as_sent = 0;     // texts already canonical
  std::uint64_t audio_pcm = 0;        // audio keyed by its decoded samples
  std::uint64_t audio_bytes = 0;      // audio that did not decode, keyed by its bytes
};

// Runs of workflows with a semantic cache.
struct SemanticStats {
  std::uint64_t hits = 0;     // answered with an earlier similar run's outputs
  std::uint64_t misses = 0;   // looked up, nothing close enough
  std::uint64_t refused = 0;  // the client refused semantic answers
};
enum class SemanticOutcome { kHit, kMiss, kRefused };

struct ResultCacheStats {
  std::optional<CacheStats> memory;
  std::optional<RedisStats> redis;
  std::uint64_t coalesced = 0;  // misses that waited for an identical computation
  std::uint64_t bypassed = 0;   // misses that did not wait for a less urgent one
  PerceptualStats perceptual;
  CanonicalStats canonical;
  SemanticStats semantic;
};

class ResultCache {
 public:
  // Either tier may be null (not configured). Both, and `clock` (which
  // paces the looks at the images other replicas keyed), must outlive the
  // cache.
  ResultCache(MemoryCache* memory, RedisTier* redis, Clock& clock = SteadyClock());

  struct Hit {
    std::vector<Tensor> value;
    CacheTier tier;
  };
  using LookupDone = std::function<void(std::optional<Hit>)>;
  // Looks `key` up. A memory hit, or a miss without a Redis tier, calls
  // `done` before returning, on the caller's thread; otherwise Redis is
  // asked on one of the cache's threads and `done` runs there. Never blocks.
  void Lookup(const Hash128& key, LookupDone done);
  void Put(const Hash128& key, const std::vector<Tensor>& value, Duration ttl);

  // Single-flight. kLead: no computation of `key` is under way; the caller
  // leads it and must call Land(key, ...) exactly once. kWait: one is under
  // way and `waiter` gets its result when it lands (on the leader's thread).
  // kBypass: the one under way is less urgent than the caller (a predictive
  // precompute, a lower priority level) and may be deferred or queued
  // behind other work, so the caller computes its own result and leads
  // beside it: later callers wait at the caller's urgency, and the caller
  // must call Land(key, ...) exactly once too (`waiter` is dropped).
  // Whichever of the two lands first answers the waiters. `priority` is
  // InferenceRequest's: 1 is the highest, 0 the model's default level,
  // kLowestPriority (-1) background work.
  enum class Flight { kLead, kWait, kBypass };
  using Waiter = std::function<void(const Result<std::vector<Tensor>>&)>;
  Flight Lead(const Hash128& key, int priority, Waiter waiter);
  void Land(const Hash128& key, const Result<std::vector<Tensor>>& result);

  // The recent images keyed by what they look like, for inputs declared
  // with perceptual keys: a near duplicate is given its original's key.
  PerceptualIndex& perceptual() { return perceptual_; }
  // The key for new image bytes (PerceptualIndex::KeyFor). With a Redis
  // tier the replicas share their images: the ones others keyed since the
  // last look (at most every kPerceptualSyncInterval) are learnt first, and
  // this one is published for them. Blocks on Redis (a round trip at most):
  // call it off the network threads.
  Hash128 PerceptualKeyFor(const Hash128& exact, const ImageFingerprint& fingerprint);
  static constexpr std::string_view kPerceptualStream = "perceptual";
  static constexpr auto kPerceptualSyncInterval = std::chrono::milliseconds(100);
  static constexpr std::size_t kPerceptualSyncBatch = 64;

  // Counts a workflow text input keyed by its canonical form: whether the
  // form changed it.
  void CountTextKey(bool normalized);
  // Counts a workflow audio input keyed by its samples (`decoded`) or, when
  // it did not decode, by its bytes.
  void CountAudioKey(bool decoded);
  void CountSemantic(SemanticOutcome outcome);

  ResultCacheStats Stats() const;

 private:
  // Learns the images other replicas keyed since the last look.
  void LearnSharedImages();

  MemoryCache* memory_;
  RedisTier* redis_;
  Clock& clock_;
  PerceptualIndex perceptual_;
  // This process among the replicas publishing images: its own come back
  // from the stream and are skipped.
  const std::uint64_t replica_;
  std::mutex sync_mutex_;     // one look at the stream at a time; the others skip it
  std::string stream_after_;  // guarded by sync_mutex_
  std::chrono::steady_clock::time_point last_sync_{};  // guarded by sync_mutex_
  // Redis reads, off the callers' threads: each is a round trip that mostly
  // waits, so a few threads.
  static constexpr std::size_t kRedisReaders = 4;
  std::unique_ptr<ThreadPool> redis_reads_;
  struct InFlight {
    int urgency;  // the leader's: lower is more urgent
    std::vector<Waiter> waiters;
  };
  mutable std::mutex flights_mutex_;
  std::unordered_map<Hash128, InFlight, Hash128Hasher> flights_;  // guarded by flights_mutex_
  std::uint64_t coalesced_ = 0;                                   // guarded by flights_mutex_
  std::uint64_t bypassed_ = 0;                                    // guarded by flights_mutex_
  CanonicalStats canonical_;                                      // guarded by flights_mutex_
  SemanticStats semantic_;                                        // guarded by flights_mutex_
};

}  // namespace braid
