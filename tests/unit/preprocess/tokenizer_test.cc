#include "preprocess/tokenizer.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <fstream>
#include <set>

#include "support/temp_dir.h"

namespace braid {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A CLIP-style byte-level BPE the test builds: letters a–z and their </w>
// forms, a few merges, and the special tokens.
std::string ClipStyleJson(bool merges_as_arrays = false) {
  std::string vocab;
  int id = 0;
  for (char c = 'a'; c <= 'z'; ++c) vocab += fmt::format("\"{}\":{},", c, id++);      // 0..25
  for (char c = 'a'; c <= 'z'; ++c) vocab += fmt::format("\"{}</w>\":{},", c, id++);  // 26..51
  vocab +=
      "\"!</w>\":52,\"he\":53,\"ll\":54,\"hell\":55,\"o</w>\":56,\"hello</w>\":57,\"5</w>\":58,";
  vocab += "\"<|startoftext|>\":98,\"<|endoftext|>\":99";
  std::vector<std::pair<std::string, std::string>> merges = {
      {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o</w>"}};
  std::string merge_list;
  for (const auto& [a, b] : merges) {
    if (!merge_list.empty()) merge_list += ",";
    merge_list +=
        merges_as_arrays ? fmt::format("[\"{}\",\"{}\"]", a, b) : fmt::format("\"{} {}\"", a, b);
  }
  return fmt::format(
      R"({{"model":{{"type":"BPE","end_of_word_suffix":"</w>","unk_token":"<|endoftext|>","vocab":{{{}}},"merges":[{}]}}}})",
      vocab, merge_list);
}

std::vector<std::int64_t> Trimmed(std::vector<std::int64_t> ids) {
  while (!ids.empty() && ids.back() == 0) ids.pop_back();
  return ids;
}

TEST(BpeTokenizerTest, MergesByRankWithClipConventions) {
  auto tokenizer = ParseTokenizer(ClipStyleJson(), 8);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
  // "hello": h e l l o</w> → he ll … → hell o</w> → hello</w>; "hi": h i</w>.
  auto ids = (*tokenizer)->Encode("  HELLO   hi! ");
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(98, 57, 7, 34, 52, 99, 0, 0))
      << "start, hello, h, i</w>, !, end, padding";
  EXPECT_EQ((*tokenizer)->CountTokens("hello hi!"), 6u);
}

TEST(BpeTokenizerTest, MergeListsAsArraysLoadToo) {
  auto tokenizer = ParseTokenizer(ClipStyleJson(true), 8);
  ASSERT_TRUE(tokenizer.ok());
  EXPECT_THAT(Trimmed(*(*tokenizer)->Encode("hello")), ElementsAre(98, 57, 99));
}

TEST(BpeTokenizerTest, TruncatesToTheContextKeepingTheEndToken) {
  auto tokenizer = ParseTokenizer(ClipStyleJson(), 5);
  ASSERT_TRUE(tokenizer.ok());
  EXPECT_THAT(*(*tokenizer)->Encode("a b c d e f"), ElementsAre(98, 26, 27, 28, 99));
}

TEST(BpeTokenizerTest, DigitsSplitOneByOne) {
  auto tokenizer = ParseTokenizer(ClipStyleJson(), 6);
  ASSERT_TRUE(tokenizer.ok());
  EXPECT_THAT(*(*tokenizer)->Encode("55"), ElementsAre(98, 58, 58, 99, 0, 0));
}

TEST(BpeTokenizerTest, RejectsInvalidUtf8AndBadFiles) {
  auto tokenizer = ParseTokenizer(ClipStyleJson(), 8);
  ASSERT_TRUE(tokenizer.ok());
  EXPECT_THAT((*tokenizer)->Encode("caf\xc3").status().message(), HasSubstr("UTF-8"));
  EXPECT_THAT((*tokenizer)->Encode("\xc0\xaf").status().message(), HasSubstr("UTF-8"))
      << "overlong";
  EXPECT_THAT(ParseTokenizer("{").status().message(), HasSubstr("malformed JSON"));
  EXPECT_THAT(ParseTokenizer(R"({"model":{"type":"Unigram","vocab":{}}})").status().message(),
              HasSubstr("Unigram"));
  EXPECT_THAT(ParseTokenizer(R"({"model":{"type":"BPE","vocab":{}}})").status().message(),
              HasSubstr("merges"));
}

TEST(WordPieceTokenizerTest, GreedyLongestMatchWithContinuations) {
  auto tokenizer = ParseTokenizer(
      R"({"normalizer":{"type":"BertNormalizer","lowercase":true},
          "model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##",
                   "vocab":{"[PAD]":0,"[UNK]":1,"[CLS]":2,"[SEP]":3,"un":4,"##aff":5,"##able":6,"the":7,",":8,"runs":9}}})");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
  EXPECT_THAT(*(*tokenizer)->Encode("The unaffable, runs xyz"),
              ElementsAre(2, 7, 4, 5, 6, 8, 9, 1, 3));
}

TEST(BpeTokenizerTest, TokenizeGivesStringsAndOffsetsIntoTheInput) {
  auto tokenizer = ParseTokenizer(ClipStyleJson(), 8);
  ASSERT_TRUE(tokenizer.ok());
  auto tokens = (*tokenizer)->Tokenize("  HELLO   hi!");
  ASSERT_TRUE(tokens.ok());
  ASSERT_EQ(tokens->size(), 6u) << "no padding";
  EXPECT_TRUE((*tokens)[0].special);
  EXPECT_EQ((*tokens)[0].text, "<|startoftext|>");
  EXPECT_FALSE((*tokens)[0].start.has_value());
  EXPECT_EQ((*tokens)[1].text, "hello</w>");
  EXPECT_EQ((*tokens)[1].start, 2u);
  EXPECT_EQ((*tokens)[1].stop, 7u);
  EXPECT_EQ((*tokens)[2].text, "h");
  EXPECT_EQ((*tokens)[2].start, 10u);
  EXPECT_EQ((*tokens)[3].text, "i</w>");
  EXPECT_EQ((*tokens)[3].stop, 12u);
  EXPECT_EQ((*tokens)[4].start, 12u);
  EXPECT_EQ((*tokens)[4].stop, 13u);
  EXPECT_TRUE((*tokens)[5].special);
  EXPECT_FALSE((*tokenizer)->Tokenize("\xff").ok());
}

TEST(WordPieceTokenizerTest, TokenizeFindsContinuationsInTheText) {
  auto tokenizer = ParseTokenizer(
      R"({"model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##",
                   "vocab":{"[UNK]":1,"[CLS]":2,"[SEP]":3,"un":4,"##aff":5,"##able":6}}})");
  ASSERT_TRUE(tokenizer.ok());
  auto tokens = (*tokenizer)->Tokenize("Unaffable");
  ASSERT_TRUE(tokens.ok());
  ASSERT_EQ(tokens->size(), 5u);
  EXPECT_EQ((*tokens)[2].text, "##aff");
  EXPECT_EQ((*tokens)[2].start, 2u);
  EXPECT_EQ((*tokens)[2].stop, 5u);
  EXPECT_TRUE((*tokens)[4].special);
}

TEST(ByteLevelTest, EveryByteHasAPrintableSymbol) {
  const auto& symbols = ByteSymbols();
  ASSERT_EQ(symbols.size(), 256u);
  EXPECT_EQ(symbols['a'], "a");
  EXPECT_EQ(symbols[' '], "\xc4\xa0") << "GPT-2 maps space to U+0120";
  std::set<std::string> distinct(symbols.begin(), symbols.end());
  EXPECT_EQ(distinct.size(), 256u);
}

TEST(StandInTokenizerTest, GeneratedTokenizerMatchesTheClipTextModel) {
  auto tokenizer = LoadTokenizer(std::string(BRAID_TEST_MODELS) + "/clip-text/1/tokenizer.json");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
  auto ids = (*tokenizer)->Encode("A photo of a cat, sitting on the sofa! 42 ünïcode");
  ASSERT_TRUE(ids.ok());
  ASSERT_EQ(ids->size(), 77u);
  EXPECT_EQ(ids->front(), 49406);
  EXPECT_NE(std::find(ids->begin(), ids->end(), 49407), ids->end());
  for (auto id : *ids) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, 49408) << "inside clip-text's embedding table";
  }
  // Words of the training corpus become single tokens.
  EXPECT_LT((*tokenizer)->CountTokens("the photo"), 2u + 10u);
}

// vocab.json and merges.txt as a Hugging Face export writes them, from the
// same vocabulary and merges as a tokenizer.json.
void WriteBpeFiles(const std::string& tokenizer_json, const testing::TempDir& dir) {
  rapidjson::Document doc;
  doc.Parse(tokenizer_json.c_str());
  rapidjson::StringBuffer vocab;
  rapidjson::Writer<rapidjson::StringBuffer> writer(vocab);
  doc["model"]["vocab"].Accept(writer);
  dir.Write("vocab.json", vocab.GetString());
  std::string merges = "#version: 0.2\n";
  for (const auto& merge : doc["model"]["merges"].GetArray())
    merges += merge.GetString() + std::string("\n");
  dir.Write("merges.txt", merges);
}

TEST(BpeFilesTest, VocabAndMergesLoadWithClipsPadding) {
  testing::TempDir dir;
  WriteBpeFiles(ClipStyleJson(), dir);
  auto tokenizer = LoadModelTokenizer(dir.path(), 8);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
  auto ids = (*tokenizer)->Encode("  HELLO   hi! ");
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(98, 57, 7, 34, 52, 99, 99, 99))
      << "CLIPTokenizer pads with <|endoftext|>";
  EXPECT_EQ((*tokenizer)->Unpadded(*ids), 6u) << "the mask keeps the first end token";
  EXPECT_EQ((*tokenizer)->CountTokens("hello hi!"), 6u);

  dir.Write("special_tokens_map.json", R"({"pad_token": {"content": "a", "special": true}})");
  EXPECT_THAT(*(*LoadModelTokenizer(dir.path(), 8))->Encode("hello"),
              ElementsAre(98, 57, 99, 0, 0, 0, 0, 0))
      << "special_tokens_map.json names the padding";
}

TEST(BpeFilesTest, TokenizerJsonComesFirstAndAFolderWithNeitherIsNotFound) {
  testing::TempDir dir;
  auto none = LoadModelTokenizer(dir.path());
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(none.status().message(),
              HasSubstr("no tokenizer.json, nor vocab.json with merges.txt"));
  dir.Write("vocab.json", R"({"a": 0})");
  dir.Write("merges.txt", "#version: 0.2\na\n");
  EXPECT_THAT(LoadModelTokenizer(dir.path()).status().message(),
              HasSubstr("merges.txt:2: merge 'a' has no space"));
  dir.Write("tokenizer.json", ClipStyleJson());
  auto tokenizer = LoadModelTokenizer(dir.path(), 8);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
  EXPECT_THAT(*(*tokenizer)->Encode("hello"), ElementsAre(98, 57, 99, 0, 0, 0, 0, 0));
}

TEST(BpeFilesTest, TheStandInsFilesGiveTheSameTokensAsItsTokenizerJson) {
  const std::filesystem::path json = std::string(BRAID_TEST_MODELS) + "/clip-text/1/tokenizer.json";
  std::ifstream in(json);
  const std::string text(std::istreambuf_iterator<char>(in), {});
  testing::TempDir dir;
  WriteBpeFiles(text, dir);
  auto from_json = LoadTokenizer(json);
  auto from_files = LoadModelTokenizer(dir.path());
  ASSERT_TRUE(from_json.ok() && from_files.ok()) << from_files.status().ToString();
  for (const char* sentence :
       {"A photo of a cat, sitting on the sofa! 42 ünïcode", "the invoice's total amount due"}) {
    auto a = *(*from_json)->Encode(sentence);
    auto b = *(*from_files)->Encode(sentence);
    const std::size_t tokens = (*from_json)->Unpadded(a);
    ASSERT_EQ((*from_files)->Unpadded(b), tokens) << sentence;
    EXPECT_EQ(std::vector(a.begin(), a.begin() + tokens),
              std::vector(b.begin(), b.begin() + tokens))
        << sentence;
  }
}

}  // namespace
}  // namespace braid
