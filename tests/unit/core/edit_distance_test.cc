#include "core/edit_distance.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace braid {
namespace {

TEST(EditDistanceTest, CountsInsertionsDeletionsAndSubstitutions) {
  EXPECT_EQ(EditDistance(std::string("kitten"), std::string("sitting")), 3u);
  EXPECT_EQ(EditDistance(std::string(""), std::string("abc")), 3u);
  EXPECT_EQ(EditDistance(std::string("same"), std::string("same")), 0u);
  const std::vector<std::string> said = {"open", "the", "door"}, heard = {"open", "the", "jar"};
  EXPECT_EQ(EditDistance(said, heard), 1u);
}

TEST(EditDistanceTest, ATypoIsMatchedToTheNameItMeant) {
  const std::vector<std::string> models = {"asr", "clip-image", "clip-text", "ocr", "tts"};
  EXPECT_EQ(NearestName("clip-imag", models), "clip-image");
  EXPECT_EQ(NearestName("clip-txt", models), "clip-text");
  EXPECT_EQ(NearestName("asr", models), "asr");
  EXPECT_EQ(DidYouMean("clip-imge", models), "did you mean 'clip-image'? ");
}

TEST(EditDistanceTest, AFarNameGetsNoSuggestion) {
  const std::vector<std::string> models = {"asr", "clip-image", "clip-text", "ocr", "tts"};
  EXPECT_EQ(NearestName("nope", models), std::nullopt);
  EXPECT_EQ(NearestName("whisper-large", models), std::nullopt);
  EXPECT_EQ(DidYouMean("embeddings", models), "");
  EXPECT_EQ(NearestName("anything", std::vector<std::string>{}), std::nullopt);
}

}  // namespace
}  // namespace braid
