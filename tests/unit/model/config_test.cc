#include "model/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace braid {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

Result<ModelConfig> Parse(const std::string& text) {
  return ParseModelConfig(text, "clip-image", "/repo/clip-image", "clip-image/config.yaml");
}

constexpr char kMinimal[] = R"(
backend: onnxruntime
max_batch_size: 8
inputs:  [{name: x, datatype: FP32, dims: [4]}]
outputs: [{name: y, datatype: FP32, dims: [4]}]
)";

// The error message of parsing kMinimal with `extra` appended.
std::string ErrorWith(const std::string& extra) {
  auto config = Parse(std::string(kMinimal) + extra);
  EXPECT_FALSE(config.ok()) << "expected an error for: " << extra;
  return config.ok() ? "" : config.status().message();
}

TEST(ConfigTest, ParsesTheFullFormat) {
  auto config = Parse(R"(
backend: onnxruntime
max_batch_size: 32
inputs:  [{name: pixel_values, datatype: FP32, dims: [3, 224, 224]}]
outputs: [{name: image_embeds, datatype: FP32, dims: [512]}]
instance_group: {count: 2, kind: cpu, intra_op_threads: 1, background_instances: 1}
dynamic_batching:
  preferred_batch_size: [16, 8]
  max_queue_delay_us: 2000
  priority_blocking_us: 30000
  preempt: true
  adaptive: true
  priority_levels: 3
  default_priority: 2
  queue_policy: {max_queue_size: 256, timeout_us: 200000, timeout_action: reject}
  priority_queue_policy: {1: {timeout_action: delay}}
  offpeak: {priorities: [3], defer_above_utilization: 0.8}
response_cache: {enable: true, ttl_s: 300}
optimization: {execution_provider: cpu, precision: fp32, graph_optimization: extended}
autoscale: {min_instances: 1, max_instances: 4, scale_up_utilization: 0.8, scale_down_utilization: 0.3, window_s: 10}
version_policy: {latest: 2}
parameters: {psm: 6}
)");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->name, "clip-image");
  EXPECT_EQ(config->backend, "onnxruntime");
  EXPECT_EQ(config->max_batch_size, 32);
  ASSERT_EQ(config->inputs.size(), 1u);
  EXPECT_EQ(config->inputs[0].dims, (Shape{3, 224, 224}));
  EXPECT_EQ(config->instance_group.count, 2);
  EXPECT_EQ(config->instance_group.background_instances, 1);
  EXPECT_EQ(config->InstancesToLoad(), 4 + 1) << "autoscale's max_instances, then the background";
  const auto& batching = config->dynamic_batching;
  EXPECT_TRUE(batching.enabled);
  EXPECT_EQ(batching.preferred_batch_size, (std::vector<int>{8, 16}));
  EXPECT_EQ(batching.max_queue_delay_us, 2000);
  EXPECT_EQ(batching.priority_blocking_us, 30000);
  EXPECT_TRUE(batching.preempt);
  EXPECT_TRUE(batching.adaptive);
  EXPECT_EQ(batching.priority_levels, 3);
  EXPECT_EQ(batching.default_priority, 2);
  EXPECT_EQ(batching.default_queue_policy.max_queue_size, 256u);
  EXPECT_EQ(batching.default_queue_policy.timeout_us, 200000);
  ASSERT_EQ(batching.priority_queue_policy.count(1), 1u);
  EXPECT_EQ(batching.priority_queue_policy.at(1).timeout_action,
            QueuePolicy::TimeoutAction::kDelay);
  EXPECT_EQ(batching.priority_queue_policy.at(1).max_queue_size, 256u)
      << "inherits the default policy";
  EXPECT_EQ(batching.offpeak.priorities, (std::vector<int>{3}));
  EXPECT_TRUE(config->response_cache.enable);
  EXPECT_EQ(config->optimization.graph_optimization, Optimization::GraphLevel::kExtended);
  EXPECT_TRUE(config->autoscale.enabled);
  EXPECT_EQ(config->autoscale.max_instances, 4);
  EXPECT_EQ(config->version_policy.latest, 2);
  EXPECT_EQ(config->parameters.at("psm"), "6");
}

TEST(ConfigTest, DefaultsWhenSectionsAreAbsent) {
  auto config = Parse(kMinimal);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_FALSE(config->dynamic_batching.enabled);
  EXPECT_EQ(config->instance_group.count, 1);
  EXPECT_EQ(config->optimization.execution_provider, Optimization::Provider::kCpu);
  EXPECT_EQ(config->version_policy.latest, 1);
  EXPECT_FALSE(config->response_cache.enable);
}

TEST(ConfigTest, MalformedYamlNamesFileAndLine) {
  auto config = Parse("backend: onnxruntime\ninputs: [{name: x\n");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(),
              AllOf(HasSubstr("clip-image/config.yaml"), HasSubstr("malformed YAML")));
}

TEST(ConfigTest, EmptyFile) {
  auto config = Parse("");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("empty"));
}

TEST(ConfigTest, UnknownKeysAreNamedWithTheirPath) {
  EXPECT_THAT(ErrorWith("max_batch: 4\n"),
              AllOf(HasSubstr("clip-image/config.yaml"), HasSubstr("unknown key 'max_batch'"),
                    HasSubstr("line")));
  EXPECT_THAT(ErrorWith("dynamic_batching: {max_queue_delay: 10}\n"),
              HasSubstr("unknown key 'dynamic_batching.max_queue_delay'"));
  EXPECT_THAT(ErrorWith("instance_group: {cores: 2}\n"),
              HasSubstr("unknown key 'instance_group.cores'"));
}

TEST(ConfigTest, WrongTypes) {
  EXPECT_THAT(Parse("backend: onnxruntime\nmax_batch_size: many\ninputs: [{name: x, datatype: "
                    "FP32, dims: [1]}]\n"
                    "outputs: [{name: y, datatype: FP32, dims: [1]}]\n")
                  .status()
                  .message(),
              AllOf(HasSubstr("'max_batch_size'"), HasSubstr("integer"), HasSubstr("many")));
  EXPECT_THAT(ErrorWith("response_cache: {enable: maybe}\n"), HasSubstr("'response_cache.enable'"));
  EXPECT_THAT(ErrorWith("instance_group: 3\n"), HasSubstr("'instance_group' must be a mapping"));
  EXPECT_THAT(ErrorWith("parameters: [1, 2]\n"), HasSubstr("'parameters'"));
}

TEST(ConfigTest, OutOfRangeValues) {
  EXPECT_THAT(ErrorWith("instance_group: {count: 0}\n"),
              HasSubstr("'instance_group.count' must be between 1"));
  EXPECT_THAT(ErrorWith("dynamic_batching: {priority_levels: 2, default_priority: 3}\n"),
              HasSubstr("'dynamic_batching.default_priority'"));
  EXPECT_THAT(ErrorWith("autoscale: {min_instances: 3, max_instances: 2}\n"),
              HasSubstr("autoscale.max_instances"));
  EXPECT_THAT(ErrorWith("dynamic_batching: {offpeak: {defer_above_utilization: 1.5}}\n"),
              HasSubstr("between 0 and 1"));
}

TEST(ConfigTest, TensorSpecErrors) {
  auto with_inputs = [](const std::string& inputs) {
    auto config = Parse("backend: onnxruntime\nmax_batch_size: 1\ninputs: " + inputs +
                        "\noutputs: [{name: y, datatype: FP32, dims: [1]}]\n");
    return config.ok() ? std::string() : config.status().message();
  };
  EXPECT_THAT(with_inputs("[{name: x, datatype: FLOAT32, dims: [1]}]"),
              AllOf(HasSubstr("'inputs[0].datatype'"), HasSubstr("FLOAT32")));
  EXPECT_THAT(with_inputs("[{name: x, datatype: FP32, dims: [0]}]"), HasSubstr("'inputs[0].dims'"));
  EXPECT_THAT(with_inputs("[{name: x, datatype: FP32, dims: [-2]}]"),
              HasSubstr("'inputs[0].dims'"));
  EXPECT_THAT(with_inputs("[{name: x, datatype: FP32}]"),
              HasSubstr("'inputs[0].dims' is required"));
  EXPECT_THAT(
      with_inputs("[{name: x, datatype: FP32, dims: [1]}, {name: x, datatype: FP32, dims: [1]}]"),
      HasSubstr("repeats"));
  EXPECT_THAT(with_inputs("[]"), HasSubstr("at least one input"));
  EXPECT_THAT(with_inputs("[{name: x, datatype: FP32, dims: [1], shape: [1]}]"),
              HasSubstr("unknown key 'inputs[0].shape'"));
}

TEST(ConfigTest, ContradictorySettings) {
  EXPECT_THAT(ErrorWith("dynamic_batching: {preferred_batch_size: [4, 16]}\n"),
              HasSubstr("above max_batch_size 8"));
  EXPECT_THAT(ErrorWith("dynamic_batching: {priority_levels: 2, offpeak: {priorities: [3]}}\n"),
              HasSubstr("past priority_levels 2"));
  EXPECT_THAT(ErrorWith("version_policy: {latest: 1, specific: [1]}\n"), HasSubstr("not both"));
  EXPECT_THAT(ErrorWith("instance_group: {background_instances: 1}\n"),
              AllOf(HasSubstr("instance_group.background_instances"),
                    HasSubstr("needs dynamic_batching.offpeak")));
  const std::string tensors =
      "inputs: [{name: x, datatype: FP32, dims: [1]}]\noutputs: [{name: y, datatype: FP32, dims: "
      "[1]}]\n";
  auto unbatched = Parse(
      "backend: onnxruntime\nmax_batch_size: 0\ndynamic_batching: {preferred_batch_size: [2]}\n" +
      tensors);
  ASSERT_FALSE(unbatched.ok());
  EXPECT_THAT(unbatched.status().message(), HasSubstr("above max_batch_size 0"));
  EXPECT_TRUE(
      Parse("backend: onnxruntime\nmax_batch_size: 0\ndynamic_batching: {priority_levels: 3}\n" +
            tensors)
          .ok())
      << "priorities and queue policies apply without batching";
}

TEST(ConfigTest, MissingBackend) {
  auto config = Parse(
      "max_batch_size: 1\ninputs: [{name: x, datatype: FP32, dims: [1]}]\n"
      "outputs: [{name: y, datatype: FP32, dims: [1]}]\n");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("'backend' is required"));
}

TEST(ConfigTest, UnsafeNamesAndFilenames) {
  EXPECT_FALSE(IsValidModelName("../etc"));
  EXPECT_FALSE(IsValidModelName(".hidden"));
  EXPECT_FALSE(IsValidModelName("a/b"));
  EXPECT_FALSE(IsValidModelName(""));
  EXPECT_TRUE(IsValidModelName("clip-image_v2.1"));
  EXPECT_THAT(ErrorWith("default_model_filename: ../../etc/passwd\n"),
              HasSubstr("must be a file name"));
}

}  // namespace
}  // namespace braid
