// The whisper backend on Whisper-shaped stand-ins (onnxgen/whisper_graph.h):
// files with the names, data types and dims of Optimum's export whose
// decoders are forced to say a known script, so the decoding loop, the
// key/value cache, language detection, timestamps, windows and
// detokenisation must give exactly the expected transcript.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <cmath>

#include "backends/whisper/whisper_backend.h"
#include "model/config.h"
#include "onnxgen/whisper_graph.h"
#include "preprocess/audio_encoder.h"
#include "support/temp_dir.h"

namespace braid {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Loud audio (a tone) says two sentences in German; silence says one in English.
onnxgen::WhisperStandIn Script() {
  onnxgen::WhisperStandIn spec;
  // Byte-level forms: "Ġ" is the space, "Ã¯" the two bytes of "ï"; "." is
  // a byte symbol already.
  spec.words = {"ĠHello", "Ġworld", "ĠAgain", "ĠQuiet", "ĠnaÃ¯ve"};
  spec.loud = {"<|de|>",   "<|transcribe|>", "<|0.00|>", "ĠHello", "Ġworld",  ".",
               "<|2.00|>", "<|2.00|>",       "ĠAgain",   ".",      "<|4.00|>"};
  spec.quiet = {"<|en|>", "<|transcribe|>", "<|0.00|>", "ĠQuiet", ".", "ĠnaÃ¯ve", "<|1.00|>"};
  return spec;
}

std::string Config(const std::string& parameters) {
  return R"(backend: whisper
max_batch_size: 4
inputs: [{name: audio, datatype: BYTES, dims: [1]}]
outputs:
  - {name: text, datatype: BYTES, dims: [1]}
  - {name: language, datatype: BYTES, dims: [1]}
  - {name: segments, datatype: BYTES, dims: [1]}
parameters: {)" +
         parameters + "}\n";
}

std::string Tone(double seconds) {
  std::vector<float> samples(static_cast<std::size_t>(seconds * kSpeechRate));
  for (std::size_t i = 0; i < samples.size(); ++i)
    samples[i] = 0.5f * static_cast<float>(std::sin(2 * M_PI * 440.0 * i / kSpeechRate));
  return EncodeWav(samples, kSpeechRate);
}

std::string Silence(double seconds) {
  return EncodeWav(std::vector<float>(static_cast<std::size_t>(seconds * kSpeechRate)),
                   kSpeechRate);
}

struct Transcript {
  std::string text, language;
  std::vector<std::pair<double, double>> times;
  std::vector<std::string> texts;
  std::vector<double> temperatures, compression_ratios;
};

class WhisperTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    std::filesystem::create_directories(dir_->path() / "1");
    ASSERT_TRUE(onnxgen::WriteWhisperStandIn(Script(), dir_->path() / "1").ok());
  }
  static void TearDownTestSuite() { delete dir_; }

  static Result<std::vector<ModelInstancePtr>> Load(const std::string& parameters,
                                                    const testing::TempDir* dir = dir_) {
    BRAID_ASSIGN_OR_RETURN(ModelConfig config, ParseModelConfig(Config(parameters), "whisper",
                                                                dir->path(), "config.yaml"));
    return MakeWhisperBackend(AudioLimits{})(config, dir->path() / "1");
  }

  static std::vector<Transcript> Run(ModelInstance& instance,
                                     const std::vector<std::string>& clips) {
    auto audio = *Tensor::FromStrings(clips, {static_cast<std::int64_t>(clips.size()), 1});
    std::vector<Tensor> outputs;
    auto status = instance.Execute(std::span(&audio, 1), &outputs);
    EXPECT_TRUE(status.ok()) << status.ToString();
    std::vector<Transcript> transcripts;
    if (!status.ok()) return transcripts;
    for (std::size_t i = 0; i < clips.size(); ++i) {
      Transcript t;
      t.text = std::string((*outputs[0].Strings())[i]);
      t.language = std::string((*outputs[1].Strings())[i]);
      rapidjson::Document segments;
      const std::string json((*outputs[2].Strings())[i]);
      segments.Parse(json.c_str());
      EXPECT_TRUE(segments.IsArray()) << json;
      for (const auto& s : segments.GetArray()) {
        t.times.emplace_back(s["start"].GetDouble(), s["end"].GetDouble());
        t.texts.emplace_back(s["text"].GetString());
        t.temperatures.push_back(s["temperature"].GetDouble());
        t.compression_ratios.push_back(s["compression_ratio"].GetDouble());
      }
      transcripts.push_back(std::move(t));
    }
    return transcripts;
  }

  static testing::TempDir* dir_;
};
testing::TempDir* WhisperTest::dir_ = nullptr;

using Times = std::vector<std::pair<double, double>>;

TEST_F(WhisperTest, DecodesTheScriptWithSegmentsLanguagesAndWindows) {
  auto instances = Load("");
  ASSERT_TRUE(instances.ok()) << instances.status().ToString();
  // One batch: 40 s of tone (two windows, the second from 30 s) beside 2 s
  // of silence, whose shorter script ends first and leaves the batch.
  auto transcripts = Run(*(*instances)[0], {Tone(40), Silence(2)});
  ASSERT_EQ(transcripts.size(), 2u);
  EXPECT_EQ(transcripts[0].language, "de");
  EXPECT_EQ(transcripts[0].text, "Hello world. Again. Hello world. Again.");
  EXPECT_EQ(transcripts[0].times, (Times{{0, 2}, {2, 4}, {30, 32}, {32, 34}}));
  EXPECT_THAT(transcripts[0].texts,
              ElementsAre("Hello world.", "Again.", "Hello world.", "Again."));
  EXPECT_EQ(transcripts[1].language, "en");
  EXPECT_EQ(transcripts[1].text, "Quiet. naïve") << "byte-level symbols back to UTF-8";
  EXPECT_EQ(transcripts[1].times, (Times{{0, 1}}));
}

TEST_F(WhisperTest, WithoutTheCacheTheSameTranscript) {
  auto cached = Load("");
  auto uncached = Load("kv_cache: false");
  ASSERT_TRUE(cached.ok() && uncached.ok()) << uncached.status().ToString();
  const std::vector<std::string> clips = {Silence(2), Tone(5)};
  auto a = Run(*(*cached)[0], clips);
  auto b = Run(*(*uncached)[0], clips);
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(a[i].text, b[i].text);
    EXPECT_EQ(a[i].times, b[i].times);
  }
  EXPECT_EQ(b[1].text, "Hello world. Again.");
}

TEST_F(WhisperTest, AMergedDecoderAloneGivesTheSameTranscripts) {
  // A folder as the ONNX community's Whisper repositories ship it: the
  // encoder, decoder_model_merged.onnx and the tokenizer, no split decoders.
  testing::TempDir merged;
  std::filesystem::create_directories(merged.path() / "1");
  for (const char* file : {"encoder_model.onnx", "decoder_model_merged.onnx", "tokenizer.json"})
    std::filesystem::copy_file(dir_->path() / "1" / file, merged.path() / "1" / file);
  const std::vector<std::string> clips = {Tone(40), Silence(2), Tone(3)};
  for (const std::string parameters : {"", "kv_cache: false", "beam_size: 4"}) {
    auto split = Load(parameters);
    auto both = Load(parameters, &merged);
    ASSERT_TRUE(split.ok() && both.ok()) << both.status().ToString();
    auto a = Run(*(*split)[0], clips);
    auto b = Run(*(*both)[0], clips);
    ASSERT_EQ(b.size(), 3u) << parameters;
    for (std::size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(a[i].text, b[i].text) << parameters << " clip " << i;
      EXPECT_EQ(a[i].language, b[i].language) << parameters << " clip " << i;
      EXPECT_EQ(a[i].times, b[i].times) << parameters << " clip " << i;
    }
    EXPECT_EQ(b[0].text, "Hello world. Again. Hello world. Again.") << parameters;
    EXPECT_EQ(b[1].text, "Quiet. naïve") << parameters;
  }
  std::filesystem::remove(merged.path() / "1" / "decoder_model_merged.onnx");
  EXPECT_THAT(Load("", &merged).status().message(),
              HasSubstr("neither decoder_model.onnx nor decoder_model_merged.onnx"));
}

TEST_F(WhisperTest, BeamSearchAgreesWithGreedyOnAForcedScript) {
  auto greedy = Load("");
  auto beams = Load("beam_size: 4");
  ASSERT_TRUE(greedy.ok() && beams.ok()) << beams.status().ToString();
  // Four hypotheses per window: the rows grow from one per window after the
  // prompt, follow their parents, and leave when their window is done.
  const std::vector<std::string> clips = {Tone(40), Silence(2), Tone(3)};
  auto a = Run(*(*greedy)[0], clips);
  auto b = Run(*(*beams)[0], clips);
  ASSERT_EQ(b.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(a[i].text, b[i].text) << i;
    EXPECT_EQ(a[i].times, b[i].times) << i;
  }
  EXPECT_EQ(b[0].times.size(), 4u);
}

TEST_F(WhisperTest, RepetitionFallsBackToHotterSampling) {
  onnxgen::WhisperStandIn spec = Script();
  spec.loud = {"<|en|>", "<|transcribe|>", "<|0.00|>"};
  for (int i = 0; i < 40; ++i) spec.loud.push_back("ĠHello");
  spec.loud.push_back("<|5.00|>");
  testing::TempDir dir;
  std::filesystem::create_directories(dir.path() / "1");
  ASSERT_TRUE(onnxgen::WriteWhisperStandIn(spec, dir.path() / "1").ok());
  auto with = Load("", &dir);
  auto without = Load("temperature_fallback: false", &dir);
  ASSERT_TRUE(with.ok() && without.ok());
  auto hot = Run(*(*with)[0], {Tone(5), Silence(1)});
  auto cold = Run(*(*without)[0], {Tone(5)});
  ASSERT_EQ(hot.size(), 2u);
  ASSERT_EQ(cold.size(), 1u);
  ASSERT_EQ(cold[0].temperatures.size(), 1u);
  EXPECT_GT(cold[0].compression_ratios[0], 2.4) << "forty times the same word";
  EXPECT_EQ(cold[0].temperatures[0], 0.0);
  // Sampling still says the script (it wins by a wide margin), so every
  // temperature repeats it and the last one, 1.0, stands.
  ASSERT_EQ(hot[0].temperatures.size(), 1u);
  EXPECT_EQ(hot[0].temperatures[0], 1.0);
  EXPECT_EQ(hot[0].text, cold[0].text);
  EXPECT_EQ(hot[1].text, "Quiet. naïve") << "a window that decoded well is left alone";
  EXPECT_EQ(hot[1].temperatures, std::vector<double>{0.0});
}

TEST_F(WhisperTest, AFixedLanguageAndNoTimestamps) {
  // A model that speaks without timestamps: its text starts after
  // <|notimestamps|>, the prompt's fourth token.
  onnxgen::WhisperStandIn spec = Script();
  spec.loud = {"<|de|>", "<|transcribe|>", "<|notimestamps|>", "ĠHello", "Ġworld", ".", "ĠAgain",
               "."};
  testing::TempDir dir;
  std::filesystem::create_directories(dir.path() / "1");
  ASSERT_TRUE(onnxgen::WriteWhisperStandIn(spec, dir.path() / "1").ok());
  auto instances = Load("language: en, timestamps: false", &dir);
  ASSERT_TRUE(instances.ok()) << instances.status().ToString();
  auto transcripts = Run(*(*instances)[0], {Tone(3)});
  ASSERT_EQ(transcripts.size(), 1u);
  EXPECT_EQ(transcripts[0].language, "en") << "not detected";
  EXPECT_EQ(transcripts[0].text, "Hello world. Again.");
  EXPECT_EQ(transcripts[0].times, (Times{{0, 3}})) << "one segment, the window";
}

TEST_F(WhisperTest, AnEnglishOnlyModelIsPromptedWithoutLanguageAndTask) {
  // The prompt is <|startoftranscript|> alone: the text's first timestamp
  // is what position 0 predicts.
  onnxgen::WhisperStandIn spec = Script();
  spec.loud = {"<|0.00|>", "ĠHello", "Ġworld", ".", "<|1.00|>"};
  testing::TempDir dir;
  std::filesystem::create_directories(dir.path() / "1");
  ASSERT_TRUE(onnxgen::WriteWhisperStandIn(spec, dir.path() / "1").ok());
  dir.Write("1/generation_config.json", R"({"is_multilingual": false, "max_length": 448})");
  auto instances = Load("", &dir);
  ASSERT_TRUE(instances.ok()) << instances.status().ToString();
  auto transcripts = Run(*(*instances)[0], {Tone(2)});
  ASSERT_EQ(transcripts.size(), 1u);
  EXPECT_EQ(transcripts[0].language, "en");
  EXPECT_EQ(transcripts[0].text, "Hello world.");
  EXPECT_EQ(transcripts[0].times, (Times{{0, 1}}));
}

TEST_F(WhisperTest, BadConfigsAreRefusedByName) {
  EXPECT_THAT(Load("language: xx").status().message(), HasSubstr("'xx' has no token"));
  EXPECT_THAT(Load("task: summarise").status().message(), HasSubstr("transcribe or translate"));
  EXPECT_THAT(Load("kv_cache: maybe").status().message(), HasSubstr("true or false"));
  EXPECT_THAT(Load("max_new_tokens: 0").status().message(), HasSubstr("from 1 to 440"));
  EXPECT_THAT(Load("beam_size: 17").status().message(), HasSubstr("from 1 to 16"));
  auto instances = Load("");
  ASSERT_TRUE(instances.ok());
  auto garbage = *Tensor::FromStrings({"not audio"}, {1, 1});
  std::vector<Tensor> outputs;
  EXPECT_FALSE((*instances)[0]->Execute(std::span(&garbage, 1), &outputs).ok());
}

}  // namespace
}  // namespace braid
