#include "backends/pocketsphinx/pocketsphinx_backend.h"

#include <pocketsphinx.h>

#include <cmath>

#include "preprocess/audio.h"

namespace braid {
namespace {

constexpr char kDefaultModelDir[] = "/usr/share/pocketsphinx/model/en-us";
constexpr double kFramesPerSecond = 100.0;  // PocketSphinx's 10 ms frames

class PocketSphinxInstance : public ModelInstance {
 public:
  PocketSphinxInstance(cmd_ln_t* config, ps_decoder_t* decoder, AudioLimits limits)
      : config_(config), decoder_(decoder), limits_(limits) {}
  ~PocketSphinxInstance() override {
    ps_free(decoder_);
    cmd_ln_free_r(config_);
  }

  // ModelInstance
  Status Execute(std::span<const Tensor> inputs, std::vector<Tensor>* outputs) override {
    BRAID_ASSIGN_OR_RETURN(auto clips, inputs[0].Strings());
    if (clips.size() != 1)
      return InvalidArgument("the ASR model takes one audio clip per request, not {}",
                             clips.size());
    BRAID_ASSIGN_OR_RETURN(
        Audio audio,
        DecodeAudio(std::as_bytes(std::span(clips[0].data(), clips[0].size())), limits_));
    std::vector<std::int16_t> pcm(audio.samples.size());
    for (std::size_t i = 0; i < pcm.size(); ++i) {
      pcm[i] = static_cast<std::int16_t>(
          std::lround(std::clamp(audio.samples[i], -1.0f, 1.0f) * 32767.0f));
    }
    if (ps_start_utt(decoder_) < 0) return Internal("pocketsphinx could not start an utterance");
    ps_process_raw(decoder_, pcm.data(), pcm.size(), FALSE, TRUE);
    ps_end_utt(decoder_);
    std::int32_t score = 0;
    const char* hypothesis = ps_get_hyp(decoder_, &score);
    std::vector<std::string> words;
    std::vector<float> timings;
    for (ps_seg_t* seg = ps_seg_iter(decoder_); seg != nullptr; seg = ps_seg_next(seg)) {
      std::string word = ps_seg_word(seg);
      if (word.empty() || word[0] == '<' || word[0] == '[') continue;  // <s>, </s>, <sil>, [NOISE]
      if (auto paren = word.find('('); paren != std::string::npos)
        word.resize(paren);  // alternate pronunciations
      int start = 0, end = 0;
      ps_seg_frames(seg, &start, &end);
      words.push_back(std::move(word));
      timings.push_back(static_cast<float>(start / kFramesPerSecond));
      timings.push_back(static_cast<float>((end + 1) / kFramesPerSecond));
    }
    const auto n = static_cast<std::int64_t>(words.size());
    BRAID_ASSIGN_OR_RETURN(Tensor text, Tensor::FromStrings({hypothesis ? hypothesis : ""}, {1}));
    BRAID_ASSIGN_OR_RETURN(Tensor word_tensor, Tensor::FromStrings(words, {n}));
    BRAID_ASSIGN_OR_RETURN(Tensor timing_tensor, Tensor::Allocate(DataType::kFp32, {n, 2}));
    std::copy(timings.begin(), timings.end(), timing_tensor.mutable_span<float>().begin());
    *outputs = {text, word_tensor, timing_tensor};
    return Status::Ok();
  }

 private:
  cmd_ln_t* config_;
  ps_decoder_t* decoder_;
  AudioLimits limits_;
};

Result<std::vector<ModelInstancePtr>> Load(const ModelConfig& config, const AudioLimits& server) {
  const auto& in = config.inputs;
  const auto& out = config.outputs;
  if (!(in.size() == 1 && in[0].datatype == DataType::kBytes && out.size() == 3 &&
        out[0].datatype == DataType::kBytes && out[1].datatype == DataType::kBytes &&
        out[2].datatype == DataType::kFp32 && config.max_batch_size == 0)) {
    return InvalidArgument(
        "{}: a pocketsphinx model takes max_batch_size 0, one BYTES input (the audio) and three "
        "outputs: text "
        "BYTES, words BYTES, timings FP32",
        config.config_path().string());
  }
  const std::filesystem::path model_dir = config.Parameter("model_dir", kDefaultModelDir);
  const std::string hmm = (model_dir / "en-us").string();
  const std::string lm = (model_dir / "en-us.lm.bin").string();
  const std::string dict = (model_dir / "cmudict-en-us.dict").string();
  std::error_code error;
  for (const auto& path : {hmm, lm, dict}) {
    if (!std::filesystem::exists(path, error)) {
      return NotFound("{}: pocketsphinx model file {} is missing (install pocketsphinx-en-us)",
                      config.config_path().string(), path);
    }
  }
  AudioLimits limits;
  try {
    limits.max_seconds =
        std::min(server.max_seconds, std::stod(config.Parameter("max_seconds", "600")));
  } catch (const std::exception&) {
    return InvalidArgument("{}: parameters.max_seconds must be a number",
                           config.config_path().string());
  }
  std::vector<ModelInstancePtr> instances;
  for (int i = 0; i < config.InstancesToLoad(); ++i) {
    // Batch cepstral mean normalisation over each whole clip: a clip's
    // transcript then does not depend on what the decoder heard before.
    cmd_ln_t* ps_config =
        cmd_ln_init(nullptr, ps_args(), TRUE, "-hmm", hmm.c_str(), "-lm", lm.c_str(), "-dict",
                    dict.c_str(), "-logfn", "/dev/null", "-cmn", "batch", nullptr);
    if (ps_config == nullptr)
      return Internal("{}: pocketsphinx rejected its configuration", config.config_path().string());
    ps_decoder_t* decoder = ps_init(ps_config);
    if (decoder == nullptr) {
      cmd_ln_free_r(ps_config);
      return Internal("{}: pocketsphinx could not load its model from {}",
                      config.config_path().string(), model_dir.string());
    }
    instances.push_back(std::make_unique<PocketSphinxInstance>(ps_config, decoder, limits));
  }
  return instances;
}

}  // namespace

BackendFactory MakePocketSphinxBackend(AudioLimits limits) {
  return [limits](const ModelConfig& config, const std::filesystem::path&) {
    return Load(config, limits);
  };
}

}  // namespace braid
