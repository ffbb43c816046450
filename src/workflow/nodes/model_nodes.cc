// Kinds backed by a served model: model (any model, its inputs and outputs
// by name), project (the alignment heads: CLIP embeddings into the shared
// space) and tts (speech synthesis, answered as a WAV data URL).
#include <charconv>

#include "core/base64.h"
#include "preprocess/audio_encoder.h"
#include "workflow/executor.h"
#include "workflow/nodes/nodes.h"

namespace braid {
namespace {

// What every model-backed kind shares: stored under its model's cache
// policy, queued by priority, the model named by `model` or a default.
class ModelBackedKind : public NodeKind {
 public:
  explicit ModelBackedKind(std::string default_model) : default_model_(std::move(default_model)) {}
  NodeCaching caching() const override { return NodeCaching::kModel; }
  bool queued_by_priority() const override { return true; }
  std::string Model(const NodeSpec& node) const override {
    auto model = node.params.find("model");
    return model != node.params.end() ? model->second : default_model_;
  }

 private:
  std::string default_model_;
};

class ModelKind : public ModelBackedKind {
 public:
  ModelKind() : ModelBackedKind("") {}
  std::vector<std::string> Parameters() const override { return {"model", "priority"}; }
  Status Check(NodeSpec& node) const override {
    if (!node.params.count("model")) return InvalidArgument("needs 'model'");
    return Priority(node).status();
  }
  Result<std::vector<std::string>> Outputs(const NodeSpec& node,
                                           const ModelCatalog& catalog) const override {
    std::vector<std::string> inputs;
    for (const auto& [input, ref] : node.from) inputs.push_back(input);
    return catalog(node.params.at("model"), inputs);
  }
  void Run(NodeRun run, NodeDone done) const override {
    ModelCall call = run.call;
    if (run.node.params.count("priority")) call.priority = *Priority(run.node);
    run.executor.runner().Run(Model(run.node), std::move(run.inputs), call, std::move(done));
  }

 private:
  // `priority`, an integer from 0 (the model's default) to
  // kMaxRequestPriority, as a KServe request would ask for it; checked when
  // the workflow is loaded.
  static Result<int> Priority(const NodeSpec& node) {
    auto found = node.params.find("priority");
    if (found == node.params.end()) return 0;
    const std::string& text = found->second;
    std::int64_t number = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (error != std::errc() || end != text.data() + text.size())
      return InvalidArgument("'priority' must be an integer, not '{}'", text);
    return RequestPriority(number);
  }
};

// The alignment heads take both towers at once; a node may give one (an
// embedding pipeline) or both (a comparison). A tower not given gets zeros
// and yields no output.
class ProjectKind : public ModelBackedKind {
 public:
  ProjectKind() : ModelBackedKind("align") {}
  std::vector<std::string> Parameters() const override { return {"model"}; }
  Status Check(NodeSpec& node) const override {
    if (node.from.empty()) return InvalidArgument("needs 'from.image', 'from.text' or both");
    for (const auto& [input, reference] : node.from) {
      if (input != "image" && input != "text")
        return InvalidArgument("takes 'image' and 'text', not '{}'", input);
    }
    return Status::Ok();
  }
  Result<std::vector<std::string>> Outputs(const NodeSpec& node,
                                           const ModelCatalog& catalog) const override {
    BRAID_RETURN_IF_ERROR(catalog(Model(node), {"image_embeds", "text_embeds"}).status());
    std::vector<std::string> towers;
    for (const auto& [input, reference] : node.from) towers.push_back(input);
    return towers;
  }
  void Run(NodeRun run, NodeDone done) const override {
    if (run.inputs.empty()) return done(InvalidArgument("neither tower was given"));
    const Tensor& given = run.inputs.begin()->second;
    NamedTensors inputs;
    for (const auto& [input, tower] :
         {std::pair{"image_embeds", "image"}, {"text_embeds", "text"}}) {
      auto found = run.inputs.find(tower);
      if (found != run.inputs.end()) {
        inputs[input] = found->second;
        continue;
      }
      auto zeros = Tensor::Allocate(DataType::kFp32, given.shape());
      if (!zeros.ok()) return done(zeros.status());
      inputs[input] = *zeros;
    }
    const bool image = run.inputs.count("image") > 0;
    const bool text = run.inputs.count("text") > 0;
    run.executor.runner().Run(Model(run.node), std::move(inputs), run.call,
                              [image, text, done = std::move(done)](Result<NamedTensors> result) {
                                if (!result.ok()) return done(result.status());
                                NamedTensors towers;
                                if (image) towers["image"] = (*result)["image_aligned"];
                                if (text) towers["text"] = (*result)["text_aligned"];
                                done(std::move(towers));
                              });
  }
};

class TtsKind : public ModelBackedKind {
 public:
  TtsKind() : ModelBackedKind("tts") {}
  std::vector<std::string> RequiredInputs() const override { return {"text"}; }
  std::vector<std::string> Parameters() const override { return {"voice", "model"}; }
  Result<std::vector<std::string>> Outputs(const NodeSpec& node,
                                           const ModelCatalog& catalog) const override {
    BRAID_RETURN_IF_ERROR(catalog(Model(node), {"text", "voice"}).status());
    return std::vector<std::string>{"audio"};
  }
  void Run(NodeRun run, NodeDone done) const override {
    auto voice = run.node.params.find("voice");
    NamedTensors inputs = {
        {"text", run.inputs["text"]},
        {"voice",
         *Tensor::FromStrings({voice == run.node.params.end() ? "" : voice->second}, {1})}};
    // A workflow's outputs are JSON: the speech goes out as a WAV data URL.
    run.executor.runner().Run(Model(run.node), std::move(inputs), run.call,
                              [done = std::move(done)](Result<NamedTensors> result) {
                                if (!result.ok()) return done(result.status());
                                const Tensor& audio = (*result)["audio"];
                                const int rate = (*result)["sample_rate"].span<std::int32_t>()[0];
                                const std::string url =
                                    "data:audio/wav;base64," +
                                    Base64Encode(EncodeWav(audio.span<float>(), rate));
                                done(NamedTensors{{"audio", *Tensor::FromStrings({url}, {1})}});
                              });
  }
};

}  // namespace

void RegisterModelNodes(NodeKindMap& kinds) {
  kinds["model"] = std::make_unique<ModelKind>();
  kinds["project"] = std::make_unique<ProjectKind>();
  kinds["tts"] = std::make_unique<TtsKind>();
}

}  // namespace braid
