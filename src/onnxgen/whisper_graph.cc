#include "onnxgen/whisper_graph.h"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <map>

#include "onnxgen/graph_builder.h"
#include "onnxgen/tokenizer_json.h"
#include "preprocess/tokenizer.h"

namespace braid::onnxgen {
namespace {

constexpr std::int64_t kFrames = 3000;         // 30 s of log-mel frames
constexpr std::int64_t kEncoderFrames = 1500;  // after the stride-2 convolution
constexpr std::int64_t kMaxPositions = 448;    // Whisper's text context
constexpr float kMargin = 20.0f;               // the forced token's lead in the logits
constexpr float kLoudMarker = 1000.0f;         // carries the loudness in the encoder's output

// Token strings in id order: the byte symbols, the words, the fillers, then
// the special tokens, as a multilingual Whisper vocabulary orders them.
std::vector<std::string> Vocabulary(const WhisperStandIn& spec, std::int64_t* first_special) {
  std::vector<std::string> tokens = ByteSymbols();
  tokens.insert(tokens.end(), spec.words.begin(), spec.words.end());
  for (std::int64_t i = 0; i < spec.filler; ++i) tokens.push_back(fmt::format("filler{}", i));
  *first_special = static_cast<std::int64_t>(tokens.size());
  tokens.push_back("<|endoftext|>");
  tokens.push_back("<|startoftranscript|>");
  for (const auto& language : spec.languages) tokens.push_back("<|" + language + "|>");
  for (const char* special : {"<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>",
                              "<|nocaptions|>", "<|notimestamps|>"})
    tokens.push_back(special);
  for (int step = 0; step <= 1500; ++step) tokens.push_back(fmt::format("<|{:.2f}|>", step * 0.02));
  return tokens;
}

std::string WhisperTokenizerJson(const std::vector<std::string>& tokens,
                                 std::int64_t first_special) {
  BpeTokenizerFile file;
  for (std::size_t id = 0; id < tokens.size(); ++id) {
    file.vocab.emplace_back(tokens[id], static_cast<std::int64_t>(id));
    if (static_cast<std::int64_t>(id) >= first_special)
      file.added.emplace_back(static_cast<std::int64_t>(id), tokens[id]);
  }
  return TokenizerJson(file);
}

class Whisper {
 public:
  Whisper(const WhisperStandIn& spec, std::int64_t vocab, std::vector<std::int64_t> script)
      : spec_(spec),
        vocab_(vocab),
        head_dim_(spec.d_model / spec.heads),
        script_(std::move(script)) {}

  onnx::ModelProto Encoder() const {
    onnx::ModelProto model = NewModel("whisper-encoder");
    GraphBuilder g(model.mutable_graph(), spec_.seed);
    const std::int64_t d = spec_.d_model;
    g.Input("input_features", onnx::TensorProto::FLOAT, {-1, spec_.mel_bins, kFrames},
            {"batch_size"});
    auto* conv =
        g.Node("Conv", {"input_features", g.Weight("conv.weight", {d, spec_.mel_bins, 3}, 0.05f),
                        g.Weight("conv.bias", {d}, 0.01f)});
    GraphBuilder::SetInts(conv, "kernel_shape", {3});
    GraphBuilder::SetInts(conv, "strides", {2});
    GraphBuilder::SetInts(conv, "pads", {1, 1});
    auto* frames = g.Node("Transpose", {conv->output(0)});
    GraphBuilder::SetInts(frames, "perm", {0, 2, 1});
    auto states = g.Op("Mul", {g.Op("Tanh", {frames->output(0)}), g.Scalar("state_scale", 0.01f)});
    // Loud audio puts a large value at frame 0, channel 0.
    auto* mean = g.Node("ReduceMean", {"input_features"});
    GraphBuilder::SetInts(mean, "axes", {1, 2});
    GraphBuilder::SetInt(mean, "keepdims", 0);
    auto* loud = g.Node("Cast", {g.Op("Greater", {mean->output(0), g.Scalar("quiet", -1.0f)})});
    GraphBuilder::SetInt(loud, "to", onnx::TensorProto::FLOAT);
    auto flag = g.Op("Reshape", {loud->output(0), g.Ints("flag_shape", {-1, 1, 1})});
    std::vector<float> marker(kEncoderFrames * d, 0.0f);
    marker[0] = kLoudMarker;
    auto mark = g.Op("Mul", {flag, g.Floats("marker", {1, kEncoderFrames, d}, marker)});
    g.Op("Add", {states, mark}, "last_hidden_state");
    g.Output("last_hidden_state", onnx::TensorProto::FLOAT, {-1, kEncoderFrames, d},
             {"batch_size"});
    return model;
  }

  // decoder_model.onnx (`past` false) or decoder_with_past_model.onnx.
  onnx::ModelProto Decoder(bool past) const {
    onnx::ModelProto model = NewModel(past ? "whisper-decoder-with-past" : "whisper-decoder");
    GraphBuilder g(model.mutable_graph(), spec_.seed + 1);
    DecoderInputs(g, past, false);
    DecoderBody(g, past, false);
    return model;
  }

  // decoder_model_merged.onnx: both decoders as the branches of an If on
  // use_cache_branch, as Optimum merges them. Both branches give the same
  // outputs: the cache branch passes the encoder's keys and values through.
  onnx::ModelProto MergedDecoder() const {
    onnx::ModelProto model = NewModel("whisper-decoder-merged");
    GraphBuilder g(model.mutable_graph(), spec_.seed + 1);
    DecoderInputs(g, true, true);
    auto* branches = g.Node("If", {"use_cache_branch"});
    onnx::GraphProto* first = GraphBuilder::SetGraph(branches, "else_branch");
    GraphBuilder without_cache(first, spec_.seed + 1);
    DecoderBody(without_cache, false, true);
    GraphBuilder with_cache(GraphBuilder::SetGraph(branches, "then_branch"), spec_.seed + 1);
    DecoderBody(with_cache, true, true);
    branches->clear_output();
    for (const auto& output : first->output()) {
      branches->add_output(output.name());
      *model.mutable_graph()->add_output() = output;
    }
    return model;
  }

 private:
  // The decoder's inputs: the merged decoder takes all of them, the
  // encoder's keys and values of any length (a first step gets empty ones).
  void DecoderInputs(GraphBuilder& g, bool past, bool merged) const {
    const std::int64_t h = spec_.heads;
    g.Input("input_ids", onnx::TensorProto::INT64, {-1, -1},
            {"batch_size", "decoder_sequence_length"});
    if (!past || merged) {
      g.Input("encoder_hidden_states", onnx::TensorProto::FLOAT,
              {-1, kEncoderFrames, spec_.d_model}, {"batch_size"});
    }
    for (std::int64_t l = 0; past && l < spec_.layers; ++l) {
      for (const char* which : {"decoder.key", "decoder.value"}) {
        g.Input(fmt::format("past_key_values.{}.{}", l, which), onnx::TensorProto::FLOAT,
                {-1, h, -1, head_dim_}, {"batch_size", "", "past_decoder_sequence_length"});
      }
      for (const char* which : {"encoder.key", "encoder.value"}) {
        g.Input(fmt::format("past_key_values.{}.{}", l, which), onnx::TensorProto::FLOAT,
                {-1, h, merged ? -1 : kEncoderFrames, head_dim_},
                {"batch_size", "", "encoder_sequence_length_out"});
      }
    }
    if (merged) g.Input("use_cache_branch", onnx::TensorProto::BOOL, {1});
  }

  // What a decoder computes from its inputs, into `g`'s outputs: logits and
  // the presents (the encoder's too without the cache, or when merged).
  void DecoderBody(GraphBuilder& g, bool past, bool merged) const {
    const std::int64_t d = spec_.d_model;
    const std::vector<std::string> ids_dims = {"batch_size", "decoder_sequence_length"};
    const std::vector<std::string> present_dims = {
        "batch_size", "", past ? "past_decoder_sequence_length + 1" : "decoder_sequence_length"};
    const std::vector<std::string> encoder_dims = {"batch_size", "", "encoder_sequence_length_out"};
    const std::int64_t frames = merged ? -1 : kEncoderFrames;
    g.Ints("heads_shape", {0, 0, spec_.heads, head_dim_});
    g.Ints("merge_shape", {0, 0, d});
    g.Scalar("scale", 1.0f / std::sqrt(static_cast<float>(head_dim_)));
    auto zero = g.Ints("zero", {0});
    auto one = g.Ints("one", {1});

    // Positions: 0..S-1, or the cache's length for the one new token.
    std::string positions;
    if (past) {
      auto* length = g.Node("Shape", {"past_key_values.0.decoder.key"});
      GraphBuilder::SetInt(length, "start", 2);
      GraphBuilder::SetInt(length, "end", 3);
      positions = g.Op("Add", {g.Op("Mul", {"input_ids", zero}), length->output(0)});
    } else {
      auto ones = g.Op("Add", {g.Op("Mul", {"input_ids", zero}), one});
      auto axis = g.Op("Squeeze", {one, zero});
      positions = g.Op("Sub", {g.Op("CumSum", {ones, axis}), one});
    }
    auto clamped = g.Op("Min", {positions, g.Ints("last_position", {kMaxPositions - 1})});
    auto table = g.Weight("embed_tokens", {vocab_, d}, 0.02f);
    auto x = g.Op(
        "Add", {g.Op("Gather", {table, "input_ids"}),
                g.Op("Gather", {g.Weight("embed_positions", {kMaxPositions, d}, 0.01f), clamped})});
    std::string mask;
    if (!past) {  // a token attends to itself and those before it
      auto rows = g.Op("Unsqueeze", {positions, g.Ints("axis2", {2})});
      auto columns = g.Op("Unsqueeze", {positions, one});
      auto* future = g.Node("Cast", {g.Op("Greater", {columns, rows})});
      GraphBuilder::SetInt(future, "to", onnx::TensorProto::FLOAT);
      mask = g.Op("Unsqueeze",
                  {g.Op("Mul", {future->output(0), g.Scalar("minus_infinity", -1e9f)}), one});
    }
    std::string loud_key;
    for (std::int64_t l = 0; l < spec_.layers; ++l) {
      const std::string layer = fmt::format("layers.{}", l);
      auto key = Heads(g, g.Op("MatMul", {x, g.Linear(layer + ".k", d, d)}));
      auto value = Heads(g, g.Op("MatMul", {x, g.Linear(layer + ".v", d, d)}));
      if (past) {
        key = Concat(g, fmt::format("past_key_values.{}.decoder.key", l), key);
        value = Concat(g, fmt::format("past_key_values.{}.decoder.value", l), value);
      }
      Present(g, key, fmt::format("present.{}.decoder.key", l), -1, present_dims);
      Present(g, value, fmt::format("present.{}.decoder.value", l), -1, present_dims);
      x = g.Op("Add", {x, Attention(g, layer + ".self", x, key, value, mask)});
      std::string cross_key = fmt::format("past_key_values.{}.encoder.key", l);
      std::string cross_value = fmt::format("past_key_values.{}.encoder.value", l);
      if (!past) {
        cross_key = Heads(g, "encoder_hidden_states");
        cross_value = cross_key;
      }
      if (!past || merged) {
        Present(g, cross_key, fmt::format("present.{}.encoder.key", l), frames, encoder_dims);
        Present(g, cross_value, fmt::format("present.{}.encoder.value", l), frames, encoder_dims);
      }
      if (l == 0) loud_key = cross_key;
      x = g.Op("Add", {x, Attention(g, layer + ".cross", x, cross_key, cross_value, "")});
    }
    // What the layers compute moves the logits by at most 0.001; the script decides.
    auto* tied = g.Node("Transpose", {table});
    GraphBuilder::SetInts(tied, "perm", {1, 0});
    auto computed = g.Op("Mul", {g.Op("Tanh", {g.Op("MatMul", {x, tied->output(0)})}),
                                 g.Scalar("computed_scale", 0.001f)});
    g.Op("Add", {Forced(g, loud_key, positions), computed}, "logits");
    g.Output("logits", onnx::TensorProto::FLOAT, {-1, -1, vocab_}, ids_dims);
  }

  // [B, T, D] → [B, H, T, D/H].
  std::string Heads(GraphBuilder& g, const std::string& x) const {
    auto* heads = g.Node("Transpose", {g.Op("Reshape", {x, "heads_shape"})});
    GraphBuilder::SetInts(heads, "perm", {0, 2, 1, 3});
    return heads->output(0);
  }

  std::string Concat(GraphBuilder& g, const std::string& cached, const std::string& fresh) const {
    auto* concat = g.Node("Concat", {cached, fresh});
    GraphBuilder::SetInt(concat, "axis", 2);
    return concat->output(0);
  }

  // Output `name`: [batch, heads, `length` (-1: variable), head_dim].
  void Present(GraphBuilder& g, const std::string& value, const std::string& name,
               std::int64_t length, const std::vector<std::string>& dims) const {
    g.Op("Identity", {value}, name);
    g.Output(name, onnx::TensorProto::FLOAT, {-1, spec_.heads, length, head_dim_}, dims);
  }

  std::string Attention(GraphBuilder& g, const std::string& name, const std::string& x,
                        const std::string& key, const std::string& value,
                        const std::string& mask) const {
    const std::int64_t d = spec_.d_model;
    auto query = Heads(g, g.Op("MatMul", {x, g.Linear(name + ".q", d, d)}));
    auto* keys = g.Node("Transpose", {key});
    GraphBuilder::SetInts(keys, "perm", {0, 1, 3, 2});
    auto scores = g.Op("Mul", {g.Op("MatMul", {query, keys->output(0)}), "scale"});
    if (!mask.empty()) scores = g.Op("Add", {scores, mask});
    auto* weights = g.Node("Softmax", {scores});
    GraphBuilder::SetInt(weights, "axis", -1);
    auto* merged = g.Node("Transpose", {g.Op("MatMul", {weights->output(0), value})});
    GraphBuilder::SetInts(merged, "perm", {0, 2, 1, 3});
    auto flat = g.Op("Reshape", {merged->output(0), "merge_shape"});
    return g.Op("MatMul", {flat, g.Linear(name + ".o", d, d)});
  }

  // One-hot logits of the script's token at each position; the loud script
  // when the encoder's marker is set.
  std::string Forced(GraphBuilder& g, const std::string& cross_key,
                     const std::string& positions) const {
    const auto length = static_cast<std::int64_t>(script_.size() / 2);
    auto* corner =
        g.Node("Slice", {cross_key, g.Ints("corner_starts", {0, 0, 0}),
                         g.Ints("corner_ends", {1, 1, 1}), g.Ints("corner_axes", {1, 2, 3})});
    auto marker = g.Op("Reshape", {corner->output(0), g.Ints("marker_shape", {-1, 1})});
    auto* loud =
        g.Node("Cast", {g.Op("Greater", {marker, g.Scalar("marker_half", kLoudMarker / 2)})});
    GraphBuilder::SetInt(loud, "to", onnx::TensorProto::INT64);
    auto offset = g.Op("Mul", {loud->output(0), g.Ints("script_length", {length})});
    auto index = g.Op("Add", {g.Op("Min", {positions, g.Ints("last_step", {length - 1})}), offset});
    auto tokens = g.Op("Gather", {g.Ints("script", script_), index});
    auto* hot = g.Node("OneHot", {tokens, g.Ints("depth", {vocab_}),
                                  g.Floats("hot_values", {2}, {0.0f, kMargin})});
    GraphBuilder::SetInt(hot, "axis", -1);
    return hot->output(0);
  }

  const WhisperStandIn& spec_;
  std::int64_t vocab_;
  std::int64_t head_dim_;
  std::vector<std::int64_t> script_;  // quiet then loud, each padded with <|endoftext|>
};

}  // namespace

Status WriteWhisperStandIn(const WhisperStandIn& spec, const std::filesystem::path& folder) {
  if (spec.d_model % spec.heads != 0)
    return InvalidArgument("d_model {} is not a multiple of heads {}", spec.d_model, spec.heads);
  std::int64_t first_special = 0;
  const std::vector<std::string> tokens = Vocabulary(spec, &first_special);
  std::map<std::string, std::int64_t> ids;
  for (std::size_t id = 0; id < tokens.size(); ++id) {
    if (!ids.emplace(tokens[id], id).second)
      return InvalidArgument("'{}' is in the vocabulary twice", tokens[id]);
  }
  const std::size_t length = std::max(spec.loud.size(), spec.quiet.size()) + 1;
  std::vector<std::int64_t> script;
  for (const auto* words : {&spec.quiet, &spec.loud}) {
    for (const auto& word : *words) {
      auto it = ids.find(word);
      if (it == ids.end())
        return InvalidArgument("the script's '{}' is not in the vocabulary", word);
      script.push_back(it->second);
    }
    script.resize(script.size() + length - words->size(), first_special);  // <|endoftext|>
  }
  Whisper whisper(spec, static_cast<std::int64_t>(tokens.size()), std::move(script));
  BRAID_RETURN_IF_ERROR(CheckAndWriteModel(whisper.Encoder(), folder / "encoder_model.onnx"));
  BRAID_RETURN_IF_ERROR(CheckAndWriteModel(whisper.Decoder(false), folder / "decoder_model.onnx"));
  BRAID_RETURN_IF_ERROR(
      CheckAndWriteModel(whisper.Decoder(true), folder / "decoder_with_past_model.onnx"));
  BRAID_RETURN_IF_ERROR(
      CheckAndWriteModel(whisper.MergedDecoder(), folder / "decoder_model_merged.onnx"));
  std::ofstream out(folder / "tokenizer.json", std::ios::binary | std::ios::trunc);
  if (!(out << WhisperTokenizerJson(tokens, first_special)))
    return Internal("cannot write {}", (folder / "tokenizer.json").string());
  return Status::Ok();
}

}  // namespace braid::onnxgen
