// The embedded OCR (Tesseract) and ASR (PocketSphinx) models on generated
// fixtures: character and word error rates against the known text, bounded
// so that a regression fails, and every hostile media file refused cleanly.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "backends/backends.h"
#include "core/file_util.h"
#include "model/repository.h"
#include "support/text_errors.h"

namespace braid {
namespace {

const std::filesystem::path kFixtures = BRAID_TEST_FIXTURES;

// Measured on this project's machine (docs/models.md): OCR CER 0.0% over 36
// images, ASR WER 9.7% over 6 clips (3 of 31 words). The bounds leave a
// margin for other builds of the same Debian packages.
constexpr double kMaxCharacterErrorRate = 0.02;
constexpr double kMaxWordErrorRate = 0.25;

std::vector<std::string> Words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

std::vector<std::pair<std::string, std::string>> Manifest(const std::string& name) {
  std::ifstream in(kFixtures / name);
  std::vector<std::pair<std::string, std::string>> rows;
  for (std::string line; std::getline(in, line);) {
    auto tab = line.find('\t');
    if (tab != std::string::npos) rows.emplace_back(line.substr(0, tab), line.substr(tab + 1));
  }
  return rows;
}

class RecognitionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    backends_ = new BackendRegistry;
    RegisterBuiltinBackends(*backends_);
    repository_ = new ModelRepository(BRAID_TEST_MODELS, *backends_);
    ASSERT_TRUE(repository_->Load("ocr").ok());
    ASSERT_TRUE(repository_->Load("asr").ok());
  }
  static void TearDownTestSuite() {
    delete repository_;
    delete backends_;
  }

  // Runs `model` on the file's bytes; returns its outputs or the error.
  static Result<std::vector<Tensor>> Run(const std::string& model_name,
                                         const std::filesystem::path& file) {
    ModelPtr model = *repository_->Get(model_name);
    BRAID_ASSIGN_OR_RETURN(std::string bytes, ReadFile(file));
    BRAID_ASSIGN_OR_RETURN(Tensor input, Tensor::FromStrings({bytes}, {1}));
    std::vector<Tensor> outputs;
    BRAID_RETURN_IF_ERROR(model->Execute(0, std::vector<Tensor>{input}, &outputs));
    return outputs;
  }

  static BackendRegistry* backends_;
  static ModelRepository* repository_;
};
BackendRegistry* RecognitionTest::backends_ = nullptr;
ModelRepository* RecognitionTest::repository_ = nullptr;

TEST_F(RecognitionTest, OcrCharacterErrorRate) {
  auto rows = Manifest("images.tsv");
  ASSERT_GE(rows.size(), 30u);
  std::size_t errors = 0, characters = 0;
  for (const auto& [file, expected] : rows) {
    auto outputs = Run("ocr", kFixtures / file);
    ASSERT_TRUE(outputs.ok()) << file << ": " << outputs.status().ToString();
    std::string got = testing::NormaliseRecognised((*(*outputs)[0].Strings())[0]);
    std::string want = testing::NormaliseRecognised(expected);
    errors += testing::EditDistance(std::vector<char>(got.begin(), got.end()),
                                    std::vector<char>(want.begin(), want.end()));
    characters += want.size();
    // Word boxes and confidences come with the text.
    const Tensor& words = (*outputs)[1];
    const Tensor& boxes = (*outputs)[2];
    const Tensor& confidences = (*outputs)[3];
    ASSERT_EQ(boxes.shape(), (Shape{words.shape()[0], 4}));
    ASSERT_EQ(confidences.shape(), (Shape{words.shape()[0]}));
    for (std::int64_t w = 0; w < words.shape()[0]; ++w) {
      auto box = boxes.span<std::int32_t>().subspan(w * 4, 4);
      EXPECT_LT(box[0], box[2]);
      EXPECT_LT(box[1], box[3]);
    }
  }
  const double cer = double(errors) / characters;
  std::printf("OCR character error rate: %.2f%% over %zu images (%zu characters)\n", 100 * cer,
              rows.size(), characters);
  EXPECT_LE(cer, kMaxCharacterErrorRate);
}

TEST_F(RecognitionTest, AsrWordErrorRate) {
  auto rows = Manifest("speech.tsv");
  ASSERT_GE(rows.size(), 5u);
  std::size_t errors = 0, words = 0;
  for (const auto& [file, expected] : rows) {
    auto outputs = Run("asr", kFixtures / file);
    ASSERT_TRUE(outputs.ok()) << file << ": " << outputs.status().ToString();
    auto got = Words(testing::NormaliseRecognised((*(*outputs)[0].Strings())[0]));
    auto want = Words(testing::NormaliseRecognised(expected));
    std::printf("  %s: \"%s\"\n", file.c_str(), std::string((*(*outputs)[0].Strings())[0]).c_str());
    errors += testing::EditDistance(got, want);
    words += want.size();
    // Word timings are ordered and inside the clip (a decoder that has
    // heard other clips before counts from this one's start: flite writes
    // 16 kHz mono 16-bit samples after a 44-byte header).
    const double seconds = double(std::filesystem::file_size(kFixtures / file) - 44) / 2 / 16000;
    const Tensor& timings = (*outputs)[2];
    float previous = 0;
    for (std::int64_t w = 0; w < timings.shape()[0]; ++w) {
      float start = timings.span<float>()[2 * w], end = timings.span<float>()[2 * w + 1];
      EXPECT_LE(previous, start + 1e-3f);
      EXPECT_LT(start, end);
      EXPECT_LE(end, seconds + 0.02) << file;
      previous = end;
    }
  }
  const double wer = double(errors) / words;
  std::printf("ASR word error rate: %.1f%% over %zu clips (%zu words)\n", 100 * wer, rows.size(),
              words);
  EXPECT_LE(wer, kMaxWordErrorRate);
}

TEST_F(RecognitionTest, HostileMediaIsRefusedCleanly) {
  struct Case {
    std::string model, file, message;
  };
  for (const auto& c : std::vector<Case>{{"ocr", "empty.png", "empty"},
                                         {"ocr", "truncated.png", "corrupt or truncated"},
                                         {"ocr", "truncated.jpg", "truncated JPEG"},
                                         {"ocr", "garbage.jpg", "corrupt JPEG"},
                                         {"ocr", "bomb.png", "pixel limit"},
                                         {"asr", "empty.wav", "empty"},
                                         {"asr", "zero_rate.wav", "cannot decode audio"},
                                         {"asr", "absurd_rate.wav", "outside"},
                                         {"asr", "eight_channels.wav", "8 channels"},
                                         {"asr", "truncated.wav", "cannot decode audio"},
                                         {"asr", "garbage.mp3", "cannot decode audio"}}) {
    auto outputs = Run(c.model, kFixtures / "bad" / c.file);
    ASSERT_FALSE(outputs.ok()) << c.file;
    EXPECT_TRUE(outputs.status().code() == StatusCode::kInvalidArgument ||
                outputs.status().code() == StatusCode::kTooLarge)
        << c.file << ": " << outputs.status().ToString();
    EXPECT_THAT(outputs.status().message(), ::testing::HasSubstr(c.message)) << c.file;
  }
  // A header that claims three hours over one second of data: only the data
  // present is decoded, so no giant allocation happens.
  auto lying = Run("asr", kFixtures / "bad" / "three_hours.wav");
  EXPECT_TRUE(lying.ok() || lying.status().code() == StatusCode::kTooLarge);
}

}  // namespace
}  // namespace braid
