#include "collections/semantic_cache.h"

#include <faiss/IndexFlat.h>
#include <faiss/impl/IDSelector.h>

#include <algorithm>

#include "collections/collection.h"

namespace braid {

SemanticCache::SemanticCache(std::size_t capacity, Duration ttl, Clock& clock)
    : capacity_(std::max<std::size_t>(capacity, 1)), ttl_(ttl), clock_(clock) {}

SemanticCache::~SemanticCache() = default;

std::optional<SemanticCache::Hit> SemanticCache::Find(std::span<const float> embedding,
                                                      const Hash128& context, float threshold) {
  std::vector<float> query(embedding.begin(), embedding.end());
  std::lock_guard lock(mutex_);
  Expire(clock_.Now());
  if (index_ == nullptr || entries_.empty() || !Normalise(query, index_->d).ok())
    return std::nullopt;
  const auto k = std::min<faiss::Index::idx_t>(kCandidates, index_->ntotal);
  std::vector<float> scores(k);
  std::vector<faiss::Index::idx_t> rows(k);
  index_->search(1, query.data(), k, scores.data(), rows.data());
  for (faiss::Index::idx_t i = 0; i < k; ++i) {
    if (rows[i] < 0 || scores[i] < threshold) break;  // best first
    const Entry& entry = entries_[static_cast<std::size_t>(rows[i])];
    if (entry.context == context) return Hit{entry.outputs, std::min(scores[i], 1.0F)};
  }
  return std::nullopt;
}

void SemanticCache::Put(std::span<const float> embedding, const Hash128& context,
                        std::map<std::string, Tensor> outputs) {
  std::vector<float> vector(embedding.begin(), embedding.end());
  std::lock_guard lock(mutex_);
  const TimePoint now = clock_.Now();
  Expire(now);
  const int dimension = index_ ? index_->d : static_cast<int>(vector.size());
  if (!Normalise(vector, dimension).ok()) return;
  if (index_ == nullptr) index_ = std::make_unique<faiss::IndexFlatIP>(dimension);
  if (entries_.size() == capacity_) {
    faiss::IDSelectorRange oldest(0, 1);
    index_->remove_ids(oldest);
    entries_.pop_front();
  }
  index_->add(1, vector.data());
  entries_.push_back({context, std::move(outputs), now + ttl_});
}

std::size_t SemanticCache::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

void SemanticCache::Expire(TimePoint now) {
  std::size_t expired = 0;
  while (expired < entries_.size() && entries_[expired].expires <= now) ++expired;
  if (expired == 0) return;
  faiss::IDSelectorRange oldest(0, static_cast<faiss::Index::idx_t>(expired));
  index_->remove_ids(oldest);
  entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(expired));
}

}  // namespace braid
