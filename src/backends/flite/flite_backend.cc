#include "backends/flite/flite_backend.h"

#include <flite/flite.h>

#include <algorithm>
#include <map>
#include <mutex>

#include "model/config.h"

extern "C" {
cst_voice* register_cmu_us_slt(const char* voxdir);
cst_voice* register_cmu_us_rms(const char* voxdir);
cst_voice* register_cmu_us_awb(const char* voxdir);
cst_voice* register_cmu_us_kal(const char* voxdir);
cst_voice* register_cmu_us_kal16(const char* voxdir);
}

namespace braid {
namespace {

// A voice and the lock that serialises synthesis with it: flite keeps
// per-voice state while it speaks.
struct Voice {
  cst_voice* voice = nullptr;
  std::mutex mutex;
};

// The voices, registered with flite once per process.
std::map<std::string, Voice>& Voices() {
  static std::map<std::string, Voice>* voices = [] {
    flite_init();
    auto* map = new std::map<std::string, Voice>();
    (*map)["slt"].voice = register_cmu_us_slt(nullptr);
    (*map)["rms"].voice = register_cmu_us_rms(nullptr);
    (*map)["awb"].voice = register_cmu_us_awb(nullptr);
    (*map)["kal"].voice = register_cmu_us_kal(nullptr);
    (*map)["kal16"].voice = register_cmu_us_kal16(nullptr);
    return map;
  }();
  return *voices;
}

class FliteInstance : public ModelInstance {
 public:
  FliteInstance(std::string default_voice, std::size_t max_chars)
      : default_voice_(std::move(default_voice)), max_chars_(max_chars) {}

  Status Execute(std::span<const Tensor> inputs, std::vector<Tensor>* outputs) override {
    BRAID_ASSIGN_OR_RETURN(auto texts, inputs[0].Strings());
    BRAID_ASSIGN_OR_RETURN(auto voices, inputs[1].Strings());
    if (texts.size() != 1 || voices.size() != 1)
      return InvalidArgument("tts takes one text and one voice");
    const std::string_view text = texts[0];
    if (text.find_first_not_of(" \t\r\n") == std::string_view::npos)
      return InvalidArgument("there is no text to speak");
    if (text.size() > max_chars_)
      return MakeStatus(StatusCode::kTooLarge, "{} characters of text is over the {} allowed",
                        text.size(), max_chars_);
    const std::string name = voices[0].empty() ? default_voice_ : std::string(voices[0]);
    auto it = Voices().find(name);
    if (it == Voices().end() || it->second.voice == nullptr)
      return InvalidArgument("unknown voice '{}'", name);
    cst_wave* wave = nullptr;
    {
      std::lock_guard lock(it->second.mutex);
      wave = flite_text_to_wave(std::string(text).c_str(), it->second.voice);
    }
    if (wave == nullptr) return Internal("flite could not synthesise the text");
    const auto samples = static_cast<std::int64_t>(std::max(0, wave->num_samples));
    BRAID_ASSIGN_OR_RETURN(Tensor audio, Tensor::Allocate(DataType::kFp32, {samples}));
    auto out = audio.mutable_span<float>();
    for (std::int64_t i = 0; i < samples; ++i) out[i] = wave->samples[i] / 32768.0f;
    BRAID_ASSIGN_OR_RETURN(Tensor rate, Tensor::Allocate(DataType::kInt32, {1}));
    rate.mutable_span<std::int32_t>()[0] = wave->sample_rate;
    delete_wave(wave);
    *outputs = {std::move(audio), std::move(rate)};
    return Status::Ok();
  }

 private:
  const std::string default_voice_;
  const std::size_t max_chars_;
};

Status CheckInterface(const ModelConfig& config) {
  const auto& in = config.inputs;
  const auto& out = config.outputs;
  if (config.max_batch_size == 0 && in.size() == 2 && in[0].datatype == DataType::kBytes &&
      in[1].datatype == DataType::kBytes && out.size() == 2 && out[0].datatype == DataType::kFp32 &&
      out[1].datatype == DataType::kInt32) {
    return Status::Ok();
  }
  return InvalidArgument(
      "{}: a flite model takes max_batch_size 0, two BYTES inputs (text, voice) and two outputs: "
      "audio FP32, sample_rate INT32",
      config.config_path().string());
}

Result<std::vector<ModelInstancePtr>> Load(const ModelConfig& config,
                                           const std::filesystem::path&) {
  BRAID_RETURN_IF_ERROR(CheckInterface(config));
  const std::string voice = config.Parameter("voice", "slt");
  if (!Voices().contains(voice))
    return InvalidArgument("{}: parameters.voice '{}' is not a flite voice",
                           config.config_path().string(), voice);
  std::size_t max_chars = 0;
  try {
    max_chars = std::stoul(config.Parameter("max_chars", "4096"));
  } catch (const std::exception&) {
    return InvalidArgument("{}: parameters.max_chars must be a number",
                           config.config_path().string());
  }
  std::vector<ModelInstancePtr> instances;
  for (int i = 0; i < config.InstancesToLoad(); ++i)
    instances.push_back(std::make_unique<FliteInstance>(voice, max_chars));
  return instances;
}

}  // namespace

BackendFactory MakeFliteBackend() { return Load; }

}  // namespace braid
