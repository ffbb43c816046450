#include "model/model.h"

#include <fmt/ranges.h>

namespace braid {

Shape ExpectedShape(const ModelConfig& config, const TensorSpec& spec, std::int64_t batch) {
  Shape shape;
  if (config.max_batch_size > 0) shape.push_back(batch);
  shape.insert(shape.end(), spec.dims.begin(), spec.dims.end());
  return shape;
}

Model::Model(ModelConfig config, std::int64_t version, std::vector<ModelInstancePtr> instances)
    : config_(std::move(config)), version_(version), instances_(std::move(instances)) {}

Result<std::vector<Tensor>> Model::OrderInputs(std::map<std::string, Tensor> inputs) const {
  std::vector<Tensor> ordered;
  ordered.reserve(config_.inputs.size());
  std::int64_t batch = -1;
  for (const auto& spec : config_.inputs) {
    auto it = inputs.find(spec.name);
    if (it == inputs.end() && spec.optional) {
      ordered.emplace_back();
      continue;
    }
    if (it == inputs.end()) {
      return InvalidArgument("model '{}' needs input '{}' ({} {})", name(), spec.name,
                             DataTypeName(spec.datatype),
                             ShapeToString(ExpectedShape(config_, spec, -1)));
    }
    Tensor tensor = std::move(it->second);
    inputs.erase(it);
    if (tensor.dtype() != spec.datatype) {
      return InvalidArgument("input '{}' of model '{}' must be {}, not {}", spec.name, name(),
                             DataTypeName(spec.datatype), DataTypeName(tensor.dtype()));
    }
    const Shape& shape = tensor.shape();
    Shape expected = ExpectedShape(config_, spec, shape.empty() ? 0 : shape[0]);
    bool matches = shape.size() == expected.size();
    for (std::size_t d = 0; matches && d < shape.size(); ++d) {
      matches = expected[d] == -1 ? shape[d] >= 0 : shape[d] == expected[d];
    }
    if (!matches) {
      return InvalidArgument("input '{}' of model '{}' has shape {}, expected {}", spec.name,
                             name(), ShapeToString(shape),
                             ShapeToString(ExpectedShape(config_, spec, -1)));
    }
    if (config_.max_batch_size > 0) {
      if (shape[0] < 1 || shape[0] > config_.max_batch_size) {
        return InvalidArgument("input '{}' of model '{}' has batch size {}; it must be 1 to {}",
                               spec.name, name(), shape[0], config_.max_batch_size);
      }
      if (batch >= 0 && shape[0] != batch) {
        return InvalidArgument(
            "input '{}' of model '{}' has batch size {} but an earlier input has {}", spec.name,
            name(), shape[0], batch);
      }
      batch = shape[0];
    }
    if (spec.datatype != DataType::kBytes) {
      auto size = ByteSizeOf(spec.datatype, tensor.element_count());
      if (!size.ok() || *size != tensor.byte_size()) {
        return InvalidArgument("input '{}' of model '{}' holds {} bytes; shape {} of {} needs {}",
                               spec.name, name(), tensor.byte_size(), ShapeToString(shape),
                               DataTypeName(spec.datatype), size.ok() ? *size : 0);
      }
    }
    ordered.push_back(std::move(tensor));
  }
  if (!inputs.empty()) {
    std::vector<std::string> known;
    for (const auto& spec : config_.inputs) known.push_back(spec.name);
    return InvalidArgument("model '{}' has no input '{}' (its inputs: {})", name(),
                           inputs.begin()->first, fmt::join(known, ", "));
  }
  return ordered;
}

Status Model::Execute(std::size_t i, std::span<const Tensor> inputs, std::vector<Tensor>* outputs,
                      Duration time_left) {
  outputs->clear();
  BRAID_RETURN_IF_ERROR(instances_[i]->Execute(inputs, outputs, time_left));
  if (outputs->size() != config_.outputs.size()) {
    return Internal("backend '{}' returned {} outputs for model '{}', whose config lists {}",
                    config_.backend, outputs->size(), name(), config_.outputs.size());
  }
  for (std::size_t o = 0; o < outputs->size(); ++o) {
    if ((*outputs)[o].dtype() != config_.outputs[o].datatype) {
      return Internal("output '{}' of model '{}' came back as {}, not {}", config_.outputs[o].name,
                      name(), DataTypeName((*outputs)[o].dtype()),
                      DataTypeName(config_.outputs[o].datatype));
    }
  }
  return Status::Ok();
}

}  // namespace braid
