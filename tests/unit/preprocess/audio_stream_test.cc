#include "preprocess/audio_stream.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

namespace braid {
namespace {

using ::testing::HasSubstr;

std::string Pcm16(const std::vector<std::int16_t>& samples) {
  std::string bytes(samples.size() * 2, '\0');
  std::memcpy(bytes.data(), samples.data(), bytes.size());
  return bytes;
}

std::string WavHeader(int rate, int channels, int bits = 16, int tag = 1) {
  std::string header = "RIFF\xff\xff\xff\xffWAVE";
  auto u32 = [&](std::uint32_t v) { header.append(reinterpret_cast<const char*>(&v), 4); };
  auto u16 = [&](std::uint16_t v) { header.append(reinterpret_cast<const char*>(&v), 2); };
  header += "LIST";  // a chunk before fmt, as recorders write
  u32(4);
  header += "INFO";
  header += "fmt ";
  u32(16);
  u16(static_cast<std::uint16_t>(tag));
  u16(static_cast<std::uint16_t>(channels));
  u32(static_cast<std::uint32_t>(rate));
  u32(static_cast<std::uint32_t>(rate * channels * bits / 8));
  u16(static_cast<std::uint16_t>(channels * bits / 8));
  u16(static_cast<std::uint16_t>(bits));
  header += "data";
  u32(0xffffffff);  // a live recorder does not know the size
  return header;
}

TEST(AudioStreamTest, RawSamplesSplitAnywhereComeOutWhole) {
  auto stream = AudioStream::Open(StreamEncoding::kPcmS16le, 16000, 1);
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  const std::string bytes = Pcm16({0, 16384, -16384, 32767, -32768});
  std::vector<float> out;
  ASSERT_TRUE((*stream)->Push(bytes.substr(0, 3), &out).ok());  // a sample and a half
  EXPECT_EQ(out.size(), 1u);
  ASSERT_TRUE((*stream)->Push(bytes.substr(3), &out).ok());
  EXPECT_THAT(out, ::testing::ElementsAre(0.0f, 0.5f, -0.5f, 32767.0f / 32768, -1.0f));
  EXPECT_DOUBLE_EQ((*stream)->seconds(), 5.0 / 16000);
}

TEST(AudioStreamTest, ChannelsAreAveraged) {
  auto stream = AudioStream::Open(StreamEncoding::kPcmS16le, 16000, 2);
  ASSERT_TRUE(stream.ok());
  std::vector<float> out;
  ASSERT_TRUE((*stream)->Push(Pcm16({16384, 0, -16384, -16384}), &out).ok());
  EXPECT_THAT(out, ::testing::ElementsAre(0.25f, -0.5f));
}

TEST(AudioStreamTest, OtherRatesAreResampledAcrossPieces) {
  auto stream = AudioStream::Open(StreamEncoding::kPcmS16le, 48000, 1);
  ASSERT_TRUE(stream.ok());
  std::vector<std::int16_t> tone(48000);
  for (std::size_t i = 0; i < tone.size(); ++i)
    tone[i] = static_cast<std::int16_t>(8000 * std::sin(2 * M_PI * 440 * double(i) / 48000));
  const std::string bytes = Pcm16(tone);
  std::vector<float> out;
  for (std::size_t at = 0; at < bytes.size(); at += 1922)  // 20 ms and an odd byte
    ASSERT_TRUE((*stream)->Push(bytes.substr(at, 1922), &out).ok());
  (*stream)->Flush(&out);
  EXPECT_NEAR(double(out.size()), 16000.0, 16.0);
  // The tone comes through at its level, without clicks at the joins.
  double peak = 0;
  for (std::size_t i = 800; i + 800 < out.size(); ++i)
    peak = std::max(peak, double(std::abs(out[i])));
  EXPECT_NEAR(peak, 8000.0 / 32768, 0.01);
}

TEST(AudioStreamTest, AWavHeaderArrivingInPiecesGivesTheFormat) {
  auto stream = AudioStream::Open(StreamEncoding::kWav, 0, 0);
  ASSERT_TRUE(stream.ok());
  const std::string bytes = WavHeader(16000, 2) + Pcm16({16384, 16384, 0, 0});
  std::vector<float> out;
  for (char byte : bytes) ASSERT_TRUE((*stream)->Push(std::string(1, byte), &out).ok());
  EXPECT_THAT(out, ::testing::ElementsAre(0.5f, 0.0f));
  EXPECT_DOUBLE_EQ((*stream)->seconds(), 2.0 / 16000);
}

TEST(AudioStreamTest, WavStreamsBraidCannotReadAreRefused) {
  std::vector<float> out;
  auto not_wav = AudioStream::Open(StreamEncoding::kWav, 0, 0);
  Status status = (*not_wav)->Push("this is not a WAV header", &out);
  EXPECT_THAT(status.message(), HasSubstr("WAV header"));
  auto floats = AudioStream::Open(StreamEncoding::kWav, 0, 0);
  status = (*floats)->Push(WavHeader(16000, 1, 32, 3), &out);
  EXPECT_THAT(status.message(), HasSubstr("16-bit PCM"));
  auto channels = AudioStream::Open(StreamEncoding::kWav, 0, 0);
  status = (*channels)->Push(WavHeader(16000, 6), &out);
  EXPECT_THAT(status.message(), HasSubstr("6 channels"));
  auto endless = AudioStream::Open(StreamEncoding::kWav, 0, 0);
  std::string junk = "RIFF\xff\xff\xff\xffWAVEjunk";
  junk += std::string("\xff\xff\x00\x00", 4) + std::string(70000, 'x');
  status = (*endless)->Push(junk, &out);
  EXPECT_THAT(status.message(), HasSubstr("no WAV data chunk"));
}

TEST(AudioStreamTest, FormatsOutsideTheLimitsAreRefused) {
  EXPECT_FALSE(AudioStream::Open(StreamEncoding::kPcmS16le, 1000, 1).ok());
  EXPECT_FALSE(AudioStream::Open(StreamEncoding::kPcmS16le, 16000, 0).ok());
  EXPECT_FALSE(AudioStream::Open(StreamEncoding::kPcmS16le, 16000, 3).ok());
  EXPECT_THAT(ParseStreamEncoding("opus").status().message(), HasSubstr("pcm_s16le"));
  EXPECT_EQ(*ParseStreamEncoding("wav"), StreamEncoding::kWav);
}

}  // namespace
}  // namespace braid
