#include "onnxgen/align_graph.h"

namespace braid::onnxgen {

void BuildAlignGraph(GraphBuilder& g, std::int64_t in_dim, std::int64_t out_dim,
                     const AddHeadWeights& add_weights) {
  for (const std::string modality : kAlignModalities) {
    const std::string weight = modality + "_head.weight";
    const std::string bias = modality + "_head.bias";
    g.Input(modality + "_embeds", onnx::TensorProto::FLOAT, {-1, in_dim});
    add_weights(g, modality, weight, bias);
    auto y = g.Op("MatMul", {modality + "_embeds", weight});
    y = g.Op("Add", {y, bias});
    auto* norm = g.Node("LpNormalization", {y}, modality + "_aligned");
    GraphBuilder::SetInt(norm, "axis", -1);
    GraphBuilder::SetInt(norm, "p", 2);
    g.Output(modality + "_aligned", onnx::TensorProto::FLOAT, {-1, out_dim});
  }
}

}  // namespace braid::onnxgen
