#include "frontends/kserve/kserve.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace braid {
namespace {

using rapidjson::Value;

constexpr unsigned kParseFlags = rapidjson::kParseIterativeFlag | rapidjson::kParseStopWhenDoneFlag;

Result<bool> BoolParameter(const Value& value, std::string_view name) {
  if (value.IsBool()) return value.GetBool();
  return InvalidArgument("parameter '{}' must be true or false", name);
}

// Counts and collects the leaves of a (possibly nested) JSON data array.
Status CollectLeaves(const Value& value, std::vector<const Value*>* leaves, std::size_t limit) {
  // Iterative, so that deep nesting cannot exhaust the stack.
  std::vector<const Value*> stack = {&value};
  while (!stack.empty()) {
    const Value* v = stack.back();
    stack.pop_back();
    if (v->IsArray()) {
      for (auto it = v->End(); it != v->Begin();) stack.push_back(&*--it);
    } else {
      if (leaves->size() >= limit)
        return InvalidArgument("more data elements than the shape holds");
      leaves->push_back(v);
    }
  }
  return Status::Ok();
}

template <typename T>
Status FillIntegers(const std::vector<const Value*>& leaves, Tensor* tensor,
                    std::string_view name) {
  auto out = tensor->mutable_span<T>();
  for (std::size_t i = 0; i < leaves.size(); ++i) {
    const Value& v = *leaves[i];
    std::int64_t x;
    if (v.IsInt64()) {
      x = v.GetInt64();
    } else if (v.IsBool()) {
      x = v.GetBool();
    } else {
      return InvalidArgument("input '{}': element {} is not an integer", name, i);
    }
    if (x < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
        (x > 0 && static_cast<std::uint64_t>(x) >
                      static_cast<std::uint64_t>(std::numeric_limits<T>::max()))) {
      return InvalidArgument("input '{}': element {} ({}) is out of range", name, i, x);
    }
    out[i] = static_cast<T>(x);
  }
  return Status::Ok();
}

Result<Tensor> JsonTensor(const Value& data, DataType type, const Shape& shape, std::int64_t count,
                          const std::string& name, const KserveLimits& limits) {
  std::vector<const Value*> leaves;
  BRAID_RETURN_IF_ERROR(CollectLeaves(data, &leaves, static_cast<std::size_t>(count)));
  if (static_cast<std::int64_t>(leaves.size()) != count) {
    return InvalidArgument("input '{}' has {} data elements but shape {} needs {}", name,
                           leaves.size(), ShapeToString(shape), count);
  }
  if (type == DataType::kBytes) {
    std::vector<std::string> strings;
    for (const Value* leaf : leaves) {
      if (!leaf->IsString())
        return InvalidArgument("input '{}' is BYTES: its data must be strings", name);
      strings.emplace_back(leaf->GetString(), leaf->GetStringLength());
    }
    return Tensor::FromStrings(strings, shape);
  }
  BRAID_ASSIGN_OR_RETURN(std::size_t bytes, ByteSizeOf(type, count, limits.max_tensor_bytes));
  (void)bytes;
  BRAID_ASSIGN_OR_RETURN(Tensor tensor, Tensor::Allocate(type, shape));
  switch (type) {
    case DataType::kFp32:
    case DataType::kFp16:
      for (std::size_t i = 0; i < leaves.size(); ++i) {
        if (!leaves[i]->IsNumber())
          return InvalidArgument("input '{}': element {} is not a number", name, i);
        auto v = static_cast<float>(leaves[i]->GetDouble());
        if (type == DataType::kFp32) {
          tensor.mutable_span<float>()[i] = v;
        } else {
          tensor.mutable_span<std::uint16_t>()[i] = FloatToHalf(v);
        }
      }
      break;
    case DataType::kInt64:
      BRAID_RETURN_IF_ERROR(FillIntegers<std::int64_t>(leaves, &tensor, name));
      break;
    case DataType::kInt32:
      BRAID_RETURN_IF_ERROR(FillIntegers<std::int32_t>(leaves, &tensor, name));
      break;
    case DataType::kUint8:
      BRAID_RETURN_IF_ERROR(FillIntegers<std::uint8_t>(leaves, &tensor, name));
      break;
    case DataType::kBool:
      BRAID_RETURN_IF_ERROR(FillIntegers<bool>(leaves, &tensor, name));
      break;
    case DataType::kBytes:
      break;
  }
  return tensor;
}

}  // namespace

void AppendTensorData(std::string& out, const Tensor& tensor) {
  auto append = [&](auto values) {
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (i > 0) out += ',';
      fmt::format_to(std::back_inserter(out), "{}", values[i]);
    }
  };
  auto append_float = [&](float v, bool first) {
    if (!first) out += ',';
    if (std::isfinite(v)) {
      fmt::format_to(std::back_inserter(out), "{}", v);
    } else {
      out += "null";
    }
  };
  switch (tensor.dtype()) {
    case DataType::kFp32: {
      auto values = tensor.span<float>();
      for (std::size_t i = 0; i < values.size(); ++i) append_float(values[i], i == 0);
      break;
    }
    case DataType::kFp16: {
      auto values = tensor.span<std::uint16_t>();
      for (std::size_t i = 0; i < values.size(); ++i) append_float(HalfToFloat(values[i]), i == 0);
      break;
    }
    case DataType::kInt64:
      append(tensor.span<std::int64_t>());
      break;
    case DataType::kInt32:
      append(tensor.span<std::int32_t>());
      break;
    case DataType::kUint8: {
      auto values = tensor.span<std::uint8_t>();
      for (std::size_t i = 0; i < values.size(); ++i)
        fmt::format_to(std::back_inserter(out), "{}{}", i ? "," : "", int(values[i]));
      break;
    }
    case DataType::kBool: {
      auto values = tensor.span<std::uint8_t>();
      for (std::size_t i = 0; i < values.size(); ++i)
        out += (i ? "," : "") + std::string(values[i] ? "true" : "false");
      break;
    }
    case DataType::kBytes: {
      auto strings = tensor.Strings();
      if (!strings.ok()) break;
      for (std::size_t i = 0; i < strings->size(); ++i) {
        if (i > 0) out += ',';
        AppendJsonString(out, (*strings)[i]);
      }
      break;
    }
  }
}

Status CheckJsonDepth(std::string_view json, std::size_t max_depth) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth)
        return InvalidArgument("JSON nests deeper than the {} levels allowed", max_depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return Status::Ok();
}

void AppendJsonString(std::string& out, std::string_view text) {
  out += '"';
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<int>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

std::string JsonQuoted(std::string_view text) {
  std::string out;
  AppendJsonString(out, text);
  return out;
}

Result<KserveInferRequest> ParseInferRequest(std::shared_ptr<const std::string> body,
                                             std::optional<std::size_t> header_length,
                                             const KserveLimits& limits) {
  const std::string& bytes = *body;
  std::size_t json_length = bytes.size();
  if (header_length) {
    if (*header_length > bytes.size()) {
      return InvalidArgument(
          "Inference-Header-Content-Length {} is past the end of the {}-byte body", *header_length,
          bytes.size());
    }
    json_length = *header_length;
  }
  // rapidjson's pool would take a fresh 64 KiB chunk for every request; a
  // buffer of this thread's serves the usual few-KiB header instead (the
  // pool grows past it on the heap, and the document dies before return).
  alignas(std::max_align_t) thread_local char pool_buffer[16 << 10];
  rapidjson::MemoryPoolAllocator<> pool(pool_buffer, sizeof(pool_buffer));
  rapidjson::Document doc(&pool);
  BRAID_RETURN_IF_ERROR(
      CheckJsonDepth(std::string_view(bytes.data(), json_length), limits.max_json_depth));
  doc.Parse<kParseFlags>(bytes.data(), json_length);
  if (doc.HasParseError()) {
    return InvalidArgument("malformed JSON at offset {}: {}", doc.GetErrorOffset(),
                           rapidjson::GetParseError_En(doc.GetParseError()));
  }
  if (!doc.IsObject()) return InvalidArgument("the request body must be a JSON object");

  KserveInferRequest request;
  if (doc.HasMember("id")) {
    if (!doc["id"].IsString()) return InvalidArgument("'id' must be a string");
    request.id = doc["id"].GetString();
  }
  if (doc.HasMember("parameters")) {
    const Value& params = doc["parameters"];
    if (!params.IsObject()) return InvalidArgument("'parameters' must be an object");
    for (const auto& member : params.GetObject()) {
      std::string_view key(member.name.GetString(), member.name.GetStringLength());
      if (key == "binary_data_output") {
        BRAID_ASSIGN_OR_RETURN(request.binary_data_output, BoolParameter(member.value, key));
        continue;
      }
      ParameterValue value;
      if (member.value.IsBool()) {
        value = member.value.GetBool();
      } else if (member.value.IsInt64()) {
        value = member.value.GetInt64();
      } else if (member.value.IsUint64()) {
        value = member.value.GetUint64();
      }
      BRAID_RETURN_IF_ERROR(ApplyInferParameter(key, value, &request.options));
    }
  }
  if (!doc.HasMember("inputs") || !doc["inputs"].IsArray())
    return InvalidArgument("'inputs' must be a list");
  const Value& inputs = doc["inputs"];
  if (inputs.Size() > limits.max_inputs)
    return InvalidArgument("{} inputs is more than the {} allowed", inputs.Size(),
                           limits.max_inputs);

  std::size_t binary_offset = header_length.value_or(bytes.size());
  for (const auto& input : inputs.GetArray()) {
    if (!input.IsObject() || !input.HasMember("name") || !input["name"].IsString()) {
      return InvalidArgument("each input needs a string 'name'");
    }
    std::string name = input["name"].GetString();
    if (request.inputs.count(name)) return InvalidArgument("input '{}' is given twice", name);
    if (!input.HasMember("datatype") || !input["datatype"].IsString()) {
      return InvalidArgument("input '{}' needs a string 'datatype'", name);
    }
    auto type = ParseDataType(input["datatype"].GetString());
    if (!type)
      return InvalidArgument("input '{}' has unknown datatype '{}'", name,
                             input["datatype"].GetString());
    if (!input.HasMember("shape") || !input["shape"].IsArray())
      return InvalidArgument("input '{}' needs a 'shape' list", name);
    Shape shape;
    for (const auto& dim : input["shape"].GetArray()) {
      if (!dim.IsInt64() || dim.GetInt64() < 0)
        return InvalidArgument("input '{}': shape must hold non-negative integers", name);
      shape.push_back(dim.GetInt64());
    }
    if (shape.size() > 16)
      return InvalidArgument("input '{}' has {} dimensions; at most 16", name, shape.size());
    BRAID_ASSIGN_OR_RETURN(std::int64_t count, ElementCount(shape));

    std::optional<std::size_t> binary_size;
    if (input.HasMember("parameters")) {
      const Value& params = input["parameters"];
      if (!params.IsObject())
        return InvalidArgument("input '{}': 'parameters' must be an object", name);
      if (params.HasMember("binary_data_size")) {
        if (!params["binary_data_size"].IsUint64()) {
          return InvalidArgument("input '{}': binary_data_size must be a non-negative integer",
                                 name);
        }
        binary_size = params["binary_data_size"].GetUint64();
      }
    }
    if (binary_size) {
      if (!header_length) {
        return InvalidArgument(
            "input '{}' has binary_data_size but the request has no "
            "Inference-Header-Content-Length",
            name);
      }
      if (*binary_size > bytes.size() - binary_offset) {
        return InvalidArgument(
            "input '{}': binary_data_size {} runs past the end of the body ({} bytes left)", name,
            *binary_size, bytes.size() - binary_offset);
      }
      auto* data = reinterpret_cast<std::byte*>(const_cast<char*>(bytes.data())) + binary_offset;
      Tensor tensor = Tensor::Wrap(*type, shape, data, *binary_size, body);
      if (*type == DataType::kBytes) {
        BRAID_RETURN_IF_ERROR(
            tensor.Strings().status().WithContext(fmt::format("input '{}'", name)));
      } else {
        BRAID_ASSIGN_OR_RETURN(std::size_t expected,
                               ByteSizeOf(*type, count, limits.max_tensor_bytes));
        if (expected != *binary_size) {
          return InvalidArgument(
              "input '{}': binary_data_size {} but shape {} of {} needs {} bytes", name,
              *binary_size, ShapeToString(shape), DataTypeName(*type), expected);
        }
      }
      // The bytes follow a JSON header of any length: a tensor that does
      // not start on its element's alignment is copied into an aligned
      // buffer, as typed reads of it (ONNX Runtime's, batching's) need.
      const std::size_t alignment = DataTypeSize(*type);
      if (*type != DataType::kBytes && reinterpret_cast<std::uintptr_t>(data) % alignment != 0) {
        BRAID_ASSIGN_OR_RETURN(Tensor aligned, Tensor::Allocate(*type, std::move(shape)));
        std::memcpy(aligned.mutable_data(), data, *binary_size);
        tensor = std::move(aligned);
      }
      binary_offset += *binary_size;
      request.inputs[name] = std::move(tensor);
      continue;
    }
    if (!input.HasMember("data"))
      return InvalidArgument("input '{}' needs 'data' or parameters.binary_data_size", name);
    BRAID_ASSIGN_OR_RETURN(Tensor tensor,
                           JsonTensor(input["data"], *type, shape, count, name, limits));
    request.inputs[name] = std::move(tensor);
  }
  if (header_length && binary_offset != bytes.size()) {
    return InvalidArgument(
        "{} bytes after the binary inputs are not claimed by any binary_data_size",
        bytes.size() - binary_offset);
  }

  if (doc.HasMember("outputs")) {
    if (!doc["outputs"].IsArray()) return InvalidArgument("'outputs' must be a list");
    for (const auto& output : doc["outputs"].GetArray()) {
      if (!output.IsObject() || !output.HasMember("name") || !output["name"].IsString()) {
        return InvalidArgument("each requested output needs a string 'name'");
      }
      RequestedOutput requested{output["name"].GetString(), request.binary_data_output};
      if (output.HasMember("parameters") && output["parameters"].IsObject() &&
          output["parameters"].HasMember("binary_data")) {
        BRAID_ASSIGN_OR_RETURN(requested.binary,
                               BoolParameter(output["parameters"]["binary_data"], "binary_data"));
      }
      request.outputs.push_back(std::move(requested));
    }
  }
  return request;
}

Result<EncodedResponse> EncodeInferResponse(const KserveInferRequest& request,
                                            const InferResponse& response) {
  const ModelConfig& config = response.model->config();
  std::vector<RequestedOutput> wanted = request.outputs;
  if (wanted.empty()) {
    for (const auto& spec : config.outputs)
      wanted.push_back({spec.name, request.binary_data_output});
  }
  std::string json = "{\"model_name\":";
  AppendJsonString(json, config.name);
  fmt::format_to(std::back_inserter(json), ",\"model_version\":\"{}\"", response.model->version());
  if (!request.id.empty()) {
    json += ",\"id\":";
    AppendJsonString(json, request.id);
  }
  json += ",\"outputs\":[";
  EncodedResponse encoded;
  for (std::size_t w = 0; w < wanted.size(); ++w) {
    std::size_t index = config.outputs.size();
    for (std::size_t o = 0; o < config.outputs.size(); ++o) {
      if (config.outputs[o].name == wanted[w].name) index = o;
    }
    if (index == config.outputs.size()) {
      return InvalidArgument("model '{}' has no output '{}'", config.name, wanted[w].name);
    }
    const Tensor& tensor = response.outputs[index];
    if (w > 0) json += ',';
    json += "{\"name\":";
    AppendJsonString(json, wanted[w].name);
    fmt::format_to(std::back_inserter(json), ",\"datatype\":\"{}\",\"shape\":[{}]",
                   DataTypeName(tensor.dtype()), fmt::join(tensor.shape(), ","));
    if (wanted[w].binary) {
      fmt::format_to(std::back_inserter(json), ",\"parameters\":{{\"binary_data_size\":{}}}}}",
                     tensor.byte_size());
      encoded.binary.push_back(tensor);
    } else {
      json += ",\"data\":[";
      AppendTensorData(json, tensor);
      json += "]}";
    }
  }
  json += "]}";
  if (!encoded.binary.empty()) encoded.header_length = json.size();
  encoded.body = std::move(json);
  return encoded;
}

}  // namespace braid
