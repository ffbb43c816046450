#include "loadgen/requests.h"

#include <gtest/gtest.h>

#include "grpc_service.pb.h"

namespace braid {
namespace {

constexpr char kClipText[] = R"({"name":"clip-text","versions":["1"],"platform":"onnxruntime_onnx",
  "inputs":[{"name":"input_ids","datatype":"INT64","shape":[-1,77]}],
  "outputs":[{"name":"text_embeds","datatype":"FP32","shape":[-1,512]}]})";

TEST(BenchRequestsTest, InputsFromMetadataResolveTheBatchDimension) {
  auto specs = InputsFromMetadata(kClipText, {}, 4);
  ASSERT_TRUE(specs.ok()) << specs.status().message();
  ASSERT_EQ(specs->size(), 1u);
  EXPECT_EQ((*specs)[0].dtype, DataType::kInt64);
  EXPECT_EQ((*specs)[0].shape, (Shape{4, 77}));
  auto given = InputsFromMetadata(kClipText, {{"input_ids", {2, 77}}}, 4);
  EXPECT_EQ((*given)[0].shape, (Shape{2, 77}));
  EXPECT_FALSE(InputsFromMetadata(kClipText, {{"nope", {1}}}, 1).ok());
  auto variable = InputsFromMetadata(
      R"({"inputs":[{"name":"audio","datatype":"FP32","shape":[-1,-1]}]})", {}, 1);
  ASSERT_FALSE(variable.ok());
  EXPECT_NE(variable.status().message().find("--shape audio="), std::string::npos);
  EXPECT_FALSE(InputsFromMetadata("not json", {}, 1).ok());
}

TEST(BenchRequestsTest, DistinctSetsAndEncodings) {
  auto specs = *InputsFromMetadata(kClipText, {}, 1);
  auto sets = MakeInputSets(specs, {}, InputData::kRandom, 3);
  ASSERT_TRUE(sets.ok());
  ASSERT_EQ(sets->size(), 3u);
  const auto a = (*sets)[0][0].span<std::int64_t>(), b = (*sets)[1][0].span<std::int64_t>();
  EXPECT_FALSE(std::equal(a.begin(), a.end(), b.begin())) << "each set differs";

  auto json = KserveJsonRequest("clip-text", specs, (*sets)[0], {});
  EXPECT_EQ(json.path, "/v2/models/clip-text/infer");
  EXPECT_EQ(json.body.rfind(
                R"({"inputs":[{"name":"input_ids","shape":[1,77],"datatype":"INT64","data":[)", 0),
            0u)
      << json.body;
  EXPECT_NE(json.body.find(R"("parameters":{"cache":false}})"), std::string::npos);

  auto binary = KserveBinaryRequest("clip-text", specs, (*sets)[0], {.cache = true});
  ASSERT_EQ(binary.headers.size(), 1u);
  const auto header_length = std::stoul(binary.headers[0].second);
  EXPECT_EQ(binary.body.size(), header_length + 77 * 8);
  EXPECT_NE(binary.body.substr(0, header_length).find("\"binary_data_size\":616"),
            std::string::npos);
  EXPECT_EQ(binary.body.find("\"cache\""), std::string::npos);

  auto grpc = KserveGrpcRequest("clip-text", specs, (*sets)[0], {});
  EXPECT_EQ(grpc.raw_input_contents(0).size(), 77u * 8);
  EXPECT_FALSE(grpc.parameters().at("cache").bool_param());
  EXPECT_FALSE(grpc.parameters().contains("priority"));

  const RequestParameters urgent{.cache = false, .priority = 1, .timeout_us = 50000};
  EXPECT_NE(KserveJsonRequest("clip-text", specs, (*sets)[0], urgent)
                .body.find(R"("parameters":{"cache":false,"priority":1,"timeout":50000}})"),
            std::string::npos);
  auto urgent_grpc = KserveGrpcRequest("clip-text", specs, (*sets)[0], urgent);
  EXPECT_EQ(urgent_grpc.parameters().at("priority").int64_param(), 1);
  EXPECT_EQ(urgent_grpc.parameters().at("timeout").int64_param(), 50000);

  auto zero = MakeInputSets(specs, {}, InputData::kZero, 1);
  for (auto v : (*zero)[0][0].span<std::int64_t>()) EXPECT_EQ(v, 0);
  Tensor wrong = *Tensor::Allocate(DataType::kFp32, {1, 77});
  EXPECT_FALSE(MakeInputSets(specs, {{"input_ids", wrong}}, InputData::kRandom, 1).ok());
}

}  // namespace
}  // namespace braid
