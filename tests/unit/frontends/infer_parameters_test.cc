#include <gtest/gtest.h>

#include <limits>

#include "frontends/kserve/kserve.h"
#include "serving/inference_service.h"

namespace braid {
namespace {

TEST(InferParametersTest, HttpAndGrpcValuesFollowOneRule) {
  InferOptions options;
  ASSERT_TRUE(ApplyInferParameter("priority", std::int64_t{2}, &options).ok());
  EXPECT_EQ(options.priority, 2);
  ASSERT_TRUE(ApplyInferParameter("priority", std::uint64_t{1000}, &options).ok());
  EXPECT_EQ(options.priority, 1000);
  // Over the range, whatever integer kind carried it (gRPC used to clamp).
  EXPECT_EQ(ApplyInferParameter("priority", std::int64_t{1001}, &options).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyInferParameter("priority", std::uint64_t{1} << 40, &options).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyInferParameter("priority", std::int64_t{-1}, &options).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(options.priority, 1000) << "a refused value changes nothing";
  // A uint64 timeout past int64 was wrapped negative before.
  EXPECT_EQ(
      ApplyInferParameter("timeout", std::numeric_limits<std::uint64_t>::max(), &options).code(),
      StatusCode::kInvalidArgument);
  ASSERT_TRUE(ApplyInferParameter("timeout", std::uint64_t{5000}, &options).ok());
  EXPECT_EQ(options.timeout_us, 5000);
  EXPECT_EQ(ApplyInferParameter("timeout", true, &options).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyInferParameter("cache", std::int64_t{1}, &options).code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(ApplyInferParameter("cache", false, &options).ok());
  EXPECT_FALSE(options.use_cache);
  EXPECT_TRUE(ApplyInferParameter("sequence_id", std::monostate{}, &options).ok());
}

TEST(InferParametersTest, TheJsonParserUsesTheSameRule) {
  auto parse = [](const std::string& parameters) {
    return ParseInferRequest(
        std::make_shared<const std::string>(
            R"({"inputs":[{"name":"input","shape":[1],"datatype":"FP32","data":[1]}],"parameters":)" +
            parameters + "}"),
        std::nullopt);
  };
  EXPECT_EQ(parse(R"({"priority":1001})").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parse(R"({"timeout":18446744073709551615})").status().code(),
            StatusCode::kInvalidArgument);
  auto ok = parse(R"({"priority":3,"timeout":7,"cache":false,"other":"x"})");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->options.priority, 3);
  EXPECT_EQ(ok->options.timeout_us, 7);
  EXPECT_FALSE(ok->options.use_cache);
}

}  // namespace
}  // namespace braid
