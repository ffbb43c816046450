// A Hugging Face CLIP text tower dropped into a repository: a graph with
// the interface of an Optimum / Transformers.js export (input_ids and
// attention_mask of [batch, sequence] in, text_embeds and last_hidden_state
// out) next to the vocab.json, merges.txt and special_tokens_map.json such
// an export ships. Its weights make text_embeds the mean of the token rows
// the mask keeps, so the vector braid returns proves the tokenizer read from
// those files and the mask fed beside the ids: with the padding counted, or
// another tokenisation, it would differ.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <cmath>
#include <fstream>

#include "onnxgen/graph_builder.h"
#include "support/command.h"
#include "support/server_process.h"
#include "support/temp_dir.h"

namespace braid {
namespace {

using ::testing::HasSubstr;
using testing::RunCommand;
using testing::ServerProcess;

constexpr std::int64_t kWidth = 8;

// The vocabulary of a tiny CLIP-style BPE: letters a–z (0–25), their "</w>"
// forms (26–51), four merges and the special tokens.
constexpr std::int64_t kHello = 56, kStart = 57, kEnd = 58, kVocab = 59;

std::string VocabJson() {
  std::string vocab = "{";
  int id = 0;
  for (char c = 'a'; c <= 'z'; ++c) vocab += fmt::format("\"{}\": {}, ", c, id++);
  for (char c = 'a'; c <= 'z'; ++c) vocab += fmt::format("\"{}</w>\": {}, ", c, id++);
  return vocab + R"("he": 52, "ll": 53, "hell": 54, "o</w>": 55, "hello</w>": 56, )"
                 R"("<|startoftext|>": 57, "<|endoftext|>": 58})";
}

// Row `id` of the embedding table.
float Weight(std::int64_t id, std::int64_t j) {
  return static_cast<float>((id * 7 + j * 3) % 11) - 5.0f;
}

onnx::ModelProto TextTower() {
  onnx::ModelProto model = onnxgen::NewModel("clip-text-export");
  onnxgen::GraphBuilder g(model.mutable_graph(), 1);
  g.Input("input_ids", onnx::TensorProto::INT64, {-1, -1});
  g.Input("attention_mask", onnx::TensorProto::INT64, {-1, -1});
  std::vector<float> table;
  for (std::int64_t id = 0; id < kVocab; ++id) {
    for (std::int64_t j = 0; j < kWidth; ++j) table.push_back(Weight(id, j));
  }
  auto rows = g.Op("Gather", {g.Floats("token_embedding", {kVocab, kWidth}, table), "input_ids"});
  auto* cast = g.Node("Cast", {"attention_mask"});
  onnxgen::GraphBuilder::SetInt(cast, "to", onnx::TensorProto::FLOAT);
  auto mask = g.Op("Unsqueeze", {cast->output(0), g.Ints("feature_axis", {2})});
  g.Op("Mul", {rows, mask}, "last_hidden_state");
  auto* sum = g.Node("ReduceSum", {"last_hidden_state", g.Ints("sequence_axis", {1})});
  onnxgen::GraphBuilder::SetInt(sum, "keepdims", 0);
  auto* count = g.Node("ReduceSum", {mask, "sequence_axis"});
  onnxgen::GraphBuilder::SetInt(count, "keepdims", 0);
  g.Op("Div", {sum->output(0), count->output(0)}, "text_embeds");
  g.Output("text_embeds", onnx::TensorProto::FLOAT, {-1, kWidth});
  g.Output("last_hidden_state", onnx::TensorProto::FLOAT, {-1, -1, kWidth});
  return model;
}

constexpr char kConfig[] = R"(backend: onnxruntime
max_batch_size: 8
inputs:
  - {name: input_ids, datatype: INT64, dims: [-1]}
  - {name: attention_mask, datatype: INT64, dims: [-1]}
outputs:
  - {name: text_embeds, datatype: FP32, dims: [8]}
  - {name: last_hidden_state, datatype: FP32, dims: [-1, 8]}
dynamic_batching: {max_queue_delay_us: 1000}
)";

// The mean of the rows of `ids`, L2-normalised when `normalise`.
std::vector<float> MeanOf(const std::vector<std::int64_t>& ids, bool normalise) {
  std::vector<float> mean(kWidth, 0.0f);
  for (auto id : ids) {
    for (std::int64_t j = 0; j < kWidth; ++j) mean[j] += Weight(id, j) / ids.size();
  }
  double norm = 0;
  for (float x : mean) norm += double(x) * x;
  if (normalise) {
    for (float& x : mean) x = static_cast<float>(x / std::sqrt(norm));
  }
  return mean;
}

std::vector<float> Floats(const rapidjson::Value& array) {
  std::vector<float> values;
  for (const auto& x : array.GetArray()) values.push_back(x.GetFloat());
  return values;
}

struct Reply {
  int code = 0;
  std::string body;
};

Reply Post(const ServerProcess& server, const std::string& path, const std::string& json) {
  testing::TempDir dir;
  auto request = dir.Write("request.json", json);
  auto body = dir.path() / "body";
  auto result = RunCommand("curl -s -S -o " + body.string() +
                           " -w '%{http_code}' -H 'Content-Type: application/json' "
                           "--data-binary @" +
                           request.string() + " '" + server.url() + path + "'");
  std::ifstream in(body, std::ios::binary);
  return {std::atoi(result.out.c_str()), std::string(std::istreambuf_iterator<char>(in), {})};
}

class HfExportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    WriteModel(dir_->path() / "models" / "clip-text");
    // One workflow wires the mask; one written for a tower without it does not.
    dir_->Write("workflows/caption.yaml", R"(inputs: {text: {type: text}}
nodes:
  - {id: tokens, kind: preprocess.text, tokenizer: clip-text, from: {text: inputs.text}}
  - id: embedding
    kind: model
    model: clip-text
    from: {input_ids: tokens.input_ids, attention_mask: tokens.attention_mask}
outputs: {vector: embedding.text_embeds}
)");
    dir_->Write("workflows/ids-only.yaml", R"(inputs: {text: {type: text}}
nodes:
  - {id: tokens, kind: preprocess.text, tokenizer: clip-text, from: {text: inputs.text}}
  - {id: embedding, kind: model, model: clip-text, from: {input_ids: tokens.input_ids}}
outputs: {vector: embedding.text_embeds}
)");
    server_ = new ServerProcess({"--model-repository", (dir_->path() / "models").string(),
                                 "--workflows", (dir_->path() / "workflows").string()});
    ASSERT_TRUE(server_->ready()) << "ready line: " << server_->ready_line();
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(server_->Stop(), 0);
    delete server_;
    delete dir_;
  }

  static void WriteModel(const std::filesystem::path& folder) {
    std::filesystem::create_directories(folder / "1");
    std::ofstream(folder / "config.yaml") << kConfig;
    ASSERT_TRUE(onnxgen::CheckAndWriteModel(TextTower(), folder / "1" / "model.onnx").ok());
    std::ofstream(folder / "1" / "vocab.json") << VocabJson();
    std::ofstream(folder / "1" / "merges.txt") << "#version: 0.2\nh e\nl l\nhe ll\nhell o</w>\n";
    std::ofstream(folder / "1" / "special_tokens_map.json")
        << R"({"bos_token": {"content": "<|startoftext|>"}, "eos_token": "<|endoftext|>",
               "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"})";
  }

  static testing::TempDir* dir_;
  static ServerProcess* server_;
};
testing::TempDir* HfExportTest::dir_ = nullptr;
ServerProcess* HfExportTest::server_ = nullptr;

// "hello hi": <|startoftext|> hello</w> h i</w> <|endoftext|>, then 72
// padding tokens the mask leaves out.
const std::vector<std::int64_t> kHelloHi = {kStart, kHello, 7, 26 + 8, kEnd};

TEST_F(HfExportTest, EmbeddingsTokenizeWithTheExportsFilesAndFeedTheMask) {
  auto reply = Post(*server_, "/v1/embeddings", R"({"model": "clip", "input": "Hello  hi"})");
  ASSERT_EQ(reply.code, 200) << reply.body;
  rapidjson::Document doc;
  doc.Parse(reply.body.c_str());
  auto vector = Floats(doc["data"][0]["embedding"]);
  auto expected = MeanOf(kHelloHi, true);
  ASSERT_EQ(vector.size(), expected.size());
  for (std::size_t j = 0; j < expected.size(); ++j) EXPECT_NEAR(vector[j], expected[j], 1e-5) << j;
}

TEST_F(HfExportTest, AWorkflowWiresTheMaskAndOneWithoutItIsRefusedByName) {
  auto run = Post(*server_, "/v1/workflows/caption/run",
                  R"({"inputs": {"text": "hello hi"}, "response_mode": "blocking"})");
  ASSERT_EQ(run.code, 200) << run.body;
  rapidjson::Document doc;
  doc.Parse(run.body.c_str());
  auto vector = Floats(doc["data"]["outputs"]["vector"]);
  auto expected = MeanOf(kHelloHi, false);
  ASSERT_EQ(vector.size(), expected.size()) << run.body;
  for (std::size_t j = 0; j < expected.size(); ++j) EXPECT_NEAR(vector[j], expected[j], 1e-4) << j;

  auto old = Post(*server_, "/v1/workflows/ids-only/run",
                  R"({"inputs": {"text": "hello hi"}, "response_mode": "blocking"})");
  EXPECT_EQ(old.code, 503) << old.body;
  EXPECT_THAT(old.body, HasSubstr("model 'clip-text' also needs attention_mask"));
}

TEST_F(HfExportTest, KServeCallersSendTheMaskThemselves) {
  const std::string ids = R"({"name": "input_ids", "shape": [1, 3], "datatype": "INT64",
                              "data": [57, 56, 58]})";
  auto without = Post(*server_, "/v2/models/clip-text/infer", "{\"inputs\": [" + ids + "]}");
  EXPECT_EQ(without.code, 400) << without.body;
  EXPECT_THAT(without.body, HasSubstr("attention_mask"));
  auto with = Post(*server_, "/v2/models/clip-text/infer",
                   "{\"inputs\": [" + ids +
                       R"(, {"name": "attention_mask", "shape": [1, 3], "datatype": "INT64",
                              "data": [1, 1, 1]}], "outputs": [{"name": "text_embeds"}]})");
  ASSERT_EQ(with.code, 200) << with.body;
  rapidjson::Document doc;
  doc.Parse(with.body.c_str());
  auto vector = Floats(doc["outputs"][0]["data"]);
  auto expected = MeanOf({kStart, kHello, kEnd}, false);
  ASSERT_EQ(vector.size(), expected.size());
  for (std::size_t j = 0; j < expected.size(); ++j) EXPECT_NEAR(vector[j], expected[j], 1e-4) << j;
}

TEST_F(HfExportTest, ValidateSaysWhatTheTokenizerLacks) {
  testing::TempDir repository;
  WriteModel(repository.path() / "clip-text");
  const std::string validate =
      std::string(BRAID_BINARY) + " models validate " + repository.path().string() + " 2>&1";
  auto ok = RunCommand(validate);
  EXPECT_EQ(ok.exit_code, 0) << ok.out;
  EXPECT_THAT(ok.out, HasSubstr("READY"));
  EXPECT_THAT(ok.out, ::testing::Not(HasSubstr("note:")));

  std::filesystem::remove(repository.path() / "clip-text" / "1" / "merges.txt");
  auto absent = RunCommand(validate);
  EXPECT_EQ(absent.exit_code, 0) << absent.out;
  EXPECT_THAT(absent.out, HasSubstr("has no tokenizer.json, nor vocab.json with merges.txt"));

  repository.Write("clip-text/1/merges.txt", "#version: 0.2\nh e\nhello\n");
  auto broken = RunCommand(validate);
  EXPECT_EQ(broken.exit_code, 1) << broken.out;
  EXPECT_THAT(broken.out, HasSubstr("merges.txt:3"));
  EXPECT_THAT(broken.out, HasSubstr("merge 'hello' has no space"));
}

}  // namespace
}  // namespace braid
