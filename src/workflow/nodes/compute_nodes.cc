// Small CPU kinds: condition (whether any of some references is present),
// similarity (cosine of two vectors), fuse (vectors concatenated or
// averaged) and template (a report rendered from references and streamed
// word by word).
#include <cmath>
#include <cstring>

#include "workflow/executor.h"
#include "workflow/nodes/nodes.h"

namespace braid {
namespace {

class ConditionKind : public CpuNodeKind {
 public:
  Result<std::vector<std::string>> Outputs(const NodeSpec&, const ModelCatalog&) const override {
    return std::vector<std::string>{"result"};
  }
  Status Check(NodeSpec& node) const override {
    if (node.any_of.empty()) return InvalidArgument("needs 'any_of'");
    return Status::Ok();
  }
  bool gates_nodes() const override { return true; }

 protected:
  // The executor hands it `result`: whether any of its any_of is present.
  Result<NamedTensors> Compute(NodeRun& run) const override { return run.inputs; }
};

class SimilarityKind : public CpuNodeKind {
 public:
  std::vector<std::string> RequiredInputs() const override { return {"a", "b"}; }
  Result<std::vector<std::string>> Outputs(const NodeSpec&, const ModelCatalog&) const override {
    return std::vector<std::string>{"similarity"};
  }

 protected:
  Result<NamedTensors> Compute(NodeRun& run) const override {
    const Tensor& a = run.inputs.at("a");
    const Tensor& b = run.inputs.at("b");
    if (a.dtype() != DataType::kFp32 || b.dtype() != DataType::kFp32 ||
        a.element_count() != b.element_count() || a.element_count() == 0) {
      return InvalidArgument("similarity needs two FP32 vectors of one length, not {} and {}",
                             ShapeToString(a.shape()), ShapeToString(b.shape()));
    }
    double dot = 0, na = 0, nb = 0;
    auto x = a.span<float>(), y = b.span<float>();
    for (std::size_t i = 0; i < x.size(); ++i) {
      dot += double(x[i]) * y[i];
      na += double(x[i]) * x[i];
      nb += double(y[i]) * y[i];
    }
    const double cosine = na > 0 && nb > 0 ? dot / std::sqrt(na * nb) : 0.0;
    BRAID_ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DataType::kFp32, {1}));
    out.mutable_span<float>()[0] = static_cast<float>(cosine);
    return NamedTensors{{"similarity", out}};
  }
};

class FuseKind : public CpuNodeKind {
 public:
  std::vector<std::string> Parameters() const override { return {"mode"}; }
  Result<std::vector<std::string>> Outputs(const NodeSpec&, const ModelCatalog&) const override {
    return std::vector<std::string>{"vector"};
  }

 protected:
  Result<NamedTensors> Compute(NodeRun& run) const override {
    const auto& params = run.node.params;
    const std::string mode = params.count("mode") ? params.at("mode") : "concat";
    std::vector<const Tensor*> parts;
    for (const auto& [name, tensor] : run.inputs) {
      if (tensor.dtype() != DataType::kFp32)
        return InvalidArgument("fuse takes FP32 inputs; '{}' is {}", name,
                               DataTypeName(tensor.dtype()));
      parts.push_back(&tensor);
    }
    if (parts.empty()) return InvalidArgument("fuse got no inputs");
    if (mode == "mean") {
      const auto count = parts[0]->element_count();
      BRAID_ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DataType::kFp32, {1, count}));
      auto sum = out.mutable_span<float>();
      for (const Tensor* part : parts) {
        if (part->element_count() != count)
          return InvalidArgument("fuse mean needs inputs of one length");
        for (std::int64_t i = 0; i < count; ++i) sum[i] += part->span<float>()[i] / parts.size();
      }
      return NamedTensors{{"vector", out}};
    }
    if (mode != "concat") return InvalidArgument("fuse mode '{}' is not concat or mean", mode);
    std::int64_t total = 0;
    for (const Tensor* part : parts) total += part->element_count();
    BRAID_ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DataType::kFp32, {1, total}));
    std::size_t offset = 0;
    for (const Tensor* part : parts) {
      std::memcpy(out.mutable_data() + offset, part->data(), part->byte_size());
      offset += part->byte_size();
    }
    return NamedTensors{{"vector", out}};
  }
};

class TemplateKind : public CpuNodeKind {
 public:
  std::vector<std::string> Parameters() const override { return {"template"}; }
  Result<std::vector<std::string>> Outputs(const NodeSpec&, const ModelCatalog&) const override {
    return std::vector<std::string>{"text"};
  }
  Status Check(NodeSpec& node) const override { return TakePlaceholders(node, "template"); }
  // It presents results; a precompute has no one to present them to.
  bool precomputed() const override { return false; }

 protected:
  Result<NamedTensors> Compute(NodeRun& run) const override {
    std::string text = RenderTemplate(run.node.params.at("template"), run.inputs);
    // Streamed word by word, as a model's tokens would arrive.
    for (std::size_t start = 0; start < text.size();) {
      std::size_t end = text.find(' ', start);
      end = end == std::string::npos ? text.size() : end + 1;
      run.emit_text(text.substr(start, end - start));
      start = end;
    }
    BRAID_ASSIGN_OR_RETURN(Tensor out, Tensor::FromStrings({text}, {1}));
    return NamedTensors{{"text", out}};
  }
};

}  // namespace

Status TakePlaceholders(NodeSpec& node, const std::string& param) {
  if (!node.params.count(param)) return InvalidArgument("needs '{}'", param);
  for (const auto& placeholder : FindPlaceholders(node.params.at(param))) {
    auto reference = ParseReference(placeholder.reference);
    if (!reference.ok()) return reference.status().WithContext(fmt::format("field '{}'", param));
    node.from[reference->ToString()] = *reference;
  }
  return Status::Ok();
}

std::string RenderTemplate(const std::string& text, const NamedTensors& values) {
  std::string out;
  std::size_t last = 0;
  for (const auto& placeholder : FindPlaceholders(text)) {
    out += text.substr(last, placeholder.position - last);
    if (auto value = values.find(placeholder.reference); value != values.end()) {
      std::string rendered = RenderTensor(value->second);
      while (!rendered.empty() && std::isspace(static_cast<unsigned char>(rendered.back())))
        rendered.pop_back();
      out += rendered;
    }
    last = placeholder.position + placeholder.length;
  }
  out += text.substr(last);
  return out;
}

void RegisterComputeNodes(NodeKindMap& kinds) {
  kinds["condition"] = std::make_unique<ConditionKind>();
  kinds["similarity"] = std::make_unique<SimilarityKind>();
  kinds["fuse"] = std::make_unique<FuseKind>();
  kinds["template"] = std::make_unique<TemplateKind>();
}

}  // namespace braid
