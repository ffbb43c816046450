#include "preprocess/audio_encoder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "preprocess/audio.h"

namespace braid {
namespace {

std::vector<float> Tone(int rate, double seconds) {
  std::vector<float> samples(static_cast<std::size_t>(rate * seconds));
  for (std::size_t i = 0; i < samples.size(); ++i)
    samples[i] = 0.5f * static_cast<float>(std::sin(2 * std::numbers::pi * 440 * i / rate));
  return samples;
}

Result<Audio> Decode(const std::string& bytes) {
  return DecodeAudio(std::as_bytes(std::span(bytes.data(), bytes.size())));
}

TEST(AudioEncoderTest, WavFileDecodesBackToTheSameDuration) {
  const auto tone = Tone(24000, 1.5);
  const std::string wav = EncodeWav(tone, 24000);
  EXPECT_EQ(wav.size(), 44 + tone.size() * 2);
  auto audio = Decode(wav);
  ASSERT_TRUE(audio.ok()) << audio.status().message();
  EXPECT_EQ(audio->source_rate, 24000);
  EXPECT_NEAR(audio->seconds(), 1.5, 0.01);
}

TEST(AudioEncoderTest, StreamedWavWithUnknownSizesStillDecodes) {
  auto encoder = AudioEncoder::Create(AudioFormat::kWav, 24000);
  ASSERT_TRUE(encoder.ok());
  std::string stream = (*encoder)->Start();
  EXPECT_EQ(stream.size(), 44u);
  const auto tone = Tone(24000, 0.5);
  for (int sentence = 0; sentence < 3; ++sentence) stream += *(*encoder)->Encode(tone);
  stream += *(*encoder)->Finish();
  auto audio = Decode(stream);
  ASSERT_TRUE(audio.ok()) << audio.status().message();
  EXPECT_NEAR(audio->seconds(), 1.5, 0.01);
}

TEST(AudioEncoderTest, PcmIsSixteenBitLittleEndianAndClipped) {
  auto encoder = AudioEncoder::Create(AudioFormat::kPcm, 24000);
  ASSERT_TRUE(encoder.ok());
  EXPECT_TRUE((*encoder)->Start().empty());
  const std::vector<float> samples = {0.0f, 1.0f, -1.0f, 2.0f};
  auto bytes = (*encoder)->Encode(samples);
  ASSERT_TRUE(bytes.ok());
  ASSERT_EQ(bytes->size(), 8u);
  auto sample = [&](int i) {
    return static_cast<std::int16_t>(static_cast<unsigned char>((*bytes)[2 * i]) |
                                     static_cast<unsigned char>((*bytes)[2 * i + 1]) << 8);
  };
  EXPECT_EQ(sample(0), 0);
  EXPECT_EQ(sample(1), 32767);
  EXPECT_EQ(sample(2), -32767);
  EXPECT_EQ(sample(3), 32767) << "clipped";
}

TEST(AudioEncoderTest, Mp3FramesDecodeWhenLameIsBuiltIn) {
  if (!ParseAudioFormat("mp3").ok()) GTEST_SKIP() << "built without LAME";
  auto encoder = AudioEncoder::Create(AudioFormat::kMp3, 24000);
  ASSERT_TRUE(encoder.ok());
  std::string stream = (*encoder)->Start();
  const auto tone = Tone(24000, 1.0);
  stream += *(*encoder)->Encode(tone);
  stream += *(*encoder)->Finish();
  ASSERT_GT(stream.size(), 1000u);
  EXPECT_EQ(static_cast<unsigned char>(stream[0]), 0xFF) << "an MPEG frame sync";
  auto audio = Decode(stream);
  ASSERT_TRUE(audio.ok()) << audio.status().message();
  EXPECT_NEAR(audio->seconds(), 1.0, 0.1);
}

TEST(AudioEncoderTest, UnknownFormatsAndRatesAreRefused) {
  EXPECT_FALSE(ParseAudioFormat("ogg").ok());
  EXPECT_FALSE(AudioEncoder::Create(AudioFormat::kWav, 0).ok());
}

}  // namespace
}  // namespace braid
