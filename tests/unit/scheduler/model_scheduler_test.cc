// The scheduler against a test backend whose compute the test controls: a
// batch blocks until the test releases it and takes the (manual) time the
// test chose, so batch formation, priorities, timeouts and deferral are
// checked deterministically.
#include "scheduler/model_scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <condition_variable>
#include <future>
#include <thread>

#include "support/manual_clock.h"

namespace braid {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr auto kPatience = std::chrono::seconds(10);  // real time allowed for a worker to act

// Each batch records the ids (input values) it ran; output = input + 1000.
class TestBackend {
 public:
  explicit TestBackend(testing::ManualClock& clock) : clock_(clock) {}

  class Instance : public ModelInstance {
   public:
    explicit Instance(TestBackend& backend) : backend_(backend) {}
    // ModelInstance
    Status Execute(std::span<const Tensor> inputs, std::vector<Tensor>* outputs) override {
      return Execute(inputs, outputs, Duration::max());
    }
    Status Execute(std::span<const Tensor> inputs, std::vector<Tensor>* outputs,
                   Duration time_left) override {
      backend_.RecordTimeLeft(time_left);
      return backend_.Run(inputs, outputs);
    }
    bool Preempt() override { return backend_.Preempt(); }

   private:
    TestBackend& backend_;
  };

  // A negative id is an input the backend refuses (InvalidArgument).
  // A held batch asked to stop (Preempt) fails at once, as ONNX Runtime's
  // run does; an ask that came before the batch began is forgotten.
  Status Run(std::span<const Tensor> inputs, std::vector<Tensor>* outputs) {
    std::vector<int> ids;
    for (float v : inputs[0].span<float>()) ids.push_back(static_cast<int>(v));
    const int nice = ThreadNice();
    const int policy = sched_getscheduler(0);
    std::unique_lock lock(mutex_);
    stop_ = false;
    batches_.push_back(ids);
    nices_.push_back(nice);
    policies_.push_back(policy);
    threads_.push_back(std::this_thread::get_id());
    changed_.notify_all();
    changed_.wait(lock, [&] { return !hold_ || permits_ > 0 || stop_; });
    if (stop_) {
      ++stopped_;
      return Internal("stopped");
    }
    if (permits_ > 0) --permits_;
    Duration compute = fixed_cost_ + per_item_cost_ * static_cast<int>(ids.size());
    lock.unlock();
    clock_.Advance(compute);
    for (int id : ids) {
      if (id < 0) return InvalidArgument("input {} cannot be read", id);
    }
    Tensor out = *Tensor::Allocate(DataType::kFp32, inputs[0].shape());
    for (std::size_t i = 0; i < ids.size(); ++i) out.mutable_span<float>()[i] = ids[i] + 1000.0f;
    outputs->push_back(std::move(out));
    return Status::Ok();
  }

  bool Preempt() {
    std::lock_guard lock(mutex_);
    stop_ = true;
    changed_.notify_all();
    return true;
  }
  // Batches stopped by Preempt.
  int stopped() {
    std::lock_guard lock(mutex_);
    return stopped_;
  }

  void RecordTimeLeft(Duration time_left) {
    std::lock_guard lock(mutex_);
    time_left_.push_back(time_left);
  }
  // The time left each batch was given.
  std::vector<Duration> time_left() {
    std::lock_guard lock(mutex_);
    return time_left_;
  }

  // While held, each batch waits for a Release().
  void Hold() {
    std::lock_guard lock(mutex_);
    hold_ = true;
  }
  void Release(int batches = 1) {
    std::lock_guard lock(mutex_);
    permits_ += batches;
    changed_.notify_all();
  }
  void ReleaseAll() {
    std::lock_guard lock(mutex_);
    hold_ = false;
    changed_.notify_all();
  }
  void SetCost(Duration fixed, Duration per_item) {
    std::lock_guard lock(mutex_);
    fixed_cost_ = fixed;
    per_item_cost_ = per_item;
  }

  // Blocks (real time) until `count` batches have started.
  std::vector<std::vector<int>> WaitForBatches(std::size_t count) {
    std::unique_lock lock(mutex_);
    EXPECT_TRUE(changed_.wait_for(lock, kPatience, [&] { return batches_.size() >= count; }))
        << "only " << batches_.size() << " batches started";
    return batches_;
  }
  std::vector<std::vector<int>> batches() {
    std::lock_guard lock(mutex_);
    return batches_;
  }
  // The nice of the thread that ran each batch.
  std::vector<int> nices() {
    std::lock_guard lock(mutex_);
    return nices_;
  }
  // The scheduling policy (SCHED_OTHER, SCHED_IDLE) of the thread that ran each batch.
  std::vector<int> policies() {
    std::lock_guard lock(mutex_);
    return policies_;
  }
  // The thread that ran each batch.
  std::vector<std::thread::id> threads() {
    std::lock_guard lock(mutex_);
    return threads_;
  }

  static int ThreadNice() {
    return getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
  }

 private:
  testing::ManualClock& clock_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::vector<int>> batches_;
  std::vector<int> nices_;
  std::vector<int> policies_;
  std::vector<std::thread::id> threads_;
  std::vector<Duration> time_left_;
  bool hold_ = false;
  int permits_ = 0;
  bool stop_ = false;
  int stopped_ = 0;
  Duration fixed_cost_{};
  Duration per_item_cost_{};
};

// What one request's callback received.
struct Outcome {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  InferenceResult result;

  const InferenceResult& Wait() {
    std::unique_lock lock(mutex);
    EXPECT_TRUE(done_cv.wait_for(lock, kPatience, [&] { return done; }))
        << "request never completed";
    return result;
  }
  bool finished() {
    std::lock_guard lock(mutex);
    return done;
  }
};
using OutcomePtr = std::shared_ptr<Outcome>;

ModelConfig BaseConfig() {
  ModelConfig config;
  config.name = "test";
  config.backend = "test";
  config.max_batch_size = 4;
  config.inputs = {{"x", DataType::kFp32, {1}}};
  config.outputs = {{"y", DataType::kFp32, {1}}};
  return config;
}

// Batching, levels 1 and 2 (2 the default) and one priority instance.
ModelConfig WithAPriorityInstance() {
  ModelConfig config = BaseConfig();
  config.dynamic_batching.enabled = true;
  config.dynamic_batching.priority_levels = 2;
  config.dynamic_batching.default_priority = 2;
  config.instance_group.priority_instances = 1;
  return config;
}

// Batching, levels 1 and 2 (2 the default), preemption on, one instance;
// a batch costs 10 ms per item.
ModelConfig WithPreemption() {
  ModelConfig config = BaseConfig();
  config.dynamic_batching.enabled = true;
  config.dynamic_batching.priority_levels = 2;
  config.dynamic_batching.default_priority = 2;
  config.dynamic_batching.preempt = true;
  return config;
}

// Batching, levels 1 to 3 (2 the default, 3 off-peak and never deferred)
// and one background instance.
ModelConfig WithABackgroundInstance() {
  ModelConfig config = BaseConfig();
  config.dynamic_batching.enabled = true;
  config.dynamic_batching.priority_levels = 3;
  config.dynamic_batching.default_priority = 2;
  config.dynamic_batching.offpeak.priorities = {3};
  config.dynamic_batching.offpeak.defer_above_utilization = 1.0;
  config.instance_group.background_instances = 1;
  return config;
}

class SchedulerTest : public ::testing::Test {
 protected:
  void Start(ModelConfig config, int instances = 1, SchedulerOptions options = {}) {
    std::vector<ModelInstancePtr> list;
    for (int i = 0; i < instances; ++i)
      list.push_back(std::make_unique<TestBackend::Instance>(backend_));
    scheduler_ = std::make_unique<ModelScheduler>(
        std::make_shared<Model>(std::move(config), 1, std::move(list)), clock_, options);
  }

  // Enqueues a request whose one item is `id`; returns its outcome, or
  // nullptr if it was refused (with the status in `*refused`).
  OutcomePtr Submit(int id, int priority = 0, std::int64_t timeout_us = -1,
                    TimePoint deadline = TimePoint::max(),
                    std::shared_ptr<CancellationToken> token = nullptr, Status* refused = nullptr) {
    auto outcome = std::make_shared<Outcome>();
    auto request = std::make_unique<InferenceRequest>();
    Tensor x = *Tensor::Allocate(DataType::kFp32, {1, 1});
    x.mutable_span<float>()[0] = static_cast<float>(id);
    request->inputs = {x};
    request->priority = priority;
    request->timeout_us = timeout_us;
    request->deadline = deadline;
    request->cancellation = std::move(token);
    request->light_completion = light_;
    request->caller_may_compute = may_compute_;
    request->on_complete = [outcome](InferenceResult result) {
      std::lock_guard lock(outcome->mutex);
      outcome->result = std::move(result);
      outcome->done = true;
      outcome->done_cv.notify_all();
    };
    Status status = scheduler_->Enqueue(request);
    if (refused != nullptr) *refused = status;
    if (!status.ok()) {
      EXPECT_NE(request, nullptr) << "a refused request stays with the caller";
      return nullptr;
    }
    EXPECT_EQ(request, nullptr);
    return outcome;
  }

  static float ValueOf(const InferenceResult& result) {
    return result.outputs.at(0).span<float>()[0];
  }

  // Waits (real time) until the scheduler's queues hold `depth` requests at `level`.
  void WaitForQueueDepth(int level, std::size_t depth) {
    auto until = std::chrono::steady_clock::now() + kPatience;
    while (scheduler_->Stats().queue_depth[level - 1] != depth &&
           std::chrono::steady_clock::now() < until) {
      std::this_thread::yield();
    }
    EXPECT_EQ(scheduler_->Stats().queue_depth[level - 1], depth);
  }

  testing::ManualClock clock_;
  TestBackend backend_{clock_};
  std::unique_ptr<ModelScheduler> scheduler_;
  bool light_ = false;        // Submit marks its requests' completions light
  bool may_compute_ = false;  // and lets the enqueuing thread compute them
};

TEST_F(SchedulerTest, WithoutBatchingEachRequestRunsAlone) {
  Start(BaseConfig());
  backend_.Hold();
  auto a = Submit(1);
  backend_.WaitForBatches(1);
  auto b = Submit(2);
  auto c = Submit(3);
  backend_.ReleaseAll();
  EXPECT_EQ(ValueOf(a->Wait()), 1001);
  EXPECT_EQ(ValueOf(b->Wait()), 1002);
  EXPECT_EQ(ValueOf(c->Wait()), 1003);
  EXPECT_THAT(backend_.batches(), ElementsAre(ElementsAre(1), ElementsAre(2), ElementsAre(3)));
}

TEST_F(SchedulerTest, BatchesFillUpToMaxBatchSizeAndSplitResults) {
  ModelConfig config = BaseConfig();
  config.dynamic_batching.enabled = true;
  Start(config);
  backend_.Hold();
  auto first = Submit(0);
  backend_.WaitForBatches(1);
  std::vector<OutcomePtr> queued;
  for (int id = 1; id <= 6; ++id) queued.push_back(Submit(id));
  backend_.ReleaseAll();
  for (int id = 1; id <= 6; ++id) {
    const auto& result = queued[id - 1]->Wait();
    ASSERT_TRUE(result.status.ok()) << result.status.ToString();
    EXPECT_EQ(ValueOf(result), 1000 + id) << "each request gets its own row back";
    EXPECT_EQ(result.outputs[0].shape(), (Shape{1, 1}));
  }
  EXPECT_THAT(backend_.batches(),
              ElementsAre(ElementsAre(0), ElementsAre(1, 2, 3, 4), ElementsAre(5, 6)));
  auto stats = scheduler_->Stats();
  EXPECT_EQ(stats.executions, 3u);
  EXPECT_EQ(stats.inferences, 7u);
  EXPECT_EQ(stats.batch_sizes[4], 1u);
  EXPECT_EQ(stats.batch_sizes[2], 1u);
  EXPECT_EQ(stats.success, 7u);
}

TEST_F(SchedulerTest, ARefusedInputFailsItsOwnRequestNotItsBatch) {
  ModelConfig config = BaseConfig();
  config.dynamic_batching.enabled = true;
  Start(config);
  backend_.Hold();
  auto first = Submit(0);
  backend_.WaitForBatches(1);
  auto good = Submit(1);
  auto bad = Submit(-2);
  auto other = Submit(3);
  backend_.ReleaseAll();
  ASSERT_TRUE(good->Wait().status.ok()) << good->Wait().status.ToString();
  EXPECT_EQ(ValueOf(good->Wait()), 1001);
  EXPECT_EQ(ValueOf(other->Wait()), 1003);
  EXPECT_EQ(bad->Wait().status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad->Wait().status.message(), HasSubstr("input -2 cannot be read"));
  EXPECT_THAT(backend_.batches(), ElementsAre(ElementsAre(0), ElementsAre(1, -2, 3), ElementsAre(1),
                                              ElementsAre(-2), ElementsAre(3)))
      << "the batch failed, then each request ran alone";
}

// A batch may take until the last of its requests' deadlines (a remote
// backend's call gives up then); with no deadline it has no limit.
TEST_F(SchedulerTest, ABatchIsGivenTheTimeToItsLatestDeadline) {
  ModelConfig config = BaseConfig();
  config.dynamic_batching.enabled = true;
  Start(config);
  backend_.Hold();
  auto first = Submit(0);
  backend_.WaitForBatches(1);
  auto near = Submit(1, 0, -1, clock_.Now() + milliseconds(200));
  auto far = Submit(2, 0, -1, clock_.Now() + milliseconds(900));
  backend_.ReleaseAll();
  ASSERT_TRUE(first->Wait().status.ok());
  ASSERT_TRUE(near->Wait().status.ok());
  ASSERT_TRUE(far->Wait().status.ok());
  ASSERT_THAT(backend_.batches(), ElementsAre(ElementsAre(0), ElementsAre(1, 2)));
  EXPECT_THAT(backend_.time_left(), ElementsAre(Duration::max(), milliseconds(900)));
}

TEST_F(SchedulerTest, WaitsForThePreferredSizeWithinTheWindow) {
  ModelConfig config = BaseConfig();
  config.dynamic_batching.enabled = true;
  config.dynamic_batching.preferred_batch_size = {2};
  config.dynamic_batching.max_queue_delay_us = 1000;
  Start(config);
  auto a = Submit(1);
  auto b = Submit(2);  // two items: the preferred size, so no waiting
  EXPECT_EQ(ValueOf(a->Wait()), 1001);
  EXPECT_EQ(ValueOf(b->Wait()), 1002);
  EXPECT_THAT(backend_.batches(), ElementsAre(ElementsAre(1, 2)));
}

TEST_F(SchedulerTest, DispatchesWhatItHasWhenTheWindowExpires) {
  ModelConfig config = BaseConfig();
  config.dynamic_batching.enabled = true;
  config.dynamic_batching.preferred_batch_size = {4};
  config.dynamic_batching.max_queue_delay_us = 1000;
  Start(config);
  auto a = Submit(1);
  clock_.Advance(microseconds(600));
  auto b = Submit(2);
  clock_.Advance(microseconds(399));
  // 999 us after the first arrival: still inside the window.
  EXPECT_TRUE(backend_.batches().empty());
  EXPECT_FALSE(a->finished());
  clock_.Advance(microseconds(1));
  EXPECT_TRUE(a->Wait().status.ok());
  EXPECT_TRUE(b->Wait().status.ok());
  EXPECT_THAT(backend_.batches(), ElementsAre(ElementsAre(1, 2)));
  EXPECT_EQ(a->result.queue_time, microseconds(1000));
  EXPECT_EQ(b->result.queue_time, microseconds(400));
}

// Teaches the adaptive window its costs: a batch of 1 (5.1 ms) and a batch
// of 3 (5.3 ms), so a fixed cost of 5 ms per batch.
void TrainAdaptiveCosts(SchedulerTest* test, TestBackend& backend,
                        const std::function<OutcomePtr(int)>& submit) {
  backend.SetCost(microseconds(5000), microseconds(100));
  backend.Hold();
  auto a = submit(1);
  backend.WaitForBatches(1);
  auto b = submit(2), c = submit(3), d = submit(4);
  backend.Release();
  a->Wait();
  backend.WaitForBatches(2);
  backend.Release();
  d->Wait();
  backend.ReleaseAll();
  ASSERT_THAT(backend.batches(), ElementsAre(ElementsAre(1), ElementsAre(2, 3, 4)));
}

TEST_F(SchedulerTest, AdaptiveRunsAtOnceAtLowArrivalRate) {
  ModelConfig config = BaseConfig();
  config.max_batch_size = 8;
  config.dynamic_batching.enabled = true;
  config.dynamic_batching.adaptive = true;
  config.dynamic_batching.max_queue_delay_us = 50000;
  Start(config);
  TrainAdaptiveCosts(this, backend_, [this](int id) { return Submit(id); });
  clock_.Advance(milliseconds(100));  // a long gap: the arrival rate is low
  auto e = Submit(5);
  // Runs without the clock moving: no batching window is held open.
  EXPECT_TRUE(e->Wait().status.ok());
  EXPECT_EQ(e->result.batch_size, 1);
  EXPECT_EQ(e->result.queue_time, Duration::zero());
}

TEST_F(SchedulerTest, AdaptiveWaitsForMoreAtHighArrivalRate) {
  ModelConfig config = BaseConfig();
  config.max_batch_size = 8;
  config.dynamic_batching.enabled = true;
  config.dynamic_batching.adaptive = true;
  config.dynamic_batching.max_queue_delay_us = 50000;
  Start(config);
  TrainAdaptiveCosts(this, backend_, [this](int id) { return Submit(id); });
  // Arrivals 100 us apart: well under the 5 ms a merged batch saves.
  std::vector<OutcomePtr> burst;
  for (int id = 5; id <= 8; ++id) {
    burst.push_back(Submit(id));
    clock_.Advance(microseconds(100));
  }
  clock_.Advance(milliseconds(5));
  for (auto& outcome : burst) EXPECT_TRUE(outcome->Wait().status.ok());
  auto batches = backend_.batches();
  ASSERT_EQ(batches.size(), 3u) << "the burst ran as one batch";
  EXPECT_THAT(batches[2], ElementsAre(5, 6, 7, 8));
}

TEST_F(SchedulerTest, HigherPrioritiesRunFirst) {
  ModelConfig config = BaseConfig();
  config.dynamic_batching.priority_levels = 3;
  config.dynamic_batching.default_priority = 2;
  Start(config);
  backend_.Hold();
  auto blocker = Submit(0);
  backend_.WaitForBatches(1);
  auto low = Submit(3, 3), normal = Submit(2), high = Submit(1, 1), high2 = Submit(11, 1);
  backend_.ReleaseAll();
  for (auto& outcome : {low, normal, high, high2}) EXPECT_TRUE(outcome->Wait().status.ok());
  EXPECT_THAT(backend_.batches(), ElementsAre(ElementsAre(0), ElementsAre(1), ElementsAre(11),
                                              ElementsAre(2), ElementsAre(3)));
}

TEST_F(SchedulerTest, BatchesHoldOneLevelHighestFirst) {
  ModelConfig config = BaseConfig();
  config.max_batch_size = 3;
  config.dynamic_batching.enabled = true;
  config.dynamic_batching.priority_levels = 2;
  config.dynamic_batching.default_priority = 2;
  Start(config);
  backend_.Hold();
  auto blocker = Submit(0);
  backend_.WaitForBatches(1);
  std::vector<OutcomePtr> all;
  for (int id : {21, 22, 23}) all.push_back(Submit(id));
  for (int id : {11, 12}) all.push_back(Submit(id, 1));
  backend_.ReleaseAll();
  for (auto& outcome : all) EXPECT_TRUE(outcome->Wait().status.ok());
  EXPECT_THAT(backend_.batches(),
              ElementsAre(ElementsAre(0), ElementsAre(11, 12), ElementsAre(21, 22, 23)));
}

TEST_F(SchedulerTest, BatchSizeFollowsPreferredSizes) {
  ModelConfig config = BaseConfig();
  config.max_batch_size = 8;
  config.dynamic_batching.enabled = true;
  config.dynamic_batching.preferred_batch_size = {2, 4};
  Start(config);
  backend_.Hold();
  auto blocker = Submit(0);
  backend_.WaitForBatches(1);
  std::vector<OutcomePtr> all;
  for (int id = 1; id <= 7; ++id) all.push_back(Submit(id));
  backend_.ReleaseAll();
  for (auto& outcome : all) EXPECT_TRUE(outcome->Wait().status.ok());
  EXPECT_THAT(backend_.batches(), ElementsAre(ElementsAre(0), ElementsAre(1, 2, 3, 4),
                                              ElementsAre(5, 6), ElementsAre(7)));
}

TEST_F(SchedulerTest, FullQueueRejectsAtOnce) {
  ModelConfig config = BaseConfig();
  config.dynamic_batching.default_queue_policy.max_queue_size = 2;
  Start(config);
  backend_.Hold();
  auto blocker = Submit(0);
  backend_.WaitForBatches(1);
  auto a = Submit(1), b = Submit(2);
  Status refused;
  EXPECT_EQ(Submit(3, 0, -1, TimePoint::max(), nullptr, &refused), nullptr);
  EXPECT_EQ(refused.code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.message(), HasSubstr("2 requests queued"));
  EXPECT_EQ(scheduler_->Stats().rejected, 1u);
  backend_.ReleaseAll();
  EXPECT_TRUE(a->Wait().status.ok());
  EXPECT_TRUE(b->Wait().status.ok());
}

TEST_F(SchedulerTest, AdmissionRefusesWhatCouldNotStartBeforeItsTimeout) {
  ModelConfig config = BaseConfig();
  config.dynamic_batching.enabled = true;
  config.dynamic_batching.priority_levels = 2;
  config.dynamic_batching.default_priority = 2;
  config.dynamic_batching.default_queue_policy.timeout_us = 25'000;
  Start(config);
  backend_.SetCost(Duration{}, milliseconds(10));
  EXPECT_TRUE(Submit(100)->Wait().status.ok()) << "measures a batch of one: 10 ms";
  backend_.Hold();
  auto blocker = Submit(0);  // expected to end 10 ms from now
  backend_.WaitForBatches(2);
  std::vector<OutcomePtr> admitted;
  for (int id = 1; id <= 4; ++id) admitted.push_back(Submit(id));  // one batch of 4, after it
  Status refused;
  EXPECT_EQ(Submit(5, 0, -1, TimePoint::max(), nullptr, &refused), nullptr)
      << "behind a full batch of 4 (about 40 ms) it could not start within 25 ms";
  EXPECT_EQ(refused.code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.message(), HasSubstr("would start the request after its timeout"));
  EXPECT_EQ(scheduler_->Stats().rejected, 1u);
  admitted.push_back(Submit(6, 1));     // priority 1 has nothing queued ahead of it
  admitted.push_back(Submit(7, 0, 0));  // no timeout: nothing to miss
  for (const auto& outcome : admitted) ASSERT_NE(outcome, nullptr);
  backend_.ReleaseAll();
  for (const auto& outcome : admitted) EXPECT_TRUE(outcome->Wait().status.ok());
  EXPECT_EQ(scheduler_->Stats().timed_out, 0u);
}

TEST_F(SchedulerTest, LowerLevelBatchesAreCutWhileAHigherLevelHasTraffic) {
  ModelConfig config = BaseConfig();
  config.max_batch_size = 8;
  config.dynamic_batching.enabled = true;
  config.dynamic_batching.priority_levels = 2;
  config.dynamic_batching.default_priority = 2;
  config.dynamic_batching.priority_blocking_us = 25'000;
  Start(config);
  backend_.SetCost(Duration{}, milliseconds(10));
  EXPECT_TRUE(Submit(100, 1)->Wait().status.ok()) << "priority-1 traffic; a batch of one: 10 ms";
  backend_.Hold();
  auto blocker = Submit(0);
  backend_.WaitForBatches(2);
  std::vector<OutcomePtr> all;
  for (int id = 1; id <= 5; ++id) all.push_back(Submit(id));
  backend_.ReleaseAll();
  for (const auto& outcome : all) EXPECT_TRUE(outcome->Wait().status.ok());
  EXPECT_THAT(backend_.batches(), ElementsAre(ElementsAre(100), ElementsAre(0), ElementsAre(1, 2),
                                              ElementsAre(3, 4), ElementsAre(5)))
      << "batches of 2 (20 ms) keep within 25 ms";

  clock_.Advance(std::chrono::seconds(1));  // a second without priority-1 arrivals
  backend_.Hold();
  blocker = Submit(10);
  backend_.WaitForBatches(6);
  all.clear();
  for (int id = 11; id <= 15; ++id) all.push_back(Submit(id));
  backend_.ReleaseAll();
  for (const auto& outcome : all) EXPECT_TRUE(outcome->Wait().status.ok());
  EXPECT_THAT(backend_.batches().back(), ElementsAre(11, 12, 13, 14, 15));
}

TEST_F(SchedulerTest, InvalidPriorityIsRefused) {
  Start(BaseConfig());
  Status refused;
  EXPECT_EQ(Submit(1, 2, -1, TimePoint::max(), nullptr, &refused), nullptr);
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
}

TEST_F(SchedulerTest, QueueTimeoutRejectsWithoutComputing) {
  ModelConfig config = BaseConfig();
  config.dynamic_batching.default_queue_policy.timeout_us = 1000;
  Start(config);
  backend_.Hold();
  auto blocker = Submit(0);
  backend_.WaitForBatches(1);
  auto late = Submit(1);
  clock_.Advance(microseconds(1001));
  const auto& result = late->Wait();
  EXPECT_EQ(result.status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_THAT(result.status.message(), HasSubstr("timed out"));
  backend_.ReleaseAll();
  blocker->Wait();
  EXPECT_THAT(backend_.batches(), ElementsAre(ElementsAre(0))) << "the timed-out request never ran";
  EXPECT_EQ(scheduler_->Stats().timed_out, 1u);
}

TEST_F(SchedulerTest, PerRequestTimeoutOverride) {
  ModelConfig config = BaseConfig();
  config.dynamic_batching.priority_levels = 2;
  config.dynamic_batching.default_priority = 1;
  config.dynamic_batching.priority_queue_policy[2].allow_timeout_override = false;
  Start(config);
  backend_.Hold();
  auto blocker = Submit(0);
  backend_.WaitForBatches(1);
  auto overridden = Submit(1, 1, 500);
  auto ignored = Submit(2, 2, 500);
  clock_.Advance(microseconds(600));
  EXPECT_EQ(overridden->Wait().status.code(), StatusCode::kDeadlineExceeded);
  backend_.ReleaseAll();
  EXPECT_TRUE(ignored->Wait().status.ok()) << "level 2 does not allow overrides";
}

TEST_F(SchedulerTest, DelayActionMovesBehindEveryLevel) {
  ModelConfig config = BaseConfig();
  config.dynamic_batching.priority_levels = 2;
  config.dynamic_batching.default_priority = 2;
  QueuePolicy delay;
  delay.timeout_us = 1000;
  delay.timeout_action = QueuePolicy::TimeoutAction::kDelay;
  config.dynamic_batching.priority_queue_policy[1] = delay;
  Start(config);
  backend_.Hold();
  auto blocker = Submit(0);
  backend_.WaitForBatches(1);
  auto delayed = Submit(1, 1);
  clock_.Advance(microseconds(1001));
  WaitForQueueDepth(1, 0);
  auto normal = Submit(2, 2);
  backend_.ReleaseAll();
  EXPECT_TRUE(delayed->Wait().status.ok()) << "delay runs it later instead of failing it";
  EXPECT_TRUE(normal->Wait().status.ok());
  EXPECT_THAT(backend_.batches(), ElementsAre(ElementsAre(0), ElementsAre(2), ElementsAre(1)));
  EXPECT_EQ(scheduler_->Stats().delayed, 1u);
}

TEST_F(SchedulerTest, HardDeadlineDropsTheRequest) {
  Start(BaseConfig());
  backend_.Hold();
  auto blocker = Submit(0);
  backend_.WaitForBatches(1);
  auto doomed = Submit(1, 0, -1, clock_.Now() + microseconds(300));
  clock_.Advance(microseconds(300));
  EXPECT_EQ(doomed->Wait().status.code(), StatusCode::kDeadlineExceeded);
  backend_.ReleaseAll();
  blocker->Wait();
  EXPECT_THAT(backend_.batches(), ElementsAre(ElementsAre(0)));
}

TEST_F(SchedulerTest, CancelledRequestsAreNeverComputed) {
  Start(BaseConfig());
  backend_.Hold();
  auto blocker = Submit(0);
  backend_.WaitForBatches(1);
  auto token = std::make_shared<CancellationToken>();
  auto gone = Submit(1, 0, -1, TimePoint::max(), token);
  auto kept = Submit(2);
  token->Cancel();
  scheduler_->Poke();
  EXPECT_EQ(gone->Wait().status.code(), StatusCode::kCancelled);
  backend_.ReleaseAll();
  EXPECT_TRUE(kept->Wait().status.ok());
  EXPECT_THAT(backend_.batches(), ElementsAre(ElementsAre(0), ElementsAre(2)));
  EXPECT_EQ(scheduler_->Stats().cancelled, 1u);
}

ModelConfig OffpeakConfig() {
  ModelConfig config = BaseConfig();
  config.dynamic_batching.priority_levels = 3;
  config.dynamic_batching.default_priority = 2;
  config.dynamic_batching.offpeak.priorities = {3};
  config.dynamic_batching.offpeak.defer_above_utilization = 0.3;
  return config;
}

TEST_F(SchedulerTest, OffpeakWaitsWhileBusyAndRunsWhenUtilizationFalls) {
  SchedulerOptions options;
  options.utilization_window = milliseconds(100);
  Start(OffpeakConfig(), 1, options);
  backend_.SetCost(milliseconds(100), Duration::zero());
  Submit(0)->Wait();  // the instance was busy for the whole window
  backend_.SetCost(Duration::zero(), Duration::zero());
  auto background = Submit(3, 3);
  auto interactive = Submit(1, 1);
  EXPECT_TRUE(interactive->Wait().status.ok());
  WaitForQueueDepth(3, 1);
  EXPECT_FALSE(background->finished()) << "deferred while utilisation is above 0.3";
  clock_.Advance(milliseconds(80));  // busy share of the last 100 ms falls to 0.2
  EXPECT_TRUE(background->Wait().status.ok());
  EXPECT_THAT(backend_.batches(), ElementsAre(ElementsAre(0), ElementsAre(1), ElementsAre(3)));
}

TEST_F(SchedulerTest, OffpeakStillBoundedByItsTimeout) {
  SchedulerOptions options;
  options.utilization_window = milliseconds(100);
  Start(OffpeakConfig(), 1, options);
  backend_.SetCost(milliseconds(100), Duration::zero());
  Submit(0)->Wait();
  auto background = Submit(3, 3, 50000);
  WaitForQueueDepth(3, 1);
  clock_.Advance(milliseconds(50));  // utilisation is still 0.5 when the timeout passes
  EXPECT_EQ(background->Wait().status.code(), StatusCode::kDeadlineExceeded);
}

// The load a readiness probe reads without the lock: full while requests
// wait behind the busy instance; otherwise the utilisation, which the
// expiry thread keeps recomputing as the manual clock moves while a batch
// runs or busy time is still leaving the window.
TEST_F(SchedulerTest, TheLoadIsPublishedForReadersWithoutTheLock) {
  SchedulerOptions options;
  options.utilization_window = milliseconds(100);
  Start(BaseConfig(), 1, options);
  // Waits (real time) until the published load is `load`.
  auto until_load = [&](double load) {
    const auto until = std::chrono::steady_clock::now() + kPatience;
    while (scheduler_->CurrentLoad() != load && std::chrono::steady_clock::now() < until)
      std::this_thread::yield();
    return scheduler_->CurrentLoad();
  };
  EXPECT_EQ(scheduler_->CurrentLoad(), 0.0);
  backend_.SetCost(milliseconds(10), Duration::zero());
  backend_.Hold();
  auto first = Submit(1);
  backend_.WaitForBatches(1);
  auto second = Submit(2);
  EXPECT_EQ(scheduler_->CurrentLoad(), 1.0) << "a request waits behind the busy instance";
  auto third = Submit(3);
  backend_.Release(1);
  backend_.WaitForBatches(2);
  EXPECT_EQ(scheduler_->CurrentLoad(), 1.0) << "the next batch started with a request waiting";
  backend_.ReleaseAll();
  for (const auto& outcome : {first, second, third}) EXPECT_TRUE(outcome->Wait().status.ok());
  // Each ran for 10 ms of the manual clock, back to back: 30 of the
  // window's 100 ms were busy when the last ended.
  EXPECT_EQ(until_load(0.3), 0.3);
  clock_.Advance(milliseconds(80));
  EXPECT_EQ(until_load(0.2), 0.2) << "20 ms of the busy time are left in the window";
  clock_.Advance(milliseconds(30));
  EXPECT_EQ(until_load(0.0), 0.0);
  // A long batch, nothing waiting: the load climbs while it runs.
  backend_.SetCost(Duration::zero(), Duration::zero());
  backend_.Hold();
  auto long_batch = Submit(4);
  backend_.WaitForBatches(4);
  clock_.Advance(milliseconds(50));
  EXPECT_EQ(until_load(0.5), 0.5);
  clock_.Advance(milliseconds(60));
  EXPECT_EQ(until_load(1.0), 1.0);
  backend_.ReleaseAll();
  EXPECT_TRUE(long_batch->Wait().status.ok());
}

TEST_F(SchedulerTest, InstancesPullWorkInParallel) {
  ModelConfig config = BaseConfig();
  Start(config, 2);
  backend_.Hold();
  auto a = Submit(1), b = Submit(2);
  // Both instances are busy at once: two batches started, neither released.
  EXPECT_EQ(backend_.WaitForBatches(2).size(), 2u);
  backend_.ReleaseAll();
  EXPECT_TRUE(a->Wait().status.ok());
  EXPECT_TRUE(b->Wait().status.ok());
}

// A parked worker must not swallow the wake-up meant for the active one.
// Real time (SteadyClock) on purpose: ManualClock's waits for a deadline
// poll, which would hide a lost wake-up. Before parked workers waited on a condition of
// their own, the first request after the active worker went back to sleep
// woke the parked one instead (it had waited longer) and stayed queued.
TEST_F(SchedulerTest, AParkedWorkerDoesNotStrandARequest) {
  ModelConfig config = BaseConfig();
  config.max_batch_size = 0;
  config.autoscale.enabled = true;
  config.autoscale.min_instances = 1;
  config.autoscale.max_instances = 2;
  std::vector<ModelInstancePtr> list;
  for (int i = 0; i < 2; ++i) list.push_back(std::make_unique<TestBackend::Instance>(backend_));
  scheduler_ = std::make_unique<ModelScheduler>(
      std::make_shared<Model>(std::move(config), 1, std::move(list)), SteadyClock());
  ASSERT_EQ(scheduler_->Stats().active_instances, 1u);
  for (int i = 0; i < 50; ++i) {
    auto outcome = Submit(i);
    ASSERT_NE(outcome, nullptr);
    ASSERT_EQ(ValueOf(outcome->Wait()), i + 1000) << "request " << i;
  }
}

TEST_F(SchedulerTest, APriorityInstanceRunsUrgentWorkBesideALowerBatch) {
  ModelConfig config = WithAPriorityInstance();
  Start(config, 2);
  backend_.Hold();
  auto low = Submit(1, 2);
  backend_.WaitForBatches(1);
  // Another priority-2 request waits for the regular instance...
  auto queued = Submit(2, 2);
  WaitForQueueDepth(2, 1);
  // ...while a priority-1 one starts at once on the priority instance.
  auto urgent = Submit(3, 1);
  EXPECT_THAT(backend_.WaitForBatches(2), ElementsAre(ElementsAre(1), ElementsAre(3)));
  backend_.ReleaseAll();
  EXPECT_EQ(ValueOf(urgent->Wait()), 1003);
  EXPECT_EQ(ValueOf(queued->Wait()), 1002);
  EXPECT_THAT(backend_.batches(), ElementsAre(ElementsAre(1), ElementsAre(3), ElementsAre(2)));
}

TEST_F(SchedulerTest, AnUrgentRequestStopsALongerLowerBatchWhichRunsAgainAfterIt) {
  Start(WithPreemption());
  backend_.SetCost(Duration::zero(), milliseconds(10));
  EXPECT_EQ(ValueOf(Submit(1)->Wait()), 1001);  // measures a batch of one: 10 ms
  backend_.Hold();
  auto first = Submit(2);
  backend_.WaitForBatches(2);
  std::vector<OutcomePtr> low = {Submit(3), Submit(4), Submit(5)};
  WaitForQueueDepth(2, 3);
  backend_.Release();
  backend_.WaitForBatches(3);  // [3, 4, 5]: about 30 ms, more than a batch of one
  auto urgent = Submit(9, 1);
  // It stops [3, 4, 5], runs first, and the stopped batch runs again after it.
  EXPECT_THAT(backend_.WaitForBatches(4).back(), ElementsAre(9));
  EXPECT_EQ(backend_.stopped(), 1);
  backend_.Release();
  EXPECT_EQ(ValueOf(urgent->Wait()), 1009);
  EXPECT_THAT(backend_.WaitForBatches(5).back(), ElementsAre(3, 4, 5));
  // Its requests were stopped once: another urgent request waits for them.
  auto second = Submit(8, 1);
  WaitForQueueDepth(1, 1);
  backend_.ReleaseAll();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(ValueOf(low[i]->Wait()), 1003 + i);
  EXPECT_EQ(ValueOf(second->Wait()), 1008);
  EXPECT_EQ(ValueOf(first->Wait()), 1002);
  EXPECT_EQ(backend_.stopped(), 1);
  EXPECT_EQ(scheduler_->Stats().preempted, 1u);
  EXPECT_EQ(scheduler_->Stats().failure, 0u);
  EXPECT_THAT(backend_.batches().back(), ElementsAre(8));
}

TEST_F(SchedulerTest, AnUrgentRequestWaitsForABatchWithLessLeftThanItsOwnRun) {
  Start(WithPreemption());
  backend_.SetCost(Duration::zero(), milliseconds(10));
  EXPECT_EQ(ValueOf(Submit(1)->Wait()), 1001);
  backend_.Hold();
  auto low = Submit(2);
  backend_.WaitForBatches(2);
  clock_.Advance(milliseconds(5));  // half of [2] is done
  auto urgent = Submit(9, 1);
  WaitForQueueDepth(1, 1);
  backend_.ReleaseAll();
  EXPECT_EQ(ValueOf(low->Wait()), 1002);
  EXPECT_EQ(ValueOf(urgent->Wait()), 1009);
  EXPECT_EQ(backend_.stopped(), 0);
  EXPECT_EQ(scheduler_->Stats().preempted, 0u);
}

// The kernel splits the cores between batches that run at once: the
// priority instance's worker keeps the process's priority, the regular one
// runs the budget's regular_nice steps below it.
TEST_F(SchedulerTest, RegularWorkersComputeBelowThePriorityInstance) {
  ModelConfig config = WithAPriorityInstance();
  ComputeBudget budget(2, 5);
  SchedulerOptions options;
  options.budget = &budget;
  Start(config, 2, options);
  backend_.Hold();
  auto low = Submit(1, 2);
  backend_.WaitForBatches(1);
  auto urgent = Submit(2, 1);
  backend_.WaitForBatches(2);
  backend_.ReleaseAll();
  EXPECT_TRUE(low->Wait().status.ok());
  EXPECT_TRUE(urgent->Wait().status.ok());
  const int process = getpriority(PRIO_PROCESS, static_cast<id_t>(getpid()));
  EXPECT_THAT(backend_.batches(), ElementsAre(ElementsAre(1), ElementsAre(2)));
  EXPECT_THAT(backend_.nices(), ElementsAre(std::min(19, process + 5), process));
}

// Off-peak work goes to the background instance, which computes in the
// idle scheduling class; the regular instance leaves it queued even while
// it is idle, and takes the interactive level at once.
TEST_F(SchedulerTest, ABackgroundInstanceAloneTakesTheOffpeakLevelsAtTheIdlePriority) {
  Start(WithABackgroundInstance(), 2);
  backend_.Hold();
  auto background = Submit(1, 3);
  backend_.WaitForBatches(1);
  auto queued = Submit(2, 3);
  WaitForQueueDepth(3, 1);
  auto interactive = Submit(3, 2);
  EXPECT_THAT(backend_.WaitForBatches(2), ElementsAre(ElementsAre(1), ElementsAre(3)));
  backend_.ReleaseAll();
  EXPECT_EQ(ValueOf(background->Wait()), 1001);
  EXPECT_EQ(ValueOf(interactive->Wait()), 1003);
  EXPECT_EQ(ValueOf(queued->Wait()), 1002);
  EXPECT_THAT(backend_.batches(), ElementsAre(ElementsAre(1), ElementsAre(3), ElementsAre(2)));
  EXPECT_THAT(backend_.policies(), ElementsAre(SCHED_IDLE, SCHED_OTHER, SCHED_IDLE));
}

// A draining shutdown serves the off-peak requests still queued: the
// background instance runs them, the regular one stops without them.
TEST_F(SchedulerTest, DrainingServesTheBackgroundInstancesLevels) {
  Start(WithABackgroundInstance(), 2);
  backend_.Hold();
  auto first = Submit(1, 3);
  backend_.WaitForBatches(1);
  std::vector<OutcomePtr> queued;
  for (int id = 2; id <= 4; ++id) queued.push_back(Submit(id, 3));
  WaitForQueueDepth(3, 3);
  backend_.ReleaseAll();
  scheduler_->Shutdown(true);
  EXPECT_EQ(ValueOf(first->Wait()), 1001);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(ValueOf(queued[i]->Wait()), 1002 + i);
  for (int policy : backend_.policies()) EXPECT_EQ(policy, SCHED_IDLE);
}

TEST_F(SchedulerTest, BatchesTakeALeaseFromTheBudgetByPriority) {
  ModelConfig config = BaseConfig();
  config.dynamic_batching.priority_levels = 3;
  config.dynamic_batching.default_priority = 2;
  config.dynamic_batching.offpeak.priorities = {3};
  config.dynamic_batching.offpeak.defer_above_utilization = 1.0;
  ComputeBudget budget(1);
  SchedulerOptions options;
  options.budget = &budget;
  Start(config, 1, options);
  // A lease held elsewhere fills the budget: nothing runs until it goes.
  std::optional<ComputeBudget::Lease> other;
  other.emplace(budget.Acquire("other", ComputeClass::kInteractive, 1));
  auto background = Submit(1, 3);
  const auto until = std::chrono::steady_clock::now() + kPatience;
  while (budget.Stats().waiting[1] != 1 && std::chrono::steady_clock::now() < until)
    std::this_thread::yield();
  ASSERT_EQ(budget.Stats().waiting[1], 1);
  EXPECT_TRUE(backend_.batches().empty());
  other.reset();
  EXPECT_TRUE(background->Wait().status.ok());
  auto stats = budget.Stats();
  EXPECT_EQ(stats.granted_by_model["test"][1], 1u) << "an off-peak level draws as background";
  EXPECT_EQ(stats.in_use[0] + stats.in_use[1], 0);
}

// A background instance starts only while no interactive batch holds a
// lease, but holds none while it runs: starved by the kernel, it would keep
// interactive batches from starting.
TEST_F(SchedulerTest, ABackgroundInstanceStartsInAQuietMomentAndHoldsNoLease) {
  ComputeBudget budget(2);
  SchedulerOptions options;
  options.budget = &budget;
  Start(WithABackgroundInstance(), 2, options);
  std::optional<ComputeBudget::Lease> interactive;
  interactive.emplace(budget.Acquire("other", ComputeClass::kInteractive, 2));
  backend_.Hold();
  auto background = Submit(1, 3);
  const auto until = std::chrono::steady_clock::now() + kPatience;
  while (budget.Stats().waiting[1] != 1 && std::chrono::steady_clock::now() < until)
    std::this_thread::yield();
  ASSERT_EQ(budget.Stats().waiting[1], 1) << "it waits while interactive work computes";
  EXPECT_TRUE(backend_.batches().empty());
  interactive.reset();
  backend_.WaitForBatches(1);
  const auto running = budget.Stats();
  EXPECT_EQ(running.granted[1], 1u);
  EXPECT_EQ(running.in_use[0] + running.in_use[1], 0) << "no lease held while it runs";
  // So the whole budget stays free for interactive batches meanwhile.
  ComputeBudget::Lease first = budget.TryAcquire("other", ComputeClass::kInteractive, 2);
  ComputeBudget::Lease second = budget.TryAcquire("other", ComputeClass::kInteractive, 2);
  EXPECT_TRUE(first && second);
  backend_.ReleaseAll();
  EXPECT_EQ(ValueOf(background->Wait()), 1001);
}

// A batch measured to be short runs on the thread that enqueues it when it
// would start at once anyway, with its (light) completion, before Enqueue
// returns.
TEST_F(SchedulerTest, AShortBatchRunsOnTheEnqueuingThreadWhenNothingWaits) {
  SchedulerOptions options;
  options.inline_max_us = 1000;
  Start(BaseConfig(), 1, options);
  backend_.SetCost(microseconds(10), {});
  light_ = true;
  // Nothing measured yet: the worker runs the first.
  EXPECT_EQ(ValueOf(Submit(1)->Wait()), 1001);
  clock_.Advance(milliseconds(1));  // requests arrive far apart
  auto second = Submit(2);
  EXPECT_TRUE(second->finished()) << "answered before Enqueue returned";
  EXPECT_EQ(ValueOf(second->Wait()), 1002);
  // Not a light completion: the worker runs it.
  light_ = false;
  EXPECT_EQ(ValueOf(Submit(3)->Wait()), 1003);
  const auto threads = backend_.threads();
  ASSERT_EQ(threads.size(), 3u);
  EXPECT_NE(threads[0], std::this_thread::get_id());
  EXPECT_EQ(threads[1], std::this_thread::get_id());
  EXPECT_NE(threads[2], std::this_thread::get_id());
  EXPECT_EQ(scheduler_->Stats().inline_batches, 1u);
}

// A completion pool of one thread, busy until Release(): a callback handed
// to it waits.
struct BusyPool {
  BusyPool() {
    pool.Submit([released = released] { released.wait(); });
  }
  void Release() { release.set_value(); }

  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  ThreadPool pool{1};  // last: joined first, after Release()
};

// A caller that may compute (a gRPC thread) runs its inline batch's
// completion too, however heavy: it waits for nothing else, and handing the
// completion to the pool would cost a thread hop per request.
TEST_F(SchedulerTest, AnInlineBatchCompletesOnTheCallerNotOnTheCompletionPool) {
  BusyPool completions;
  SchedulerOptions options;
  options.inline_max_us = 1000;
  options.completions = &completions.pool;
  Start(BaseConfig(), 1, options);
  backend_.SetCost(microseconds(10), {});
  light_ = true;
  EXPECT_EQ(ValueOf(Submit(1)->Wait()), 1001);  // measures the batch time
  clock_.Advance(milliseconds(1));
  light_ = false;
  may_compute_ = true;
  auto inline_run = Submit(2);
  EXPECT_TRUE(inline_run->finished()) << "answered before Enqueue returned, pool blocked";
  EXPECT_EQ(ValueOf(inline_run->Wait()), 1002);
  EXPECT_EQ(backend_.threads().back(), std::this_thread::get_id());
  EXPECT_EQ(scheduler_->Stats().inline_batches, 1u);
  completions.Release();
  scheduler_->Shutdown(true);
}

// An inline run wakes a worker only when one waits for the instance it
// holds: an idle worker woken per request costs a futex call, a context
// switch and a turn on the scheduler's mutex on the request path.
TEST_F(SchedulerTest, AnInlineRunWakesNoIdleWorker) {
  SchedulerOptions options;
  options.inline_max_us = 1000;
  Start(BaseConfig(), 1, options);
  backend_.SetCost(microseconds(10), {});
  light_ = true;
  EXPECT_TRUE(Submit(1)->Wait().status.ok());  // measures the batch time
  // That batch woke the idle worker and the expiry thread (its busy time is
  // in the window now, so the utilisation is recomputed on a deadline):
  // both wakes are counted before the inline runs are.
  const auto settled = std::chrono::steady_clock::now() + kPatience;
  while ((clock_.wakes() != 2 || clock_.sleepers() != 1) &&
         std::chrono::steady_clock::now() < settled)
    std::this_thread::yield();
  constexpr int kRuns = 50;
  const int before = clock_.wakes();
  for (int i = 0; i < kRuns; ++i) {
    clock_.Advance(milliseconds(1));
    // The idle worker is the thread that waits without a deadline here: it
    // sleeps until notified, as on the steady clock. (The expiry thread
    // waits with one: it recomputes the utilisation while the window holds
    // the runs' busy time.)
    const auto until = std::chrono::steady_clock::now() + kPatience;
    while (clock_.sleepers() != 1 && std::chrono::steady_clock::now() < until)
      std::this_thread::yield();
    ASSERT_EQ(clock_.sleepers(), 1) << "run " << i;
    EXPECT_TRUE(Submit(2 + i)->finished()) << "run " << i << " inline";
  }
  EXPECT_EQ(scheduler_->Stats().inline_batches, static_cast<std::uint64_t>(kRuns));
  EXPECT_EQ(clock_.wakes() - before, 0) << "the idle worker woken by inline runs";
}

TEST_F(SchedulerTest, ABusyInstanceOrALongBatchLeavesTheRequestToTheWorker) {
  SchedulerOptions options;
  options.inline_max_us = 1000;
  Start(BaseConfig(), 1, options);
  backend_.SetCost(microseconds(10), {});
  light_ = true;
  EXPECT_TRUE(Submit(1)->Wait().status.ok());
  // The one instance is busy: the next one queues.
  backend_.Hold();
  light_ = false;
  auto running = Submit(2);
  backend_.WaitForBatches(2);
  light_ = true;
  auto queued = Submit(3);
  EXPECT_FALSE(queued->finished());
  backend_.ReleaseAll();
  EXPECT_EQ(ValueOf(running->Wait()), 1002);
  EXPECT_EQ(ValueOf(queued->Wait()), 1003);
  auto threads = backend_.threads();
  ASSERT_EQ(threads.size(), 3u);
  EXPECT_NE(threads[2], std::this_thread::get_id()) << "queued behind the busy instance";
  EXPECT_EQ(scheduler_->Stats().inline_batches, 0u);
  // Batches now take 2 ms: once the measured time (a moving average) passes
  // inline_max_us, the worker runs them.
  backend_.SetCost(microseconds(2000), {});
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(Submit(10 + i)->Wait().status.ok());
  threads = backend_.threads();
  for (std::size_t i = threads.size() - 3; i < threads.size(); ++i)
    EXPECT_NE(threads[i], std::this_thread::get_id()) << "batch " << i;
}

TEST_F(SchedulerTest, ShutdownDrainsQueuedWork) {
  ModelConfig config = BaseConfig();
  config.dynamic_batching.default_queue_policy.max_queue_size = 1 << 20;  // only shutdown refuses
  Start(config);
  backend_.Hold();
  auto a = Submit(1);
  backend_.WaitForBatches(1);
  auto b = Submit(2);
  std::thread stopper([&] { scheduler_->Shutdown(true); });
  // Admission stops as soon as shutdown begins; what was admitted still runs.
  std::vector<OutcomePtr> admitted;
  Status refused;
  auto until = std::chrono::steady_clock::now() + kPatience;
  while (refused.ok() && std::chrono::steady_clock::now() < until) {
    if (auto outcome = Submit(9, 0, -1, TimePoint::max(), nullptr, &refused))
      admitted.push_back(outcome);
  }
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable);
  backend_.ReleaseAll();
  stopper.join();
  EXPECT_TRUE(a->Wait().status.ok());
  EXPECT_TRUE(b->Wait().status.ok());
  for (auto& outcome : admitted) EXPECT_TRUE(outcome->Wait().status.ok());
}

TEST_F(SchedulerTest, ShutdownWithoutDrainFailsQueuedWork) {
  Start(BaseConfig());
  backend_.Hold();
  auto a = Submit(1);
  backend_.WaitForBatches(1);
  auto b = Submit(2);
  std::thread stopper([&] { scheduler_->Shutdown(false); });
  EXPECT_EQ(b->Wait().status.code(), StatusCode::kUnavailable);
  backend_.ReleaseAll();
  stopper.join();
  EXPECT_TRUE(a->Wait().status.ok()) << "the running batch finishes";
  EXPECT_THAT(backend_.batches(), ElementsAre(ElementsAre(1)));
}

TEST_F(SchedulerTest, ALightCompletionRunsOnTheWorkerAndTheRestOnTheCompletionPool) {
  BusyPool completions;
  SchedulerOptions options;
  options.completions = &completions.pool;
  options.batching = false;
  Start(BaseConfig(), 1, options);
  auto heavy = Submit(1);
  auto light = std::make_shared<Outcome>();
  auto request = std::make_unique<InferenceRequest>();
  request->inputs = {*Tensor::Allocate(DataType::kFp32, {1, 1})};
  request->light_completion = true;
  request->on_complete = [light](InferenceResult result) {
    std::lock_guard lock(light->mutex);
    light->result = std::move(result);
    light->done = true;
    light->done_cv.notify_all();
  };
  ASSERT_TRUE(scheduler_->Enqueue(request).ok());
  EXPECT_TRUE(light->Wait().status.ok()) << "answered although the completion pool is blocked";
  EXPECT_FALSE(heavy->finished()) << "an ordinary completion waits for the pool";
  completions.Release();
  EXPECT_TRUE(heavy->Wait().status.ok());
  scheduler_->Shutdown(true);
}

TEST(ConcatenateBatchTest, OneCopyInRequestOrder) {
  Tensor a = *Tensor::Allocate(DataType::kInt64, {1, 2});
  Tensor b = *Tensor::Allocate(DataType::kInt64, {2, 2});
  for (int i = 0; i < 2; ++i) a.mutable_span<std::int64_t>()[i] = i;
  for (int i = 0; i < 4; ++i) b.mutable_span<std::int64_t>()[i] = 10 + i;
  auto batch = ConcatenateBatch({&a, &b});
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(batch->shape(), (Shape{3, 2}));
  EXPECT_THAT(std::vector<std::int64_t>(batch->span<std::int64_t>().begin(),
                                        batch->span<std::int64_t>().end()),
              ElementsAre(0, 1, 10, 11, 12, 13));

  Tensor s = *Tensor::FromStrings({"a", "bc"}, {2});
  Tensor t = *Tensor::FromStrings({"def"}, {1});
  auto strings = ConcatenateBatch({&s, &t});
  ASSERT_TRUE(strings.ok());
  EXPECT_THAT(*strings->Strings(), ElementsAre("a", "bc", "def"));
}

}  // namespace
}  // namespace braid
