#include "cli/tensor_json.h"

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <cstring>
#include <limits>

namespace braid::cli {
namespace {

constexpr int kMaxDepth = 32;

// Collects the shape from the first element at each depth and the leaves in
// row-major order; fails on ragged arrays.
Status Flatten(const rapidjson::Value& value, std::size_t depth, Shape* shape,
               std::vector<const rapidjson::Value*>* leaves) {
  if (depth > kMaxDepth) return InvalidArgument("arrays nested deeper than {}", kMaxDepth);
  if (!value.IsArray()) {
    if (depth != shape->size()) return InvalidArgument("ragged array: a number at depth {}", depth);
    leaves->push_back(&value);
    return Status::Ok();
  }
  auto size = static_cast<std::int64_t>(value.Size());
  if (depth == shape->size()) {
    if (!leaves->empty()) return InvalidArgument("ragged array: an array at depth {}", depth);
    shape->push_back(size);
  } else if (depth > shape->size() || (*shape)[depth] != size) {
    return InvalidArgument("ragged array at depth {}", depth);
  }
  for (const auto& item : value.GetArray())
    BRAID_RETURN_IF_ERROR(Flatten(item, depth + 1, shape, leaves));
  return Status::Ok();
}

template <typename T>
Status StoreIntegers(const std::vector<const rapidjson::Value*>& leaves, Tensor* tensor) {
  auto out = tensor->mutable_span<T>();
  for (std::size_t i = 0; i < leaves.size(); ++i) {
    const auto& leaf = *leaves[i];
    if (!leaf.IsInt64() && !leaf.IsBool())
      return InvalidArgument("element {} is not an integer", i);
    std::int64_t v = leaf.IsBool() ? leaf.GetBool() : leaf.GetInt64();
    if (v < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
        v > static_cast<std::int64_t>(std::numeric_limits<T>::max())) {
      return InvalidArgument("element {} ({}) is out of range for the input's type", i, v);
    }
    out[i] = static_cast<T>(v);
  }
  return Status::Ok();
}

Status StoreLeaves(const std::vector<const rapidjson::Value*>& leaves, Tensor* tensor) {
  switch (tensor->dtype()) {
    case DataType::kFp32:
    case DataType::kFp16:
      for (std::size_t i = 0; i < leaves.size(); ++i) {
        if (!leaves[i]->IsNumber()) return InvalidArgument("element {} is not a number", i);
        auto v = static_cast<float>(leaves[i]->GetDouble());
        if (tensor->dtype() == DataType::kFp32) {
          tensor->mutable_span<float>()[i] = v;
        } else {
          tensor->mutable_span<std::uint16_t>()[i] = braid::FloatToHalf(v);
        }
      }
      return Status::Ok();
    case DataType::kInt64:
      return StoreIntegers<std::int64_t>(leaves, tensor);
    case DataType::kInt32:
      return StoreIntegers<std::int32_t>(leaves, tensor);
    case DataType::kUint8:
      return StoreIntegers<std::uint8_t>(leaves, tensor);
    case DataType::kBool:
      return StoreIntegers<bool>(leaves, tensor);
    case DataType::kBytes:
      break;
  }
  return InvalidArgument("JSON input of type {} is not supported", DataTypeName(tensor->dtype()));
}

}  // namespace

Result<Tensor> ParseTensorJson(std::string_view text, DataType type) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseStopWhenDoneFlag>(text.data(), text.size());
  if (doc.HasParseError()) {
    return InvalidArgument("malformed JSON at offset {}: {}", doc.GetErrorOffset(),
                           rapidjson::GetParseError_En(doc.GetParseError()));
  }
  Shape shape;
  std::vector<const rapidjson::Value*> leaves;
  if (type == DataType::kBytes) {
    std::vector<std::string> strings;
    const rapidjson::Value* data = doc.IsObject() && doc.HasMember("data") ? &doc["data"] : &doc;
    if (!data->IsArray()) return InvalidArgument("BYTES input must be a list of strings");
    for (const auto& item : data->GetArray()) {
      if (!item.IsString()) return InvalidArgument("BYTES input must be a list of strings");
      strings.emplace_back(item.GetString(), item.GetStringLength());
    }
    return Tensor::FromStrings(strings, {static_cast<std::int64_t>(strings.size())});
  }
  if (doc.IsObject()) {
    if (!doc.HasMember("shape") || !doc["shape"].IsArray() || !doc.HasMember("data") ||
        !doc["data"].IsArray()) {
      return InvalidArgument("a JSON object input needs \"shape\" and \"data\" lists");
    }
    for (const auto& dim : doc["shape"].GetArray()) {
      if (!dim.IsInt64() || dim.GetInt64() < 0)
        return InvalidArgument("\"shape\" must hold non-negative integers");
      shape.push_back(dim.GetInt64());
    }
    Shape flat_shape;
    BRAID_RETURN_IF_ERROR(Flatten(doc["data"], 0, &flat_shape, &leaves));
    if (flat_shape.size() != 1) return InvalidArgument("\"data\" must be a flat list");
  } else if (doc.IsArray()) {
    BRAID_RETURN_IF_ERROR(Flatten(doc, 0, &shape, &leaves));
  } else {
    return InvalidArgument("expected a JSON array or an object with \"shape\" and \"data\"");
  }
  BRAID_ASSIGN_OR_RETURN(std::int64_t count, ElementCount(shape));
  if (count != static_cast<std::int64_t>(leaves.size())) {
    return InvalidArgument("shape {} needs {} elements but \"data\" has {}", ShapeToString(shape),
                           count, leaves.size());
  }
  BRAID_ASSIGN_OR_RETURN(Tensor tensor, Tensor::Allocate(type, shape));
  BRAID_RETURN_IF_ERROR(StoreLeaves(leaves, &tensor));
  return tensor;
}

}  // namespace braid::cli
