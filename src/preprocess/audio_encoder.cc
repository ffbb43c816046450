#include "preprocess/audio_encoder.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#if BRAID_WITH_LAME
#include <lame/lame.h>
#endif

namespace braid {
namespace {

void AppendLittleEndian(std::string& out, std::uint32_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((value >> (8 * i)) & 0xff);
}

std::int16_t ToPcm16(float sample) {
  return static_cast<std::int16_t>(std::clamp(sample, -1.0f, 1.0f) * 32767.0f);
}

std::string Pcm16(std::span<const float> samples) {
  std::string out;
  out.reserve(samples.size() * 2);
  for (float s : samples) AppendLittleEndian(out, static_cast<std::uint16_t>(ToPcm16(s)), 2);
  return out;
}

std::string WavHeader(int rate, std::uint32_t data_bytes) {
  std::string out = "RIFF";
  AppendLittleEndian(out, data_bytes == 0xFFFFFFFFu ? data_bytes : 36 + data_bytes, 4);
  out += "WAVEfmt ";
  AppendLittleEndian(out, 16, 4);
  AppendLittleEndian(out, 1, 2);  // PCM
  AppendLittleEndian(out, 1, 2);  // mono
  AppendLittleEndian(out, static_cast<std::uint32_t>(rate), 4);
  AppendLittleEndian(out, static_cast<std::uint32_t>(rate) * 2, 4);
  AppendLittleEndian(out, 2, 2);
  AppendLittleEndian(out, 16, 2);
  out += "data";
  AppendLittleEndian(out, data_bytes, 4);
  return out;
}

class PcmEncoder : public AudioEncoder {
 public:
  PcmEncoder(int rate, bool wav) : rate_(rate), wav_(wav) {}
  std::string Start() override { return wav_ ? WavHeader(rate_, 0xFFFFFFFFu) : std::string(); }
  Result<std::string> Encode(std::span<const float> samples) override { return Pcm16(samples); }
  Result<std::string> Finish() override { return std::string(); }

 private:
  const int rate_;
  const bool wav_;
};

#if BRAID_WITH_LAME
class Mp3Encoder : public AudioEncoder {
 public:
  explicit Mp3Encoder(lame_global_flags* lame) : lame_(lame) {}
  ~Mp3Encoder() override { lame_close(lame_); }

  std::string Start() override { return {}; }

  Result<std::string> Encode(std::span<const float> samples) override {
    std::vector<short> pcm(samples.size());
    std::transform(samples.begin(), samples.end(), pcm.begin(), ToPcm16);
    // LAME's bound on the output of one call: 1.25 × samples + 7200.
    std::string out(samples.size() * 5 / 4 + 7200, '\0');
    const int written = lame_encode_buffer(
        lame_, pcm.data(), pcm.data(), static_cast<int>(pcm.size()),
        reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size()));
    if (written < 0) return Internal("the MP3 encoder failed ({})", written);
    out.resize(static_cast<std::size_t>(written));
    return out;
  }

  Result<std::string> Finish() override {
    std::string out(7200, '\0');
    const int written = lame_encode_flush(lame_, reinterpret_cast<unsigned char*>(out.data()),
                                          static_cast<int>(out.size()));
    if (written < 0) return Internal("the MP3 encoder failed ({})", written);
    out.resize(static_cast<std::size_t>(written));
    return out;
  }

 private:
  lame_global_flags* lame_;
};
#endif

}  // namespace

Result<AudioFormat> ParseAudioFormat(std::string_view name) {
  if (name == "wav") return AudioFormat::kWav;
  if (name == "pcm") return AudioFormat::kPcm;
#if BRAID_WITH_LAME
  if (name == "mp3") return AudioFormat::kMp3;
#endif
  return InvalidArgument("response_format '{}' is not one of {}", name, AudioFormatNames());
}

std::string_view AudioFormatNames() {
#if BRAID_WITH_LAME
  return "wav, pcm, mp3";
#else
  return "wav, pcm";
#endif
}

std::string_view AudioMediaType(AudioFormat format) {
  switch (format) {
    case AudioFormat::kWav:
      return "audio/wav";
    case AudioFormat::kPcm:
      return "audio/pcm";
    case AudioFormat::kMp3:
      return "audio/mpeg";
  }
  return "application/octet-stream";
}

Result<std::unique_ptr<AudioEncoder>> AudioEncoder::Create(AudioFormat format, int rate) {
  if (rate <= 0) return InvalidArgument("sample rate {} is not positive", rate);
  if (format != AudioFormat::kMp3)
    return std::unique_ptr<AudioEncoder>(new PcmEncoder(rate, format == AudioFormat::kWav));
#if BRAID_WITH_LAME
  lame_global_flags* lame = lame_init();
  if (lame == nullptr) return Internal("the MP3 encoder could not start");
  lame_set_in_samplerate(lame, rate);
  lame_set_out_samplerate(lame, rate);
  lame_set_num_channels(lame, 1);
  lame_set_mode(lame, MONO);
  lame_set_brate(lame, 64);
  if (lame_init_params(lame) < 0) {
    lame_close(lame);
    return Internal("the MP3 encoder refused {} Hz", rate);
  }
  return std::unique_ptr<AudioEncoder>(new Mp3Encoder(lame));
#else
  return InvalidArgument("this build has no MP3 encoder");
#endif
}

std::string EncodeWav(std::span<const float> samples, int rate) {
  return WavHeader(rate, static_cast<std::uint32_t>(samples.size() * 2)) + Pcm16(samples);
}

}  // namespace braid
