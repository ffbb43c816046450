#include "loadgen/requests.h"

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <random>

#include "frontends/kserve/kserve.h"
#include "grpc_service.pb.h"

namespace braid {

Result<std::vector<InputSpec>> InputsFromMetadata(std::string_view metadata,
                                                  const std::map<std::string, Shape>& shapes,
                                                  std::int64_t batch_size) {
  rapidjson::Document doc;
  doc.Parse(metadata.data(), metadata.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("inputs") ||
      !doc["inputs"].IsArray())
    return InvalidArgument("the model metadata has no inputs list");
  std::vector<InputSpec> specs;
  for (const auto& input : doc["inputs"].GetArray()) {
    if (!input.IsObject() || !input.HasMember("name") || !input["name"].IsString() ||
        !input.HasMember("datatype") || !input["datatype"].IsString() ||
        !input.HasMember("shape") || !input["shape"].IsArray())
      return InvalidArgument("malformed input in the model metadata");
    InputSpec spec;
    spec.name = input["name"].GetString();
    auto dtype = ParseDataType(input["datatype"].GetString());
    if (!dtype) return InvalidArgument("input '{}' has unknown datatype", spec.name);
    spec.dtype = *dtype;
    if (auto given = shapes.find(spec.name); given != shapes.end()) {
      spec.shape = given->second;
    } else {
      for (const auto& dim : input["shape"].GetArray()) {
        if (!dim.IsInt64()) return InvalidArgument("input '{}' has a bad shape", spec.name);
        spec.shape.push_back(dim.GetInt64());
      }
      if (!spec.shape.empty() && spec.shape[0] == -1) spec.shape[0] = batch_size;
    }
    for (auto dim : spec.shape) {
      if (dim < 0)
        return InvalidArgument(
            "input '{}' has a variable dimension ({}): give its shape with --shape {}=D1,D2,...",
            spec.name, ShapeToString(spec.shape), spec.name);
    }
    specs.push_back(std::move(spec));
  }
  for (const auto& [name, shape] : shapes) {
    if (std::none_of(specs.begin(), specs.end(), [&](const auto& s) { return s.name == name; }))
      return InvalidArgument("--shape names '{}', which the model does not take", name);
  }
  return specs;
}

Result<std::vector<std::vector<Tensor>>> MakeInputSets(const std::vector<InputSpec>& specs,
                                                       const std::map<std::string, Tensor>& files,
                                                       InputData data, int count) {
  for (const auto& [name, tensor] : files) {
    auto spec =
        std::find_if(specs.begin(), specs.end(), [&](const auto& s) { return s.name == name; });
    if (spec == specs.end()) return InvalidArgument("the model has no input '{}'", name);
    if (tensor.dtype() != spec->dtype)
      return InvalidArgument("input '{}' is {}, its file holds {}", name, DataTypeName(spec->dtype),
                             DataTypeName(tensor.dtype()));
  }
  std::vector<std::vector<Tensor>> sets;
  for (int set = 0; set < std::max(1, count); ++set) {
    std::mt19937 random(static_cast<std::uint32_t>(set) * 7919 + 17);
    std::vector<Tensor> tensors;
    for (const auto& spec : specs) {
      if (auto file = files.find(spec.name); file != files.end()) {
        tensors.push_back(file->second);
        continue;
      }
      BRAID_ASSIGN_OR_RETURN(std::int64_t elements, ElementCount(spec.shape));
      const bool zero = data == InputData::kZero;
      if (spec.dtype == DataType::kBytes) {
        std::vector<std::string> values;
        for (std::int64_t i = 0; i < elements; ++i)
          values.push_back(zero ? "" : fmt::format("text {}", random() % 100000));
        BRAID_ASSIGN_OR_RETURN(Tensor tensor, Tensor::FromStrings(values, spec.shape));
        tensors.push_back(std::move(tensor));
        continue;
      }
      BRAID_ASSIGN_OR_RETURN(Tensor tensor, zero ? Tensor::Allocate(spec.dtype, spec.shape)
                                                 : RandomTensor(spec.dtype, spec.shape, random));
      tensors.push_back(std::move(tensor));
    }
    sets.push_back(std::move(tensors));
  }
  return sets;
}

namespace {

std::string ModelPath(const std::string& model) { return "/v2/models/" + model + "/infer"; }

void AppendInputHead(std::string& out, const InputSpec& spec, const Tensor& tensor) {
  out += "{\"name\":";
  AppendJsonString(out, spec.name);
  fmt::format_to(std::back_inserter(out), ",\"shape\":[{}],\"datatype\":\"{}\"",
                 fmt::join(tensor.shape(), ","), DataTypeName(tensor.dtype()));
}

// The members of the request's "parameters" object, each with a leading comma.
std::string ParameterMembers(const RequestParameters& parameters) {
  std::string out;
  if (!parameters.cache) out += ",\"cache\":false";
  if (parameters.priority != 0) out += fmt::format(",\"priority\":{}", parameters.priority);
  if (parameters.timeout_us >= 0) out += fmt::format(",\"timeout\":{}", parameters.timeout_us);
  return out;
}

}  // namespace

HttpRequestSpec KserveJsonRequest(const std::string& model, const std::vector<InputSpec>& specs,
                                  const std::vector<Tensor>& tensors,
                                  const RequestParameters& parameters) {
  std::string body = "{\"inputs\":[";
  for (std::size_t i = 0; i < specs.size(); ++i) {
    if (i) body += ',';
    AppendInputHead(body, specs[i], tensors[i]);
    body += ",\"data\":[";
    AppendTensorData(body, tensors[i]);
    body += "]}";
  }
  body += "]";
  if (std::string members = ParameterMembers(parameters); !members.empty())
    body += ",\"parameters\":{" + members.substr(1) + "}";
  body += "}";
  return {"POST", ModelPath(model), "application/json", {}, std::move(body)};
}

HttpRequestSpec KserveBinaryRequest(const std::string& model, const std::vector<InputSpec>& specs,
                                    const std::vector<Tensor>& tensors,
                                    const RequestParameters& parameters) {
  std::string header = "{\"inputs\":[";
  for (std::size_t i = 0; i < specs.size(); ++i) {
    if (i) header += ',';
    AppendInputHead(header, specs[i], tensors[i]);
    fmt::format_to(std::back_inserter(header), ",\"parameters\":{{\"binary_data_size\":{}}}}}",
                   tensors[i].byte_size());
  }
  header += "],\"parameters\":{\"binary_data_output\":true" + ParameterMembers(parameters) + "}}";
  std::string body = header;
  for (const Tensor& tensor : tensors)
    body.append(reinterpret_cast<const char*>(tensor.data()), tensor.byte_size());
  return {"POST",
          ModelPath(model),
          "application/octet-stream",
          {{"Inference-Header-Content-Length", std::to_string(header.size())}},
          std::move(body)};
}

inference::ModelInferRequest KserveGrpcRequest(const std::string& model,
                                               const std::vector<InputSpec>& specs,
                                               const std::vector<Tensor>& tensors,
                                               const RequestParameters& parameters) {
  inference::ModelInferRequest request;
  request.set_model_name(model);
  for (std::size_t i = 0; i < specs.size(); ++i) {
    auto* input = request.add_inputs();
    input->set_name(specs[i].name);
    input->set_datatype(std::string(DataTypeName(tensors[i].dtype())));
    for (auto dim : tensors[i].shape()) input->add_shape(dim);
    request.add_raw_input_contents(reinterpret_cast<const char*>(tensors[i].data()),
                                   tensors[i].byte_size());
  }
  auto& fields = *request.mutable_parameters();
  if (!parameters.cache) fields["cache"].set_bool_param(false);
  if (parameters.priority != 0) fields["priority"].set_int64_param(parameters.priority);
  if (parameters.timeout_us >= 0) fields["timeout"].set_int64_param(parameters.timeout_us);
  return request;
}

}  // namespace braid
