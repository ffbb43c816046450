#include "core/rate_limiter.h"

#include <algorithm>
#include <chrono>

namespace braid {

RateLimiter::RateLimiter(double rate, double burst, Clock& clock, std::size_t max_clients)
    : rate_(rate), burst_(std::max(1.0, burst)), clock_(clock), max_clients_(max_clients) {}

double RateLimiter::TokensAt(const Bucket& bucket, TimePoint now) const {
  const double seconds = std::chrono::duration<double>(now - bucket.updated).count();
  return std::min(burst_, bucket.tokens + seconds * rate_);
}

std::optional<Duration> RateLimiter::Take(std::string_view client) {
  const TimePoint now = clock_.Now();
  std::lock_guard lock(mutex_);
  auto it = buckets_.find(std::string(client));
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_clients_) {
      // The least recently seen client is dropped: its bucket has had the
      // longest to refill, so it loses the least.
      buckets_.erase(recent_.back());
      recent_.pop_back();
    }
    recent_.emplace_front(client);
    it = buckets_.emplace(recent_.front(), Bucket{burst_, now, recent_.begin()}).first;
  } else {
    recent_.splice(recent_.begin(), recent_, it->second.age);
  }
  Bucket& bucket = it->second;
  bucket.tokens = TokensAt(bucket, now);
  bucket.updated = now;
  if (bucket.tokens >= 1) {
    bucket.tokens -= 1;
    return std::nullopt;
  }
  return std::chrono::duration_cast<Duration>(
      std::chrono::duration<double>((1 - bucket.tokens) / rate_));
}

std::size_t RateLimiter::clients() const {
  std::lock_guard lock(mutex_);
  return buckets_.size();
}

}  // namespace braid
