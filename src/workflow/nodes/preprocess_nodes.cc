// Preprocessing kinds: decoded media, an image's layout descriptor and
// token ids, computed on the CPU pool. Media decoding is worth storing in the cache (a repeated
// image skips its decode and resize); tokenising is cheap enough to redo.
#include "preprocess/audio.h"
#include "preprocess/image.h"
#include "preprocess/layout.h"
#include "workflow/executor.h"
#include "workflow/nodes/nodes.h"

namespace braid {
namespace {

// The bytes of a preprocessing node's one input (an encoded image or
// audio file, or UTF-8 text).
std::span<const std::byte> MediaOf(const NodeRun& run) {
  const std::string_view media = FirstString(run.inputs.begin()->second);
  return std::as_bytes(std::span(media.data(), media.size()));
}

// What the kinds that read an image share: one `image` input, decoded
// under the server's caps with a short side of `min_short_side` or more
// (DecodeImage), and a result worth storing.
class ImageInputKind : public CpuNodeKind {
 public:
  explicit ImageInputKind(int min_short_side) : min_short_side_(min_short_side) {}
  std::vector<std::string> RequiredInputs() const override { return {"image"}; }
  std::optional<InputType> InputTypeOf(std::string_view) const override {
    return InputType::kImage;
  }
  NodeCaching caching() const override { return NodeCaching::kStored; }

 protected:
  Result<NamedTensors> Compute(NodeRun& run) const override {
    BRAID_ASSIGN_OR_RETURN(cv::Mat rgb, DecodeImage(MediaOf(run), run.executor.image_limits(),
                                                    false, min_short_side_));
    return FromImage(rgb);
  }
  virtual Result<NamedTensors> FromImage(const cv::Mat& rgb) const = 0;

 private:
  int min_short_side_;
};

class ImageKind : public ImageInputKind {
 public:
  ImageKind() : ImageInputKind(224) {}
  std::vector<std::string> Parameters() const override { return {"size"}; }
  Result<std::vector<std::string>> Outputs(const NodeSpec&, const ModelCatalog&) const override {
    return std::vector<std::string>{"pixel_values"};
  }

 protected:
  Result<NamedTensors> FromImage(const cv::Mat& rgb) const override {
    BRAID_ASSIGN_OR_RETURN(Tensor pixels, Tensor::Allocate(DataType::kFp32, {1, 3, 224, 224}));
    BRAID_RETURN_IF_ERROR(ClipPreprocess(rgb, pixels.mutable_span<float>().data()));
    return NamedTensors{{"pixel_values", pixels}};
  }
};

// The layout and colour descriptor of an image (LayoutDescriptor): the
// document space's companion to the text OCR reads.
class LayoutKind : public ImageInputKind {
 public:
  LayoutKind() : ImageInputKind(64) {}
  Result<std::vector<std::string>> Outputs(const NodeSpec&, const ModelCatalog&) const override {
    return std::vector<std::string>{"descriptor"};
  }

 protected:
  Result<NamedTensors> FromImage(const cv::Mat& rgb) const override {
    BRAID_ASSIGN_OR_RETURN(auto values, LayoutDescriptor(rgb));
    BRAID_ASSIGN_OR_RETURN(Tensor descriptor,
                           Tensor::Allocate(DataType::kFp32, {1, kLayoutDimensions}));
    std::copy(values.begin(), values.end(), descriptor.mutable_span<float>().begin());
    return NamedTensors{{"descriptor", descriptor}};
  }
};

class AudioKind : public CpuNodeKind {
 public:
  std::vector<std::string> RequiredInputs() const override { return {"audio"}; }
  Result<std::vector<std::string>> Outputs(const NodeSpec&, const ModelCatalog&) const override {
    return std::vector<std::string>{"samples", "log_mel"};
  }
  std::optional<InputType> InputTypeOf(std::string_view) const override {
    return InputType::kAudio;
  }
  NodeCaching caching() const override { return NodeCaching::kStored; }

 protected:
  Result<NamedTensors> Compute(NodeRun& run) const override {
    BRAID_ASSIGN_OR_RETURN(Audio audio, DecodeAudio(MediaOf(run), run.executor.audio_limits()));
    BRAID_ASSIGN_OR_RETURN(
        Tensor samples,
        Tensor::Allocate(DataType::kFp32, {1, static_cast<std::int64_t>(audio.samples.size())}));
    std::copy(audio.samples.begin(), audio.samples.end(), samples.mutable_span<float>().begin());
    auto mel = WhisperLogMel(audio.samples);
    BRAID_ASSIGN_OR_RETURN(Tensor log_mel,
                           Tensor::Allocate(DataType::kFp32, {1, kMelBins, kMelFrames}));
    std::copy(mel.begin(), mel.end(), log_mel.mutable_span<float>().begin());
    return NamedTensors{{"samples", samples}, {"log_mel", log_mel}};
  }
};

class TextKind : public CpuNodeKind {
 public:
  std::vector<std::string> RequiredInputs() const override { return {"text"}; }
  std::vector<std::string> Parameters() const override { return {"tokenizer"}; }
  Status Check(NodeSpec& node) const override {
    if (!node.params.count("tokenizer")) return InvalidArgument("needs 'tokenizer'");
    return Status::Ok();
  }
  Result<std::vector<std::string>> Outputs(const NodeSpec&, const ModelCatalog&) const override {
    return std::vector<std::string>{"input_ids", "attention_mask"};
  }
  std::optional<InputType> InputTypeOf(std::string_view) const override { return InputType::kText; }

 protected:
  Result<NamedTensors> Compute(NodeRun& run) const override {
    BRAID_ASSIGN_OR_RETURN(auto tokenizer,
                           run.executor.runner().TokenizerFor(run.node.params.at("tokenizer")));
    const std::string_view text = FirstString(run.inputs.begin()->second);
    BRAID_ASSIGN_OR_RETURN(auto ids, tokenizer->Encode(text));
    const Shape shape = {1, static_cast<std::int64_t>(ids.size())};
    BRAID_ASSIGN_OR_RETURN(Tensor tensor, Tensor::Allocate(DataType::kInt64, shape));
    std::copy(ids.begin(), ids.end(), tensor.mutable_span<std::int64_t>().begin());
    // 1 for the tokens, 0 for the padding, as Hugging Face exports take it.
    BRAID_ASSIGN_OR_RETURN(Tensor mask, Tensor::Allocate(DataType::kInt64, shape));
    auto marks = mask.mutable_span<std::int64_t>();
    const std::size_t tokens = tokenizer->Unpadded(ids);
    for (std::size_t i = 0; i < marks.size(); ++i) marks[i] = i < tokens ? 1 : 0;
    return NamedTensors{{"input_ids", tensor}, {"attention_mask", mask}};
  }
};

}  // namespace

void RegisterPreprocessNodes(NodeKindMap& kinds) {
  kinds["preprocess.image"] = std::make_unique<ImageKind>();
  kinds["preprocess.layout"] = std::make_unique<LayoutKind>();
  kinds["preprocess.audio"] = std::make_unique<AudioKind>();
  kinds["preprocess.text"] = std::make_unique<TextKind>();
}

}  // namespace braid
