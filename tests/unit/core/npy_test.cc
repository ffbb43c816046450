#include "core/npy.h"

#include <gtest/gtest.h>

#include <cstring>

namespace braid {
namespace {

// An .npy (version 1) file with header dictionary `dict`, padded as numpy pads it.
std::string Npy(std::string header, const std::string& data) {
  header.append(63 - (10 + header.size()) % 64, ' ');
  header.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  return out + header + data;
}

// What numpy.save writes for np.arange(6, dtype='<f4').reshape(2, 3).
std::string NumpyWritten() {
  std::string data;
  for (int i = 0; i < 6; ++i) {
    float v = static_cast<float>(i);
    data.append(reinterpret_cast<const char*>(&v), sizeof(v));
  }
  return Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data);
}

TEST(NpyTest, ParsesNumpyOutput) {
  auto tensor = ParseNpy(NumpyWritten());
  ASSERT_TRUE(tensor.ok()) << tensor.status().ToString();
  EXPECT_EQ(tensor->dtype(), DataType::kFp32);
  EXPECT_EQ(tensor->shape(), (Shape{2, 3}));
  EXPECT_EQ(tensor->span<float>()[5], 5.0f);
}

TEST(NpyTest, RoundTripsEveryType) {
  for (auto type : {DataType::kFp32, DataType::kFp16, DataType::kInt64, DataType::kInt32,
                    DataType::kUint8, DataType::kBool}) {
    auto tensor = *Tensor::Allocate(type, {3, 1, 2});
    for (std::size_t i = 0; i < tensor.byte_size(); ++i) {
      tensor.mutable_data()[i] = static_cast<std::byte>(type == DataType::kBool ? i % 2 : i * 7);
    }
    auto bytes = SerializeNpy(tensor);
    ASSERT_TRUE(bytes.ok());
    EXPECT_EQ((bytes->size() - tensor.byte_size()) % 64, 0u) << "data must start 64-byte aligned";
    auto back = ParseNpy(*bytes);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->dtype(), type);
    EXPECT_EQ(back->shape(), tensor.shape());
    EXPECT_EQ(std::memcmp(back->data(), tensor.data(), tensor.byte_size()), 0);
  }
}

TEST(NpyTest, OneAndZeroDimensionalShapes) {
  for (Shape shape : {Shape{5}, Shape{}}) {
    auto tensor = *Tensor::Allocate(DataType::kInt64, shape);
    auto back = ParseNpy(*SerializeNpy(tensor));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->shape(), shape);
  }
}

TEST(NpyTest, RejectsBadFiles) {
  std::string good = NumpyWritten();
  EXPECT_FALSE(ParseNpy("").ok());
  EXPECT_FALSE(ParseNpy("PK\x03\x04 not numpy").ok());
  EXPECT_FALSE(ParseNpy(good.substr(0, good.size() - 1)).ok()) << "truncated data";
  EXPECT_FALSE(ParseNpy(good + "xxxx").ok()) << "trailing data";
  EXPECT_FALSE(ParseNpy(good.substr(0, 30)).ok()) << "truncated header";

  std::string fortran = good;
  fortran.replace(fortran.find("False"), 5, "True ");
  EXPECT_FALSE(ParseNpy(fortran).ok());
  std::string big_endian = good;
  big_endian.replace(big_endian.find("<f4"), 3, ">f4");
  EXPECT_FALSE(ParseNpy(big_endian).ok());
  std::string object = good;
  object.replace(object.find("<f4"), 3, "|O8");
  EXPECT_FALSE(ParseNpy(object).ok());
  // A header promising far more data than the file has must not allocate it.
  std::string huge =
      Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (999999999999, 999999), }", "");
  EXPECT_FALSE(ParseNpy(huge).ok());
  std::string overflow =
      Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (999999999999999999, 99), }", "");
  EXPECT_FALSE(ParseNpy(overflow).ok());
}

TEST(NpyTest, ReadMissingFileIsNotFound) {
  auto missing = ReadNpy("/nonexistent/input.npy");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace braid
