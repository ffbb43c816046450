// SemanticCache: a workflow's recent outputs keyed by an embedding of the
// request, for `semantic_cache:` workflows. A run whose embedding's cosine
// similarity to an earlier run's reaches the threshold, and whose context
// (everything else the run was given, hashed by the caller) is the same, is
// answered with that run's outputs.
//
// The vectors live in a FAISS exact inner-product index (IndexFlatIP) in the
// order they came; the oldest entry leaves first, when the cache is full or
// its time is up. Only the closest kCandidates entries are looked at, so a
// run whose context is shared by none of them misses: a miss is always safe.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/hash.h"
#include "core/tensor.h"

namespace faiss {
struct IndexFlatIP;
}

namespace braid {

class SemanticCache {
 public:
  // `clock` must outlive the cache.
  SemanticCache(std::size_t capacity, Duration ttl, Clock& clock);
  ~SemanticCache();

  struct Hit {
    std::map<std::string, Tensor> outputs;
    float similarity = 0;
  };
  // The outputs of the most similar live entry with this `context`, when its
  // similarity to `embedding` is at least `threshold`. An embedding of
  // another dimension than the cache's, or of norm 0, finds nothing.
  std::optional<Hit> Find(std::span<const float> embedding, const Hash128& context,
                          float threshold);
  // Remembers `outputs` under `embedding` (normalised here) and `context`.
  void Put(std::span<const float> embedding, const Hash128& context,
           std::map<std::string, Tensor> outputs);

  std::size_t size() const;

  static constexpr int kCandidates = 16;

 private:
  struct Entry {
    Hash128 context;
    std::map<std::string, Tensor> outputs;
    TimePoint expires;
  };
  // Drops entries whose time is up (the oldest first). Called with the lock held.
  void Expire(TimePoint now);

  const std::size_t capacity_;
  const Duration ttl_;
  Clock& clock_;
  mutable std::mutex mutex_;
  std::unique_ptr<faiss::IndexFlatIP> index_;  // guarded by mutex_; made by the first Put
  std::deque<Entry> entries_;                  // guarded by mutex_; entries_[i] is row i
};

}  // namespace braid
