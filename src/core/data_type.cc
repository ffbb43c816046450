#include "core/data_type.h"

#include <array>
#include <cstring>
#include <utility>

namespace braid {
namespace {

constexpr std::array<std::pair<DataType, std::string_view>, 7> kNames = {{
    {DataType::kBool, "BOOL"},
    {DataType::kUint8, "UINT8"},
    {DataType::kInt32, "INT32"},
    {DataType::kInt64, "INT64"},
    {DataType::kFp16, "FP16"},
    {DataType::kFp32, "FP32"},
    {DataType::kBytes, "BYTES"},
}};

}  // namespace

std::string_view DataTypeName(DataType type) {
  for (const auto& [value, name] : kNames) {
    if (value == type) return name;
  }
  return "UNKNOWN";
}

std::optional<DataType> ParseDataType(std::string_view name) {
  for (const auto& [value, known] : kNames) {
    if (known == name) return value;
  }
  return std::nullopt;
}

std::size_t DataTypeSize(DataType type) {
  switch (type) {
    case DataType::kBool:
    case DataType::kUint8:
      return 1;
    case DataType::kFp16:
      return 2;
    case DataType::kInt32:
    case DataType::kFp32:
      return 4;
    case DataType::kInt64:
      return 8;
    case DataType::kBytes:
      return 0;
  }
  return 0;
}

float HalfToFloat(std::uint16_t h) {
  std::uint32_t sign = (h & 0x8000u) << 16, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  std::uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exponent = 127 - 15 + 1;
      while ((mantissa & 0x400) == 0) {
        mantissa <<= 1;
        --exponent;
      }
      bits = sign | (exponent << 23) | ((mantissa & 0x3ff) << 13);
    }
  } else if (exponent == 31) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  }
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

std::uint16_t FloatToHalf(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  std::uint16_t sign = (bits >> 16) & 0x8000;
  int exponent = static_cast<int>((bits >> 23) & 0xff) - 127 + 15;
  std::uint32_t mantissa = bits & 0x7fffff;
  if (((bits >> 23) & 0xff) == 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  if (exponent >= 31) return sign | 0x7c00;
  if (exponent <= 0) {
    if (exponent < -10) return sign;
    mantissa |= 0x800000;
    return sign | static_cast<std::uint16_t>(mantissa >> (14 - exponent));
  }
  return sign | static_cast<std::uint16_t>(exponent << 10) |
         static_cast<std::uint16_t>(mantissa >> 13);
}

}  // namespace braid
