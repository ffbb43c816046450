#include "cache/perceptual_index.h"

namespace braid {

PerceptualIndex::PerceptualIndex(std::size_t capacity)
    : capacity_(std::max<std::size_t>(1, capacity)) {}

std::optional<Hash128> PerceptualIndex::Known(const Hash128& exact) {
  std::lock_guard lock(mutex_);
  auto found = by_exact_.find(exact);
  if (found == by_exact_.end()) return std::nullopt;
  ++stats_.exact;
  return found->second;
}

Hash128 PerceptualIndex::KeyFor(const Hash128& exact, const ImageFingerprint& fingerprint) {
  std::lock_guard lock(mutex_);
  if (auto found = by_exact_.find(exact); found != by_exact_.end()) {
    ++stats_.exact;
    return found->second;
  }
  const Entry* best = nullptr;
  Likeness best_likeness;
  for (std::size_t i = 0; i < hashes_.size(); ++i) {
    if (HammingDistance(hashes_[i], fingerprint.hash) > kMaxHamming) continue;
    const Likeness likeness = Compare(entries_[i].fingerprint, fingerprint);
    if (!likeness.same) {
      ++stats_.rejected;
      continue;
    }
    ++stats_.verified;
    if (best == nullptr || likeness.correlation > best_likeness.correlation) {
      best = &entries_[i];
      best_likeness = likeness;
    }
  }
  Hash128 key = exact;
  if (best != nullptr) {
    key = best->key;
    ++stats_.perceptual;
  } else {
    ++stats_.new_images;
  }
  Insert({exact, key, fingerprint});
  return key;
}

void PerceptualIndex::Remember(const Hash128& exact, const Hash128& key,
                               const ImageFingerprint& fingerprint) {
  std::lock_guard lock(mutex_);
  if (by_exact_.count(exact)) return;
  ++stats_.shared;
  Insert({exact, key, fingerprint});
}

void PerceptualIndex::Insert(Entry entry) {
  const Hash128 exact = entry.exact, key = entry.key;
  const std::uint64_t hash = entry.fingerprint.hash;
  if (entries_.size() < capacity_) {
    entries_.push_back(std::move(entry));
    hashes_.push_back(hash);
  } else {
    by_exact_.erase(entries_[next_].exact);
    entries_[next_] = std::move(entry);
    hashes_[next_] = hash;
    next_ = (next_ + 1) % capacity_;
  }
  by_exact_[exact] = key;
}

PerceptualStats PerceptualIndex::Stats() const {
  std::lock_guard lock(mutex_);
  PerceptualStats stats = stats_;
  stats.entries = entries_.size();
  return stats;
}

}  // namespace braid
