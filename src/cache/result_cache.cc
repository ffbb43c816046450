#include "cache/result_cache.h"

#include <cstring>
#include <limits>

#include "core/random_id.h"

namespace braid {

namespace {

// An image shared through the stream: the publishing replica, the bytes'
// key, the key given and the fingerprint, as fixed-width fields.
struct SharedImage {
  std::uint64_t replica = 0;
  Hash128 exact;
  Hash128 key;
  ImageFingerprint fingerprint;
};
constexpr std::string_view kSharedImageMagic = "PI1";
constexpr std::size_t kSharedImageBytes = kSharedImageMagic.size() + 6 * sizeof(std::uint64_t) +
                                          sizeof(ImageFingerprint::gray) +
                                          sizeof(ImageFingerprint::colour);

std::string EncodeSharedImage(const SharedImage& image) {
  std::string out(kSharedImageMagic);
  auto put = [&](const void* data, std::size_t size) {
    out.append(static_cast<const char*>(data), size);
  };
  for (std::uint64_t field : {image.replica, image.exact.low, image.exact.high, image.key.low,
                              image.key.high, image.fingerprint.hash}) {
    put(&field, sizeof field);
  }
  put(image.fingerprint.gray.data(), image.fingerprint.gray.size());
  put(image.fingerprint.colour.data(), image.fingerprint.colour.size());
  return out;
}

std::optional<SharedImage> DecodeSharedImage(std::string_view bytes) {
  if (bytes.size() != kSharedImageBytes || !bytes.starts_with(kSharedImageMagic))
    return std::nullopt;
  const char* at = bytes.data() + kSharedImageMagic.size();
  auto take = [&](void* data, std::size_t size) {
    std::memcpy(data, at, size);
    at += size;
  };
  SharedImage image;
  for (std::uint64_t* field : {&image.replica, &image.exact.low, &image.exact.high, &image.key.low,
                               &image.key.high, &image.fingerprint.hash}) {
    take(field, sizeof *field);
  }
  take(image.fingerprint.gray.data(), image.fingerprint.gray.size());
  take(image.fingerprint.colour.data(), image.fingerprint.colour.size());
  return image;
}

}  // namespace

ResultCache::ResultCache(MemoryCache* memory, RedisTier* redis, Clock& clock)
    : memory_(memory), redis_(redis), clock_(clock), replica_(RandomWord()) {
  if (redis_ != nullptr) redis_reads_ = std::make_unique<ThreadPool>(kRedisReaders);
}

Hash128 ResultCache::PerceptualKeyFor(const Hash128& exact, const ImageFingerprint& fingerprint) {
  if (redis_ == nullptr) return perceptual_.KeyFor(exact, fingerprint);
  LearnSharedImages();
  const Hash128 key = perceptual_.KeyFor(exact, fingerprint);
  redis_->Append(kPerceptualStream, EncodeSharedImage({replica_, exact, key, fingerprint}),
                 perceptual_.capacity());
  return key;
}

void ResultCache::LearnSharedImages() {
  std::unique_lock lock(sync_mutex_, std::try_to_lock);
  if (!lock.owns_lock() || !redis_->up()) return;
  const TimePoint now = clock_.Now();
  if (last_sync_ != TimePoint{} && now - last_sync_ < kPerceptualSyncInterval) return;
  last_sync_ = now;
  auto entries = redis_->ReadStream(kPerceptualStream, stream_after_, kPerceptualSyncBatch);
  if (!entries) return;
  for (const auto& entry : *entries) {
    stream_after_ = entry.id;
    auto image = DecodeSharedImage(entry.value);
    if (image && image->replica != replica_)
      perceptual_.Remember(image->exact, image->key, image->fingerprint);
  }
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
