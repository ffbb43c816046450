// Tensor element types, named as the KServe v2 protocol names them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace braid {

enum class DataType { kBool, kUint8, kInt32, kInt64, kFp16, kFp32, kBytes };

// "FP32", "INT64", ... as in KServe v2 and the model config.
std::string_view DataTypeName(DataType type);
std::optional<DataType> ParseDataType(std::string_view name);

// Bytes per element; 0 for kBytes, whose elements have variable length.
std::size_t DataTypeSize(DataType type);

// IEEE 754 binary16 conversions (round toward zero on narrowing).
float HalfToFloat(std::uint16_t half);
std::uint16_t FloatToHalf(float value);

}  // namespace braid
