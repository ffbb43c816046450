// RedisTier: the shared result cache tier (`braid serve --redis URL`), so
// that replicas reuse each other's results.
//
// Reads are synchronous with a short timeout; writes are queued and sent,
// pipelined, by a background thread, so a miss's response never waits on
// Redis. Any error or timeout marks the tier down: lookups then answer
// "miss" at once and writes are dropped, so a Redis outage costs hit rate,
// never a request. The writer thread probes with backoff (100 ms doubling
// to 5 s) and brings the tier back up when Redis answers again.
//
// Thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/hash.h"
#include "core/status.h"
#include "core/tensor.h"

struct redisContext;
struct redisReply;

namespace braid {

struct RedisOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  int database = 0;
  // Connect, read and write timeout of each Redis call.
  Duration timeout = std::chrono::milliseconds(5);
  std::size_t connections = 4;  // pooled connections for lookups
  std::size_t max_value_bytes = std::size_t{4} << 20;
  std::size_t max_queued_writes = 4096;
  std::string key_prefix = "braid:";
};

// redis://host[:port][/db]; InvalidArgument otherwise.
Result<RedisOptions> ParseRedisUrl(std::string_view url);

struct RedisStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t errors = 0;          // failed or timed-out calls, undecodable values
  std::uint64_t writes = 0;          // values stored
  std::uint64_t dropped_writes = 0;  // queue full, tier down, value too large
  std::uint64_t reconnects = 0;      // down → up transitions
  bool up = false;
};

class RedisTier {
 public:
  // Starts the writer thread, which connects in the background: a Redis
  // that is down at start is not an error.
  RedisTier(RedisOptions options, Clock& clock);
  ~RedisTier();
  RedisTier(const RedisTier&) = delete;
  RedisTier& operator=(const RedisTier&) = delete;

  // The value for `key` and how long it has left; nullopt on a miss, while
  // the tier is down, when every connection is busy, or on an error.
  std::optional<std::pair<std::vector<Tensor>, Duration>> Get(const Hash128& key);
  // Queues the value for the writer; returns at once.
  void Put(const Hash128& key, const std::vector<Tensor>& value, Duration ttl);

  // Streams (Redis XADD/XRANGE) under the key prefix: what replicas tell
  // each other in order, such as the images they keyed perceptually.
  // Queues `value` for the writer, appended to `stream`, which keeps about
  // `max_length` entries; returns at once.
  void Append(std::string_view stream, std::string value, std::size_t max_length);
  struct StreamEntry {
    std::string id;
    std::string value;
  };
  // Up to `count` entries of `stream` after entry `after` (from the first
  // when empty), oldest first; nullopt while the tier is down, when every
  // connection is busy, or on an error.
  std::optional<std::vector<StreamEntry>> ReadStream(std::string_view stream,
                                                     const std::string& after, std::size_t count);

  bool up() const { return up_.load(std::memory_order_acquire); }
  RedisStats Stats() const;
  // Blocks until the write queue is empty or `timeout` passes (tests, benchmarks).
  bool Flush(Duration timeout);

 private:
  struct Write {
    std::string key;
    std::string value;
    std::int64_t ttl_ms = 0;
    std::int64_t stream_length = 0;  // > 0: appended to the stream `key`, trimmed to about this
  };
  void Enqueue(Write write);

  // A pooled connection and the outage count when it was lent: one lent
  // before an outage is not pooled again after it.
  struct Lent {
    redisContext* context = nullptr;
    std::uint64_t outages = 0;
  };
  redisContext* Connect();
  Lent Acquire();
  void Release(Lent lent, bool healthy);
  void MarkDown(std::string_view why);
  // Sends one command (redisCommand's format) on a pooled connection and
  // gives the connection back. The reply, which the caller frees; null when
  // no connection is free, the tier is down, or the call failed (counted,
  // and the tier marked down).
  redisReply* Call(const char* format, ...);
  void WriterLoop();
  bool Probe();
  bool SendWrites(std::vector<Write>& writes);
  std::string KeyFor(const Hash128& key) const;

  const RedisOptions options_;
  Clock& clock_;
  std::atomic<bool> up_{false};
  std::atomic<std::uint64_t> outages_{0};
  std::atomic<std::uint64_t> hits_{0}, misses_{0}, errors_{0}, writes_{0}, dropped_{0},
      reconnects_{0};

  std::mutex pool_mutex_;
  std::vector<redisContext*> idle_;  // guarded by pool_mutex_
  std::size_t open_ = 0;             // guarded by pool_mutex_; idle and lent

  std::mutex writer_mutex_;
  std::condition_variable writer_wake_;
  std::condition_variable writer_idle_;
  std::deque<Write> queue_;         // guarded by writer_mutex_
  bool writing_ = false;            // guarded by writer_mutex_
  bool stopping_ = false;           // guarded by writer_mutex_
  Duration backoff_{};              // guarded by writer_mutex_
  TimePoint next_probe_{};          // guarded by writer_mutex_
  redisContext* writer_ = nullptr;  // the writer thread's own connection
  bool ever_up_ = false;            // writer thread only
  std::thread writer_thread_;
};

}  // namespace braid
