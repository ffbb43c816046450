#include "preprocess/audio_stream.h"

#include <soxr.h>

#include <cstring>

namespace braid {
namespace {

// A WAV header is a few dozen bytes; recorders add chunks (LIST, fact) before
// the data, but not this many.
constexpr std::size_t kMaxWavHeaderBytes = 64 << 10;
constexpr std::uint16_t kWavePcm = 1;
constexpr std::uint16_t kWaveExtensible = 0xFFFE;

std::uint32_t ReadU32(const char* p) {
  std::uint32_t value;
  std::memcpy(&value, p, 4);
  return value;
}
std::uint16_t ReadU16(const char* p) {
  std::uint16_t value;
  std::memcpy(&value, p, 2);
  return value;
}

Status CheckFormat(int rate, int channels, const AudioLimits& limits) {
  if (rate < limits.min_rate || rate > limits.max_rate)
    return InvalidArgument("sample rate {} Hz is outside {}–{} Hz", rate, limits.min_rate,
                           limits.max_rate);
  if (channels < 1 || channels > limits.max_channels)
    return InvalidArgument("{} channels: 1 to {} are accepted", channels, limits.max_channels);
  return Status::Ok();
}

}  // namespace

struct AudioStream::Converter {
  ~Converter() { soxr_delete(soxr); }
  soxr_t soxr = nullptr;
};

Result<StreamEncoding> ParseStreamEncoding(std::string_view name) {
  if (name == "pcm_s16le") return StreamEncoding::kPcmS16le;
  if (name == "wav") return StreamEncoding::kWav;
  return InvalidArgument(
      "encoding '{}' is not supported: use pcm_s16le (raw 16-bit little-endian "
      "samples) or wav (a WAV header, then its samples)",
      name);
}

Result<std::unique_ptr<AudioStream>> AudioStream::Open(StreamEncoding encoding, int sample_rate,
                                                       int channels, const AudioLimits& limits) {
  if (encoding == StreamEncoding::kPcmS16le)
    BRAID_RETURN_IF_ERROR(CheckFormat(sample_rate, channels, limits));
  std::unique_ptr<AudioStream> stream(new AudioStream(encoding, sample_rate, channels, limits));
  if (encoding == StreamEncoding::kPcmS16le) BRAID_RETURN_IF_ERROR(stream->StartConverter());
  return stream;
}

AudioStream::AudioStream(StreamEncoding encoding, int rate, int channels, AudioLimits limits)
    : encoding_(encoding),
      rate_(rate),
      channels_(channels),
      limits_(limits),
      header_done_(encoding == StreamEncoding::kPcmS16le) {}

AudioStream::~AudioStream() = default;

Status AudioStream::StartConverter() {
  if (rate_ == kSpeechRate) return Status::Ok();
  converter_ = std::make_unique<Converter>();
  soxr_error_t error = nullptr;
  soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, 0);
  converter_->soxr = soxr_create(rate_, kSpeechRate, 1, &error, &io, &quality, nullptr);
  if (error) return Internal("cannot resample {} Hz to {} Hz: {}", rate_, kSpeechRate, error);
  return Status::Ok();
}

double AudioStream::seconds() const { return rate_ > 0 ? double(frames_) / rate_ : 0; }

Status AudioStream::ReadWavHeader(std::vector<float>* out) {
  if (pending_.size() < 12) return Status::Ok();
  if (pending_.compare(0, 4, "RIFF") != 0 || pending_.compare(8, 4, "WAVE") != 0)
    return InvalidArgument("the stream does not start with a WAV header (RIFF....WAVE)");
  bool have_format = false;
  std::size_t at = 12;
  while (at + 8 <= pending_.size()) {
    const std::string_view id(pending_.data() + at, 4);
    const std::uint32_t size = ReadU32(pending_.data() + at + 4);
    if (id == "data") {
      if (!have_format) return InvalidArgument("the WAV header has no fmt chunk before its data");
      header_done_ = true;
      BRAID_RETURN_IF_ERROR(StartConverter());
      std::string rest = pending_.substr(at + 8);
      pending_.clear();
      return Push(rest, out);
    }
    if (at + 8 + size > pending_.size()) break;  // the chunk is still arriving
    if (id == "fmt ") {
      if (size < 16) return InvalidArgument("the WAV fmt chunk is {} bytes, under 16", size);
      const char* fmt = pending_.data() + at + 8;
      const std::uint16_t tag = ReadU16(fmt);
      const std::uint16_t bits = ReadU16(fmt + 14);
      channels_ = ReadU16(fmt + 2);
      rate_ = static_cast<int>(ReadU32(fmt + 4));
      if ((tag != kWavePcm && tag != kWaveExtensible) || bits != 16)
        return InvalidArgument(
            "the WAV stream holds format {} with {} bits a sample; live input takes 16-bit PCM",
            tag, bits);
      BRAID_RETURN_IF_ERROR(CheckFormat(rate_, channels_, limits_));
      have_format = true;
    }
    at += 8 + size + (size & 1);
  }
  if (pending_.size() > kMaxWavHeaderBytes)
    return InvalidArgument("no WAV data chunk within the first {} bytes", kMaxWavHeaderBytes);
  return Status::Ok();
}

Status AudioStream::Push(std::string_view bytes, std::vector<float>* out) {
  if (!header_done_) {
    pending_.append(bytes);
    return ReadWavHeader(out);
  }
  const std::size_t frame_bytes = 2 * static_cast<std::size_t>(channels_);
  std::string_view data = bytes;
  std::string joined;
  if (!pending_.empty()) {
    joined = pending_ + std::string(bytes);
    pending_.clear();
    data = joined;
  }
  const std::size_t frames = data.size() / frame_bytes;
  pending_.assign(data.substr(frames * frame_bytes));
  std::vector<float> mono(frames);
  for (std::size_t f = 0; f < frames; ++f) {
    float sum = 0;
    for (int c = 0; c < channels_; ++c) {
      sum += static_cast<float>(static_cast<std::int16_t>(
          ReadU16(data.data() + f * frame_bytes + 2 * static_cast<std::size_t>(c))));
    }
    mono[f] = sum / (32768.0f * static_cast<float>(channels_));
  }
  frames_ += static_cast<std::int64_t>(frames);
  Convert(mono, out);
  return Status::Ok();
}

void AudioStream::Convert(std::span<const float> mono, std::vector<float>* out) {
  if (!converter_) {
    out->insert(out->end(), mono.begin(), mono.end());
    return;
  }
  if (mono.empty()) return;  // soxr takes no input as the end of the stream
  // Until soxr has taken every input sample (it takes them all when the
  // room is enough, as it is here, but says so through `used`).
  while (!mono.empty()) {
    const std::size_t room = mono.size() * kSpeechRate / static_cast<std::size_t>(rate_) + 64;
    const std::size_t before = out->size();
    out->resize(before + room);
    std::size_t used = 0, produced = 0;
    soxr_process(converter_->soxr, mono.data(), mono.size(), &used, out->data() + before, room,
                 &produced);
    out->resize(before + produced);
    if (used == 0 && produced == 0) return;
    mono = mono.subspan(used);
  }
}

void AudioStream::Flush(std::vector<float>* out) {
  if (!converter_) return;
  for (;;) {
    const std::size_t before = out->size();
    out->resize(before + 1024);
    std::size_t produced = 0;
    soxr_process(converter_->soxr, nullptr, 0, nullptr, out->data() + before, 1024, &produced);
    out->resize(before + produced);
    if (produced == 0) return;
  }
}

}  // namespace braid
