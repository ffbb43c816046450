#include "preprocess/audio.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sndfile.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "support/temp_dir.h"

namespace braid {
namespace {

using ::testing::HasSubstr;

std::vector<float> Sine(double hz, int rate, double seconds, int channels = 1,
                        double amplitude = 0.5) {
  std::vector<float> samples(static_cast<std::size_t>(rate * seconds) * channels);
  for (std::size_t i = 0; i < samples.size(); ++i) {
    samples[i] =
        static_cast<float>(amplitude * std::sin(2 * M_PI * hz * double(i / channels) / rate));
  }
  return samples;
}

// Encodes `samples` with libsndfile in `format` and returns the file's bytes.
std::string Encode(const std::vector<float>& samples, int rate, int channels, int format) {
  testing::TempDir dir;
  auto path = (dir.path() / "clip").string();
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = channels;
  info.format = format;
  SNDFILE* file = sf_open(path.c_str(), SFM_WRITE, &info);
  EXPECT_NE(file, nullptr) << sf_strerror(nullptr);
  if (!file) return {};
  sf_writef_float(file, samples.data(), static_cast<sf_count_t>(samples.size() / channels));
  sf_close(file);
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::span<const std::byte> Bytes(const std::string& text) {
  return std::as_bytes(std::span(text.data(), text.size()));
}

// Crossings of zero per second, upwards: the frequency of a clean sine.
double Frequency(const std::vector<float>& samples, int rate) {
  int crossings = 0;
  for (std::size_t i = 1; i < samples.size(); ++i)
    crossings += samples[i - 1] < 0 && samples[i] >= 0;
  return crossings * double(rate) / samples.size();
}

TEST(AudioTest, DecodesEveryFormatToSixteenKilohertzMono) {
  struct Case {
    const char* name;
    int format;
  };
  for (const auto& c : {Case{"wav16", SF_FORMAT_WAV | SF_FORMAT_PCM_16},
                        Case{"wav24", SF_FORMAT_WAV | SF_FORMAT_PCM_24},
                        Case{"wav32", SF_FORMAT_WAV | SF_FORMAT_PCM_32},
                        Case{"wavfloat", SF_FORMAT_WAV | SF_FORMAT_FLOAT},
                        Case{"flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16},
                        Case{"ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS},
                        Case{"mp3", SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III}}) {
    std::string bytes = Encode(Sine(440, 44100, 1.0, 2), 44100, 2, c.format);
    ASSERT_FALSE(bytes.empty()) << c.name;
    auto audio = DecodeAudio(Bytes(bytes));
    ASSERT_TRUE(audio.ok()) << c.name << ": " << audio.status().ToString();
    EXPECT_EQ(audio->source_rate, 44100) << c.name;
    EXPECT_EQ(audio->source_channels, 2) << c.name;
    EXPECT_NEAR(audio->seconds(), 1.0, 0.08) << c.name;  // MP3 and Vorbis add encoder padding
    EXPECT_NEAR(Frequency(audio->samples, kSpeechRate), 440, 6) << c.name;
    float peak = 0;
    for (float v : audio->samples) peak = std::max(peak, std::abs(v));
    EXPECT_NEAR(peak, 0.5, 0.06) << c.name;
  }
}

TEST(AudioTest, DownmixAveragesChannels) {
  std::vector<float> stereo(16000 * 2);
  for (std::size_t i = 0; i < stereo.size(); i += 2) {
    stereo[i] = 0.5f;
    stereo[i + 1] = -0.25f;
  }
  auto audio = DecodeAudio(Bytes(Encode(stereo, 16000, 2, SF_FORMAT_WAV | SF_FORMAT_FLOAT)));
  ASSERT_TRUE(audio.ok());
  EXPECT_NEAR(audio->samples[8000], 0.125f, 1e-6);
}

TEST(AudioTest, RefusesHostileInput) {
  EXPECT_THAT(DecodeAudio({}).status().message(), HasSubstr("empty"));
  std::string garbage = "RIFF\x10\0\0\0WAVEjunkjunkjunk";
  EXPECT_EQ(DecodeAudio(Bytes(garbage)).status().code(), StatusCode::kInvalidArgument);
  auto eight = DecodeAudio(
      Bytes(Encode(std::vector<float>(8 * 1600), 16000, 8, SF_FORMAT_WAV | SF_FORMAT_PCM_16)));
  EXPECT_THAT(eight.status().message(), HasSubstr("8 channels"));
  auto slow = DecodeAudio(
      Bytes(Encode(std::vector<float>(100), 1000, 1, SF_FORMAT_WAV | SF_FORMAT_PCM_16)));
  EXPECT_THAT(slow.status().message(), HasSubstr("1000 Hz is outside"));
  AudioLimits short_limit;
  short_limit.max_seconds = 1;
  auto long_clip = DecodeAudio(
      Bytes(Encode(Sine(200, 8000, 2.0), 8000, 1, SF_FORMAT_WAV | SF_FORMAT_PCM_16)), short_limit);
  EXPECT_EQ(long_clip.status().code(), StatusCode::kTooLarge);
}

TEST(LogMelTest, ShapeAndSilenceFloor) {
  auto mel = WhisperLogMel(std::vector<float>(16000, 0.0f));
  ASSERT_EQ(mel.size(), std::size_t(kMelBins) * kMelFrames);
  for (float v : mel) ASSERT_FLOAT_EQ(v, -1.5f);  // (log10(1e-10) + 4) / 4
}

TEST(LogMelTest, SinePeaksInTheMelBinHoldingItsFrequency) {
  const auto& filters = WhisperMelFilters();
  constexpr int kBins = 201;
  const int bin_1k = 1000 * 400 / kSpeechRate;  // FFT bin 25 holds 1 kHz
  int expected = 0;
  for (int m = 1; m < kMelBins; ++m) {
    if (filters[m * kBins + bin_1k] > filters[expected * kBins + bin_1k]) expected = m;
  }
  auto mel = WhisperLogMel(Sine(1000, kSpeechRate, 2.0));
  for (int t : {20, 100, 150}) {
    int best = 0;
    for (int m = 1; m < kMelBins; ++m) {
      if (mel[m * kMelFrames + t] > mel[best * kMelFrames + t]) best = m;
    }
    EXPECT_EQ(best, expected) << "frame " << t;
  }
  // Past the 2 s of signal the padding is silent: the clamped floor.
  EXPECT_FLOAT_EQ(mel[10 * kMelFrames + 2500], *std::min_element(mel.begin(), mel.end()));
}

TEST(LogMelTest, FiltersHaveSlaneyAreaNormalisation) {
  const auto& filters = WhisperMelFilters();
  // Each triangle's peak is 2 / (right − left) in Hz; its area over Hz is 1.
  for (int m = 0; m < kMelBins; m += 10) {
    double area = 0;
    for (int k = 0; k < 201; ++k) area += filters[m * 201 + k] * 40.0;  // 40 Hz per FFT bin
    EXPECT_NEAR(area, 1.0, 0.25) << "filter " << m;
  }
}

}  // namespace
}  // namespace braid
