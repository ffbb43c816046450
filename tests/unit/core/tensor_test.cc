#include "core/tensor.h"

#include <gtest/gtest.h>

#include <limits>

namespace braid {
namespace {

TEST(TensorTest, AllocateZeroFilledAndAligned) {
  auto tensor = Tensor::Allocate(DataType::kFp32, {2, 3});
  ASSERT_TRUE(tensor.ok()) << tensor.status().ToString();
  EXPECT_EQ(tensor->byte_size(), 24u);
  EXPECT_EQ(tensor->element_count(), 6);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(tensor->data()) % 64, 0u);
  for (float v : tensor->span<float>()) EXPECT_EQ(v, 0.0f);
}

TEST(TensorTest, ElementCountRejectsNegativeAndOverflow) {
  EXPECT_FALSE(ElementCount({2, -1}).ok());
  EXPECT_FALSE(ElementCount({std::numeric_limits<std::int64_t>::max(), 2}).ok());
  EXPECT_EQ(*ElementCount({}), 1);
  EXPECT_EQ(*ElementCount({4, 0, 3}), 0);
}

TEST(TensorTest, ByteSizeOverflowAndLimit) {
  EXPECT_FALSE(ByteSizeOf(DataType::kFp32, std::numeric_limits<std::int64_t>::max()).ok());
  auto limited = ByteSizeOf(DataType::kInt64, 10, 79);
  ASSERT_FALSE(limited.ok());
  EXPECT_EQ(limited.status().code(), StatusCode::kTooLarge);
  EXPECT_EQ(*ByteSizeOf(DataType::kInt64, 10, 80), 80u);
  EXPECT_FALSE(ByteSizeOf(DataType::kBytes, 1).ok());
}

TEST(TensorTest, AllocateRejectsBytes) {
  EXPECT_FALSE(Tensor::Allocate(DataType::kBytes, {1}).ok());
}

TEST(TensorTest, SliceSharesTheBuffer) {
  auto tensor = *Tensor::Allocate(DataType::kInt32, {4, 2});
  auto values = tensor.mutable_span<std::int32_t>();
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<std::int32_t>(i);
  auto slice = tensor.Slice(1, 3);
  ASSERT_TRUE(slice.ok());
  EXPECT_EQ(slice->shape(), (Shape{2, 2}));
  EXPECT_EQ(slice->data(), tensor.data() + 2 * sizeof(std::int32_t));
  EXPECT_EQ(slice->span<std::int32_t>()[0], 2);
  EXPECT_EQ(slice->span<std::int32_t>()[3], 5);
  // Writes through the original are visible in the view: no copy was made.
  values[2] = 42;
  EXPECT_EQ(slice->span<std::int32_t>()[0], 42);
}

TEST(TensorTest, SliceOutlivesTheOriginal) {
  Tensor slice;
  {
    auto tensor = *Tensor::Allocate(DataType::kFp32, {3, 1});
    tensor.mutable_span<float>()[2] = 7.5f;
    slice = *tensor.Slice(2, 3);
  }
  EXPECT_EQ(slice.span<float>()[0], 7.5f);
}

TEST(TensorTest, SliceRejectsBadRanges) {
  auto tensor = *Tensor::Allocate(DataType::kFp32, {3});
  EXPECT_FALSE(tensor.Slice(-1, 1).ok());
  EXPECT_FALSE(tensor.Slice(2, 1).ok());
  EXPECT_FALSE(tensor.Slice(0, 4).ok());
  auto scalar = *Tensor::Allocate(DataType::kFp32, {});
  EXPECT_FALSE(scalar.Slice(0, 1).ok());
}

TEST(TensorTest, StringsRoundTripAndSlice) {
  auto tensor = Tensor::FromStrings({"a", "", "hello", "xyz"}, {2, 2});
  ASSERT_TRUE(tensor.ok());
  EXPECT_EQ(tensor->byte_size(), 4u * 4 + 1 + 0 + 5 + 3);
  auto strings = tensor->Strings();
  ASSERT_TRUE(strings.ok());
  EXPECT_EQ(*strings, (std::vector<std::string_view>{"a", "", "hello", "xyz"}));
  auto second_row = tensor->Slice(1, 2);
  ASSERT_TRUE(second_row.ok());
  EXPECT_EQ(*second_row->Strings(), (std::vector<std::string_view>{"hello", "xyz"}));
}

TEST(TensorTest, StringsRejectMalformedBytes) {
  // A length prefix that claims more bytes than the tensor holds.
  std::vector<std::byte> bytes = {std::byte{9}, std::byte{0}, std::byte{0}, std::byte{0},
                                  std::byte{'a'}};
  auto owner = std::make_shared<std::vector<std::byte>>(bytes);
  auto lying = Tensor::Wrap(DataType::kBytes, {1}, owner->data(), owner->size(), owner);
  EXPECT_FALSE(lying.Strings().ok());
  auto truncated = Tensor::Wrap(DataType::kBytes, {1}, owner->data(), 2, owner);
  EXPECT_FALSE(truncated.Strings().ok());
  EXPECT_FALSE(Tensor::FromStrings({"a"}, {2}).ok());
}

TEST(TensorTest, ReshapeKeepsBufferAndChecksCount) {
  auto tensor = *Tensor::Allocate(DataType::kUint8, {2, 6});
  auto reshaped = tensor.Reshape({3, 4});
  ASSERT_TRUE(reshaped.ok());
  EXPECT_EQ(reshaped->data(), tensor.data());
  EXPECT_FALSE(tensor.Reshape({5}).ok());
}

TEST(DataTypeTest, NamesRoundTrip) {
  for (auto type : {DataType::kBool, DataType::kUint8, DataType::kInt32, DataType::kInt64,
                    DataType::kFp16, DataType::kFp32, DataType::kBytes}) {
    EXPECT_EQ(ParseDataType(DataTypeName(type)), type);
  }
  EXPECT_FALSE(ParseDataType("FLOAT").has_value());
}

TEST(DataTypeTest, HalfConversions) {
  for (float v : {0.0f, 1.0f, -2.5f, 65504.0f, 0.000061035156f})
    EXPECT_EQ(HalfToFloat(FloatToHalf(v)), v);
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_TRUE(std::isinf(HalfToFloat(FloatToHalf(1e6f))));
  EXPECT_NEAR(HalfToFloat(0x0001), 5.96e-8f, 1e-9f);  // smallest subnormal
}

}  // namespace
}  // namespace braid
