// `braid align synth | train | eval`, run as a user would run them: small
// synthetic sets, so that the whole round trip takes seconds.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <fstream>
#include <sstream>

#include "core/npy.h"
#include "support/command.h"
#include "support/temp_dir.h"

namespace braid {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::RunCommand;

const std::string kBraid = BRAID_BINARY;
const std::string kModels = BRAID_TEST_MODELS;

rapidjson::Document ParseJson(const std::string& text) {
  rapidjson::Document document;
  document.Parse(text.c_str());
  EXPECT_FALSE(document.HasParseError()) << text;
  return document;
}

std::string Slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

double Recall10(const rapidjson::Value& metrics, const char* direction) {
  return metrics[direction]["recall_at_10"].GetDouble();
}

// A throwaway repository holding the stock align model (config and version 1).
std::filesystem::path CopyAlignRepository(const testing::TempDir& dir) {
  const auto repository = dir.path() / "models";
  std::filesystem::create_directories(repository / "align/1");
  std::filesystem::copy_file(kModels + "/align/config.yaml", repository / "align/config.yaml");
  std::filesystem::copy_file(kModels + "/align/1/model.onnx", repository / "align/1/model.onnx");
  return repository;
}

TEST(AlignCliTest, SynthTrainEvalRoundTrip) {
  testing::TempDir dir;
  const std::string train_prefix = (dir.path() / "train").string();
  const std::string test_prefix = (dir.path() / "test").string();
  const auto repository = CopyAlignRepository(dir);

  auto synth = RunCommand(kBraid + " align synth --count 2500 --noise 0.5 --seed 1 --json --out " +
                          train_prefix);
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  auto summary = ParseJson(synth.out);
  EXPECT_EQ(summary["pairs"]["count"].GetInt(), 2500);
  EXPECT_GT(Recall10(summary["oracle"], "text_to_image"), 0.8);
  auto images = ReadNpy(train_prefix + ".image.npy");
  ASSERT_TRUE(images.ok()) << images.status().ToString();
  EXPECT_EQ(images->shape(), (Shape{2500, 512}));

  synth = RunCommand(kBraid + " align synth --count 500 --noise 0.5 --seed 2 --out " + test_prefix);
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  EXPECT_THAT(synth.out, AllOf(HasSubstr("oracle (true maps)"), HasSubstr("raw cosine")));

  const auto report_path = dir.path() / "report.json";
  auto train = RunCommand(kBraid + " align train --pairs " + train_prefix +
                          " --epochs 6 --model-repository " + repository.string() + " --report " +
                          report_path.string());
  ASSERT_EQ(train.exit_code, 0) << train.err;
  EXPECT_THAT(train.out, AllOf(HasSubstr("epoch   1/6  loss"), HasSubstr("epoch   6/6  loss"),
                               HasSubstr("version 2 of align")));
  const auto model = repository / "align/2/model.onnx";
  EXPECT_TRUE(std::filesystem::exists(model));

  auto report = ParseJson(Slurp(report_path));
  EXPECT_EQ(report["epochs"].Size(), 6u);
  EXPECT_EQ(report["validation_pairs"].GetInt(), 500);
  EXPECT_EQ(report["model"].GetString(), model.string());
  EXPECT_LT(report["final_loss"].GetDouble(), report["epochs"][0]["loss"].GetDouble());
  EXPECT_NEAR(report["temperature"].GetDouble(), 0.07, 1e-6);
  const auto& validation = report["validation"];
  for (const char* direction : {"text_to_image", "image_to_text"}) {
    EXPECT_GT(Recall10(validation["trained"], direction),
              Recall10(validation["untrained"], direction) + 0.5)
        << direction;
  }

  // eval with no --model picks the newest version in the repository: the
  // one just trained. On unseen pairs of the same world it generalises.
  auto eval = RunCommand(kBraid + " align eval --json --pairs " + test_prefix + " -m " +
                         repository.string());
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  auto results = ParseJson(eval.out);
  EXPECT_EQ(results["model"].GetString(), model.string());
  const auto& raw = results["paths"][0];
  const auto& aligned = results["paths"][1];
  EXPECT_STREQ(raw["name"].GetString(), "raw");
  EXPECT_EQ(raw["dims"].GetInt(), 512);
  EXPECT_EQ(raw["parameters"].GetInt(), 0);
  EXPECT_EQ(aligned["dims"].GetInt(), 128);
  EXPECT_EQ(aligned["parameters"].GetInt(), 2 * (512 * 128 + 128));
  EXPECT_EQ(aligned["flops_per_comparison"].GetInt(), 256);
  EXPECT_EQ(raw["flops_per_comparison"].GetInt(), 1024);
  for (const char* direction : {"text_to_image", "image_to_text"}) {
    EXPECT_GT(Recall10(aligned, direction), Recall10(raw, direction) + 0.5) << direction;
  }

  // The stock stand-in, for comparison: untrained, near chance.
  eval = RunCommand(kBraid + " align eval --pairs " + test_prefix + " --model " +
                    (repository / "align/1/model.onnx").string());
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  EXPECT_THAT(eval.out, AllOf(HasSubstr("aligned heads"), HasSubstr("per query over 500 items")));
}

TEST(AlignCliTest, TrainToAFileWithALearnedTemperature) {
  testing::TempDir dir;
  const std::string prefix = (dir.path() / "pairs").string();
  ASSERT_EQ(RunCommand(kBraid + " align synth --count 400 --out " + prefix).exit_code, 0);
  const auto model = dir.path() / "heads.onnx";
  auto train = RunCommand(kBraid + " align train --images " + prefix + ".image.npy --texts " +
                          prefix + ".text.npy --epochs 2 --learn-temperature --temperature 0.2 " +
                          "--output " + model.string());
  ASSERT_EQ(train.exit_code, 0) << train.err;
  EXPECT_THAT(train.out, HasSubstr("(learned)"));
  EXPECT_TRUE(std::filesystem::exists(model));
}

// Every bad input: exit code 2, a message naming the problem, nothing written.
TEST(AlignCliTest, BadInputsGiveClearErrors) {
  testing::TempDir dir;
  const auto repository = CopyAlignRepository(dir);
  const std::string prefix = (dir.path() / "pairs").string();
  ASSERT_EQ(RunCommand(kBraid + " align synth --count 20 --out " + prefix).exit_code, 0);
  ASSERT_EQ(RunCommand(kBraid + " align synth --count 30 --out " + (dir.path() / "more").string())
                .exit_code,
            0);
  ASSERT_EQ(RunCommand(kBraid + " align synth --count 20 --dim 256 --out " +
                       (dir.path() / "narrow").string())
                .exit_code,
            0);
  Tensor ints = *Tensor::Allocate(DataType::kInt32, {20, 512});
  ASSERT_TRUE(WriteNpy(dir.path() / "ints.npy", ints).ok());

  auto expect_error = [&](const std::string& args, const std::string& expected) {
    auto result = RunCommand(kBraid + " align " + args);
    EXPECT_EQ(result.exit_code, 2) << args << "\n" << result.err;
    EXPECT_THAT(result.err, HasSubstr(expected)) << args;
  };
  const std::string repo = " -m " + repository.string();
  expect_error("train --images " + prefix + ".image.npy --texts " + dir.path().string() +
                   "/more.text.npy" + repo,
               "mismatched pair counts");
  expect_error("train --pairs " + (dir.path() / "narrow").string() + repo,
               "256-dimensional, expected 512");
  expect_error("train --images " + (dir.path() / "ints.npy").string() + " --texts " + prefix +
                   ".text.npy" + repo,
               "must be FP32");
  expect_error("train --pairs " + (dir.path() / "absent").string() + repo, "no such file");
  expect_error("train" + repo, "give the pairs as --pairs PREFIX");
  expect_error("train --pairs " + prefix + " -m " + (dir.path() / "empty").string(),
               "no align model in");
  expect_error("eval --pairs " + (dir.path() / "narrow").string() + repo,
               "not an align model for 256-dimensional embeddings");
  expect_error("eval --pairs " + prefix + " --model " + (dir.path() / "none.onnx").string(),
               "no such model file");
  EXPECT_FALSE(std::filesystem::exists(repository / "align/2"));
}

}  // namespace
}  // namespace braid
