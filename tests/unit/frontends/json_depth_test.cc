#include <gtest/gtest.h>

#include <string>

#include "frontends/kserve/kserve.h"

namespace braid {
namespace {

std::string Nested(std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(JsonDepthTest, CountsArraysAndObjectsTogether) {
  EXPECT_TRUE(CheckJsonDepth("{}", 1).ok());
  EXPECT_TRUE(CheckJsonDepth(R"({"a":[{"b":[1]}]})", 4).ok());
  EXPECT_EQ(CheckJsonDepth(R"({"a":[{"b":[1]}]})", 3).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckJsonDepth(Nested(64), 64).ok());
  Status deep = CheckJsonDepth(Nested(65), 64);
  EXPECT_EQ(deep.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(deep.message().find("64"), std::string::npos);
}

TEST(JsonDepthTest, SiblingsDoNotAddUp) {
  std::string wide = "[";
  for (int i = 0; i < 1000; ++i) wide += i ? ",[[1]]" : "[[1]]";
  EXPECT_TRUE(CheckJsonDepth(wide + "]", 3).ok());
}

TEST(JsonDepthTest, BracketsInStringsAndEscapesDoNotCount) {
  EXPECT_TRUE(CheckJsonDepth(R"({"text":"[[[[[{{{{"})", 1).ok());
  EXPECT_TRUE(CheckJsonDepth(R"({"text":"quote \" then [[[["})", 1).ok());
  EXPECT_TRUE(CheckJsonDepth(R"({"text":"backslash \\"})", 1).ok());
  EXPECT_FALSE(CheckJsonDepth(R"({"text":"backslash \\", "x":[[1]]})", 2).ok());
}

TEST(JsonDepthTest, InferRequestsHonourTheLimit) {
  const std::string request =
      R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]})";
  KserveLimits limits;
  EXPECT_TRUE(ParseInferRequest(std::make_shared<std::string>(request), std::nullopt, limits).ok());
  limits.max_json_depth = 2;
  auto refused = ParseInferRequest(std::make_shared<std::string>(request), std::nullopt, limits);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  // With the binary extension only the JSON header is scanned: the tensor
  // bytes after it may hold anything.
  const std::string header =
      R"({"inputs":[{"name":"x","shape":[4],"datatype":"UINT8","parameters":{"binary_data_size":4}}]})";
  limits.max_json_depth = 4;
  auto binary =
      ParseInferRequest(std::make_shared<std::string>(header + "[[[["), header.size(), limits);
  EXPECT_TRUE(binary.ok()) << binary.status().message();
}

}  // namespace
}  // namespace braid
