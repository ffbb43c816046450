#include "onnxgen/text_graph.h"

namespace braid::onnxgen {

void BuildTextEmbedGraph(GraphBuilder& g, std::int64_t max_features, std::int64_t rows,
                         std::int64_t dim, const std::vector<float>& table) {
  g.Input("input_ids", onnx::TensorProto::INT64, {-1, max_features});
  g.Output("text_embeds", onnx::TensorProto::FLOAT, {-1, dim});
  const std::string embedding = g.Floats("embedding", {rows, dim}, table);
  const std::string rows_of = g.Op("Gather", {embedding, "input_ids"});
  auto* sum = g.Node("ReduceSum", {rows_of, g.Ints("feature_axis", {1})});
  GraphBuilder::SetInt(sum, "keepdims", 0);
  auto* norm = g.Node("LpNormalization", {sum->output(0)}, "text_embeds");
  GraphBuilder::SetInt(norm, "axis", -1);
  GraphBuilder::SetInt(norm, "p", 2);
}

}  // namespace braid::onnxgen
