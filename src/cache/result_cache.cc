#include "cache/result_cache.h"

#include <limits>

namespace braid {

ResultCache::ResultCache(MemoryCache* memory, RedisTier* redis) : memory_(memory), redis_(redis) {
  if (redis_ != nullptr) redis_reads_ = std::make_unique<ThreadPool>(kRedisReaders);
}

void ResultCache::Lookup(const Hash128& key, LookupDone done) {
  if (memory_ != nullptr) {
    if (auto value = memory_->Get(key)) return done(Hit{std::move(*value), CacheTier::kMemory});
  }
  if (redis_ == nullptr) return done(std::nullopt);
  redis_reads_->Submit([this, key, done = std::move(done)] {
    auto found = redis_->Get(key);
    if (!found) return done(std::nullopt);
    auto& [value, left] = *found;
    if (memory_ != nullptr) memory_->Put(key, value, left);
    done(Hit{std::move(value), CacheTier::kRedis});
  });
}

void ResultCache::Put(const Hash128& key, const std::vector<Tensor>& value, Duration ttl) {
  if (memory_ != nullptr) memory_->Put(key, value, ttl);
  if (redis_ != nullptr) redis_->Put(key, value, ttl);
}

namespace {

// Orders priorities by urgency: explicit levels, then the default level
// (0), then background work (negative).
int Urgency(int priority) {
  if (priority < 0) return std::numeric_limits<int>::max();
  if (priority == 0) return std::numeric_limits<int>::max() - 1;
  return priority;
}

}  // namespace

ResultCache::Flight ResultCache::Lead(const Hash128& key, int priority, Waiter waiter) {
  std::lock_guard lock(flights_mutex_);
  auto [flight, inserted] = flights_.try_emplace(key, InFlight{Urgency(priority), {}});
  if (inserted) return Flight::kLead;
  if (Urgency(priority) < flight->second.urgency) {
    flight->second.urgency = Urgency(priority);
    ++bypassed_;
    return Flight::kBypass;
  }
  flight->second.waiters.push_back(std::move(waiter));
  ++coalesced_;
  return Flight::kWait;
}

void ResultCache::Land(const Hash128& key, const Result<std::vector<Tensor>>& result) {
  std::vector<Waiter> waiters;
  {
    std::lock_guard lock(flights_mutex_);
    auto flight = flights_.find(key);
    if (flight == flights_.end()) return;
    waiters.swap(flight->second.waiters);
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
  stats.bypassed = bypassed_;
  stats.perceptual = perceptual_.Stats();
  stats.canonical = canonical_;
  stats.semantic = semantic_;
  return stats;
}

void ResultCache::CountTextKey(bool normalized) {
  std::lock_guard lock(flights_mutex_);
  ++(normalized ? canonical_.text_normalized : canonical_.text_as_sent);
}

void ResultCache::CountSemantic(SemanticOutcome outcome) {
  std::lock_guard lock(flights_mutex_);
  switch (outcome) {
    case SemanticOutcome::kHit:
      ++semantic_.hits;
      break;
    case SemanticOutcome::kMiss:
      ++semantic_.misses;
      break;
    case SemanticOutcome::kRefused:
      ++semantic_.refused;
      break;
  }
}

void ResultCache::CountAudioKey(bool decoded) {
  std::lock_guard lock(flights_mutex_);
  ++(decoded ? canonical_.audio_pcm : canonical_.audio_bytes);
}

}  // namespace braid
