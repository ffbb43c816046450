#include "cache/memory_cache.h"

#include <algorithm>
#include <array>

namespace braid {
namespace {

// What an entry keeps alive, which is what the budget counts.
std::size_t ValueBytes(const std::vector<Tensor>& value) {
  std::size_t bytes = 64;  // bookkeeping per entry
  for (const auto& tensor : value) bytes += tensor.retained_bytes() + 64;
  return bytes;
}

// A count-min sketch with 4 rows of 8-bit counters. Every `sample` increments
// all counters are halved, so the frequencies describe recent traffic.
class FrequencySketch {
 public:
  explicit FrequencySketch(std::size_t expected_entries) {
    std::size_t width = 64;
    while (width < expected_entries) width <<= 1;
    width_mask_ = width - 1;
    for (auto& row : rows_) row.assign(width, 0);
    sample_ = 10 * width;
  }

  void Increment(const Hash128& key) {
    for (std::size_t r = 0; r < rows_.size(); ++r) {
      auto& counter = rows_[r][Index(key, r)];
      if (counter < 255) ++counter;
    }
    if (++additions_ >= sample_) Age();
  }

  int Estimate(const Hash128& key) const {
    int least = 255;
    for (std::size_t r = 0; r < rows_.size(); ++r)
      least = std::min<int>(least, rows_[r][Index(key, r)]);
    return least;
  }

 private:
  std::size_t Index(const Hash128& key, std::size_t row) const {
    const std::uint64_t mixed = key.low + row * 0x9E3779B97F4A7C15ull + (key.high >> (row * 8));
    return static_cast<std::size_t>((mixed ^ (mixed >> 29)) * 0xBF58476D1CE4E5B9ull >> 20) &
           width_mask_;
  }
  void Age() {
    for (auto& row : rows_) {
      for (auto& counter : row) counter >>= 1;
    }
    additions_ = 0;
  }

  std::array<std::vector<std::uint8_t>, 4> rows_;
  std::size_t width_mask_ = 0;
  std::size_t sample_ = 0;
  std::size_t additions_ = 0;
};

}  // namespace

class MemoryCache::Shard {
 public:
  Shard(std::size_t max_bytes, std::size_t expected_entries)
      : window_budget_(std::max<std::size_t>(max_bytes / 100, 1)),
        protected_budget_((max_bytes - window_budget_) * 8 / 10),
        max_bytes_(max_bytes),
        sketch_(expected_entries) {}

  std::optional<std::vector<Tensor>> Get(const Hash128& key, TimePoint now) {
    std::lock_guard lock(mutex_);
    sketch_.Increment(key);
    auto it = entries_.find(key);
    if (it == entries_.end()) {
      ++stats_.misses;
      return std::nullopt;
    }
    Entry& entry = it->second;
    if (now >= entry.expires) {
      Remove(it);
      ++stats_.misses;
      return std::nullopt;
    }
    ++stats_.hits;
    if (entry.segment == Segment::kProbation) {  // a second hit: promote
      Move(entry, Segment::kProtected);
      while (segment_bytes_[static_cast<int>(Segment::kProtected)] > protected_budget_) {
        Entry& demoted = entries_.at(lists_[static_cast<int>(Segment::kProtected)].back());
        Move(demoted, Segment::kProbation);
      }
    } else {
      Touch(entry);
    }
    return entry.value;
  }

  void Put(const Hash128& key, std::vector<Tensor> value, TimePoint expires) {
    const std::size_t bytes = ValueBytes(value);
    if (bytes > max_bytes_) return;
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(key); it != entries_.end()) Remove(it);
    Entry& entry = entries_[key];
    entry.key = key;
    entry.value = std::move(value);
    entry.bytes = bytes;
    entry.expires = expires;
    entry.segment = Segment::kWindow;
    auto& window = lists_[static_cast<int>(Segment::kWindow)];
    window.push_front(key);
    entry.position = window.begin();
    segment_bytes_[static_cast<int>(Segment::kWindow)] += bytes;
    total_bytes_ += bytes;
    ++stats_.insertions;
    // Window overflow: its LRU entries try to enter the main space.
    while (segment_bytes_[static_cast<int>(Segment::kWindow)] > window_budget_ &&
           window.size() > 1) {
      Entry& candidate = entries_.at(window.back());
      Move(candidate, Segment::kProbation);
      EnforceLimit(candidate.key);
    }
    EnforceLimit(key);
  }

  CacheStats Stats() const {
    std::lock_guard lock(mutex_);
    CacheStats stats = stats_;
    stats.bytes = total_bytes_;
    stats.entries = entries_.size();
    return stats;
  }

 private:
  enum class Segment { kWindow, kProbation, kProtected };
  struct Entry {
    Hash128 key;
    std::vector<Tensor> value;
    std::size_t bytes = 0;
    TimePoint expires{};
    Segment segment = Segment::kWindow;
    std::list<Hash128>::iterator position;
  };
  using Map = std::unordered_map<Hash128, Entry, Hash128Hasher>;

  // Evicts while over budget. The main space's LRU victim and the newest
  // admission candidate compete by estimated frequency.
  void EnforceLimit(Hash128 candidate) {
    auto& probation = lists_[static_cast<int>(Segment::kProbation)];
    while (total_bytes_ > max_bytes_) {
      auto& source = probation.empty() ? lists_[static_cast<int>(Segment::kProtected)] : probation;
      if (source.empty()) break;
      Hash128 victim = source.back();
      auto candidate_it = entries_.find(candidate);
      if (victim == candidate || candidate_it == entries_.end() ||
          candidate_it->second.segment == Segment::kWindow) {
        Evict(victim);
        continue;
      }
      if (sketch_.Estimate(candidate) > sketch_.Estimate(victim)) {
        Evict(victim);
      } else {
        ++stats_.rejections;
        Evict(candidate);
      }
    }
  }

  void Evict(const Hash128& key) {
    auto it = entries_.find(key);
    if (it == entries_.end()) return;
    ++stats_.evictions;
    Remove(it);
  }

  void Remove(Map::iterator it) {
    Entry& entry = it->second;
    lists_[static_cast<int>(entry.segment)].erase(entry.position);
    segment_bytes_[static_cast<int>(entry.segment)] -= entry.bytes;
    total_bytes_ -= entry.bytes;
    entries_.erase(it);
  }

  void Move(Entry& entry, Segment to) {
    lists_[static_cast<int>(entry.segment)].erase(entry.position);
    segment_bytes_[static_cast<int>(entry.segment)] -= entry.bytes;
    entry.segment = to;
    auto& list = lists_[static_cast<int>(to)];
    list.push_front(entry.key);
    entry.position = list.begin();
    segment_bytes_[static_cast<int>(to)] += entry.bytes;
  }

  void Touch(Entry& entry) {
    auto& list = lists_[static_cast<int>(entry.segment)];
    list.splice(list.begin(), list, entry.position);
  }

  const std::size_t window_budget_;
  const std::size_t protected_budget_;
  const std::size_t max_bytes_;
  mutable std::mutex mutex_;
  Map entries_;                                 // guarded by mutex_
  std::array<std::list<Hash128>, 3> lists_;     // guarded by mutex_; front = most recent
  std::array<std::size_t, 3> segment_bytes_{};  // guarded by mutex_
  std::size_t total_bytes_ = 0;                 // guarded by mutex_
  FrequencySketch sketch_;                      // guarded by mutex_
  CacheStats stats_;                            // guarded by mutex_
};

MemoryCache::MemoryCache(std::size_t max_bytes, Clock& clock, std::size_t shards) : clock_(clock) {
  shards = std::max<std::size_t>(shards, 1);
  for (std::size_t i = 0; i < shards; ++i) {
    const std::size_t bytes = max_bytes / shards;
    shards_.push_back(std::make_unique<Shard>(bytes, std::max<std::size_t>(bytes / 4096, 64)));
  }
}

MemoryCache::~MemoryCache() = default;

MemoryCache::Shard& MemoryCache::ShardFor(const Hash128& key) {
  return *shards_[key.high % shards_.size()];
}

std::optional<std::vector<Tensor>> MemoryCache::Get(const Hash128& key) {
  return ShardFor(key).Get(key, clock_.Now());
}

void MemoryCache::Put(const Hash128& key, std::vector<Tensor> value, Duration ttl) {
  // A request's rows of a batch output would pin the whole batch: an entry
  // keeps only its own bytes (copied out, outside any lock).
  for (Tensor& tensor : value) tensor = tensor.Compact();
  ShardFor(key).Put(key, std::move(value), clock_.Now() + ttl);
}

CacheStats MemoryCache::Stats() const {
  CacheStats total;
  for (const auto& shard : shards_) {
    CacheStats s = shard->Stats();
    total.hits += s.hits;
    total.misses += s.misses;
    total.insertions += s.insertions;
    total.evictions += s.evictions;
    total.rejections += s.rejections;
    total.bytes += s.bytes;
    total.entries += s.entries;
  }
  return total;
}

}  // namespace braid
