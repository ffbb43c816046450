#include "collections/semantic_cache.h"

#include <gtest/gtest.h>

#include "support/manual_clock.h"

namespace braid {
namespace {

std::map<std::string, Tensor> Answer(const std::string& text) {
  return {{"answer", *Tensor::FromStrings({text}, {1})}};
}

std::string AnswerOf(const SemanticCache::Hit& hit) {
  return std::string((*hit.outputs.at("answer").Strings())[0]);
}

const Hash128 kContext = Hasher().Add("context").Finish();

class SemanticCacheTest : public ::testing::Test {
 protected:
  testing::ManualClock clock_;
  SemanticCache cache_{3, std::chrono::minutes(10), clock_};
};

TEST_F(SemanticCacheTest, FindsTheClosestEntryAtOrAboveTheThreshold) {
  cache_.Put(std::vector<float>{1, 0, 0}, kContext, Answer("x"));
  cache_.Put(std::vector<float>{0, 2, 0}, kContext, Answer("y"));
  auto hit = cache_.Find(std::vector<float>{0.1F, 1, 0}, kContext, 0.9F);
  ASSERT_TRUE(hit);
  EXPECT_EQ(AnswerOf(*hit), "y");
  EXPECT_NEAR(hit->similarity, 1 / std::sqrt(1.01F), 1e-5);
  EXPECT_FALSE(cache_.Find(std::vector<float>{1, 1, 0}, kContext, 0.9F)) << "0.707 to both";
  EXPECT_TRUE(cache_.Find(std::vector<float>{1, 1, 0}, kContext, 0.7F));
}

TEST_F(SemanticCacheTest, AnotherContextNeverHits) {
  cache_.Put(std::vector<float>{1, 0, 0}, kContext, Answer("x"));
  EXPECT_FALSE(cache_.Find(std::vector<float>{1, 0, 0}, Hasher().Add("other").Finish(), 0.5F));
}

TEST_F(SemanticCacheTest, TheOldestEntryLeavesWhenFull) {
  cache_.Put(std::vector<float>{1, 0, 0}, kContext, Answer("x"));
  cache_.Put(std::vector<float>{0, 1, 0}, kContext, Answer("y"));
  cache_.Put(std::vector<float>{0, 0, 1}, kContext, Answer("z"));
  cache_.Put(std::vector<float>{1, 1, 1}, kContext, Answer("w"));
  EXPECT_EQ(cache_.size(), 3u);
  EXPECT_FALSE(cache_.Find(std::vector<float>{1, 0, 0}, kContext, 0.99F));
  auto hit = cache_.Find(std::vector<float>{0, 0, 1}, kContext, 0.99F);
  ASSERT_TRUE(hit);
  EXPECT_EQ(AnswerOf(*hit), "z") << "rows still line up with their entries";
}

TEST_F(SemanticCacheTest, EntriesLeaveWhenTheirTimeIsUp) {
  cache_.Put(std::vector<float>{1, 0, 0}, kContext, Answer("x"));
  clock_.Advance(std::chrono::minutes(6));
  cache_.Put(std::vector<float>{0, 1, 0}, kContext, Answer("y"));
  clock_.Advance(std::chrono::minutes(5));
  EXPECT_FALSE(cache_.Find(std::vector<float>{1, 0, 0}, kContext, 0.99F));
  EXPECT_TRUE(cache_.Find(std::vector<float>{0, 1, 0}, kContext, 0.99F));
  EXPECT_EQ(cache_.size(), 1u);
}

TEST_F(SemanticCacheTest, OddVectorsFindNothing) {
  cache_.Put(std::vector<float>{1, 0, 0}, kContext, Answer("x"));
  EXPECT_FALSE(cache_.Find(std::vector<float>{1, 0}, kContext, 0.5F)) << "another dimension";
  EXPECT_FALSE(cache_.Find(std::vector<float>{0, 0, 0}, kContext, 0.5F)) << "norm 0";
  cache_.Put(std::vector<float>{0, 0, 0}, kContext, Answer("zero"));
  cache_.Put(std::vector<float>{1, 0}, kContext, Answer("short"));
  EXPECT_EQ(cache_.size(), 1u);
}

}  // namespace
}  // namespace braid
