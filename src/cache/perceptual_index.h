// PerceptualIndex: the images a cache has keyed recently, so that a near
// duplicate (re-encoded, resized, slightly cropped, its metadata changed)
// is given the key of the image it duplicates and its results hit.
//
// An image is first known by its exact key (a hash of its bytes): bytes
// seen before get their key back without decoding. New bytes are
// fingerprinted (preprocess/fingerprint.h) by the caller; the earlier
// fingerprints within kMaxHamming bits are candidates, each verified by its
// thumbnails, and the closest verified one gives its key. Without one the
// image keys itself. Bounded: the oldest of `capacity` images is forgotten
// first (about 1.2 KB each). A linear scan of 64-bit hashes finds the
// candidates (16,384 of them in about 10 µs).
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "cache/memory_cache.h"
#include "core/hash.h"
#include "preprocess/fingerprint.h"

namespace braid {

struct PerceptualStats {
  std::uint64_t exact = 0;       // bytes seen before
  std::uint64_t perceptual = 0;  // new bytes given an earlier image's key
  std::uint64_t verified = 0;    // candidates whose thumbnails matched
  std::uint64_t rejected = 0;    // candidates within range whose thumbnails did not
  std::uint64_t new_images = 0;  // keyed by themselves
  std::uint64_t shared = 0;      // keyed by another replica, learnt through Redis
  std::size_t entries = 0;
};

class PerceptualIndex {
 public:
  explicit PerceptualIndex(std::size_t capacity = 16384);

  // The key bytes with this exact key were given, if they are remembered.
  std::optional<Hash128> Known(const Hash128& exact);
  // The key for new bytes: an earlier near duplicate's, or `exact`.
  // Remembers the image either way.
  Hash128 KeyFor(const Hash128& exact, const ImageFingerprint& fingerprint);

  // Remembers an image another replica keyed (its bytes' key, the key it
  // was given, its fingerprint), unless these bytes are known already.
  void Remember(const Hash128& exact, const Hash128& key, const ImageFingerprint& fingerprint);

  PerceptualStats Stats() const;
  std::size_t capacity() const { return capacity_; }

 private:
  struct Entry {
    Hash128 exact;
    Hash128 key;
    ImageFingerprint fingerprint;
  };
  // Adds the entry, over the oldest once full. Called with the lock held.
  void Insert(Entry entry);

  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::vector<Entry> entries_;         // a ring once full; guarded by mutex_
  std::vector<std::uint64_t> hashes_;  // entries_[i].fingerprint.hash, scanned
  std::size_t next_ = 0;               // the slot the next image takes once full
  std::unordered_map<Hash128, Hash128, Hash128Hasher> by_exact_;
  PerceptualStats stats_;
};

}  // namespace braid
