// The byte form of a cached value (a list of tensors) in the shared tier:
//
//   "BRV" version(1)  expires_at_ms(u64)  count(u32)
//   per tensor: dtype(u8) rank(u8) dims(i64 × rank) byte_size(u64) bytes
//
// little-endian. A reader refuses other versions, so processes of different
// braid versions sharing one Redis never misread each other's entries.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace braid {

inline constexpr std::uint8_t kCacheValueVersion = 1;

struct DecodedValue {
  std::vector<Tensor> tensors;
  std::int64_t expires_at_ms = 0;  // unix milliseconds
};

std::string EncodeCacheValue(const std::vector<Tensor>& tensors, std::int64_t expires_at_ms);
// InvalidArgument for anything malformed, truncated or of another version.
Result<DecodedValue> DecodeCacheValue(std::string_view bytes);

// Unix time in milliseconds (the shared tier's expiry is wall-clock time,
// comparable between processes).
std::int64_t UnixMillis();

}  // namespace braid
