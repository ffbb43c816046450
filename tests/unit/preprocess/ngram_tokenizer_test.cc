// braid's hashed n-gram features: words, n-grams, buckets, padding and the
// tokenizer.json that carries the settings.
#include "preprocess/ngram_tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

namespace braid {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(NgramTokenizerTest, WordsAreLowerCasedAndSplitAtEveryOtherByte) {
  EXPECT_THAT(NgramWords("Hello, World! it's 42-fold"),
              ElementsAre("hello", "world", "it", "s", "42", "fold"));
  // Bytes above ASCII stay inside words.
  EXPECT_THAT(NgramWords("café crème"), ElementsAre("café", "crème"));
}

TEST(NgramTokenizerTest, AWordGivesItselfThenItsNgramsInTheirOwnBuckets) {
  const NgramSpec spec;  // n-grams of 3 and 4
  const auto features = NgramFeatures("fox", spec);
  // "<fox>": three 3-grams and two 4-grams after the word.
  ASSERT_EQ(features.size(), 6u);
  EXPECT_GE(features[0], 2);
  EXPECT_LT(features[0], 2 + spec.word_buckets);
  for (std::size_t i = 1; i < features.size(); ++i) {
    EXPECT_GE(features[i], 2 + spec.word_buckets);
    EXPECT_LT(features[i], spec.rows());
  }
}

TEST(NgramTokenizerTest, CaseSpacingAndPunctuationDoNotChangeTheFeatures) {
  const NgramSpec spec;
  EXPECT_EQ(NgramFeatures("Red Fox", spec), NgramFeatures("  red   FOX!", spec));
  EXPECT_NE(NgramFeatures("red fox", spec), NgramFeatures("fox red", spec));
}

TEST(NgramTokenizerTest, ATypoKeepsMostOfTheWordsNgrams) {
  const NgramSpec spec;
  auto set = [&](const char* text) {
    auto f = NgramFeatures(text, spec);
    return std::set<std::int64_t>(f.begin(), f.end());
  };
  const auto right = set("invoice"), typo = set("invoise");
  std::vector<std::int64_t> shared;
  std::set_intersection(right.begin(), right.end(), typo.begin(), typo.end(),
                        std::back_inserter(shared));
  // "<invoice>" and "<invoise>" share <in inv nvo voi and <inv invo nvoi:
  // 7 of their 13 n-grams (the words themselves differ).
  EXPECT_EQ(shared.size(), 7u);
}

TEST(NgramTokenizerTest, TextWithoutAWordGetsTheEmptyFeature) {
  EXPECT_THAT(NgramFeatures("?! ...", NgramSpec{}), ElementsAre(kEmptyFeature));
}

TEST(NgramTokenizerTest, EncodePadsToMaxFeaturesAndCutsLongText) {
  NgramSpec spec;
  spec.max_features = 8;
  NgramTokenizer tokenizer(spec);
  auto ids = tokenizer.Encode("fox");
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids,
              ElementsAre(::testing::Gt(1), ::testing::Gt(1), ::testing::Gt(1), ::testing::Gt(1),
                          ::testing::Gt(1), ::testing::Gt(1), kPadFeature, kPadFeature));
  EXPECT_EQ(tokenizer.CountTokens("fox"), 6u);
  auto long_ids = tokenizer.Encode("the quick brown fox jumps over the lazy dog");
  ASSERT_TRUE(long_ids.ok());
  EXPECT_EQ(long_ids->size(), 8u);
  EXPECT_EQ(std::count(long_ids->begin(), long_ids->end(), kPadFeature), 0);
  EXPECT_FALSE(tokenizer.Encode("\xff\xfe").ok());
}

TEST(NgramTokenizerTest, TokenizerJsonRoundTrips) {
  NgramSpec spec;
  spec.word_buckets = 1000;
  spec.ngram_buckets = 2000;
  spec.min_n = 2;
  spec.max_n = 5;
  spec.max_features = 64;
  auto parsed = ParseTokenizer(NgramTokenizerJson(spec));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ((*parsed)->vocab_size(), 3002u);
  auto ids = (*parsed)->Encode("a moonlit harbour");
  ASSERT_TRUE(ids.ok());
  auto expected = NgramFeatures("a moonlit harbour", spec);
  expected.resize(64, kPadFeature);
  EXPECT_EQ(*ids, expected);
}

TEST(NgramTokenizerTest, TokenizeShowsWordsAndNgramsWithTheBytesTheyCover) {
  NgramSpec spec;
  spec.min_n = spec.max_n = 3;
  NgramTokenizer tokenizer(spec);
  auto tokens = tokenizer.Tokenize("A Fox");
  ASSERT_TRUE(tokens.ok());
  std::vector<std::string> texts;
  for (const auto& token : *tokens) {
    texts.push_back(token.text);
    EXPECT_FALSE(token.special);
  }
  EXPECT_THAT(texts, ElementsAre("a", "<a>", "fox", "<fo", "fox", "ox>"));
  EXPECT_EQ((*tokens)[2].start, 2u);
  EXPECT_EQ((*tokens)[2].stop, 5u);
  EXPECT_EQ((*tokens)[3].start, 2u);  // "<fo" covers "Fo"
  EXPECT_EQ((*tokens)[3].stop, 4u);
  EXPECT_EQ((*tokens)[5].start, 3u);  // "ox>" covers "ox"
  EXPECT_EQ((*tokens)[5].stop, 5u);
  auto ids = tokenizer.Encode("A Fox");
  for (std::size_t i = 0; i < tokens->size(); ++i) EXPECT_EQ((*tokens)[i].id, (*ids)[i]);
  auto empty = tokenizer.Tokenize("...");
  ASSERT_EQ(empty->size(), 1u);
  EXPECT_TRUE(empty->front().special);
}

TEST(NgramTokenizerTest, BadSettingsAreRefused) {
  for (const char* json : {R"({"model":{"type":"HashedNgrams","min_n":4,"max_n":3}})",
                           R"({"model":{"type":"HashedNgrams","word_buckets":0}})",
                           R"({"model":{"type":"HashedNgrams","max_features":"many"}})"}) {
    auto parsed = ParseTokenizer(json);
    ASSERT_FALSE(parsed.ok()) << json;
    EXPECT_THAT(parsed.status().message(), HasSubstr("HashedNgrams")) << json;
  }
}

}  // namespace
}  // namespace braid
