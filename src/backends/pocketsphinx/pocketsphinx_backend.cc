#include "backends/pocketsphinx/pocketsphinx_backend.h"

#include <pocketsphinx.h>
#include <sphinxbase/cmn.h>
#include <sphinxbase/err.h>
#include <sphinxbase/feat.h>

#include <algorithm>
#include <mutex>
#include <optional>
#include <vector>

#include "preprocess/audio.h"

namespace braid {
namespace {

constexpr char kDefaultModelDir[] = "/usr/share/pocketsphinx/model/en-us";
constexpr double kFramesPerSecond = 100.0;  // PocketSphinx's 10 ms frames

// PocketSphinx logs through a process-wide FILE that each ps_init given
// -logfn closes and reopens: two decoders opened at once closed the same
// FILE twice (a deadlock inside glibc's stdio), and one opened while others
// decode would pull the FILE from under their writes. Logging is turned off
// once for the process instead, and decoders are opened and freed one at a
// time.
std::mutex& DecoderLifetimes() {
  static std::mutex mutex;
  static std::once_flag quiet;
  std::call_once(quiet, [] { err_set_logfp(nullptr); });
  return mutex;
}

// A decoder with its configuration, freed together.
struct Decoder {
  Decoder(cmd_ln_t* config, ps_decoder_t* decoder) : config(config), decoder(decoder) {}
  ~Decoder() {
    std::lock_guard lock(DecoderLifetimes());
    ps_free(decoder);
    cmd_ln_free_r(config);
  }
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  cmd_ln_t* config;
  ps_decoder_t* decoder;
};

// The model files of `config`, checked to exist.
struct ModelFiles {
  std::string hmm, lm, dict, model_dir;
};

Result<ModelFiles> FindModelFiles(const ModelConfig& config) {
  const std::filesystem::path model_dir = config.Parameter("model_dir", kDefaultModelDir);
  ModelFiles files{(model_dir / "en-us").string(), (model_dir / "en-us.lm.bin").string(),
                   (model_dir / "cmudict-en-us.dict").string(), model_dir.string()};
  std::error_code error;
  for (const auto& path : {files.hmm, files.lm, files.dict}) {
    if (!std::filesystem::exists(path, error)) {
      return NotFound("{}: pocketsphinx model file {} is missing (install pocketsphinx-en-us)",
                      config.config_path().string(), path);
    }
  }
  return files;
}

// How a stream's decoder prunes its search (-maxhmmpf, -maxwpf), since it
// must keep up with real time.
struct StreamPruning {
  std::string max_hmms;
  std::string max_words;
};

// Clips are decoded with cepstral mean normalisation over the whole clip (a
// clip's transcript then does not depend on what the decoder heard before).
// Streams (`stream` given) normalise from what was heard so far and prune
// their search (1.7× faster on the fixtures, same words). They keep every
// frame and no noise estimate: braid's own voice detector already cut the
// utterance out (PocketSphinx's would shift the words' times), and a noise
// estimate carried from an earlier stream would change a later stream's
// words. cmd_ln_init copies its arguments.
Result<std::unique_ptr<Decoder>> OpenDecoder(const ModelConfig& config, const ModelFiles& files,
                                             const StreamPruning* stream) {
  std::lock_guard lock(DecoderLifetimes());
  cmd_ln_t* ps_config =
      stream ? cmd_ln_init(nullptr, ps_args(), TRUE, "-hmm", files.hmm.c_str(), "-lm",
                           files.lm.c_str(), "-dict", files.dict.c_str(), "-cmn", "live",
                           "-remove_silence", "no", "-remove_noise", "no", "-maxhmmpf",
                           stream->max_hmms.c_str(), "-maxwpf", stream->max_words.c_str(), nullptr)
             : cmd_ln_init(nullptr, ps_args(), TRUE, "-hmm", files.hmm.c_str(), "-lm",
                           files.lm.c_str(), "-dict", files.dict.c_str(), "-cmn", "batch", nullptr);
  if (ps_config == nullptr)
    return Internal("{}: pocketsphinx rejected its configuration", config.config_path().string());
  ps_decoder_t* decoder = ps_init(ps_config);
  if (decoder == nullptr) {
    cmd_ln_free_r(ps_config);
    return Internal("{}: pocketsphinx could not load its model from {}",
                    config.config_path().string(), files.model_dir);
  }
  return std::make_unique<Decoder>(ps_config, decoder);
}

// The words of the utterance just decoded, without fillers (<s>, </s>,
// <sil>, [NOISE]) and alternate-pronunciation marks, with times from the
// utterance's start. A decoder numbers its frames on from one utterance to
// the next (its n-gram search keeps counting), so they are taken from the
// first segment's, the <s> that opens the utterance at its frame 0.
std::vector<RecognisedWord> Words(ps_decoder_t* decoder) {
  std::vector<RecognisedWord> words;
  std::optional<int> origin;
  for (ps_seg_t* seg = ps_seg_iter(decoder); seg != nullptr; seg = ps_seg_next(seg)) {
    int start = 0, end = 0;
    ps_seg_frames(seg, &start, &end);
    if (!origin) origin = start;
    std::string word = ps_seg_word(seg);
    if (word.empty() || word[0] == '<' || word[0] == '[') continue;
    if (auto paren = word.find('('); paren != std::string::npos) word.resize(paren);
    words.push_back({std::move(word), (start - *origin) / kFramesPerSecond,
                     (end + 1 - *origin) / kFramesPerSecond});
  }
  return words;
}

class PocketSphinxInstance : public ModelInstance {
 public:
  PocketSphinxInstance(std::unique_ptr<Decoder> decoder, AudioLimits limits)
      : decoder_(std::move(decoder)), limits_(limits) {}

  // ModelInstance
  Status Execute(std::span<const Tensor> inputs, std::vector<Tensor>* outputs) override {
    BRAID_ASSIGN_OR_RETURN(auto clips, inputs[0].Strings());
    if (clips.size() != 1)
      return InvalidArgument("the ASR model takes one audio clip per request, not {}",
                             clips.size());
    BRAID_ASSIGN_OR_RETURN(
        Audio audio,
        DecodeAudio(std::as_bytes(std::span(clips[0].data(), clips[0].size())), limits_));
    const std::vector<std::int16_t> pcm = ToPcm16(audio.samples);
    ps_decoder_t* decoder = decoder_->decoder;
    if (ps_start_utt(decoder) < 0) return Internal("pocketsphinx could not start an utterance");
    ps_process_raw(decoder, pcm.data(), pcm.size(), FALSE, TRUE);
    ps_end_utt(decoder);
    std::int32_t score = 0;
    const char* hypothesis = ps_get_hyp(decoder, &score);
    std::vector<std::string> words;
    std::vector<float> timings;
    for (RecognisedWord& word : Words(decoder)) {
      words.push_back(std::move(word.word));
      timings.push_back(static_cast<float>(word.start));
      timings.push_back(static_cast<float>(word.end));
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
  std::unique_ptr<Decoder> decoder_;
  AudioLimits limits_;
};

// A stream's decoder normalises each frame by the mean of what it has heard
// (-cmn live), carried from one utterance to the next. Decoders are reused
// across streams, so a stream starts from the mean the model ships with, as
// a fresh decoder would: reused or fresh, the same audio gives the same
// words.
class PocketSphinxRecogniser : public StreamingRecogniser {
 public:
  explicit PocketSphinxRecogniser(std::unique_ptr<Decoder> decoder) : decoder_(std::move(decoder)) {
    const cmn_t& cmn = Normalisation();
    initial_mean_.assign(cmn.cmn_mean, cmn.cmn_mean + cmn.veclen);
    initial_sum_.assign(cmn.sum, cmn.sum + cmn.veclen);
    initial_frames_ = cmn.nframe;
  }

  // StreamingRecogniser
  Status Begin() override {
    if (ps_start_utt(decoder_->decoder) < 0)
      return Internal("pocketsphinx could not start an utterance");
    return Status::Ok();
  }
  Status Feed(std::span<const std::int16_t> samples) override {
    if (ps_process_raw(decoder_->decoder, samples.data(), samples.size(), FALSE, FALSE) < 0)
      return Internal("pocketsphinx could not decode the audio");
    return Status::Ok();
  }
  std::string Partial() override {
    std::int32_t score = 0;
    const char* hypothesis = ps_get_hyp(decoder_->decoder, &score);
    return hypothesis ? hypothesis : "";
  }
  Result<std::vector<RecognisedWord>> End() override {
    if (ps_end_utt(decoder_->decoder) < 0)
      return Internal("pocketsphinx could not end the utterance");
    return Words(decoder_->decoder);
  }
  void Reset() override {
    cmn_t& cmn = Normalisation();
    std::copy(initial_mean_.begin(), initial_mean_.end(), cmn.cmn_mean);
    std::copy(initial_sum_.begin(), initial_sum_.end(), cmn.sum);
    cmn.nframe = initial_frames_;
  }

 private:
  cmn_t& Normalisation() { return *ps_get_feat(decoder_->decoder)->cmn_struct; }

  std::unique_ptr<Decoder> decoder_;
  std::vector<mfcc_t> initial_mean_;
  std::vector<mfcc_t> initial_sum_;
  std::int32_t initial_frames_ = 0;
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
  BRAID_ASSIGN_OR_RETURN(ModelFiles files, FindModelFiles(config));
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
    BRAID_ASSIGN_OR_RETURN(auto decoder, OpenDecoder(config, files, nullptr));
    instances.push_back(std::make_unique<PocketSphinxInstance>(std::move(decoder), limits));
  }
  return instances;
}

}  // namespace

StreamingRecogniserFactory MakePocketSphinxRecognisers() {
  return [](const ModelConfig& config) -> Result<std::unique_ptr<StreamingRecogniser>> {
    BRAID_ASSIGN_OR_RETURN(ModelFiles files, FindModelFiles(config));
    StreamPruning pruning{config.Parameter("stream_max_hmms", "3000"),
                          config.Parameter("stream_max_words", "5")};
    for (const auto& [parameter, value] : {std::pair{"stream_max_hmms", &pruning.max_hmms},
                                           std::pair{"stream_max_words", &pruning.max_words}}) {
      if (value->empty() || value->find_first_not_of("0123456789") != std::string::npos)
        return InvalidArgument("{}: parameters.{} must be a whole number, not '{}'",
                               config.config_path().string(), parameter, *value);
    }
    BRAID_ASSIGN_OR_RETURN(auto decoder, OpenDecoder(config, files, &pruning));
    return std::unique_ptr<StreamingRecogniser>(new PocketSphinxRecogniser(std::move(decoder)));
  };
}

BackendFactory MakePocketSphinxBackend(AudioLimits limits) {
  return [limits](const ModelConfig& config, const std::filesystem::path&) {
    return Load(config, limits);
  };
}

}  // namespace braid
