#include "serving/completion_text.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace braid {
namespace {

// Feeds `pieces` in order and returns everything sent.
std::string Stream(CompletionText& text, const std::vector<std::string>& pieces) {
  std::string sent;
  for (const auto& piece : pieces) sent += text.Add(piece);
  return sent + text.Finish();
}

TEST(CompletionTextTest, WithoutLimitsEveryPieceGoesOutAtOnce) {
  CompletionText text({}, std::nullopt, nullptr);
  EXPECT_EQ(text.Add("Voice no"), "Voice no");
  EXPECT_EQ(text.Add("te: hello"), "te: hello");
  EXPECT_EQ(text.Finish(), "");
  EXPECT_STREQ(text.finish_reason(), "stop");
}

TEST(CompletionTextTest, MaxTokensCutsAfterThatManyWords) {
  CompletionText text({}, 3, nullptr);
  EXPECT_EQ(Stream(text, {"one two", " three four", " five"}), "one two three");
  EXPECT_TRUE(text.done());
  EXPECT_STREQ(text.finish_reason(), "length");
  EXPECT_EQ(text.tokens(), 3u);
}

TEST(CompletionTextTest, AWordSplitAcrossPiecesIsHeldUntilItEnds) {
  CompletionText text({}, 5, nullptr);
  EXPECT_EQ(text.Add("hel"), "");
  EXPECT_EQ(text.Add("lo wor"), "hello");
  EXPECT_EQ(text.Finish(), " wor");
  EXPECT_EQ(text.tokens(), 2u);
  EXPECT_STREQ(text.finish_reason(), "stop");
}

TEST(CompletionTextTest, AStopSequenceEndsTheTextWithoutItself) {
  CompletionText text({"\n", "END"}, std::nullopt, nullptr);
  EXPECT_EQ(Stream(text, {"first line", "\nsecond line"}), "first line");
  EXPECT_TRUE(text.done());
  EXPECT_STREQ(text.finish_reason(), "stop");
}

TEST(CompletionTextTest, AStopSequenceSplitAcrossPiecesIsFound) {
  CompletionText text({"STOP"}, std::nullopt, nullptr);
  EXPECT_EQ(text.Add("go ST"), "go ");
  EXPECT_EQ(text.Add("O"), "");
  EXPECT_EQ(text.Add("P and more"), "");
  EXPECT_TRUE(text.done());
  EXPECT_EQ(text.Add("ignored"), "");
}

TEST(CompletionTextTest, HeldBackTextThatIsNoStopAfterAllIsSent) {
  CompletionText text({"STOP"}, std::nullopt, nullptr);
  EXPECT_EQ(text.Add("a ST"), "a ");
  EXPECT_EQ(text.Add("ART"), "START");
  EXPECT_EQ(text.Add(" ST"), " ");
  EXPECT_EQ(text.Finish(), "ST");
}

TEST(CompletionTextTest, TokensAreCountedWithTheTokenizer) {
  auto tokenizer = LoadTokenizer(std::string(BRAID_TEST_MODELS) + "/clip-text/1/tokenizer.json");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().message();
  const std::string words = "photosynthesis happens in leaves";
  CompletionText whole({}, std::nullopt, tokenizer->get());
  EXPECT_EQ(Stream(whole, {words}), words);
  CompletionText counted({}, 1000, tokenizer->get());
  EXPECT_EQ(Stream(counted, {words}), words);
  // The tokenizer counts its start and end tokens too; a completion does not.
  auto count = [&](const char* word) {
    return (*tokenizer)->CountTokens(word) - (*tokenizer)->CountTokens("");
  };
  EXPECT_EQ(counted.tokens(),
            count("photosynthesis") + count(" happens") + count(" in") + count(" leaves"));
  CompletionText cut({}, count("photosynthesis"), tokenizer->get());
  EXPECT_EQ(Stream(cut, {words}), "photosynthesis");
  EXPECT_STREQ(cut.finish_reason(), "length");
}

}  // namespace
}  // namespace braid
