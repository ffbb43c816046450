#include "core/credentials.h"

#include <gtest/gtest.h>

namespace braid {
namespace {

TEST(CredentialsTest, TheBearerSchemeIsCaseInsensitiveAndSpacesAreDropped) {
  EXPECT_EQ(BearerCredential("Bearer sesame"), "sesame");
  EXPECT_EQ(BearerCredential("bearer sesame"), "sesame");
  EXPECT_EQ(BearerCredential("BEARER   sesame  "), "sesame");
  EXPECT_EQ(BearerCredential("Bearersesame"), "");
  EXPECT_EQ(BearerCredential("Basic c2VzYW1l"), "");
  EXPECT_EQ(BearerCredential("Bearer"), "");
  EXPECT_EQ(BearerCredential(""), "");
}

TEST(CredentialsTest, OnlyTheWholeKeyMatches) {
  EXPECT_TRUE(KeyMatches("sesame", "sesame"));
  EXPECT_FALSE(KeyMatches("sesam", "sesame"));
  EXPECT_FALSE(KeyMatches("sesamesesame", "sesame"));  // the key repeated is not the key
  EXPECT_FALSE(KeyMatches("sesamf", "sesame"));
  EXPECT_FALSE(KeyMatches("", "sesame"));
  EXPECT_FALSE(KeyMatches("", ""));
  EXPECT_FALSE(KeyMatches("x", ""));
}

}  // namespace
}  // namespace braid
