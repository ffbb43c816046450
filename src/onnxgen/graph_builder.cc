#include "onnxgen/graph_builder.h"

#include <onnx/checker.h>

#include <cmath>
#include <fstream>

namespace braid::onnxgen {
namespace {

void AddValueInfo(onnx::ValueInfoProto* info, const std::string& name, int type,
                  const std::vector<std::int64_t>& dims, const std::vector<std::string>& names) {
  info->set_name(name);
  auto* tensor_type = info->mutable_type()->mutable_tensor_type();
  tensor_type->set_elem_type(type);
  auto* shape = tensor_type->mutable_shape();
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] < 0 && i < names.size() && !names[i].empty()) {
      shape->add_dim()->set_dim_param(names[i]);
    } else if (dims[i] < 0) {
      shape->add_dim()->set_dim_param(i == 0 ? "batch" : "dim" + std::to_string(i));
    } else {
      shape->add_dim()->set_dim_value(dims[i]);
    }
  }
}

std::int64_t Count(const std::vector<std::int64_t>& dims) {
  std::int64_t count = 1;
  for (auto d : dims) count *= d;
  return count;
}

}  // namespace

void GraphBuilder::Input(const std::string& name, int type, const std::vector<std::int64_t>& dims,
                         const std::vector<std::string>& names) {
  AddValueInfo(graph_->add_input(), name, type, dims, names);
}

void GraphBuilder::Output(const std::string& name, int type, const std::vector<std::int64_t>& dims,
                          const std::vector<std::string>& names) {
  AddValueInfo(graph_->add_output(), name, type, dims, names);
}

std::string GraphBuilder::Weight(const std::string& name, const std::vector<std::int64_t>& dims,
                                 float scale) {
  std::vector<float> values(Count(dims));
  const double bound = scale * std::sqrt(3.0);
  for (auto& v : values) v = static_cast<float>((random_() / 4294967296.0 * 2.0 - 1.0) * bound);
  return Floats(name, dims, values);
}

std::string GraphBuilder::Linear(const std::string& name, std::int64_t fan_in,
                                 std::int64_t fan_out) {
  return Weight(name, {fan_in, fan_out}, 1.0f / std::sqrt(static_cast<float>(fan_in)));
}

std::string GraphBuilder::Filled(const std::string& name, const std::vector<std::int64_t>& dims,
                                 float value) {
  return Floats(name, dims, std::vector<float>(Count(dims), value));
}

std::string GraphBuilder::Floats(const std::string& name, const std::vector<std::int64_t>& dims,
                                 const std::vector<float>& values) {
  auto* tensor = graph_->add_initializer();
  tensor->set_name(name);
  tensor->set_data_type(onnx::TensorProto::FLOAT);
  for (auto d : dims) tensor->add_dims(d);
  tensor->set_raw_data(values.data(), values.size() * sizeof(float));
  return name;
}

std::string GraphBuilder::Ints(const std::string& name, const std::vector<std::int64_t>& values) {
  auto* tensor = graph_->add_initializer();
  tensor->set_name(name);
  tensor->set_data_type(onnx::TensorProto::INT64);
  tensor->add_dims(static_cast<std::int64_t>(values.size()));
  tensor->set_raw_data(values.data(), values.size() * sizeof(std::int64_t));
  return name;
}

onnx::NodeProto* GraphBuilder::Node(const std::string& op, const std::vector<std::string>& inputs,
                                    const std::string& output) {
  auto* node = graph_->add_node();
  node->set_op_type(op);
  node->set_name(op + "_" + std::to_string(next_id_));
  for (const auto& in : inputs) node->add_input(in);
  node->add_output(output.empty() ? "t" + std::to_string(next_id_) : output);
  ++next_id_;
  return node;
}

void GraphBuilder::SetInt(onnx::NodeProto* node, const std::string& name, std::int64_t value) {
  auto* attr = node->add_attribute();
  attr->set_name(name);
  attr->set_type(onnx::AttributeProto::INT);
  attr->set_i(value);
}

void GraphBuilder::SetInts(onnx::NodeProto* node, const std::string& name,
                           const std::vector<std::int64_t>& values) {
  auto* attr = node->add_attribute();
  attr->set_name(name);
  attr->set_type(onnx::AttributeProto::INTS);
  for (auto v : values) attr->add_ints(v);
}

void GraphBuilder::SetFloat(onnx::NodeProto* node, const std::string& name, float value) {
  auto* attr = node->add_attribute();
  attr->set_name(name);
  attr->set_type(onnx::AttributeProto::FLOAT);
  attr->set_f(value);
}

onnx::GraphProto* GraphBuilder::SetGraph(onnx::NodeProto* node, const std::string& name) {
  auto* attr = node->add_attribute();
  attr->set_name(name);
  attr->set_type(onnx::AttributeProto::GRAPH);
  attr->mutable_g()->set_name(name);
  return attr->mutable_g();
}

onnx::ModelProto NewModel(const std::string& name, const std::string& producer) {
  onnx::ModelProto model;
  model.set_ir_version(8);
  model.set_producer_name(producer);
  model.set_model_version(1);
  model.add_opset_import()->set_version(kOpset);
  model.mutable_graph()->set_name(name);
  return model;
}

Status CheckAndWriteModel(const onnx::ModelProto& model, const std::filesystem::path& path) {
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    return InvalidArgument("{} fails the ONNX checker: {}", model.graph().name(), e.what());
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out || !model.SerializeToOstream(&out)) {
    return Internal("cannot write {}", path.string());
  }
  return Status::Ok();
}

}  // namespace braid::onnxgen
