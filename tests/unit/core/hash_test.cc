#include "core/hash.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <vector>

namespace braid {
namespace {

std::span<const std::byte> Bytes(std::string_view text) { return std::as_bytes(std::span(text)); }

TEST(HashTest, DeterministicAndContentSensitive) {
  EXPECT_EQ(HashBytes(Bytes("hello")), HashBytes(Bytes("hello")));
  EXPECT_NE(HashBytes(Bytes("hello")), HashBytes(Bytes("hellp")));
  EXPECT_EQ(HashBytes(Bytes("x")).ToHex().size(), 32u);
}

TEST(HashTest, FieldsAreLengthPrefixed) {
  Hasher a, b;
  a.Add("ab").Add("c");
  b.Add("a").Add("bc");
  EXPECT_NE(a.Finish(), b.Finish());
  Hasher c, d;
  c.Add("model").Add(std::int64_t{1});
  d.Add("model").Add(std::int64_t{1});
  EXPECT_EQ(c.Finish(), d.Finish());
}

TEST(HashTest, NoCollisionsOnNearbyInputs) {
  // 10,000 buffers that differ in one counter field: all hashes distinct.
  std::set<std::pair<std::uint64_t, std::uint64_t>> seen;
  std::vector<std::byte> buffer(64);
  for (std::uint64_t i = 0; i < 10000; ++i) {
    std::memcpy(buffer.data() + 17, &i, sizeof(i));
    auto hash = HashBytes(buffer);
    seen.insert({hash.low, hash.high});
  }
  EXPECT_EQ(seen.size(), 10000u);
}

}  // namespace
}  // namespace braid
