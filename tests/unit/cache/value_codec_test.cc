#include "cache/value_codec.h"

#include <gtest/gtest.h>

namespace braid {
namespace {

TEST(ValueCodecTest, RoundTripsEveryKindOfTensor) {
  Tensor floats = *Tensor::Allocate(DataType::kFp32, {2, 3});
  for (int i = 0; i < 6; ++i) floats.mutable_span<float>()[i] = i * 0.5f;
  Tensor strings = *Tensor::FromStrings({"invoice", "", "4821"}, {3});
  Tensor empty = *Tensor::Allocate(DataType::kInt32, {0, 4});
  const std::string bytes = EncodeCacheValue({floats, strings, empty}, 1234);

  auto decoded = DecodeCacheValue(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(decoded->expires_at_ms, 1234);
  ASSERT_EQ(decoded->tensors.size(), 3u);
  EXPECT_EQ(decoded->tensors[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(decoded->tensors[0].span<float>()[5], 2.5f);
  auto words = *decoded->tensors[1].Strings();
  ASSERT_EQ(words.size(), 3u);
  EXPECT_EQ(words[0], "invoice");
  EXPECT_EQ(words[2], "4821");
  EXPECT_EQ(decoded->tensors[2].shape(), (Shape{0, 4}));
}

TEST(ValueCodecTest, RefusesTruncatedForeignAndLyingValues) {
  Tensor floats = *Tensor::Allocate(DataType::kFp32, {4});
  const std::string good = EncodeCacheValue({floats}, 1);
  for (std::size_t cut = 0; cut < good.size(); ++cut)
    EXPECT_FALSE(DecodeCacheValue(good.substr(0, cut)).ok()) << "cut at " << cut;
  EXPECT_FALSE(DecodeCacheValue(good + "x").ok()) << "trailing bytes";

  std::string other_version = good;
  other_version[3] = 2;
  EXPECT_NE(DecodeCacheValue(other_version).status().message().find("version 2"),
            std::string::npos);

  std::string wrong_shape = good;
  wrong_shape[18] = 5;  // the only dim: 4 → 5 floats, but 16 bytes follow
  EXPECT_FALSE(DecodeCacheValue(wrong_shape).ok());
  EXPECT_FALSE(DecodeCacheValue("not a cache value at all").ok());
}

}  // namespace
}  // namespace braid
