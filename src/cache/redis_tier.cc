#include "cache/redis_tier.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <cstdarg>

#include "cache/value_codec.h"

namespace braid {
namespace {

constexpr Duration kFirstBackoff = std::chrono::milliseconds(100);
constexpr Duration kMaxBackoff = std::chrono::seconds(5);
constexpr std::size_t kMaxPipeline = 64;
constexpr std::size_t kMaxPipelineBytes = std::size_t{8} << 20;

timeval ToTimeval(Duration duration) {
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(duration).count();
  return timeval{static_cast<time_t>(micros / 1000000), static_cast<suseconds_t>(micros % 1000000)};
}

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

bool ParseInt(std::string_view text, int* value) {
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return error == std::errc() && end == text.data() + text.size();
}

}  // namespace

Result<RedisOptions> ParseRedisUrl(std::string_view url) {
  constexpr std::string_view kScheme = "redis://";
  if (!url.starts_with(kScheme))
    return InvalidArgument("redis URL '{}' must look like redis://host:port[/db]", url);
  std::string_view rest = url.substr(kScheme.size());
  RedisOptions options;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    if (!ParseInt(rest.substr(slash + 1), &options.database) || options.database < 0)
      return InvalidArgument("redis URL '{}': the database must be a number", url);
    rest = rest.substr(0, slash);
  }
  if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    if (!ParseInt(rest.substr(colon + 1), &options.port) || options.port < 1 ||
        options.port > 65535)
      return InvalidArgument("redis URL '{}': the port must be 1..65535", url);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return InvalidArgument("redis URL '{}' names no host", url);
  options.host = rest;
  return options;
}

RedisTier::RedisTier(RedisOptions options, Clock& clock)
    : options_(std::move(options)), clock_(clock) {
  // hiredis writes with write(2): a connection that Redis dropped must not
  // end the process with SIGPIPE.
  signal(SIGPIPE, SIG_IGN);
  next_probe_ = clock_.Now();
  writer_thread_ = std::thread([this] { WriterLoop(); });
}

RedisTier::~RedisTier() {
  {
    std::lock_guard lock(writer_mutex_);
    stopping_ = true;
  }
  writer_wake_.notify_all();
  writer_thread_.join();
  if (writer_ != nullptr) redisFree(writer_);
  for (redisContext* context : idle_) redisFree(context);
}

std::string RedisTier::KeyFor(const Hash128& key) const {
  return options_.key_prefix + key.ToHex();
}

redisContext* RedisTier::Connect() {
  const timeval timeout = ToTimeval(options_.timeout);
  redisContext* context = redisConnectWithTimeout(options_.host.c_str(), options_.port, timeout);
  if (context == nullptr) return nullptr;
  if (context->err != 0 || redisSetTimeout(context, timeout) != REDIS_OK) {
    redisFree(context);
    return nullptr;
  }
  if (options_.database != 0) {
    Reply reply(static_cast<redisReply*>(redisCommand(context, "SELECT %d", options_.database)));
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
      redisFree(context);
      return nullptr;
    }
  }
  return context;
}

RedisTier::Lent RedisTier::Acquire() {
  if (!up()) return {};
  Lent lent{nullptr, outages_.load()};
  {
    std::lock_guard lock(pool_mutex_);
    if (!idle_.empty()) {
      lent.context = idle_.back();
      idle_.pop_back();
      return lent;
    }
    if (open_ >= options_.connections) return {};  // all busy: a miss, never a wait
    ++open_;
  }
  lent.context = Connect();
  if (lent.context == nullptr) {
    {
      std::lock_guard lock(pool_mutex_);
      --open_;
    }
    ++errors_;
    MarkDown("cannot connect");
  }
  return lent;
}

void RedisTier::Release(Lent lent, bool healthy) {
  if (healthy && up() && lent.outages == outages_.load()) {
    std::lock_guard lock(pool_mutex_);
    idle_.push_back(lent.context);
    return;
  }
  redisFree(lent.context);
  std::lock_guard lock(pool_mutex_);
  --open_;
}

void RedisTier::MarkDown(std::string_view why) {
  if (!up_.exchange(false)) return;
  ++outages_;
  spdlog::warn("redis tier {}:{} is down ({}): serving from memory and computation, retrying",
               options_.host, options_.port, why);
  {
    std::lock_guard lock(writer_mutex_);
    dropped_ += queue_.size();
    queue_.clear();
    backoff_ = kFirstBackoff;
    next_probe_ = clock_.Now() + backoff_;
  }
  writer_wake_.notify_all();
  writer_idle_.notify_all();
  std::vector<redisContext*> idle;
  {
    std::lock_guard lock(pool_mutex_);
    idle.swap(idle_);
    open_ -= idle.size();
  }
  for (redisContext* context : idle) redisFree(context);
}

redisReply* RedisTier::Call(const char* format, ...) {
  Lent lent = Acquire();
  if (lent.context == nullptr) return nullptr;
  va_list arguments;
  va_start(arguments, format);
  auto* reply = static_cast<redisReply*>(redisvCommand(lent.context, format, arguments));
  va_end(arguments);
  if (reply == nullptr) {
    const std::string why = lent.context->errstr;
    ++errors_;
    Release(lent, false);
    MarkDown(why);
    return nullptr;
  }
  Release(lent, true);
  return reply;
}

std::optional<std::pair<std::vector<Tensor>, Duration>> RedisTier::Get(const Hash128& key) {
  const std::string name = KeyFor(key);
  Reply reply(Call("GET %b", name.data(), name.size()));
  if (!reply) return std::nullopt;
  if (reply->type != REDIS_REPLY_STRING) {
    if (reply->type == REDIS_REPLY_NIL) {
      ++misses_;
    } else {
      ++errors_;
    }
    return std::nullopt;
  }
  auto value = DecodeCacheValue(std::string_view(reply->str, reply->len));
  const std::int64_t left_ms = value.ok() ? value->expires_at_ms - UnixMillis() : 0;
  if (!value.ok()) ++errors_;
  if (left_ms <= 0) {
    ++misses_;
    return std::nullopt;
  }
  ++hits_;
  return std::pair{std::move(value->tensors), Duration(std::chrono::milliseconds(left_ms))};
}

void RedisTier::Put(const Hash128& key, const std::vector<Tensor>& value, Duration ttl) {
  std::size_t bytes = 0;
  for (const Tensor& tensor : value) bytes += tensor.byte_size();
  const auto ttl_ms =
      std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::milliseconds>(ttl).count());
  if (!up() || bytes > options_.max_value_bytes) {
    ++dropped_;
    return;
  }
  Enqueue({KeyFor(key), EncodeCacheValue(value, UnixMillis() + ttl_ms), ttl_ms});
}

void RedisTier::Append(std::string_view stream, std::string value, std::size_t max_length) {
  if (!up() || value.size() > options_.max_value_bytes) {
    ++dropped_;
    return;
  }
  Enqueue({options_.key_prefix + std::string(stream), std::move(value), 0,
           static_cast<std::int64_t>(std::max<std::size_t>(max_length, 1))});
}

void RedisTier::Enqueue(Write write) {
  {
    std::lock_guard lock(writer_mutex_);
    if (queue_.size() >= options_.max_queued_writes) {
      ++dropped_;
      return;
    }
    queue_.push_back(std::move(write));
  }
  writer_wake_.notify_one();
}

std::optional<std::vector<RedisTier::StreamEntry>> RedisTier::ReadStream(std::string_view stream,
                                                                         const std::string& after,
                                                                         std::size_t count) {
  const std::string name = options_.key_prefix + std::string(stream);
  const std::string start = after.empty() ? "-" : "(" + after;
  Reply reply(Call("XRANGE %b %b + COUNT %lld", name.data(), name.size(), start.data(),
                   start.size(), static_cast<long long>(count)));
  if (!reply) return std::nullopt;
  if (reply->type != REDIS_REPLY_ARRAY) {
    ++errors_;
    return std::nullopt;
  }
  // Each entry is [id, [field, value, ...]]; the value is the first field's.
  std::vector<StreamEntry> entries;
  for (std::size_t i = 0; i < reply->elements; ++i) {
    const redisReply* entry = reply->element[i];
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING ||
        entry->element[1]->type != REDIS_REPLY_ARRAY || entry->element[1]->elements < 2 ||
        entry->element[1]->element[1]->type != REDIS_REPLY_STRING) {
      ++errors_;
      return std::nullopt;
    }
    const redisReply* value = entry->element[1]->element[1];
    entries.push_back({std::string(entry->element[0]->str, entry->element[0]->len),
                       std::string(value->str, value->len)});
  }
  return entries;
}

bool RedisTier::Probe() {
  redisContext* context = Connect();
  if (context == nullptr) return false;
  Reply reply(static_cast<redisReply*>(redisCommand(context, "PING")));
  if (!reply || reply->type == REDIS_REPLY_ERROR) {
    redisFree(context);
    return false;
  }
  if (writer_ != nullptr) redisFree(writer_);
  writer_ = context;
  // The writer's calls are off the request path and carry batches: a
  // longer timeout than the lookups'.
  redisSetTimeout(writer_, ToTimeval(std::max<Duration>(options_.timeout * 10,
                                                        std::chrono::milliseconds(100))));
  if (ever_up_) ++reconnects_;
  ever_up_ = true;
  up_.store(true, std::memory_order_release);
  spdlog::info("redis tier {}:{} is up", options_.host, options_.port);
  return true;
}

bool RedisTier::SendWrites(std::vector<Write>& writes) {
  for (const Write& write : writes) {
    if (write.stream_length > 0) {
      redisAppendCommand(writer_, "XADD %b MAXLEN ~ %lld * v %b", write.key.data(),
                         write.key.size(), static_cast<long long>(write.stream_length),
                         write.value.data(), write.value.size());
    } else {
      redisAppendCommand(writer_, "SET %b %b PX %lld", write.key.data(), write.key.size(),
                         write.value.data(), write.value.size(),
                         static_cast<long long>(write.ttl_ms));
    }
  }
  for (std::size_t i = 0; i < writes.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(writer_, &raw) != REDIS_OK) {
      const std::string why = writer_->errstr;
      redisFree(writer_);
      writer_ = nullptr;
      ++errors_;
      dropped_ += writes.size() - i;
      MarkDown(why);
      return false;
    }
    Reply reply(static_cast<redisReply*>(raw));
    if (reply->type == REDIS_REPLY_ERROR) {
      ++errors_;
      ++dropped_;
    } else {
      ++writes_;
    }
  }
  return true;
}

void RedisTier::WriterLoop() {
  std::unique_lock lock(writer_mutex_);
  bool warned = false;
  while (!stopping_) {
    if (!up()) {
      if (clock_.Now() < next_probe_) {
        clock_.WaitUntil(lock, writer_wake_, next_probe_);
        continue;
      }
      lock.unlock();
      const bool ok = Probe();
      lock.lock();
      if (!ok) {
        if (!warned) {
          spdlog::warn("redis tier {}:{} is not reachable: retrying in the background",
                       options_.host, options_.port);
          warned = true;
        }
        backoff_ = backoff_ == Duration{} ? kFirstBackoff : std::min(backoff_ * 2, kMaxBackoff);
        next_probe_ = clock_.Now() + backoff_;
      } else {
        warned = false;
      }
      continue;
    }
    if (queue_.empty()) {
      writer_idle_.notify_all();
      writer_wake_.wait(lock, [this] { return stopping_ || !queue_.empty() || !up(); });
      continue;
    }
    std::vector<Write> batch;
    std::size_t bytes = 0;
    while (!queue_.empty() && batch.size() < kMaxPipeline && bytes < kMaxPipelineBytes) {
      bytes += queue_.front().value.size();
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    writing_ = true;
    lock.unlock();
    SendWrites(batch);
    lock.lock();
    writing_ = false;
  }
  writer_idle_.notify_all();
}

bool RedisTier::Flush(Duration timeout) {
  const TimePoint deadline = clock_.Now() + timeout;
  std::unique_lock lock(writer_mutex_);
  while (!queue_.empty() || writing_) {
    if (clock_.Now() >= deadline) return false;
    clock_.WaitUntil(lock, writer_idle_, deadline);
  }
  return true;
}

RedisStats RedisTier::Stats() const {
  RedisStats stats;
  stats.hits = hits_;
  stats.misses = misses_;
  stats.errors = errors_;
  stats.writes = writes_;
  stats.dropped_writes = dropped_;
  stats.reconnects = reconnects_;
  stats.up = up();
  return stats;
}

}  // namespace braid
