// The real braid binary, run as a user would run it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "core/file_util.h"
#include "core/npy.h"
#include "support/child_process.h"
#include "support/command.h"
#include "support/temp_dir.h"

namespace braid {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;
using testing::RunCommand;

const std::string kBraid = BRAID_BINARY;
const std::string kModels = BRAID_TEST_MODELS;

// Counts the lines of `text`.
int Lines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

TEST(CliTest, HelpOnEveryCommand) {
  for (const std::string command : {"", " models", " models list", " models validate", " infer"}) {
    auto result = RunCommand(kBraid + command + " --help");
    EXPECT_EQ(result.exit_code, 0) << command;
    EXPECT_THAT(result.out, HasSubstr("Usage")) << command;
  }
}

TEST(CliTest, ModelsListReadsTheConfigsAndValidateLoads) {
  auto result = RunCommand(kBraid + " models list");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  for (const std::string model : {"align", "clip-image", "clip-text", "identity", "text-embed"}) {
    EXPECT_THAT(result.out, MatchesRegex("(.|\n)*\n" + model + " +1 +onnxruntime .*\n(.|\n)*"))
        << result.out;
  }
  // Whoever meets the stand-ins is told what they are.
  EXPECT_THAT(result.out, MatchesRegex("(.|\n)*\nclip-text +1 +onnxruntime +stand-in with "
                                       "random weights(.|\n)*"));
  EXPECT_THAT(result.err, HasSubstr("braid models validate"));
  auto validate = RunCommand(kBraid + " models validate");
  ASSERT_EQ(validate.exit_code, 0) << validate.err;
  EXPECT_THAT(validate.out, MatchesRegex("(.|\n)*\nidentity +1 +onnxruntime +READY .*\n(.|\n)*"));
}

TEST(CliTest, ServeSaysEachModelAsItLoads) {
  testing::TempDir dir;
  const std::string log = (dir.path() / "serve.log").string();
  testing::ChildProcess server({"/bin/sh", "-c",
                                "exec " + kBraid +
                                    " serve --host 127.0.0.1 --http-port 0 --grpc-port 0 "
                                    "--metrics-port 0 2>" +
                                    log});
  ASSERT_THAT(server.first_line(), HasSubstr("braid ready"));
  const std::string said = RunCommand("cat " + log).out;
  EXPECT_THAT(said, MatchesRegex("(.|\n)*loading [0-9]+ models from (.|\n)*"));
  for (const std::string model : {"identity", "clip-image", "ocr", "asr"})
    EXPECT_THAT(said, MatchesRegex("(.|\n)*model " + model +
                                   " ready \\([0-9]+/[0-9]+, [0-9.]+ s\\)(.|\n)*"))
        << said;
}

// `braid serve --config FILE` takes its options from the file's [serve]
// table, and an option on the command line wins over the file's.
TEST(CliTest, ServeReadsItsOptionsFromATomlFile) {
  testing::TempDir dir;
  const auto config = dir.path() / "braid.toml";
  ASSERT_TRUE(WriteFile(config,
                        "[serve]\nhost = \"127.0.0.1\"\nhttp-port = 8000\nmetrics-port = 0\n"
                        "drain-timeout = 5\n")
                  .ok());
  testing::ChildProcess server(
      {kBraid, "serve", "--config", config.string(), "--http-port", "0", "--grpc-port", "0"});
  const std::string ready = server.first_line();
  EXPECT_THAT(ready,
              MatchesRegex("braid ready http=127\\.0\\.0\\.1:[0-9]+ grpc=127\\.0\\.0\\.1:[0-9]+ "
                           "metrics=127\\.0\\.0\\.1:[0-9]+\n"));
  EXPECT_THAT(ready, Not(HasSubstr(":8000 ")));
}

TEST(CliTest, ConfigFileMistakesAreRefusedByName) {
  testing::TempDir dir;
  const auto typo = dir.path() / "typo.toml";
  ASSERT_TRUE(WriteFile(typo, "[serve]\nhttp-prt = 9000\n").ok());
  auto result = RunCommand(kBraid + " serve --config " + typo.string());
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.err, HasSubstr("http-prt"));
  result = RunCommand(kBraid + " serve --config " + (dir.path() / "missing.toml").string());
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.err, HasSubstr("missing.toml"));
}

TEST(CliTest, InferRandomClipImagePrintsOneEmbedding) {
  auto result = RunCommand(kBraid + " infer clip-image --input pixel_values=random");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out,
              AllOf(HasSubstr(R"("model_name":"clip-image")"),
                    HasSubstr(R"("name":"image_embeds")"), HasSubstr(R"("shape":[1,512])")));
  EXPECT_EQ(Lines(result.out), 1);
}

TEST(CliTest, InferFromNpyAndJsonToNpy) {
  testing::TempDir dir;
  auto input = *Tensor::Allocate(DataType::kFp32, {2, 16});
  for (std::size_t i = 0; i < 32; ++i) input.mutable_span<float>()[i] = static_cast<float>(i) / 4;
  ASSERT_TRUE(WriteNpy(dir.path() / "in.npy", input).ok());
  auto result = RunCommand(kBraid + " infer identity -i input=" + (dir.path() / "in.npy").string() +
                           " --output-dir " + (dir.path() / "out").string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto output = ReadNpy(dir.path() / "out/output.npy");
  ASSERT_TRUE(output.ok()) << output.status().ToString();
  EXPECT_EQ(output->shape(), (Shape{2, 16}));
  EXPECT_EQ(output->span<float>()[31], 7.75f);

  std::string row = "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15.5]";
  dir.Write("in.json", "[" + row + "]");
  result = RunCommand(kBraid + " infer identity -i input=" + (dir.path() / "in.json").string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_THAT(result.out,
              HasSubstr(R"("shape":[1,16],"data":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15.5])"));
}

// Every bad input: exit code non-zero, one clear line on stderr, nothing on stdout.
void ExpectCleanErrorIn(const std::string& command, const std::string& expected) {
  auto result = RunCommand(command);
  EXPECT_NE(result.exit_code, 0) << command;
  EXPECT_LT(result.exit_code, 128) << "crashed: " << command;
  EXPECT_THAT(result.err, HasSubstr(expected)) << command;
  EXPECT_EQ(Lines(result.err), 1) << result.err;
  EXPECT_TRUE(result.out.empty()) << result.out;
}

void ExpectCleanError(const std::string& arguments, const std::string& expected) {
  ExpectCleanErrorIn(kBraid + " " + arguments, expected);
}

TEST(CliTest, BadInputsGiveOneClearError) {
  testing::TempDir dir;
  const std::string d = dir.path().string();
  ASSERT_TRUE(WriteNpy(dir.path() / "int.npy", *Tensor::Allocate(DataType::kInt64, {1, 16})).ok());
  ASSERT_TRUE(WriteNpy(dir.path() / "short.npy", *Tensor::Allocate(DataType::kFp32, {1, 15})).ok());
  dir.Write("corrupt.npy", "\x93NUMPY garbage");
  dir.Write("ragged.json", "[[1,2],[3]]");
  dir.Write("input.txt", "1 2 3");

  ExpectCleanError("infer identity -i input=" + d + "/int.npy", "must be FP32, not INT64");
  ExpectCleanError("infer identity -i input=" + d + "/short.npy",
                   "has shape [1,15], expected [-1,16]");
  ExpectCleanError("infer identity -i input=" + d + "/corrupt.npy", "corrupt.npy");
  ExpectCleanError("infer identity -i input=" + d + "/ragged.json", "ragged");
  ExpectCleanError("infer identity -i input=" + d + "/input.txt", "must be .npy or .json");
  ExpectCleanError("infer identity -i input=" + d + "/absent.npy", "absent.npy: no such file");
  ExpectCleanError("infer identity -i pixels=random", "has no input 'pixels'");
  ExpectCleanError("infer identity -i input", "NAME=FILE");
  ExpectCleanError("infer nope -i input=random", "no model 'nope'");
  ExpectCleanError("infer identity -i input=random -m " + d + "/no-such-repo",
                   "no model 'identity'");
}

TEST(CliTest, InferOcrAndAsrOnMediaFiles) {
  const std::string fixtures = BRAID_TEST_FIXTURES;
  auto ocr = RunCommand(kBraid + " infer ocr --input image=" + fixtures +
                        "/images/text_1_DejaVu-Sans_40.png");
  ASSERT_EQ(ocr.exit_code, 0) << ocr.err;
  EXPECT_THAT(ocr.out, HasSubstr("Invoice number 4821"));
  auto asr = RunCommand(kBraid + " infer asr --input audio=" + fixtures + "/speech/say_0.wav");
  ASSERT_EQ(asr.exit_code, 0) << asr.err;
  EXPECT_THAT(asr.out, HasSubstr("the weather is nice today"));
  ExpectCleanErrorIn(kBraid + " infer ocr --input image=" + fixtures + "/bad/bomb.png",
                     "pixel limit");
}

TEST(CliTest, RunPrintsWorkflowEventsAsTheyHappen) {
  const std::string fixtures = BRAID_TEST_FIXTURES;
  auto run =
      RunCommand(kBraid + " run speech-report --audio " + fixtures + "/speech/say_0.wav --image " +
                 fixtures + "/images/text_1_DejaVu-Sans_40.png");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::vector<std::string> lines;
  std::istringstream out(run.out);
  for (std::string line; std::getline(out, line);) lines.push_back(line);
  ASSERT_GE(lines.size(), 6u);
  EXPECT_THAT(lines.front(), HasSubstr(R"("event":"workflow_started")"));
  EXPECT_THAT(lines.back(),
              AllOf(HasSubstr(R"("event":"workflow_finished")"),
                    HasSubstr("the weather is nice today"), HasSubstr("Invoice number 4821")));
  ExpectCleanErrorIn(kBraid + " run speech-report --text hello", "takes no text input");
  ExpectCleanErrorIn(kBraid + " run speech-report", "needs --audio");
  ExpectCleanErrorIn(kBraid + " run no-such-workflow --text x",
                     "unknown workflow 'no-such-workflow'; the workflows are: ");
  ExpectCleanErrorIn(kBraid + " run speech-reprt --text x",
                     "unknown workflow 'speech-reprt'; did you mean 'speech-report'? the "
                     "workflows are: ");
}

TEST(CliTest, RunLoadsOnlyTheModelsOfItsWorkflow) {
  // A broken model the workflow does not name is never loaded, so nothing
  // is said about it; loading every model would have warned.
  testing::TempDir dir;
  ASSERT_EQ(RunCommand("cp -r " + kModels + "/. " + dir.path().string()).exit_code, 0);
  dir.Write("broken/config.yaml", "backend: onnxruntime\ninputs: [{name: x\n");
  const std::string fixtures = BRAID_TEST_FIXTURES;
  auto run = RunCommand(kBraid + " run read-aloud -m " + dir.path().string() + " --image " +
                        fixtures + "/images/text_1_DejaVu-Sans_40.png");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("Invoice number 4821"));
  EXPECT_THAT(run.err, Not(HasSubstr("broken")));
  auto validate = RunCommand(kBraid + " models validate " + dir.path().string());
  EXPECT_THAT(validate.out, HasSubstr("malformed YAML")) << "the model is broken indeed";
}

TEST(CliTest, BrokenRepositoryIsReportedPerModel) {
  testing::TempDir dir;
  dir.Write("broken/config.yaml", "backend: onnxruntime\ninputs: [{name: x\n");
  dir.Write("missing/config.yaml",
            "backend: onnxruntime\nmax_batch_size: 1\ninputs: [{name: input, datatype: FP32, dims: "
            "[16]}]\n"
            "outputs: [{name: output, datatype: FP32, dims: [16]}]\n");
  std::filesystem::create_directories(dir.path() / "missing/1");
  std::filesystem::create_directories(dir.path() / "good/1");
  std::filesystem::copy_file(kModels + "/identity/1/model.onnx", dir.path() / "good/1/model.onnx");
  std::filesystem::copy_file(kModels + "/identity/config.yaml", dir.path() / "good/config.yaml");

  auto validate = RunCommand(kBraid + " models validate " + dir.path().string());
  EXPECT_EQ(validate.exit_code, 1);
  EXPECT_THAT(
      validate.out,
      AllOf(
          MatchesRegex("(.|\n)*good +1 +onnxruntime +READY(.|\n)*"),
          MatchesRegex("(.|\n)*broken +- +- +UNAVAILABLE .*malformed YAML(.|\n)*"),
          MatchesRegex("(.|\n)*missing +- +onnxruntime +UNAVAILABLE .*model file missing(.|\n)*")));
  EXPECT_THAT(validate.err, HasSubstr("2 of 3 models failed"));

  auto list = RunCommand(kBraid + " models list " + dir.path().string());
  EXPECT_EQ(list.exit_code, 0) << "list reports failures without failing";
  EXPECT_THAT(list.out,
              AllOf(MatchesRegex("(.|\n)*good +1 +onnxruntime(.|\n)*"),
                    MatchesRegex("(.|\n)*broken +- +- +cannot load: .*malformed YAML(.|\n)*")));

  auto infer = RunCommand(kBraid + " infer broken -i x=random -m " + dir.path().string());
  EXPECT_EQ(infer.exit_code, 1);
  EXPECT_THAT(infer.err, AllOf(HasSubstr("broken/config.yaml"), HasSubstr("malformed YAML")));
}

}  // namespace
}  // namespace braid
