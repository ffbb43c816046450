#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "frontends/openai/speech_api.h"

namespace braid {
namespace {

using ::testing::ElementsAre;

TEST(SplitSentencesTest, EndsAtPunctuationFollowedBySpaceAndAtLineBreaks) {
  EXPECT_THAT(SplitSentences("Hello there. How are you? Fine!\nNext line; last"),
              ElementsAre("Hello there.", "How are you?", "Fine!", "Next line;", "last"));
  EXPECT_THAT(SplitSentences("Version 3.14 is out."), ElementsAre("Version 3.14 is out."))
      << "a dot inside a number does not end a sentence";
}

TEST(SplitSentencesTest, BlankTextHasNothingToSpeak) {
  EXPECT_TRUE(SplitSentences("").empty());
  EXPECT_TRUE(SplitSentences(" \n\t ").empty());
}

TEST(SplitSentencesTest, LongSentencesAreCutAtASpace) {
  std::string words;
  for (int i = 0; i < 100; ++i) words += "word ";
  auto pieces = SplitSentences(words, 42);
  ASSERT_GT(pieces.size(), 10u);
  std::string joined;
  for (const auto& piece : pieces) {
    EXPECT_LE(piece.size(), 42u);
    EXPECT_EQ(piece.front(), 'w') << "cut between words";
    joined += piece + " ";
  }
  EXPECT_EQ(joined, words);
}

}  // namespace
}  // namespace braid
