#include "model/model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace braid {
namespace {

using ::testing::HasSubstr;

ModelConfig TwoInputConfig() {
  ModelConfig config;
  config.name = "pair";
  config.backend = "test";
  config.max_batch_size = 4;
  config.inputs = {{"a", DataType::kFp32, {2, -1}}, {"b", DataType::kInt64, {3}}};
  config.outputs = {{"y", DataType::kFp32, {1}}};
  return config;
}

std::map<std::string, Tensor> Inputs(Shape a, Shape b, DataType b_type = DataType::kInt64) {
  return {{"a", *Tensor::Allocate(DataType::kFp32, a)}, {"b", *Tensor::Allocate(b_type, b)}};
}

std::string ErrorOf(std::map<std::string, Tensor> inputs) {
  Model model(TwoInputConfig(), 1, {});
  auto ordered = model.OrderInputs(std::move(inputs));
  EXPECT_FALSE(ordered.ok());
  return ordered.ok() ? "" : ordered.status().message();
}

TEST(ModelTest, OrdersValidInputsByConfig) {
  Model model(TwoInputConfig(), 1, {});
  auto ordered = model.OrderInputs(Inputs({2, 2, 7}, {2, 3}));
  ASSERT_TRUE(ordered.ok()) << ordered.status().ToString();
  ASSERT_EQ(ordered->size(), 2u);
  EXPECT_EQ((*ordered)[0].dtype(), DataType::kFp32);
  EXPECT_EQ((*ordered)[1].shape(), (Shape{2, 3}));
}

TEST(ModelTest, RejectsEachBadInputClass) {
  EXPECT_THAT(ErrorOf({{"a", *Tensor::Allocate(DataType::kFp32, {1, 2, 1})}}),
              HasSubstr("needs input 'b'"));
  auto extra = Inputs({1, 2, 1}, {1, 3});
  extra["c"] = *Tensor::Allocate(DataType::kFp32, {1});
  EXPECT_THAT(ErrorOf(std::move(extra)), HasSubstr("has no input 'c'"));
  EXPECT_THAT(ErrorOf(Inputs({1, 2, 1}, {1, 3}, DataType::kInt32)),
              HasSubstr("must be INT64, not INT32"));
  EXPECT_THAT(ErrorOf(Inputs({1, 3, 1}, {1, 3})),
              HasSubstr("has shape [1,3,1], expected [-1,2,-1]"));
  EXPECT_THAT(ErrorOf(Inputs({1, 2}, {1, 3})), HasSubstr("has shape"));
  EXPECT_THAT(ErrorOf(Inputs({5, 2, 1}, {5, 3})), HasSubstr("batch size 5; it must be 1 to 4"));
  EXPECT_THAT(ErrorOf(Inputs({0, 2, 1}, {0, 3})), HasSubstr("batch size 0"));
  EXPECT_THAT(ErrorOf(Inputs({2, 2, 1}, {1, 3})), HasSubstr("an earlier input has 2"));
}

TEST(ModelTest, RejectsBufferSizeThatDisagreesWithShape) {
  auto owner = std::make_shared<std::vector<std::byte>>(12);
  std::map<std::string, Tensor> inputs = Inputs({1, 2, 1}, {1, 3});
  inputs["a"] = Tensor::Wrap(DataType::kFp32, {1, 2, 1}, owner->data(), owner->size(), owner);
  EXPECT_THAT(ErrorOf(std::move(inputs)), HasSubstr("holds 12 bytes"));
}

TEST(ModelTest, UnbatchedModelTakesNoBatchDimension) {
  ModelConfig config = TwoInputConfig();
  config.max_batch_size = 0;
  Model model(config, 1, {});
  EXPECT_TRUE(model.OrderInputs(Inputs({2, 9}, {3})).ok());
  EXPECT_FALSE(model.OrderInputs(Inputs({1, 2, 9}, {1, 3})).ok());
}

}  // namespace
}  // namespace braid
