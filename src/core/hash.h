// Content hashing with XXH3-128: fast enough to key caches on raw tensor
// bytes (several GB/s per core) and wide enough that collisions are not a
// practical concern.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace braid {

class Tensor;

struct Hash128 {
  std::uint64_t low = 0;
  std::uint64_t high = 0;

  friend bool operator==(const Hash128&, const Hash128&) = default;
  // 32 lower-case hex digits, high half first.
  std::string ToHex() const;
};

Hash128 HashBytes(std::span<const std::byte> bytes);

// Incremental hashing of several fields. Each field is length-prefixed, so
// ("ab","c") and ("a","bc") hash differently. Not thread-safe.
class Hasher {
 public:
  Hasher();
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  Hasher& Add(std::span<const std::byte> bytes);
  Hasher& Add(std::string_view text);
  Hasher& Add(std::int64_t value);
  Hasher& Add(const Hash128& key);
  // The tensor's data type, shape and bytes.
  Hasher& Add(const Tensor& tensor);
  Hash128 Finish() const;

 private:
  void* state_;  // XXH3_state_t, kept out of this header
};

}  // namespace braid
