// Live speech decoders on Debian's PocketSphinx model and the flite
// fixtures: a decoder that served other streams (speech, then a hiss) hears
// a clip word for word, at the same times, as a fresh one does once it is
// reset.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <random>

#include "backends/backends.h"
#include "model/config.h"
#include "preprocess/audio.h"

namespace braid {
namespace {

const std::filesystem::path kFixtures = BRAID_TEST_FIXTURES;

std::vector<std::int16_t> Clip(const std::string& name) {
  std::ifstream in(kFixtures / "speech" / name, std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(in), {}};
  auto audio = DecodeAudio(std::as_bytes(std::span(bytes.data(), bytes.size())));
  EXPECT_TRUE(audio.ok()) << name;
  if (!audio.ok()) return {};
  // Half a second of silence on each side, as a stream's endpointer leaves.
  const std::vector<std::int16_t> speech = ToPcm16(audio->samples);
  std::vector<std::int16_t> pcm(8000);
  pcm.insert(pcm.end(), speech.begin(), speech.end());
  pcm.resize(pcm.size() + 8000);
  return pcm;
}

// One utterance fed in 20 ms pieces, as a stream is: "word start end" each.
std::vector<std::string> Hear(StreamingRecogniser& decoder, std::span<const std::int16_t> pcm) {
  EXPECT_TRUE(decoder.Begin().ok());
  for (std::size_t at = 0; at < pcm.size(); at += 320)
    EXPECT_TRUE(decoder.Feed(pcm.subspan(at, std::min<std::size_t>(320, pcm.size() - at))).ok());
  auto words = decoder.End();
  EXPECT_TRUE(words.ok()) << words.status().ToString();
  std::vector<std::string> heard;
  if (!words.ok()) return heard;
  for (const auto& word : *words)
    heard.push_back(word.word + " " + std::to_string(word.start) + " " + std::to_string(word.end));
  return heard;
}

TEST(PocketSphinxStreamTest, AResetDecoderHearsAClipAsAFreshOneDoes) {
  BackendRegistry backends;
  RegisterBuiltinBackends(backends);
  const StreamingRecogniserFactory* open = backends.FindStreamingRecognisers("pocketsphinx");
  ASSERT_NE(open, nullptr) << "braid was built without pocketsphinx";
  auto config = LoadModelConfig(std::filesystem::path(BRAID_TEST_MODELS) / "asr");
  ASSERT_TRUE(config.ok()) << config.status().ToString();

  const std::vector<std::int16_t> clip = Clip("say_4.wav");
  auto fresh = (*open)(*config);
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  const std::vector<std::string> expected = Hear(**fresh, clip);
  ASSERT_FALSE(expected.empty());

  auto reused = (*open)(*config);
  ASSERT_TRUE(reused.ok());
  for (const char* other : {"say_0.wav", "say_1.wav", "say_2.wav", "say_3.wav"})
    Hear(**reused, Clip(other));
  // A loud hiss heard as an utterance of its own.
  std::vector<std::int16_t> hiss(16000);
  std::minstd_rand random(7);
  for (auto& sample : hiss) sample = static_cast<std::int16_t>(random() % 16001) - 8000;
  Hear(**reused, hiss);
  (*reused)->Reset();
  EXPECT_EQ(Hear(**reused, clip), expected);
}

}  // namespace
}  // namespace braid
