// modelgen: writes the bundled ONNX stand-in models with libonnx.
//
// The models have the interfaces of the real ones (CLIP ViT-B/32's encoders,
// the alignment heads) and a realistic cost per item, so batching, threading
// and serving behave as they would with real weights. The weights are seeded
// pseudo-random numbers: the outputs are deterministic but mean nothing.
//
//   modelgen MODEL OUTPUT.onnx   MODEL: clip-image | clip-text | align | identity | identity-wide
//   modelgen whisper REPOSITORY  a Whisper-shaped model for tests (REPOSITORY/whisper)
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "onnxgen/align_graph.h"
#include "onnxgen/graph_builder.h"
#include "onnxgen/whisper_graph.h"
#include "tools/modelgen/tokenizer_gen.h"

namespace {

using braid::onnxgen::GraphBuilder;

constexpr std::int64_t kEmbedDim = 512;
constexpr std::int64_t kImageSize = 224;
constexpr std::int64_t kPatch = 32;
constexpr std::int64_t kContextLength = 77;
constexpr std::int64_t kVocabSize = 49408;
constexpr std::int64_t kAlignDim = 128;

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
  braid::onnxgen::BuildAlignGraph(
      g, kEmbedDim, kAlignDim,
      [](GraphBuilder& g, const std::string&, const std::string& weight, const std::string& bias) {
        g.Linear(weight, kEmbedDim, kAlignDim);
        g.Weight(bias, {kAlignDim}, 0.02f);
      });
}

// `width` -1 makes the second dimension variable too.
void BuildIdentity(onnx::GraphProto* graph, std::int64_t width) {
  GraphBuilder g(graph, 4004);
  g.Input("input", onnx::TensorProto::FLOAT, {-1, width});
  g.Op("Identity", {"input"}, "output");
  g.Output("output", onnx::TensorProto::FLOAT, {-1, width});
}

// A Whisper-shaped model (onnxgen/whisper_graph.h) with its config: speech
// (loud audio) gives two segments of English, silence nothing.
bool WriteWhisper(const std::filesystem::path& repository) {
  braid::onnxgen::WhisperStandIn spec;
  spec.words = {"ĠThe", "Ġquick", "Ġbrown", "Ġfox", "ĠIt", "Ġjumps"};
  spec.loud = {"<|en|>", "<|transcribe|>", "<|0.00|>", "ĠThe", "Ġquick", "Ġbrown", "Ġfox",
               ".",      "<|1.50|>",       "<|1.50|>", "ĠIt",  "Ġjumps", ".",      "<|3.00|>"};
  spec.quiet = {"<|en|>", "<|transcribe|>", "<|0.00|>"};
  const auto folder = repository / "whisper";
  std::filesystem::create_directories(folder / "1");
  std::ofstream(folder / "config.yaml")
      << R"(# A Whisper-shaped stand-in written by modelgen: Optimum's file names and
# interface, decoders forced to say one script (onnxgen/whisper_graph.h).
backend: whisper
description: "stand-in with forced output (Whisper export interface): for tests"
max_batch_size: 8
inputs: [{name: audio, datatype: BYTES, dims: [1]}]
outputs:
  - {name: text, datatype: BYTES, dims: [1]}
  - {name: language, datatype: BYTES, dims: [1]}
  - {name: segments, datatype: BYTES, dims: [1]}
dynamic_batching: {max_queue_delay_us: 5000}
)";
  auto status = braid::onnxgen::WriteWhisperStandIn(spec, folder / "1");
  if (!status.ok()) std::fprintf(stderr, "modelgen: %s\n", status.message().c_str());
  return status.ok();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || std::string(argv[1]) == "--help") {
    std::fprintf(stderr,
                 "usage: modelgen MODEL OUTPUT.onnx\n"
                 "  writes a seeded ONNX stand-in model; MODEL is one of\n"
                 "  clip-image, clip-text, align, identity, identity-wide, or clip-tokenizer\n"
                 "  (the clip-text stand-in's tokenizer.json)\n"
                 "usage: modelgen whisper REPOSITORY\n"
                 "  writes a Whisper-shaped model for tests into REPOSITORY/whisper\n");
    return argc == 2 ? 0 : 2;
  }
  const std::string name = argv[1];
  if (name == "whisper") return WriteWhisper(argv[2]) ? 0 : 1;
  if (name == "clip-tokenizer") {
    if (braid::modelgen::WriteClipTokenizer(argv[2])) return 0;
    std::fprintf(stderr, "modelgen: cannot write %s\n", argv[2]);
    return 1;
  }
  onnx::ModelProto model = braid::onnxgen::NewModel(name);
  auto* graph = model.mutable_graph();
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
  if (auto status = braid::onnxgen::CheckAndWriteModel(model, argv[2]); !status.ok()) {
    std::fprintf(stderr, "modelgen: %s\n", status.message().c_str());
    return 1;
  }
  return 0;
}
