// The scheduler with the real ONNX Runtime backend: requests batched
// together must give the same results as each run alone. The scheduler's
// model waits for all the requests (a preferred batch size of all of them),
// so they run as one batch however fast the model is.
#include <gtest/gtest.h>

#include <condition_variable>
#include <random>

#include "backends/backends.h"
#include "model/repository.h"
#include "scheduler/model_scheduler.h"

namespace braid {
namespace {

class BatchedEqualsUnbatchedTest : public ::testing::TestWithParam<std::string> {};

Tensor RandomInput(const ModelConfig& config, std::mt19937& random) {
  const TensorSpec& spec = config.inputs[0];
  Tensor tensor = *Tensor::Allocate(spec.datatype, ExpectedShape(config, spec, 1));
  if (spec.datatype == DataType::kInt64) {
    auto ids = tensor.mutable_span<std::int64_t>();
    for (std::size_t t = 0; t < ids.size(); ++t)
      ids[t] = t == 0 ? 49406 : t < 9 ? random() % 49000 : t == 9 ? 49407 : 0;
  } else {
    std::uniform_real_distribution<float> dist(-1, 1);
    for (auto& v : tensor.mutable_span<float>()) v = dist(random);
  }
  return tensor;
}

TEST_P(BatchedEqualsUnbatchedTest, SameOutputs) {
  BackendRegistry backends;
  RegisterBuiltinBackends(backends);
  ModelRepository repository(BRAID_TEST_MODELS, backends);
  ASSERT_TRUE(repository.Load(GetParam()).ok());
  ModelPtr model = *repository.Get(GetParam());
  ASSERT_TRUE(model->config().dynamic_batching.enabled || GetParam() == "identity");

  constexpr int kRequests = 12;
  ModelConfig config = model->config();
  config.dynamic_batching.adaptive = false;
  config.dynamic_batching.preferred_batch_size = {kRequests};
  config.dynamic_batching.max_queue_delay_us = 60'000'000;
  auto instances =
      (*backends.Find(config.backend))(config, config.directory / std::to_string(model->version()));
  ASSERT_TRUE(instances.ok()) << instances.status().ToString();
  auto batched = std::make_shared<Model>(config, model->version(), std::move(instances).value());
  std::mt19937 random(42);
  std::vector<Tensor> inputs;
  std::vector<std::vector<Tensor>> expected(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    inputs.push_back(RandomInput(model->config(), random));
    ASSERT_TRUE(model->Execute(0, std::vector<Tensor>{inputs.back()}, &expected[i]).ok());
  }

  SchedulerOptions options;
  options.batching = true;
  ModelScheduler scheduler(batched, SteadyClock(), options);
  std::mutex mutex;
  std::condition_variable all_done;
  std::vector<InferenceResult> results(kRequests);
  int finished = 0;
  for (int i = 0; i < kRequests; ++i) {
    auto request = std::make_unique<InferenceRequest>();
    request->inputs = {inputs[i]};
    request->on_complete = [&, i](InferenceResult result) {
      std::lock_guard lock(mutex);
      results[i] = std::move(result);
      ++finished;
      all_done.notify_all();
    };
    ASSERT_TRUE(scheduler.Enqueue(request).ok());
  }
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(
        all_done.wait_for(lock, std::chrono::seconds(60), [&] { return finished == kRequests; }));
  }
  int largest_batch = 0;
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(results[i].status.ok()) << results[i].status.ToString();
    largest_batch = std::max(largest_batch, results[i].batch_size);
    const Tensor& got = results[i].outputs[0];
    const Tensor& want = expected[i][0];
    ASSERT_EQ(got.shape(), want.shape());
    for (std::size_t k = 0; k < want.span<float>().size(); ++k) {
      ASSERT_NEAR(got.span<float>()[k], want.span<float>()[k], 1e-5)
          << "request " << i << " element " << k;
    }
  }
  EXPECT_EQ(largest_batch, kRequests);
  EXPECT_GT(scheduler.Stats().executions, 0u);
}

INSTANTIATE_TEST_SUITE_P(DefaultModels, BatchedEqualsUnbatchedTest,
                         ::testing::Values("identity", "clip-text", "clip-image"));

}  // namespace
}  // namespace braid
