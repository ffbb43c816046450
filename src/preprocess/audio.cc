#include "preprocess/audio.h"

#include <fftw3.h>
#include <fmt/format.h>
#include <sndfile.h>
#include <soxr.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>

namespace braid {
namespace {

constexpr int kFft = 400;
constexpr int kHop = 160;
constexpr int kBins = kFft / 2 + 1;

// libsndfile reads from this through its virtual I/O interface.
struct MemoryFile {
  const unsigned char* data;
  sf_count_t size;
  sf_count_t position = 0;
};

sf_count_t VioLength(void* user) { return static_cast<MemoryFile*>(user)->size; }
sf_count_t VioSeek(sf_count_t offset, int whence, void* user) {
  auto* file = static_cast<MemoryFile*>(user);
  sf_count_t target = whence == SEEK_SET   ? offset
                      : whence == SEEK_CUR ? file->position + offset
                                           : file->size + offset;
  file->position = std::clamp<sf_count_t>(target, 0, file->size);
  return file->position;
}
sf_count_t VioRead(void* buffer, sf_count_t count, void* user) {
  auto* file = static_cast<MemoryFile*>(user);
  sf_count_t n = std::max<sf_count_t>(0, std::min(count, file->size - file->position));
  std::memcpy(buffer, file->data + file->position, static_cast<std::size_t>(n));
  file->position += n;
  return n;
}
sf_count_t VioWrite(const void*, sf_count_t, void*) { return 0; }
sf_count_t VioTell(void* user) { return static_cast<MemoryFile*>(user)->position; }

double HzToMel(double hz) {
  constexpr double kMinLogHz = 1000.0, kLinearStep = 200.0 / 3,
                   kLogStep = 0.06875177742094912;  // log(6.4)/27
  if (hz < kMinLogHz) return hz / kLinearStep;
  return kMinLogHz / kLinearStep + std::log(hz / kMinLogHz) / kLogStep;
}
double MelToHz(double mel) {
  constexpr double kMinLogHz = 1000.0, kLinearStep = 200.0 / 3, kLogStep = 0.06875177742094912;
  constexpr double kMinLogMel = kMinLogHz / kLinearStep;
  if (mel < kMinLogMel) return mel * kLinearStep;
  return kMinLogHz * std::exp(kLogStep * (mel - kMinLogMel));
}

std::vector<float> BuildMelFilters() {
  std::vector<double> mel_points(kMelBins + 2);
  const double low = HzToMel(0), high = HzToMel(kSpeechRate / 2.0);
  for (int i = 0; i < kMelBins + 2; ++i)
    mel_points[i] = MelToHz(low + (high - low) * i / (kMelBins + 1));
  std::vector<float> filters(std::size_t(kMelBins) * kBins, 0.0f);
  for (int m = 0; m < kMelBins; ++m) {
    const double left = mel_points[m], center = mel_points[m + 1], right = mel_points[m + 2];
    const double norm = 2.0 / (right - left);  // Slaney: equal area per filter
    for (int k = 0; k < kBins; ++k) {
      const double hz = double(k) * kSpeechRate / kFft;
      double weight =
          std::max(0.0, std::min((hz - left) / (center - left), (right - hz) / (right - center)));
      filters[std::size_t(m) * kBins + k] = static_cast<float>(weight * norm);
    }
  }
  return filters;
}

// FFTW plans are created once (planning is not thread-safe) and executed
// with new arrays, which is.
fftwf_plan Plan() {
  static std::once_flag once;
  static fftwf_plan plan;
  std::call_once(once, [] {
    std::vector<float> in(kFft);
    fftwf_complex* out = fftwf_alloc_complex(kBins);
    plan = fftwf_plan_dft_r2c_1d(kFft, in.data(), out, FFTW_ESTIMATE | FFTW_UNALIGNED);
    fftwf_free(out);
  });
  return plan;
}

}  // namespace

std::vector<std::int16_t> ToPcm16(std::span<const float> samples) {
  std::vector<std::int16_t> pcm(samples.size());
  for (std::size_t i = 0; i < pcm.size(); ++i) {
    pcm[i] = static_cast<std::int16_t>(std::lround(std::clamp(samples[i], -1.0f, 1.0f) * 32767.0f));
  }
  return pcm;
}

Result<std::vector<float>> Resample(std::span<const float> input, int from_rate, int to_rate) {
  if (from_rate == to_rate) return std::vector<float>(input.begin(), input.end());
  std::vector<float> output(
      static_cast<std::size_t>(std::ceil(double(input.size()) * to_rate / from_rate)) + 16);
  std::size_t produced = 0;
  soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, 0);
  soxr_error_t error =
      soxr_oneshot(from_rate, to_rate, 1, input.data(), input.size(), nullptr, output.data(),
                   output.size(), &produced, &io, &quality, nullptr);
  if (error) return Internal("resampling {} Hz to {} Hz failed: {}", from_rate, to_rate, error);
  output.resize(produced);
  return output;
}

Result<Audio> DecodeAudio(std::span<const std::byte> bytes, const AudioLimits& limits) {
  if (bytes.empty()) return InvalidArgument("the audio is empty (0 bytes)");
  MemoryFile file{reinterpret_cast<const unsigned char*>(bytes.data()),
                  static_cast<sf_count_t>(bytes.size())};
  SF_VIRTUAL_IO io{VioLength, VioSeek, VioRead, VioWrite, VioTell};
  SF_INFO info{};
  SNDFILE* sound = sf_open_virtual(&io, SFM_READ, &info, &file);
  if (sound == nullptr) {
    return InvalidArgument("cannot decode audio (WAV, FLAC, OGG/Vorbis and MP3 are supported): {}",
                           sf_strerror(nullptr));
  }
  struct Closer {
    SNDFILE* sound;
    ~Closer() { sf_close(sound); }
  } closer{sound};
  if (info.samplerate < limits.min_rate || info.samplerate > limits.max_rate) {
    return InvalidArgument("audio sample rate {} Hz is outside {}–{} Hz", info.samplerate,
                           limits.min_rate, limits.max_rate);
  }
  if (info.channels < 1 || info.channels > limits.max_channels) {
    return InvalidArgument("audio has {} channels; at most {} are accepted", info.channels,
                           limits.max_channels);
  }
  // MP3 and some streams report no frame count; the cap is then enforced while reading.
  const sf_count_t max_frames = static_cast<sf_count_t>(limits.max_seconds * info.samplerate);
  if (info.frames > max_frames && info.frames != SF_COUNT_MAX) {
    return Status(StatusCode::kTooLarge,
                  fmt::format("audio lasts {:.0f} s; the limit is {:.0f} s",
                              double(info.frames) / info.samplerate, limits.max_seconds));
  }
  std::vector<float> interleaved;
  std::vector<float> chunk(std::size_t(4096) * info.channels);
  while (true) {
    sf_count_t frames = sf_readf_float(sound, chunk.data(), 4096);
    if (frames <= 0) break;
    interleaved.insert(interleaved.end(), chunk.begin(), chunk.begin() + frames * info.channels);
    if (static_cast<sf_count_t>(interleaved.size() / info.channels) > max_frames) {
      return Status(StatusCode::kTooLarge,
                    fmt::format("audio lasts over the {:.0f} s limit", limits.max_seconds));
    }
  }
  if (sf_error(sound) != SF_ERR_NO_ERROR)
    return InvalidArgument("corrupt audio: {}", sf_strerror(sound));
  if (interleaved.empty()) return InvalidArgument("the audio holds no samples");
  const std::size_t frames = interleaved.size() / info.channels;
  std::vector<float> mono(frames);
  for (std::size_t f = 0; f < frames; ++f) {
    float sum = 0;
    for (int c = 0; c < info.channels; ++c) sum += interleaved[f * info.channels + c];
    mono[f] = sum / info.channels;
  }
  Audio audio;
  audio.source_rate = info.samplerate;
  audio.source_channels = info.channels;
  BRAID_ASSIGN_OR_RETURN(audio.samples, Resample(mono, info.samplerate, kSpeechRate));
  return audio;
}

const std::vector<float>& WhisperMelFilters() {
  static const std::vector<float> filters = BuildMelFilters();
  return filters;
}

std::vector<float> WhisperLogMel(std::span<const float> samples) {
  constexpr std::size_t kSamples = std::size_t(kMelFrames) * kHop;  // 30 s
  std::vector<float> audio(kSamples, 0.0f);
  std::copy_n(samples.begin(), std::min(samples.size(), kSamples), audio.begin());
  // Centre padding by reflection, as torch.stft(center=True) does.
  std::vector<float> padded(kSamples + kFft);
  for (int i = 0; i < kFft / 2; ++i) {
    padded[i] = audio[kFft / 2 - i];
    padded[kSamples + kFft / 2 + i] = audio[kSamples - 2 - i];
  }
  std::copy(audio.begin(), audio.end(), padded.begin() + kFft / 2);

  static const std::vector<float> window = [] {
    std::vector<float> w(kFft);
    for (int i = 0; i < kFft; ++i)
      w[i] = static_cast<float>(0.5 - 0.5 * std::cos(2 * M_PI * i / kFft));
    return w;
  }();
  const auto& filters = WhisperMelFilters();
  // Each triangular filter is non-zero over a short run of FFT bins.
  static const std::vector<std::pair<int, int>> spans = [&filters] {
    std::vector<std::pair<int, int>> out(kMelBins, {0, 0});
    for (int m = 0; m < kMelBins; ++m) {
      const float* filter = filters.data() + std::size_t(m) * kBins;
      int first = 0, last = kBins;
      while (first < kBins && filter[first] == 0.0f) ++first;
      while (last > first && filter[last - 1] == 0.0f) --last;
      out[m] = {first, last};
    }
    return out;
  }();
  const fftwf_plan plan = Plan();
  std::vector<float> mel(std::size_t(kMelBins) * kMelFrames);
  std::vector<float> frame(kFft), power(kBins);
  fftwf_complex* spectrum = fftwf_alloc_complex(kBins);
  for (int t = 0; t < kMelFrames; ++t) {  // torch.stft gives 3001 frames; Whisper drops the last
    const float* start = padded.data() + std::size_t(t) * kHop;
    for (int i = 0; i < kFft; ++i) frame[i] = start[i] * window[i];
    fftwf_execute_dft_r2c(plan, frame.data(), spectrum);
    for (int k = 0; k < kBins; ++k)
      power[k] = spectrum[k][0] * spectrum[k][0] + spectrum[k][1] * spectrum[k][1];
    for (int m = 0; m < kMelBins; ++m) {
      const float* filter = filters.data() + std::size_t(m) * kBins;
      float energy = 0;
      for (int k = spans[m].first; k < spans[m].second; ++k) energy += filter[k] * power[k];
      mel[std::size_t(m) * kMelFrames + t] = std::log10(std::max(energy, 1e-10f));
    }
  }
  fftwf_free(spectrum);
  const float ceiling = *std::max_element(mel.begin(), mel.end()) - 8.0f;
  for (auto& v : mel) v = (std::max(v, ceiling) + 4.0f) / 4.0f;
  return mel;
}

}  // namespace braid
