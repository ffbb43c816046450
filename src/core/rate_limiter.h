// RateLimiter: a token bucket per client (an address), so that no client
// sends more than `rate` requests a second on average, with bursts up to
// `burst`. The table of buckets is bounded: past `max_clients` the least
// recently seen client's bucket is dropped. Thread-safe.
#pragma once

#include <cstddef>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/clock.h"

namespace braid {

class RateLimiter {
 public:
  // `clock` must outlive the limiter; `rate` > 0, `burst` ≥ 1.
  RateLimiter(double rate, double burst, Clock& clock, std::size_t max_clients = 65536);

  // Takes a token from `client`'s bucket: nothing if one was there, else
  // how long until one will be.
  std::optional<Duration> Take(std::string_view client);

  std::size_t clients() const;

 private:
  struct Bucket {
    double tokens;
    TimePoint updated;
    std::list<std::string>::iterator age;  // position in recent_
  };
  double TokensAt(const Bucket& bucket, TimePoint now) const;

  const double rate_;
  const double burst_;
  Clock& clock_;
  const std::size_t max_clients_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;  // guarded by mutex_
  std::list<std::string> recent_;                    // guarded by mutex_; most recent first
};

}  // namespace braid
