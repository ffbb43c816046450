#include "preprocess/canonical_text.h"

#include <gtest/gtest.h>

namespace braid {
namespace {

TEST(CanonicalTextTest, WhiteSpaceRunsBecomeOneSpaceAndTheEndsGo) {
  EXPECT_EQ(CanonicalText("  a \t b\n\nc\u00A0d\u3000e  ", false), "a b c d e");
  EXPECT_EQ(CanonicalText("", false), "");
  EXPECT_EQ(CanonicalText(" \n ", false), "");
}

TEST(CanonicalTextTest, CompatibilityFormsFold) {
  EXPECT_EQ(CanonicalText("e\u0301", false), "\u00E9") << "composed";
  EXPECT_EQ(CanonicalText("\uFB01ne \uFF21\u2460", false), "fine A1") << "ligature, full width";
}

TEST(CanonicalTextTest, CaseFoldsOnlyWhenAsked) {
  EXPECT_EQ(CanonicalText("Straße ÉTÉ", false), "Straße ÉTÉ");
  EXPECT_EQ(CanonicalText("Straße ÉTÉ", true), "strasse été");
  EXPECT_EQ(CanonicalText("zero\u200Bwidth", true), "zerowidth") << "default ignorable";
}

TEST(CanonicalTextTest, MalformedUtf8IsLeftAlone) {
  const std::string broken = "ab\xC3(  cd";
  EXPECT_EQ(CanonicalText(broken, true), broken);
}

}  // namespace
}  // namespace braid
