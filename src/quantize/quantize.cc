#include "quantize/quantize.h"

#include <onnx/checker.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>

#include "core/data_type.h"
#include "core/file_util.h"
#include "onnxgen/graph_builder.h"

namespace braid::quantize {
namespace {

using onnx::TensorProto;
using onnxgen::GraphBuilder;

constexpr int kMaxProtoBytes = std::numeric_limits<int>::max();

// The opset of the default ONNX domain `model` imports, 0 when none.
std::int64_t DefaultOpset(const onnx::ModelProto& model) {
  for (const auto& opset : model.opset_import()) {
    if (opset.domain().empty() || opset.domain() == "ai.onnx") return opset.version();
  }
  return 0;
}

Status CheckModel(const onnx::ModelProto& model) {
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    return InvalidArgument("the ONNX checker refuses the model: {}", e.what());
  }
  return Status::Ok();
}

// An FP32 initializer's values; nullopt for other types and external data.
std::optional<std::vector<float>> FloatValues(const TensorProto& tensor) {
  if (tensor.data_type() != TensorProto::FLOAT || tensor.data_location() == TensorProto::EXTERNAL) {
    return std::nullopt;
  }
  // The dims must account for exactly the values held: checked before
  // anything is allocated, since a hostile file can declare any dims.
  const std::size_t held = tensor.has_raw_data()
                               ? tensor.raw_data().size() / sizeof(float)
                               : static_cast<std::size_t>(tensor.float_data_size());
  if (tensor.has_raw_data() && tensor.raw_data().size() % sizeof(float) != 0) return std::nullopt;
  std::size_t count = 1;
  for (auto d : tensor.dims()) {
    if (d < 0 || (d > 0 && count > held / static_cast<std::size_t>(d))) return std::nullopt;
    count *= static_cast<std::size_t>(d);
  }
  if (count != held) return std::nullopt;
  std::vector<float> values(count);
  if (tensor.has_raw_data()) {
    std::memcpy(values.data(), tensor.raw_data().data(), tensor.raw_data().size());
  } else {
    std::copy(tensor.float_data().begin(), tensor.float_data().end(), values.begin());
  }
  return values;
}

std::int64_t IntAttribute(const onnx::NodeProto& node, std::string_view name,
                          std::int64_t fallback) {
  for (const auto& attr : node.attribute()) {
    if (attr.name() == name) return attr.i();
  }
  return fallback;
}

float FloatAttribute(const onnx::NodeProto& node, std::string_view name, float fallback) {
  for (const auto& attr : node.attribute()) {
    if (attr.name() == name) return attr.f();
  }
  return fallback;
}

bool IsDefaultDomain(const onnx::NodeProto& node) {
  return node.domain().empty() || node.domain() == "ai.onnx";
}

// A weight matrix [K, N] as the quantized node reads it (Gemm's transB undone).
struct WeightMatrix {
  std::vector<float> values;
  std::int64_t rows = 0;
  std::int64_t columns = 0;
};

// A MatMul or Gemm this pass can quantize: its activation (first input) and
// its FP32 weight, an initializer the caller cannot override.
struct Candidate {
  std::string activation;
  std::string weight;
  bool transposed = false;
};

// The weights a graph's MatMul and Gemm nodes read, and which of those
// nodes a pass can quantize. Reads the graph only.
class Weights {
 public:
  explicit Weights(const onnx::GraphProto& graph) {
    for (const auto& tensor : graph.initializer()) initializers_[tensor.name()] = &tensor;
    for (const auto& input : graph.input()) inputs_.insert(input.name());
  }

  std::optional<Candidate> CandidateOf(const onnx::NodeProto& node) const {
    if (!IsDefaultDomain(node) || node.input_size() < 2) return std::nullopt;
    Candidate candidate{node.input(0), node.input(1)};
    if (node.op_type() == "Gemm") {
      const bool plain = IntAttribute(node, "transA", 0) == 0 &&
                         FloatAttribute(node, "alpha", 1.f) == 1.f &&
                         FloatAttribute(node, "beta", 1.f) == 1.f;
      if (!plain) return std::nullopt;
      candidate.transposed = IntAttribute(node, "transB", 0) != 0;
    } else if (node.op_type() != "MatMul") {
      return std::nullopt;
    }
    if (IsWeight(candidate.activation) || !IsWeight(candidate.weight)) return std::nullopt;
    const TensorProto& weight = *initializers_.at(candidate.weight);
    if (weight.data_type() != TensorProto::FLOAT || weight.dims_size() != 2 ||
        weight.data_location() == TensorProto::EXTERNAL) {
      return std::nullopt;
    }
    return candidate;
  }

  std::optional<WeightMatrix> Matrix(const Candidate& candidate) const {
    const TensorProto& tensor = *initializers_.at(candidate.weight);
    auto values = FloatValues(tensor);
    if (!values) return std::nullopt;
    WeightMatrix matrix{std::move(*values), tensor.dims(0), tensor.dims(1)};
    if (candidate.transposed) {
      std::vector<float> transposed(matrix.values.size());
      for (std::int64_t r = 0; r < matrix.rows; ++r) {
        for (std::int64_t c = 0; c < matrix.columns; ++c) {
          transposed[c * matrix.rows + r] = matrix.values[r * matrix.columns + c];
        }
      }
      matrix = {std::move(transposed), matrix.columns, matrix.rows};
    }
    return matrix;
  }

 private:
  // An initializer the caller cannot override: one listed as a graph input
  // (IR 3 exports list them all) is an input with a default, not a weight.
  bool IsWeight(const std::string& name) const {
    return initializers_.count(name) && !inputs_.count(name);
  }

  std::map<std::string, const TensorProto*> initializers_;
  std::set<std::string> inputs_;
};

// Every tensor name `graph` and its subgraphs (If, Loop, Scan bodies) read.
void CollectReads(const onnx::GraphProto& graph, std::set<std::string>& read) {
  for (const auto& node : graph.node()) {
    for (const auto& name : node.input()) read.insert(name);
    for (const auto& attr : node.attribute()) {
      if (attr.has_g()) CollectReads(attr.g(), read);
      for (const auto& body : attr.graphs()) CollectReads(body, read);
    }
  }
  for (const auto& output : graph.output()) read.insert(output.name());
}

// A graph being rewritten: fresh names and the initializers added.
class Graph {
 public:
  explicit Graph(onnx::GraphProto* graph) : graph_(graph) {
    for (const auto& tensor : graph_->initializer()) names_.insert(tensor.name());
    for (const auto& input : graph_->input()) names_.insert(input.name());
    for (const auto& node : graph_->node()) {
      for (const auto& name : node.output()) names_.insert(name);
    }
  }

  onnx::GraphProto* proto() { return graph_; }

  // A name no tensor of the graph has yet, built on `base`.
  std::string Fresh(const std::string& base) {
    std::string name = base;
    for (int k = 1; names_.count(name); ++k) name = base + "_" + std::to_string(k);
    names_.insert(name);
    return name;
  }

  std::string AddInitializer(const std::string& base, int type, std::vector<std::int64_t> dims,
                             const void* data, std::size_t bytes) {
    auto* tensor = graph_->add_initializer();
    tensor->set_name(Fresh(base));
    tensor->set_data_type(type);
    for (auto d : dims) tensor->add_dims(d);
    tensor->set_raw_data(data, bytes);
    return tensor->name();
  }

  // Removes the initializers nothing reads any more (the FP32 weights
  // replaced by their quantized copies); those listed as graph inputs stay.
  void DropUnusedInitializers() {
    std::set<std::string> read;
    CollectReads(*graph_, read);
    for (const auto& input : graph_->input()) read.insert(input.name());
    auto* list = graph_->mutable_initializer();
    list->erase(std::remove_if(list->begin(), list->end(),
                               [&](const TensorProto& t) { return !read.count(t.name()); }),
                list->end());
  }

 private:
  onnx::GraphProto* graph_;
  std::set<std::string> names_;
};

onnx::NodeProto MakeNode(const std::string& op, const std::vector<std::string>& inputs,
                         const std::vector<std::string>& outputs) {
  onnx::NodeProto node;
  node.set_op_type(op);
  node.set_name(outputs.front() + "_" + op);
  for (const auto& in : inputs) node.add_input(in);
  for (const auto& out : outputs) node.add_output(out);
  return node;
}

// A weight quantized symmetrically per output channel: INT8 values [K, N],
// FP32 scales [N] and INT8 zero points [N] (all zero).
struct QuantizedWeight {
  std::string values;
  std::string scales;
  std::string zero_points;
};

QuantizedWeight AddQuantizedWeight(Graph& graph, const std::string& name,
                                   const WeightMatrix& weight, const Options& options) {
  const float limit = options.reduce_range ? 63.f : 127.f;
  std::vector<float> scales(weight.columns, 0.f);
  for (std::int64_t r = 0; r < weight.rows; ++r) {
    for (std::int64_t c = 0; c < weight.columns; ++c) {
      scales[c] = std::max(scales[c], std::abs(weight.values[r * weight.columns + c]));
    }
  }
  for (auto& scale : scales) scale = scale > 0 ? scale / limit : 1.f;
  std::vector<std::int8_t> values(weight.values.size());
  for (std::int64_t r = 0; r < weight.rows; ++r) {
    for (std::int64_t c = 0; c < weight.columns; ++c) {
      const float q = std::nearbyint(weight.values[r * weight.columns + c] / scales[c]);
      values[r * weight.columns + c] = static_cast<std::int8_t>(std::clamp(q, -limit, limit));
    }
  }
  const std::vector<std::int8_t> zeros(weight.columns, 0);
  return {graph.AddInitializer(name + "_quantized", TensorProto::INT8,
                               {weight.rows, weight.columns}, values.data(), values.size()),
          graph.AddInitializer(name + "_scale", TensorProto::FLOAT, {weight.columns}, scales.data(),
                               scales.size() * sizeof(float)),
          graph.AddInitializer(name + "_zero_point", TensorProto::INT8, {weight.columns},
                               zeros.data(), zeros.size())};
}

Status NeedOpset(const onnx::ModelProto& model, std::int64_t opset, std::string_view mode) {
  const auto have = DefaultOpset(model);
  if (have >= opset) return Status::Ok();
  return InvalidArgument("{} quantization needs ONNX opset {} or later; the model imports opset {}",
                         mode, opset, have);
}

// Rewrites every candidate node with `rewrite(graph, candidate, weight, node,
// out)`, which appends the replacement nodes to `out` and returns true, or
// returns false to keep the node; the others are kept.
template <typename Rewrite>
Result<Quantized> RewriteCandidates(const onnx::ModelProto& model, std::string_view mode,
                                    Rewrite rewrite) {
  Quantized result{model};
  const Weights weights(model.graph());
  Graph graph(result.model.mutable_graph());
  google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
  for (const auto& node : model.graph().node()) {
    auto candidate = weights.CandidateOf(node);
    std::optional<WeightMatrix> weight;
    if (candidate) weight = weights.Matrix(*candidate);
    if (!weight || !rewrite(graph, *candidate, *weight, node, nodes)) {
      *nodes.Add() = node;
      continue;
    }
    ++result.nodes;
  }
  if (result.nodes == 0) {
    return InvalidArgument(
        "nothing to quantize ({}): the model has no MatMul or Gemm with an FP32 weight matrix",
        mode);
  }
  *graph.proto()->mutable_node() = std::move(nodes);
  graph.DropUnusedInitializers();
  return result;
}

// The output of a rewritten Gemm: its MatMul, plus the bias when it has one.
void AddBias(const onnx::NodeProto& node, const std::string& product,
             google::protobuf::RepeatedPtrField<onnx::NodeProto>& out) {
  *out.Add() = MakeNode("Add", {product, node.input(2)}, {node.output(0)});
}

bool HasBias(const onnx::NodeProto& node) {
  return node.op_type() == "Gemm" && node.input_size() > 2 && !node.input(2).empty();
}

}  // namespace

bool CpuHasVnni() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512vnni") || __builtin_cpu_supports("avxvnni");
#else
  return true;
#endif
}

std::string_view ModeName(Mode mode) {
  switch (mode) {
    case Mode::kInt8Dynamic:
      return "int8-dynamic";
    case Mode::kInt8Static:
      return "int8-static";
    case Mode::kFp16:
      return "fp16";
  }
  return "";
}

Result<onnx::ModelProto> ParseModel(std::string_view bytes) {
  if (bytes.size() > static_cast<std::size_t>(kMaxProtoBytes)) {
    return InvalidArgument("the model is {} bytes; a single ONNX file holds at most 2 GiB",
                           bytes.size());
  }
  onnx::ModelProto model;
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return InvalidArgument("not an ONNX model: the bytes do not parse as a ModelProto");
  }
  for (const auto& tensor : model.graph().initializer()) {
    if (tensor.data_location() == TensorProto::EXTERNAL) {
      return InvalidArgument(
          "initializer '{}' keeps its data in an external file, which braid does not read",
          tensor.name());
    }
  }
  BRAID_RETURN_IF_ERROR(CheckModel(model));
  return model;
}

Result<onnx::ModelProto> ReadModel(const std::filesystem::path& path) {
  BRAID_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
  auto model = ParseModel(bytes);
  if (!model.ok()) return model.status().WithContext(path.string());
  return model;
}

Result<std::string> SerializeModel(const onnx::ModelProto& model) {
  BRAID_RETURN_IF_ERROR(CheckModel(model));
  std::string bytes;
  if (!model.SerializeToString(&bytes)) return Internal("cannot serialise the model");
  return bytes;
}

std::vector<std::string> ActivationsToCalibrate(const onnx::ModelProto& model) {
  const Weights weights(model.graph());
  std::vector<std::string> names;
  for (const auto& node : model.graph().node()) {
    auto candidate = weights.CandidateOf(node);
    if (candidate && std::find(names.begin(), names.end(), candidate->activation) == names.end()) {
      names.push_back(candidate->activation);
    }
  }
  return names;
}

onnx::ModelProto WithOutputs(const onnx::ModelProto& model,
                             const std::vector<std::string>& tensors) {
  onnx::ModelProto copy = model;
  std::set<std::string> present;
  for (const auto& output : copy.graph().output()) present.insert(output.name());
  for (const auto& name : tensors) {
    if (present.count(name)) continue;
    auto* output = copy.mutable_graph()->add_output();
    output->set_name(name);
    output->mutable_type()->mutable_tensor_type()->set_elem_type(TensorProto::FLOAT);
  }
  return copy;
}

Result<Quantized> QuantizeDynamic(const onnx::ModelProto& model, const Options& options) {
  BRAID_RETURN_IF_ERROR(NeedOpset(model, 11, "int8 dynamic"));
  std::map<std::string, std::array<std::string, 3>> activations;  // name → quantized, scale, zp
  // By name and orientation: a Gemm with transB reads its weight transposed.
  std::map<std::pair<std::string, bool>, QuantizedWeight> weights;
  return RewriteCandidates(
      model, "int8-dynamic",
      [&](Graph& graph, const Candidate& candidate, const WeightMatrix& matrix,
          const onnx::NodeProto& node, auto& out) {
        auto [a, fresh_a] = activations.try_emplace(candidate.activation);
        if (fresh_a) {
          const std::string& name = candidate.activation;
          a->second = {graph.Fresh(name + "_quantized"), graph.Fresh(name + "_scale"),
                       graph.Fresh(name + "_zero_point")};
          *out.Add() =
              MakeNode("DynamicQuantizeLinear", {name}, {a->second[0], a->second[1], a->second[2]});
        }
        auto [w, fresh_w] = weights.try_emplace({candidate.weight, candidate.transposed});
        if (fresh_w) w->second = AddQuantizedWeight(graph, candidate.weight, matrix, options);
        const std::string& result = node.output(0);
        const std::string integers = graph.Fresh(result + "_int32");
        const std::string floats = graph.Fresh(result + "_float");
        const std::string scale = graph.Fresh(result + "_scale");
        *out.Add() = MakeNode("MatMulInteger",
                              {a->second[0], w->second.values, a->second[2], w->second.zero_points},
                              {integers});
        auto* cast = out.Add();
        *cast = MakeNode("Cast", {integers}, {floats});
        GraphBuilder::SetInt(cast, "to", TensorProto::FLOAT);
        *out.Add() = MakeNode("Mul", {a->second[1], w->second.scales}, {scale});
        const bool bias = HasBias(node);
        const std::string product = bias ? graph.Fresh(result + "_product") : result;
        *out.Add() = MakeNode("Mul", {floats, scale}, {product});
        if (bias) AddBias(node, product, out);
        return true;
      });
}

Result<Quantized> QuantizeStatic(const onnx::ModelProto& model, const Ranges& ranges,
                                 const Options& options) {
  BRAID_RETURN_IF_ERROR(NeedOpset(model, 13, "int8 static"));
  std::map<std::string, std::string> activations;               // name → its dequantized copy
  std::map<std::pair<std::string, bool>, std::string> weights;  // (name, transposed) → its copy
  return RewriteCandidates(
      model, "int8-static",
      [&](Graph& graph, const Candidate& candidate, const WeightMatrix& matrix,
          const onnx::NodeProto& node, auto& out) {
        auto range = ranges.find(candidate.activation);
        if (range == ranges.end()) return false;
        const float span = std::max(range->second.high, 0.f) - std::min(range->second.low, 0.f);
        if (!std::isfinite(span / 255.f)) return false;  // an activation that overflows stays FP32
        auto [a, fresh_a] = activations.try_emplace(candidate.activation);
        if (fresh_a) {
          const std::string& name = candidate.activation;
          const float low = std::min(range->second.low, 0.f);
          const float high = std::max(range->second.high, 0.f);
          const float scale = high > low ? (high - low) / 255.f : 1.f;
          const auto zero_point =
              static_cast<std::uint8_t>(std::clamp(std::nearbyint(-low / scale), 0.f, 255.f));
          const auto scale_name =
              graph.AddInitializer(name + "_scale", TensorProto::FLOAT, {}, &scale, sizeof scale);
          const auto zero_name =
              graph.AddInitializer(name + "_zero_point", TensorProto::UINT8, {}, &zero_point, 1);
          const auto quantized = graph.Fresh(name + "_quantized");
          a->second = graph.Fresh(name + "_dequantized");
          *out.Add() = MakeNode("QuantizeLinear", {name, scale_name, zero_name}, {quantized});
          *out.Add() =
              MakeNode("DequantizeLinear", {quantized, scale_name, zero_name}, {a->second});
        }
        auto [w, fresh_w] = weights.try_emplace({candidate.weight, candidate.transposed});
        if (fresh_w) {
          const auto q = AddQuantizedWeight(graph, candidate.weight, matrix, options);
          w->second = graph.Fresh(candidate.weight + "_dequantized");
          auto* dq = out.Add();
          *dq = MakeNode("DequantizeLinear", {q.values, q.scales, q.zero_points}, {w->second});
          GraphBuilder::SetInt(dq, "axis", 1);
        }
        const bool bias = HasBias(node);
        const std::string product =
            bias ? graph.Fresh(node.output(0) + "_product") : node.output(0);
        *out.Add() = MakeNode("MatMul", {a->second, w->second}, {product});
        if (bias) AddBias(node, product, out);
        return true;
      });
}

Result<Quantized> ConvertToFp16(const onnx::ModelProto& model) {
  Quantized result{model};
  auto* graph = result.model.mutable_graph();
  Graph names(graph);
  auto to_half = [&](TensorProto& tensor) {
    auto values = FloatValues(tensor);
    if (!values) return;
    // Past FP16's largest finite value (65504) a value would become
    // infinite: masks such as -1e9 would turn a softmax into NaN.
    std::vector<std::uint16_t> halves(values->size());
    std::transform(values->begin(), values->end(), halves.begin(),
                   [](float v) { return FloatToHalf(std::clamp(v, -65504.f, 65504.f)); });
    tensor.clear_float_data();
    tensor.set_data_type(TensorProto::FLOAT16);
    tensor.set_raw_data(halves.data(), halves.size() * sizeof(std::uint16_t));
    ++result.nodes;
  };
  // Inputs that must stay FP32 whatever the model's precision.
  auto keeps_float = [](const onnx::NodeProto& node, int index) {
    return (node.op_type() == "Resize" && index == 2) ||
           (node.op_type() == "Upsample" && index == 1);
  };
  std::set<std::string> kept;
  for (const auto& node : graph->node()) {
    for (int k = 0; k < node.input_size(); ++k) {
      if (keeps_float(node, k)) kept.insert(node.input(k));
    }
  }
  for (auto& tensor : *graph->mutable_initializer()) {
    if (!kept.count(tensor.name())) to_half(tensor);
  }
  for (auto& node : *graph->mutable_node()) {
    const bool kept_constant = node.output_size() > 0 && kept.count(node.output(0));
    for (auto& attr : *node.mutable_attribute()) {
      if (attr.type() == onnx::AttributeProto::TENSOR && !kept_constant &&
          (node.op_type() == "Constant" || node.op_type() == "ConstantOfShape")) {
        to_half(*attr.mutable_t());
      } else if (node.op_type() == "Cast" && attr.name() == "to" &&
                 attr.i() == TensorProto::FLOAT) {
        attr.set_i(TensorProto::FLOAT16);
      }
    }
  }
  for (auto& info : *graph->mutable_value_info()) {
    auto* type = info.mutable_type()->mutable_tensor_type();
    if (type->elem_type() == TensorProto::FLOAT) type->set_elem_type(TensorProto::FLOAT16);
  }
  // The edges stay FP32: casts after each FP32 input and before each output.
  std::map<std::string, std::string> renamed;
  google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
  for (const auto& input : graph->input()) {
    if (input.type().tensor_type().elem_type() != TensorProto::FLOAT) continue;
    const std::string half = names.Fresh(input.name() + "_fp16");
    renamed[input.name()] = half;
    auto* cast = nodes.Add();
    *cast = MakeNode("Cast", {input.name()}, {half});
    GraphBuilder::SetInt(cast, "to", TensorProto::FLOAT16);
  }
  std::vector<onnx::NodeProto> tail;
  for (const auto& output : graph->output()) {
    // An input handed straight back out stays as it came.
    if (output.type().tensor_type().elem_type() != TensorProto::FLOAT ||
        renamed.count(output.name())) {
      continue;
    }
    const std::string half = names.Fresh(output.name() + "_fp16");
    renamed[output.name()] = half;
    tail.push_back(MakeNode("Cast", {half}, {output.name()}));
    GraphBuilder::SetInt(&tail.back(), "to", TensorProto::FLOAT);
  }
  for (const auto& original : graph->node()) {
    auto* node = nodes.Add();
    *node = original;
    for (auto& name : *node->mutable_input()) {
      if (auto it = renamed.find(name); it != renamed.end()) name = it->second;
    }
    for (auto& name : *node->mutable_output()) {
      if (auto it = renamed.find(name); it != renamed.end()) name = it->second;
    }
  }
  for (auto& node : tail) *nodes.Add() = std::move(node);
  if (result.nodes == 0) {
    return InvalidArgument("nothing to convert (fp16): the model has no FP32 weight or constant");
  }
  *graph->mutable_node() = std::move(nodes);
  return result;
}

}  // namespace braid::quantize
