// modelgen: writes the bundled ONNX stand-in models with libonnx.
//
// The models have the interfaces of the real ones (CLIP ViT-B/32's encoders,
// the alignment heads) and a realistic cost per item, so batching, threading
// and serving behave as they would with real weights. The weights are seeded
// pseudo-random numbers: the outputs are deterministic but mean nothing.
//
//   modelgen MODEL OUTPUT.onnx   MODEL: clip-image | clip-text | align | identity | identity-wide
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "tools/modelgen/tokenizer_gen.h"

namespace {

constexpr std::int64_t kOpset = 17;  // LayerNormalization needs 17
constexpr std::int64_t kEmbedDim = 512;
constexpr std::int64_t kImageSize = 224;
constexpr std::int64_t kPatch = 32;
constexpr std::int64_t kContextLength = 77;
constexpr std::int64_t kVocabSize = 49408;
constexpr std::int64_t kAlignDim = 128;

// Builds one ONNX graph. Weights come from a seeded mt19937, whose output
// sequence the C++ standard fixes, so every build writes identical files.
class GraphBuilder {
 public:
  GraphBuilder(onnx::GraphProto* graph, std::uint32_t seed) : graph_(graph), random_(seed) {}

  void Input(const std::string& name, int type, const std::vector<std::int64_t>& dims) {
    AddValueInfo(graph_->add_input(), name, type, dims);
  }
  void Output(const std::string& name, int type, const std::vector<std::int64_t>& dims) {
    AddValueInfo(graph_->add_output(), name, type, dims);
  }

  // A weight drawn uniformly from [-scale*sqrt(3), scale*sqrt(3)] (std `scale`).
  std::string Weight(const std::string& name, const std::vector<std::int64_t>& dims, float scale) {
    std::int64_t count = 1;
    for (auto d : dims) count *= d;
    std::vector<float> values(count);
    const double bound = scale * std::sqrt(3.0);
    for (auto& v : values) v = static_cast<float>((random_() / 4294967296.0 * 2.0 - 1.0) * bound);
    return Floats(name, dims, values);
  }
  // A weight matrix [fan_in, fan_out] scaled to keep activations near unit variance.
  std::string Linear(const std::string& name, std::int64_t fan_in, std::int64_t fan_out) {
    return Weight(name, {fan_in, fan_out}, 1.0f / std::sqrt(static_cast<float>(fan_in)));
  }
  std::string Filled(const std::string& name, const std::vector<std::int64_t>& dims, float value) {
    std::int64_t count = 1;
    for (auto d : dims) count *= d;
    return Floats(name, dims, std::vector<float>(count, value));
  }
  std::string Floats(const std::string& name, const std::vector<std::int64_t>& dims,
                     const std::vector<float>& values) {
    auto* tensor = graph_->add_initializer();
    tensor->set_name(name);
    tensor->set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : dims) tensor->add_dims(d);
    tensor->set_raw_data(values.data(), values.size() * sizeof(float));
    return name;
  }
  std::string Ints(const std::string& name, const std::vector<std::int64_t>& values) {
    auto* tensor = graph_->add_initializer();
    tensor->set_name(name);
    tensor->set_data_type(onnx::TensorProto::INT64);
    tensor->add_dims(static_cast<std::int64_t>(values.size()));
    tensor->set_raw_data(values.data(), values.size() * sizeof(std::int64_t));
    return name;
  }

  // Adds a node; returns the name of its (first) output. `output` names it,
  // otherwise a fresh name is made.
  onnx::NodeProto* Node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::string& output = "") {
    auto* node = graph_->add_node();
    node->set_op_type(op);
    node->set_name(op + "_" + std::to_string(next_id_));
    for (const auto& in : inputs) node->add_input(in);
    node->add_output(output.empty() ? "t" + std::to_string(next_id_) : output);
    ++next_id_;
    return node;
  }
  std::string Op(const std::string& op, const std::vector<std::string>& inputs,
                 const std::string& output = "") {
    return Node(op, inputs, output)->output(0);
  }

  static void SetInt(onnx::NodeProto* node, const std::string& name, std::int64_t value) {
    auto* attr = node->add_attribute();
    attr->set_name(name);
    attr->set_type(onnx::AttributeProto::INT);
    attr->set_i(value);
  }
  static void SetInts(onnx::NodeProto* node, const std::string& name,
                      const std::vector<std::int64_t>& values) {
    auto* attr = node->add_attribute();
    attr->set_name(name);
    attr->set_type(onnx::AttributeProto::INTS);
    for (auto v : values) attr->add_ints(v);
  }
  static void SetFloat(onnx::NodeProto* node, const std::string& name, float value) {
    auto* attr = node->add_attribute();
    attr->set_name(name);
    attr->set_type(onnx::AttributeProto::FLOAT);
    attr->set_f(value);
  }

  std::string Scalar(const std::string& name, float value) { return Floats(name, {}, {value}); }

 private:
  static void AddValueInfo(onnx::ValueInfoProto* info, const std::string& name, int type,
                           const std::vector<std::int64_t>& dims) {
    info->set_name(name);
    auto* tensor_type = info->mutable_type()->mutable_tensor_type();
    tensor_type->set_elem_type(type);
    auto* shape = tensor_type->mutable_shape();
    for (std::size_t i = 0; i < dims.size(); ++i) {
      if (dims[i] < 0) {
        shape->add_dim()->set_dim_param(i == 0 ? "batch" : "dim" + std::to_string(i));
      } else {
        shape->add_dim()->set_dim_value(dims[i]);
      }
    }
  }

  onnx::GraphProto* graph_;
  std::mt19937 random_;
  int next_id_ = 0;
};

// Pre-LayerNorm transformer encoder blocks as CLIP uses them: multi-head
// self-attention and a QuickGELU MLP, each with a residual connection.
class TransformerBuilder {
 public:
  TransformerBuilder(GraphBuilder& g, std::int64_t width, std::int64_t heads)
      : g_(g), width_(width), heads_(heads) {}

  std::string LayerNorm(const std::string& prefix, const std::string& x) {
    auto* node = g_.Node("LayerNormalization", {x, g_.Filled(prefix + ".gamma", {width_}, 1.0f),
                                                g_.Filled(prefix + ".beta", {width_}, 0.0f)});
    GraphBuilder::SetInt(node, "axis", -1);
    GraphBuilder::SetFloat(node, "epsilon", 1e-5f);
    return node->output(0);
  }

  std::string Dense(const std::string& prefix, const std::string& x, std::int64_t in,
                    std::int64_t out) {
    auto y = g_.Op("MatMul", {x, g_.Linear(prefix + ".weight", in, out)});
    return g_.Op("Add", {y, g_.Weight(prefix + ".bias", {out}, 0.02f)});
  }

  // `mask` is an additive [S,S] attention mask, or empty for none.
  std::string Block(const std::string& prefix, const std::string& x, const std::string& mask) {
    const std::int64_t head_dim = width_ / heads_;
    auto heads_shape = g_.Ints(prefix + ".heads_shape", {0, 0, heads_, head_dim});
    auto merged_shape = g_.Ints(prefix + ".merged_shape", {0, 0, width_});

    auto h = LayerNorm(prefix + ".ln_1", x);
    auto split = [&](const std::string& name, std::vector<std::int64_t> perm) {
      auto projected = Dense(prefix + "." + name, h, width_, width_);
      auto reshaped = g_.Op("Reshape", {projected, heads_shape});
      auto* transpose = g_.Node("Transpose", {reshaped});
      GraphBuilder::SetInts(transpose, "perm", perm);
      return transpose->output(0);
    };
    auto q = split("q_proj", {0, 2, 1, 3});  // [N,H,S,Dh]
    auto k = split("k_proj", {0, 2, 3, 1});  // [N,H,Dh,S]
    auto v = split("v_proj", {0, 2, 1, 3});  // [N,H,S,Dh]
    auto scores = g_.Op("MatMul", {q, k});
    scores =
        g_.Op("Mul", {scores, g_.Scalar(prefix + ".scale", 1.0f / std::sqrt(float(head_dim)))});
    if (!mask.empty()) scores = g_.Op("Add", {scores, mask});
    auto* softmax = g_.Node("Softmax", {scores});
    GraphBuilder::SetInt(softmax, "axis", -1);
    auto context = g_.Op("MatMul", {softmax->output(0), v});
    auto* merge = g_.Node("Transpose", {context});
    GraphBuilder::SetInts(merge, "perm", {0, 2, 1, 3});
    auto merged = g_.Op("Reshape", {merge->output(0), merged_shape});
    auto attended = Dense(prefix + ".out_proj", merged, width_, width_);
    auto x1 = g_.Op("Add", {x, attended});

    auto m = LayerNorm(prefix + ".ln_2", x1);
    m = Dense(prefix + ".fc1", m, width_, 4 * width_);
    auto gate = g_.Op("Sigmoid", {g_.Op("Mul", {m, g_.Scalar(prefix + ".gelu", 1.702f)})});
    m = g_.Op("Mul", {m, gate});  // QuickGELU, as CLIP has it
    m = Dense(prefix + ".fc2", m, 4 * width_, width_);
    return g_.Op("Add", {x1, m});
  }

 private:
  GraphBuilder& g_;
  std::int64_t width_;
  std::int64_t heads_;
};

void BuildClipImage(onnx::GraphProto* graph) {
  constexpr std::int64_t kWidth = 512, kHeads = 8, kLayers = 3;
  constexpr std::int64_t kGrid = kImageSize / kPatch;
  GraphBuilder g(graph, 1001);
  TransformerBuilder t(g, kWidth, kHeads);
  g.Input("pixel_values", onnx::TensorProto::FLOAT, {-1, 3, kImageSize, kImageSize});

  auto* conv = g.Node(
      "Conv", {"pixel_values", g.Weight("patch_embedding.weight", {kWidth, 3, kPatch, kPatch},
                                        1.0f / std::sqrt(3.0f * kPatch * kPatch))});
  GraphBuilder::SetInts(conv, "kernel_shape", {kPatch, kPatch});
  GraphBuilder::SetInts(conv, "strides", {kPatch, kPatch});
  auto patches =
      g.Op("Reshape", {conv->output(0), g.Ints("patch_shape", {0, kWidth, kGrid * kGrid})});
  auto* tokens = g.Node("Transpose", {patches});
  GraphBuilder::SetInts(tokens, "perm", {0, 2, 1});
  auto x = g.Op(
      "Add", {tokens->output(0), g.Weight("position_embedding", {kGrid * kGrid, kWidth}, 0.02f)});
  x = t.LayerNorm("pre_layernorm", x);
  for (std::int64_t i = 0; i < kLayers; ++i) x = t.Block("layers." + std::to_string(i), x, "");
  x = t.LayerNorm("post_layernorm", x);
  auto* pool = g.Node("ReduceMean", {x});
  GraphBuilder::SetInts(pool, "axes", {1});
  GraphBuilder::SetInt(pool, "keepdims", 0);
  g.Op("MatMul", {pool->output(0), g.Linear("visual_projection", kWidth, kEmbedDim)},
       "image_embeds");
  g.Output("image_embeds", onnx::TensorProto::FLOAT, {-1, kEmbedDim});
}

void BuildClipText(onnx::GraphProto* graph) {
  constexpr std::int64_t kWidth = 512, kHeads = 8, kLayers = 2;
  GraphBuilder g(graph, 2002);
  TransformerBuilder t(g, kWidth, kHeads);
  g.Input("input_ids", onnx::TensorProto::INT64, {-1, kContextLength});

  auto x = g.Op("Gather", {g.Weight("token_embedding", {kVocabSize, kWidth}, 0.02f), "input_ids"});
  x = g.Op("Add", {x, g.Weight("position_embedding", {kContextLength, kWidth}, 0.01f)});
  // CLIP's causal mask: a token attends to itself and the tokens before it.
  std::vector<float> mask(kContextLength * kContextLength, 0.0f);
  for (std::int64_t row = 0; row < kContextLength; ++row) {
    for (std::int64_t col = row + 1; col < kContextLength; ++col)
      mask[row * kContextLength + col] = -1e9f;
  }
  auto causal = g.Floats("causal_mask", {kContextLength, kContextLength}, mask);
  for (std::int64_t i = 0; i < kLayers; ++i) x = t.Block("layers." + std::to_string(i), x, causal);
  x = t.LayerNorm("final_layer_norm", x);

  // Pool at the end-of-text token, as CLIP does: it has the largest id, so
  // ArgMax over input_ids finds its (first) position.
  auto* eot = g.Node("ArgMax", {"input_ids"});
  GraphBuilder::SetInt(eot, "axis", 1);
  GraphBuilder::SetInt(eot, "keepdims", 1);
  auto index = g.Op("Unsqueeze", {eot->output(0), g.Ints("unsqueeze_axes", {2})});
  index = g.Op("Expand", {index, g.Ints("expand_shape", {1, 1, kWidth})});
  auto* gather = g.Node("GatherElements", {x, index});
  GraphBuilder::SetInt(gather, "axis", 1);
  auto pooled = g.Op("Squeeze", {gather->output(0), g.Ints("squeeze_axes", {1})});
  g.Op("MatMul", {pooled, g.Linear("text_projection", kWidth, kEmbedDim)}, "text_embeds");
  g.Output("text_embeds", onnx::TensorProto::FLOAT, {-1, kEmbedDim});
}

void BuildAlign(onnx::GraphProto* graph) {
  GraphBuilder g(graph, 3003);
  for (const std::string modality : {"image", "text"}) {
    g.Input(modality + "_embeds", onnx::TensorProto::FLOAT, {-1, kEmbedDim});
    auto y = g.Op("MatMul", {modality + "_embeds",
                             g.Linear(modality + "_head.weight", kEmbedDim, kAlignDim)});
    y = g.Op("Add", {y, g.Weight(modality + "_head.bias", {kAlignDim}, 0.02f)});
    auto* norm = g.Node("LpNormalization", {y}, modality + "_aligned");
    GraphBuilder::SetInt(norm, "axis", -1);
    GraphBuilder::SetInt(norm, "p", 2);
    g.Output(modality + "_aligned", onnx::TensorProto::FLOAT, {-1, kAlignDim});
  }
}

// `width` -1 makes the second dimension variable too.
void BuildIdentity(onnx::GraphProto* graph, std::int64_t width) {
  GraphBuilder g(graph, 4004);
  g.Input("input", onnx::TensorProto::FLOAT, {-1, width});
  g.Op("Identity", {"input"}, "output");
  g.Output("output", onnx::TensorProto::FLOAT, {-1, width});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || std::string(argv[1]) == "--help") {
    std::fprintf(stderr,
                 "usage: modelgen MODEL OUTPUT.onnx\n"
                 "  writes a seeded ONNX stand-in model; MODEL is one of\n"
                 "  clip-image, clip-text, align, identity, identity-wide, or clip-tokenizer\n"
                 "  (the clip-text stand-in's tokenizer.json)\n");
    return argc == 2 ? 0 : 2;
  }
  const std::string name = argv[1];
  if (name == "clip-tokenizer") {
    if (braid::modelgen::WriteClipTokenizer(argv[2])) return 0;
    std::fprintf(stderr, "modelgen: cannot write %s\n", argv[2]);
    return 1;
  }
  onnx::ModelProto model;
  model.set_ir_version(8);
  model.set_producer_name("braid-modelgen");
  model.set_model_version(1);
  model.add_opset_import()->set_version(kOpset);
  auto* graph = model.mutable_graph();
  graph->set_name(name);
  if (name == "clip-image") {
    BuildClipImage(graph);
  } else if (name == "clip-text") {
    BuildClipText(graph);
  } else if (name == "align") {
    BuildAlign(graph);
  } else if (name == "identity") {
    BuildIdentity(graph, 16);
  } else if (name == "identity-wide") {
    BuildIdentity(graph, -1);
  } else {
    std::fprintf(stderr, "modelgen: unknown model '%s'\n", name.c_str());
    return 2;
  }
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "modelgen: %s fails the ONNX checker: %s\n", name.c_str(), e.what());
    return 1;
  }
  std::ofstream out(argv[2], std::ios::binary | std::ios::trunc);
  if (!out || !model.SerializeToOstream(&out)) {
    std::fprintf(stderr, "modelgen: cannot write %s\n", argv[2]);
    return 1;
  }
  return 0;
}
