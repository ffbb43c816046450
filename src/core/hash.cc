#include "core/hash.h"

#include <fmt/format.h>
#include <xxhash.h>

#include "core/tensor.h"

namespace braid {

std::string Hash128::ToHex() const { return fmt::format("{:016x}{:016x}", high, low); }

Hash128 HashBytes(std::span<const std::byte> bytes) {
  XXH128_hash_t hash = XXH3_128bits(bytes.data(), bytes.size());
  return {hash.low64, hash.high64};
}

Hasher::Hasher() : state_(XXH3_createState()) {
  XXH3_128bits_reset(static_cast<XXH3_state_t*>(state_));
}

Hasher::~Hasher() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }

Hasher& Hasher::Add(std::span<const std::byte> bytes) {
  auto* state = static_cast<XXH3_state_t*>(state_);
  std::uint64_t length = bytes.size();
  XXH3_128bits_update(state, &length, sizeof(length));
  XXH3_128bits_update(state, bytes.data(), bytes.size());
  return *this;
}

Hasher& Hasher::Add(std::string_view text) { return Add(std::as_bytes(std::span(text))); }

Hasher& Hasher::Add(std::int64_t value) {
  return Add(std::as_bytes(std::span<const std::int64_t>(&value, 1)));
}

Hasher& Hasher::Add(const Hash128& key) {
  return Add(static_cast<std::int64_t>(key.low)).Add(static_cast<std::int64_t>(key.high));
}

Hasher& Hasher::Add(const Tensor& tensor) {
  Add(DataTypeName(tensor.dtype()));
  for (auto dim : tensor.shape()) Add(dim);
  return Add(std::span<const std::byte>(tensor.data(), tensor.byte_size()));
}

Hash128 Hasher::Finish() const {
  XXH128_hash_t hash = XXH3_128bits_digest(static_cast<XXH3_state_t*>(state_));
  return {hash.low64, hash.high64};
}

}  // namespace braid
