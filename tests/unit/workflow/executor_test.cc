// The executor with a ModelRunner whose models the test controls: each call
// is held until the test releases it, so parallelism, ordering, skipping,
// failure and serial mode are observed deterministically.
#include "workflow/executor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <condition_variable>
#include <optional>
#include <thread>

#include "preprocess/audio_encoder.h"
#include "support/pictures.h"
#include "support/wav.h"
#include "workflow/workflow_scheduler.h"

namespace braid {
namespace {

using ::testing::HasSubstr;

constexpr auto kPatience = std::chrono::seconds(10);

class HeldRunner : public ModelRunner {
 public:
  // ModelRunner: "double" returns x·2 as y; "echo" returns x; "broken" fails.
  void Run(const std::string& model, NamedTensors inputs, const ModelCall& call,
           std::function<void(Result<NamedTensors>)> done) override {
    std::unique_lock lock(mutex_);
    calls_.push_back(model);
    used_cache_.push_back(call.use_cache);
    ++in_flight_;
    peak_ = std::max(peak_, in_flight_);
    pending_.push_back([model, inputs = std::move(inputs), done = std::move(done)]() mutable {
      if (model == "broken") return done(InvalidArgument("the model refused"));
      if (model == "echo") return done(NamedTensors{{"y", inputs.at("x")}});
      Tensor y = *Tensor::Allocate(DataType::kFp32, {1, 2});
      float x = inputs.at("x").span<float>()[0];
      y.mutable_span<float>()[0] = 2 * x;
      y.mutable_span<float>()[1] = 1;
      done(NamedTensors{{"y", y}});
    });
    changed_.notify_all();
  }
  Result<std::shared_ptr<const Tokenizer>> TokenizerFor(const std::string& model) override {
    return NotFound("no {}", model);
  }
  std::optional<CachePolicy> CachePolicyFor(const std::string& model) override {
    return CachePolicy{1, std::chrono::minutes(1)};
  }

  // Waits until `count` calls are held.
  void WaitUntilHeld(std::size_t count) {
    std::unique_lock lock(mutex_);
    EXPECT_TRUE(changed_.wait_for(lock, kPatience, [&] { return pending_.size() >= count; }))
        << pending_.size() << " calls held, waiting for " << count;
  }
  // Waits until `count` calls are held, then completes them all.
  void ReleaseWhenHeld(std::size_t count) {
    std::vector<std::function<void()>> ready;
    {
      std::unique_lock lock(mutex_);
      EXPECT_TRUE(changed_.wait_for(lock, kPatience, [&] { return pending_.size() >= count; }))
          << pending_.size() << " calls held, waiting for " << count;
      ready.swap(pending_);
      in_flight_ -= static_cast<int>(ready.size());
    }
    for (auto& call : ready) call();
  }
  int peak() {
    std::lock_guard lock(mutex_);
    return peak_;
  }
  std::size_t calls() {
    std::lock_guard lock(mutex_);
    return calls_.size();
  }
  // Whether each call asked for the model's own result cache.
  std::vector<bool> used_cache() {
    std::lock_guard lock(mutex_);
    return used_cache_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> calls_;
  std::vector<bool> used_cache_;
  std::vector<std::function<void()>> pending_;
  int in_flight_ = 0;
  int peak_ = 0;
};

Result<std::vector<std::string>> Catalog(const std::string& model,
                                         const std::vector<std::string>&) {
  if (model == "double" || model == "echo" || model == "broken")
    return std::vector<std::string>{"y"};
  return NotFound("no {}", model);
}

// Collects events until the run ends.
struct Recorder {
  std::mutex mutex;
  std::condition_variable done_cv;
  std::vector<WorkflowEvent> events;
  bool done = false;

  EventSink Sink() {
    return [this](const WorkflowEvent& event) {
      std::lock_guard lock(mutex);
      events.push_back(event);
      if (event.ends_run()) {
        done = true;
        done_cv.notify_all();
      }
    };
  }
  void Wait() {
    std::unique_lock lock(mutex);
    EXPECT_TRUE(done_cv.wait_for(lock, kPatience, [&] { return done; }));
  }
  // node id → whether its node_finished said cached.
  std::map<std::string, bool> Cached() {
    std::lock_guard lock(mutex);
    std::map<std::string, bool> cached;
    for (const auto& e : events) {
      if (e.type == WorkflowEvent::Type::kNodeFinished && e.status == "succeeded")
        cached[e.node_id] = e.cached;
    }
    return cached;
  }
  std::vector<std::string> Names(WorkflowEvent::Type type) {
    std::lock_guard lock(mutex);
    std::vector<std::string> names;
    for (const auto& e : events) {
      if (e.type == type) names.push_back(e.node_id + (e.status.empty() ? "" : ":" + e.status));
    }
    return names;
  }
};

Tensor Text(const std::string& text) { return *Tensor::FromStrings({text}, {1}); }
Tensor Number(float value) {
  Tensor t = *Tensor::Allocate(DataType::kFp32, {1});
  t.mutable_span<float>()[0] = value;
  return t;
}

// Two independent model nodes, a similarity of their outputs, a template.
constexpr char kDiamond[] = R"(
inputs: {a: {type: text}, b: {type: text, optional: true}}
nodes:
  - {id: left, kind: model, model: double, from: {x: inputs.a}}
  - {id: right, kind: model, model: double, from: {x: inputs.b}}
  - {id: compare, kind: similarity, from: {a: left.y, b: right.y}}
  - {id: report, kind: template, template: "left {{left.y}} similarity {{compare.similarity?}}"}
outputs: {report: report.text, score: "compare.similarity?"}
)";

class ExecutorTest : public ::testing::Test {
 protected:
  WorkflowPtr Load(const std::string& yaml) {
    auto workflow = ParseWorkflow(yaml, "t", "t.yaml", Catalog);
    EXPECT_TRUE(workflow.ok()) << workflow.status().ToString();
    return *workflow;
  }
  HeldRunner runner_;
  ThreadPool pool_{2};
  WorkflowExecutor executor_{runner_, pool_, SteadyClock()};
};

TEST_F(ExecutorTest, IndependentModelNodesRunAtTheSameTime) {
  Recorder recorder;
  executor_.Start(Load(kDiamond), {{"a", Number(1)}, {"b", Number(3)}}, {}, recorder.Sink());
  runner_.ReleaseWhenHeld(2);  // both branches are in flight before either is released
  recorder.Wait();
  EXPECT_EQ(runner_.peak(), 2);
  auto finished = recorder.Names(WorkflowEvent::Type::kNodeFinished);
  EXPECT_EQ(finished.size(), 4u);
  EXPECT_EQ(finished[2], "compare:succeeded");
  EXPECT_EQ(finished[3], "report:succeeded");
  const WorkflowEvent& last = recorder.events.back();
  ASSERT_EQ(last.type, WorkflowEvent::Type::kWorkflowFinished);
  EXPECT_EQ(RenderTensor(last.outputs.at("report")), "left [2.0000, 1.0000] similarity 0.9558");
  EXPECT_NEAR(last.outputs.at("score").span<float>()[0], 13 / std::sqrt(185.0), 1e-5);
  // The template streamed its text before its node_finished.
  std::string streamed;
  for (const auto& e : recorder.events) {
    if (e.type == WorkflowEvent::Type::kTextChunk) streamed += e.text;
  }
  EXPECT_EQ(streamed, "left [2.0000, 1.0000] similarity 0.9558");
}

TEST_F(ExecutorTest, MissingOptionalInputSkipsItsBranch) {
  Recorder recorder;
  executor_.Start(Load(kDiamond), {{"a", Number(1)}}, {}, recorder.Sink());
  runner_.ReleaseWhenHeld(1);
  recorder.Wait();
  auto finished = recorder.Names(WorkflowEvent::Type::kNodeFinished);
  EXPECT_THAT(finished, ::testing::UnorderedElementsAre("right:skipped", "left:succeeded",
                                                        "compare:skipped", "report:succeeded"));
  const WorkflowEvent& last = recorder.events.back();
  ASSERT_EQ(last.type, WorkflowEvent::Type::kWorkflowFinished);
  EXPECT_EQ(RenderTensor(last.outputs.at("report")), "left [2.0000, 1.0000] similarity ");
  EXPECT_FALSE(last.outputs.count("score"));
}

TEST_F(ExecutorTest, AFailingNodeFailsTheRunWithOneErrorEvent) {
  Recorder recorder;
  executor_.Start(Load(R"(
inputs: {a: {type: text}}
nodes:
  - {id: bad, kind: model, model: broken, from: {x: inputs.a}}
  - {id: good, kind: model, model: double, from: {x: inputs.a}}
  - {id: after, kind: template, template: "{{bad.y}}"}
)"),
                  {{"a", Number(1)}}, {}, recorder.Sink());
  runner_.ReleaseWhenHeld(2);
  recorder.Wait();
  int errors = 0, finishes = 0;
  for (const auto& e : recorder.events) {
    errors += e.type == WorkflowEvent::Type::kError;
    finishes += e.type == WorkflowEvent::Type::kWorkflowFinished;
  }
  EXPECT_EQ(errors, 1);
  EXPECT_EQ(finishes, 0);
  const WorkflowEvent& error = recorder.events.back();
  EXPECT_EQ(error.node_id, "bad");
  EXPECT_THAT(error.text, HasSubstr("the model refused"));
  EXPECT_EQ(error.error_code, StatusCode::kInvalidArgument);
}

TEST_F(ExecutorTest, TheRunsQueryIsSysQueryToTemplates) {
  const char* yaml = R"(
inputs: {a: {type: image}}
nodes:
  - {id: say, kind: template, template: "asked: {{sys.query?}}"}
outputs: {said: say.text}
)";
  for (const std::string query : {"what is this?", ""}) {
    Recorder recorder;
    RunOptions options;
    options.query = query;
    executor_.Start(Load(yaml), {{"a", Text("image bytes")}}, options, recorder.Sink());
    recorder.Wait();
    const WorkflowEvent& last = recorder.events.back();
    ASSERT_EQ(last.type, WorkflowEvent::Type::kWorkflowFinished) << last.text;
    EXPECT_EQ(RenderTensor(last.outputs.at("said")), "asked: " + query);
  }
}

TEST_F(ExecutorTest, AStoppedRunStartsNothingMoreAndEndsStopped) {
  Recorder recorder;
  RunOptions options;
  options.cancellation = std::make_shared<CancellationToken>();
  executor_.Start(Load(R"(
inputs: {a: {type: text}}
nodes:
  - {id: first, kind: model, model: double, from: {x: inputs.a}}
  - {id: second, kind: model, model: double, from: {x: first.y}}
  - {id: after, kind: template, template: "{{second.y}}"}
)"),
                  {{"a", Number(1)}}, options, recorder.Sink());
  runner_.WaitUntilHeld(1);
  options.cancellation->Cancel();
  runner_.ReleaseWhenHeld(1);
  recorder.Wait();
  EXPECT_EQ(runner_.calls(), 1u);
  EXPECT_THAT(recorder.Names(WorkflowEvent::Type::kNodeStarted), ::testing::ElementsAre("first"));
  const WorkflowEvent& last = recorder.events.back();
  ASSERT_EQ(last.type, WorkflowEvent::Type::kError);
  EXPECT_EQ(last.status, "stopped");
  EXPECT_EQ(last.error_code, StatusCode::kCancelled);
}

// What a WorkflowScheduler's request got: its result, once.
struct Answer {
  std::mutex mutex;
  std::condition_variable cv;
  std::optional<InferenceResult> result;

  InferenceRequestPtr Request(std::vector<Tensor> inputs) {
    auto request = std::make_unique<InferenceRequest>();
    request->inputs = std::move(inputs);
    request->cancellation = std::make_shared<CancellationToken>();
    request->on_complete = [this](InferenceResult got) {
      std::lock_guard lock(mutex);
      result = std::move(got);
      cv.notify_all();
    };
    return request;
  }
  const InferenceResult& Wait() {
    std::unique_lock lock(mutex);
    EXPECT_TRUE(cv.wait_for(lock, kPatience, [&] { return result.has_value(); }));
    return *result;
  }
};

TEST_F(ExecutorTest, AWorkflowSchedulerServesAWorkflowAsAModel) {
  WorkflowScheduler scheduler(executor_, Load(kDiamond), SteadyClock());
  const ModelConfig& signature = scheduler.shared_model()->config();
  ASSERT_EQ(signature.inputs.size(), 2u);
  EXPECT_EQ(signature.inputs[0].name, "a");
  EXPECT_FALSE(signature.inputs[0].optional);
  EXPECT_TRUE(signature.inputs[1].optional);
  ASSERT_EQ(signature.outputs.size(), 2u);
  EXPECT_EQ(signature.outputs[0].name, "report");
  EXPECT_EQ(signature.outputs[1].name, "score");
  // The optional input left out: an empty tensor in its place, as
  // Model::OrderInputs leaves it.
  EXPECT_TRUE(scheduler.shared_model()->OrderInputs({{"a", Text("x")}})->at(1).empty());

  Answer answer;
  auto request = answer.Request({Number(1), Tensor()});
  ASSERT_TRUE(scheduler.Enqueue(request).ok());
  EXPECT_EQ(request, nullptr) << "admitted: the scheduler owns the request";
  runner_.ReleaseWhenHeld(1);
  const InferenceResult& result = answer.Wait();
  ASSERT_TRUE(result.status.ok()) << result.status.ToString();
  ASSERT_EQ(result.outputs.size(), 2u);
  EXPECT_EQ(RenderTensor(result.outputs[0]), "left [2.0000, 1.0000] similarity ");
  // The skipped output: an empty BYTES tensor.
  EXPECT_EQ(result.outputs[1].dtype(), DataType::kBytes);
  EXPECT_EQ(result.outputs[1].shape(), (Shape{0}));
  EXPECT_EQ(runner_.calls(), 1u);
  const SchedulerStats stats = scheduler.Stats();
  EXPECT_EQ(stats.success, 1u);
  EXPECT_EQ(stats.inferences, 1u);
  EXPECT_EQ(stats.compute_time.count, 1u);
}

TEST_F(ExecutorTest, AWorkflowSchedulerCutShortCancelsItsRunsAndAdmitsNoMore) {
  WorkflowScheduler scheduler(executor_, Load(kDiamond), SteadyClock());
  Answer answer;
  auto request = answer.Request({Number(1), Tensor()});
  const auto token = request->cancellation;
  ASSERT_TRUE(scheduler.Enqueue(request).ok());
  runner_.WaitUntilHeld(1);
  std::thread shutdown([&] { scheduler.Shutdown(false); });
  // Shutdown closes its gate before it cancels: once the run's token is
  // cancelled, nothing more is admitted.
  bool cancelled = false;
  for (int i = 0; i < 1000 && !(cancelled = token->cancelled()); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  Answer refused;
  auto late = refused.Request({Number(2), Tensor()});
  const Status late_status = scheduler.Enqueue(late);
  runner_.ReleaseWhenHeld(1);
  shutdown.join();
  ASSERT_TRUE(cancelled);
  EXPECT_EQ(late_status.code(), StatusCode::kUnavailable);
  EXPECT_NE(late, nullptr) << "refused: the caller keeps the request";
  EXPECT_EQ(answer.Wait().status.code(), StatusCode::kCancelled);
  const SchedulerStats stats = scheduler.Stats();
  EXPECT_EQ(stats.cancelled, 1u);
  EXPECT_EQ(stats.rejected, 1u);
  EXPECT_EQ(runner_.calls(), 1u);
}

// The request's deadline and timeout bound the run: past them no node
// starts; a timeout of 0 means none, as for a model's queue.
TEST_F(ExecutorTest, AWorkflowSchedulersDeadlineAndTimeoutBoundTheRun) {
  WorkflowScheduler scheduler(executor_, Load(kDiamond), SteadyClock());
  Answer late;
  auto request = late.Request({Number(1), Tensor()});
  request->deadline = SteadyClock().Now() - std::chrono::milliseconds(1);
  ASSERT_TRUE(scheduler.Enqueue(request).ok());
  const InferenceResult& result = late.Wait();
  EXPECT_EQ(result.status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_THAT(result.status.message(), HasSubstr("before node 'left'"));
  EXPECT_EQ(runner_.calls(), 0u) << "no node started";
  EXPECT_EQ(scheduler.Stats().timed_out, 1u);

  Answer unbounded;
  auto zero = unbounded.Request({Number(1), Tensor()});
  zero->timeout_us = 0;
  ASSERT_TRUE(scheduler.Enqueue(zero).ok());
  runner_.ReleaseWhenHeld(1);
  EXPECT_TRUE(unbounded.Wait().status.ok()) << "a timeout of 0 is no timeout";
}

// A run started for its events (the streaming front ends) reports them
// all and counts as a request's run does; one that only precomputes is not
// counted; once shut down, a start gets one Unavailable error event.
TEST_F(ExecutorTest, AWorkflowSchedulersStartedRunReportsEventsAndCounts) {
  WorkflowScheduler scheduler(executor_, Load(kDiamond), SteadyClock());
  Recorder run;
  scheduler.Start({{"a", Number(1)}}, {}, run.Sink());
  runner_.ReleaseWhenHeld(1);
  run.Wait();
  EXPECT_THAT(run.Names(WorkflowEvent::Type::kNodeFinished),
              ::testing::UnorderedElementsAre("right:skipped", "left:succeeded", "compare:skipped",
                                              "report:succeeded"));
  EXPECT_EQ(run.events.back().type, WorkflowEvent::Type::kWorkflowFinished);
  EXPECT_EQ(scheduler.Stats().success, 1u);

  Recorder precompute;
  RunOptions only_cache;
  only_cache.precompute = true;
  scheduler.Start({{"a", Number(2)}}, only_cache, precompute.Sink());
  runner_.ReleaseWhenHeld(1);
  precompute.Wait();
  EXPECT_EQ(scheduler.Stats().success, 1u) << "a precompute run is not a request's";

  scheduler.Shutdown(true);
  Recorder refused;
  scheduler.Start({{"a", Number(3)}}, {}, refused.Sink());
  ASSERT_EQ(refused.events.size(), 1u);
  EXPECT_EQ(refused.events[0].type, WorkflowEvent::Type::kError);
  EXPECT_EQ(refused.events[0].error_code, StatusCode::kUnavailable);
  EXPECT_EQ(scheduler.Stats().rejected, 1u);
  EXPECT_EQ(runner_.calls(), 2u);
}

// Shutdown without drain cancels a started run as it does a request's, and
// returns once the run has ended.
TEST_F(ExecutorTest, AWorkflowSchedulerCutShortCancelsAStartedRun) {
  WorkflowScheduler scheduler(executor_, Load(kDiamond), SteadyClock());
  Recorder run;
  RunOptions options;
  options.cancellation = std::make_shared<CancellationToken>();
  scheduler.Start({{"a", Number(1)}}, options, run.Sink());
  runner_.WaitUntilHeld(1);
  std::thread shutdown([&] { scheduler.Shutdown(false); });
  bool cancelled = false;
  for (int i = 0; i < 1000 && !(cancelled = options.cancellation->cancelled()); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  runner_.ReleaseWhenHeld(1);
  shutdown.join();
  ASSERT_TRUE(cancelled);
  {
    std::lock_guard lock(run.mutex);
    ASSERT_TRUE(run.done) << "Shutdown returned before the run ended";
    EXPECT_EQ(run.events.back().error_code, StatusCode::kCancelled);
  }
  EXPECT_EQ(scheduler.Stats().cancelled, 1u);
}

TEST_F(ExecutorTest, SerialModeRunsOneNodeAtATime) {
  Recorder recorder;
  RunOptions options;
  options.serial = true;
  executor_.Start(Load(kDiamond), {{"a", Number(1)}, {"b", Number(3)}}, options, recorder.Sink());
  runner_.ReleaseWhenHeld(1);
  runner_.ReleaseWhenHeld(1);
  recorder.Wait();
  EXPECT_EQ(runner_.peak(), 1);
  EXPECT_EQ(recorder.events.back().type, WorkflowEvent::Type::kWorkflowFinished);
}

TEST_F(ExecutorTest, ConditionRoutesBranches) {
  const std::string yaml = R"(
inputs: {a: {type: text, optional: true}, b: {type: text, optional: true}}
nodes:
  - {id: route, kind: condition, any_of: [inputs.b]}
  - {id: with_b, kind: template, if: route, template: "has b"}
  - {id: without_b, kind: template, unless: route, template: "no b"}
outputs: {with: "with_b.text?", without: "without_b.text?"}
)";
  for (bool give_b : {true, false}) {
    Recorder recorder;
    NamedTensors inputs = {{"a", Text("x")}};
    if (give_b) inputs["b"] = Text("y");
    executor_.Start(Load(yaml), inputs, {}, recorder.Sink());
    recorder.Wait();
    const auto& outputs = recorder.events.back().outputs;
    EXPECT_EQ(outputs.count("with"), give_b ? 1u : 0u);
    EXPECT_EQ(outputs.count("without"), give_b ? 0u : 1u);
  }
}

}  // namespace
}  // namespace braid

namespace braid {
namespace {

class CachingExecutorTest : public ExecutorTest {
 protected:
  CachingExecutorTest() { executor_.SetCache(&cache_); }
  MemoryCache memory_{1 << 20, SteadyClock()};
  ResultCache cache_{&memory_, nullptr};
};

TEST_F(CachingExecutorTest, ARepeatedInputReusesItsBranchWhenTheOtherInputDiffers) {
  const WorkflowPtr workflow = Load(kDiamond);
  Recorder first;
  executor_.Start(workflow, {{"a", Number(1)}, {"b", Number(3)}}, {}, first.Sink());
  runner_.ReleaseWhenHeld(2);
  first.Wait();
  EXPECT_THAT(first.Cached(), ::testing::Each(::testing::Pair(::testing::_, false)));

  Recorder second;
  executor_.Start(workflow, {{"a", Number(1)}, {"b", Number(5)}}, {}, second.Sink());
  runner_.ReleaseWhenHeld(1);
  second.Wait();
  auto cached = second.Cached();
  EXPECT_TRUE(cached["left"]) << "same input a: the model node's result is reused";
  EXPECT_FALSE(cached["right"]);
  EXPECT_FALSE(cached["compare"]);
  EXPECT_EQ(runner_.calls(), 3u);
  ASSERT_EQ(second.events.back().type, WorkflowEvent::Type::kWorkflowFinished);
  EXPECT_EQ(RenderTensor(second.events.back().outputs.at("report")),
            "left [2.0000, 1.0000] similarity 0.9345");
}

// An image keyed `cache_key` (exact or perceptual), decoded by a cached node.
std::string ImageWorkflow(const std::string& cache_key) {
  return "inputs: {image: {type: image, cache_key: " + cache_key + "}}\n" + R"(nodes:
  - {id: pixels, kind: preprocess.image, from: {image: inputs.image}}
outputs: {pixels: pixels.pixel_values}
)";
}

Tensor Image(const cv::Mat& rgb) { return *Tensor::FromStrings({testing::Jpeg(rgb)}, {1}); }

TEST_F(CachingExecutorTest, ANearDuplicateImageReusesItsOriginalsNodesWhenKeyedPerceptually) {
  const cv::Mat original = testing::Picture(1);
  const cv::Mat copy = testing::NearCopy(original, 70, 0.9, 0.01);
  for (const std::string key : {"exact", "perceptual"}) {
    SCOPED_TRACE(key);
    MemoryCache memory{1 << 24, SteadyClock()};
    ResultCache cache{&memory, nullptr};
    WorkflowExecutor executor{runner_, pool_, SteadyClock()};
    executor.SetCache(&cache);
    const WorkflowPtr workflow = Load(ImageWorkflow(key));
    std::vector<bool> cached;
    for (const cv::Mat* image : {&original, &copy, &copy}) {
      Recorder run;
      executor.Start(workflow, {{"image", Image(*image)}}, {}, run.Sink());
      run.Wait();
      cached.push_back(run.Cached()["pixels"]);
    }
    Recorder other;
    executor.Start(workflow, {{"image", Image(testing::Picture(2))}}, {}, other.Sink());
    other.Wait();
    EXPECT_FALSE(other.Cached()["pixels"]) << "a distinct picture computes its own";
    const PerceptualStats stats = cache.Stats().perceptual;
    if (key == "exact") {
      EXPECT_THAT(cached, ::testing::ElementsAre(false, false, true));
      EXPECT_EQ(stats.new_images + stats.perceptual + stats.exact, 0u) << "no fingerprints";
    } else {
      EXPECT_THAT(cached, ::testing::ElementsAre(false, true, true));
      EXPECT_EQ(stats.new_images, 2u);
      EXPECT_EQ(stats.perceptual, 1u);
      EXPECT_EQ(stats.exact, 1u) << "the copy's bytes, the second time";
    }
  }
}

TEST_F(CachingExecutorTest, TextKeyedCanonicallyHitsAcrossSpacingCaseAndUnicodeForms) {
  const char* yaml = R"(
inputs: {q: {type: text, cache_key: casefold}}
nodes:
  - {id: model, kind: model, model: echo, from: {x: inputs.q}}
outputs: {seen: model.y}
)";
  const WorkflowPtr workflow = Load(yaml);
  // Extra and odd white space, capitals, full-width letters, a no-break
  // space, a zero-width space, a decomposed é and the "ﬁ" ligature.
  const std::vector<std::string> spellings = {"héllo wide fine world",
                                              "héllo  wide fine world",
                                              " HÉLLO wide fine\tworld\n",
                                              "\uFF28\u00C9llo wide fine world",
                                              "he\u0301llo\u00A0wide fine world",
                                              "héllo wide \uFB01ne world",
                                              "héllo wi\u200Bde fine world"};
  std::vector<bool> cached;
  for (const auto& spelling : spellings) {
    Recorder run;
    executor_.Start(workflow, {{"q", Text(spelling)}}, {}, run.Sink());
    if (cached.empty()) runner_.ReleaseWhenHeld(1);
    run.Wait();
    ASSERT_EQ(run.events.back().type, WorkflowEvent::Type::kWorkflowFinished);
    EXPECT_EQ(RenderTensor(run.events.back().outputs.at("seen")), "héllo wide fine world")
        << "the nodes read the canonical text";
    cached.push_back(run.Cached()["model"]);
  }
  EXPECT_THAT(cached, ::testing::ElementsAre(false, true, true, true, true, true, true));
  EXPECT_EQ(runner_.calls(), 1u);
  const CanonicalStats stats = cache_.Stats().canonical;
  EXPECT_EQ(stats.text_as_sent, 1u);
  EXPECT_EQ(stats.text_normalized, 6u);
}

TEST_F(CachingExecutorTest, NormalizedTextKeepsItsCase) {
  const WorkflowPtr workflow = Load(R"(
inputs: {q: {type: text, cache_key: normalized}}
nodes:
  - {id: model, kind: model, model: echo, from: {x: inputs.q}}
outputs: {seen: model.y}
)");
  std::vector<std::string> seen;
  for (const std::string spelling : {"Paris  is big", "paris is big", " Paris is\u3000big"}) {
    Recorder run;
    executor_.Start(workflow, {{"q", Text(spelling)}}, {}, run.Sink());
    if (seen.size() < 2) runner_.ReleaseWhenHeld(1);
    run.Wait();
    seen.push_back(RenderTensor(run.events.back().outputs.at("seen")));
  }
  EXPECT_THAT(seen, ::testing::ElementsAre("Paris is big", "paris is big", "Paris is big"));
  EXPECT_EQ(runner_.calls(), 2u) << "the third is the first's canonical text";
}

TEST_F(CachingExecutorTest, AudioKeyedByItsSamplesHitsWhateverItsMetadata) {
  std::vector<float> tone(8000);
  for (std::size_t i = 0; i < tone.size(); ++i)
    tone[i] = 0.3F * std::sin(2 * 3.14159265F * 440 * static_cast<float>(i) / 16000);
  const std::string plain = EncodeWav(tone, 16000);
  const std::string tagged = testing::WithInfoChunk(plain);
  ASSERT_NE(plain, tagged);
  std::vector<float> other = tone;
  other[100] = 0.9F;
  for (const std::string key : {"exact", "pcm"}) {
    SCOPED_TRACE(key);
    MemoryCache memory{1 << 24, SteadyClock()};
    ResultCache cache{&memory, nullptr};
    WorkflowExecutor executor{runner_, pool_, SteadyClock()};
    executor.SetCache(&cache);
    const WorkflowPtr workflow =
        Load("inputs: {audio: {type: audio, cache_key: " + key + "}}\n" + R"(nodes:
  - {id: samples, kind: preprocess.audio, from: {audio: inputs.audio}}
outputs: {samples: samples.samples}
)");
    std::vector<bool> cached;
    for (const std::string* bytes : {&plain, &tagged}) {
      Recorder run;
      executor.Start(workflow, {{"audio", Text(*bytes)}}, {}, run.Sink());
      run.Wait();
      ASSERT_EQ(run.events.back().type, WorkflowEvent::Type::kWorkflowFinished)
          << run.events.back().text;
      cached.push_back(run.Cached()["samples"]);
    }
    Recorder changed;
    executor.Start(workflow, {{"audio", Text(EncodeWav(other, 16000))}}, {}, changed.Sink());
    changed.Wait();
    EXPECT_FALSE(changed.Cached()["samples"]) << "one sample differs: its own key";
    EXPECT_THAT(cached, ::testing::ElementsAre(false, key == "pcm"));
    EXPECT_EQ(cache.Stats().canonical.audio_pcm, key == "pcm" ? 3u : 0u);
  }
}

// `embed` gives [2a, 1]; `answer` doubles its first value. b is read by
// nothing upstream of the embedding.
constexpr const char* kSemantic = R"(
inputs: {a: {type: text}, b: {type: text, optional: true}}
nodes:
  - {id: embed, kind: model, model: double, from: {x: inputs.a}}
  - {id: answer, kind: model, model: double, from: {x: embed.y}}
  - {id: note, kind: template, template: "{{inputs.b?}}"}
outputs: {answer: answer.y}
semantic_cache: {embedding: embed.y, threshold: 0.99}
)";

TEST_F(CachingExecutorTest, ASimilarRunIsAnsweredFromTheSemanticCache) {
  const WorkflowPtr workflow = Load(kSemantic);
  // Runs with `a` (and `b`); `computed` model calls are released.
  auto run = [&](float a, std::optional<std::string> b, bool semantic, int computed) {
    auto recorder = std::make_unique<Recorder>();
    NamedTensors inputs = {{"a", Number(a)}};
    if (b) inputs["b"] = Text(*b);
    RunOptions options;
    options.semantic_cache = semantic;
    executor_.Start(workflow, inputs, options, recorder->Sink());
    for (int i = 0; i < computed; ++i) runner_.ReleaseWhenHeld(1);
    recorder->Wait();
    EXPECT_EQ(recorder->events.back().type, WorkflowEvent::Type::kWorkflowFinished);
    return recorder;
  };
  auto first = run(1, std::nullopt, true, 2);
  EXPECT_FALSE(first->events.back().semantic);

  auto similar = run(1.01F, std::nullopt, true, 1);
  const WorkflowEvent& hit = similar->events.back();
  EXPECT_TRUE(hit.semantic);
  EXPECT_GE(hit.similarity, 0.99F);
  EXPECT_EQ(RenderTensor(hit.outputs.at("answer")), "[4.0000, 1.0000]") << "the first run's";
  EXPECT_THAT(similar->Names(WorkflowEvent::Type::kNodeStarted), ::testing::ElementsAre("embed"))
      << "nothing but the embedding ran";

  auto refused = run(1.01F, std::nullopt, false, 1);
  EXPECT_FALSE(refused->events.back().semantic);
  EXPECT_EQ(RenderTensor(refused->events.back().outputs.at("answer")), "[4.0400, 1.0000]");

  auto far = run(-3, std::nullopt, true, 2);
  EXPECT_FALSE(far->events.back().semantic) << "cosine below the threshold";

  auto other_context = run(1, std::string("something else"), true, 0);
  EXPECT_FALSE(other_context->events.back().semantic) << "b differs: never the same answer";
  EXPECT_THAT(other_context->Names(WorkflowEvent::Type::kNodeStarted),
              ::testing::ElementsAre("embed", "answer", "note"))
      << "its nodes ran (from the node cache)";

  const SemanticStats stats = cache_.Stats().semantic;
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 3u);
  EXPECT_EQ(stats.refused, 1u);
  EXPECT_EQ(runner_.calls(), 6u);
}

TEST_F(ExecutorTest, WithoutACacheASemanticWorkflowRunsWhole) {
  for (float a : {1.0F, 1.01F}) {
    Recorder recorder;
    executor_.Start(Load(kSemantic), {{"a", Number(a)}}, {}, recorder.Sink());
    runner_.ReleaseWhenHeld(1);
    runner_.ReleaseWhenHeld(1);
    recorder.Wait();
    EXPECT_FALSE(recorder.events.back().semantic);
  }
}

TEST(WorkflowSemanticCacheTest, TheSpecIsCheckedAndKnowsWhatTheEmbeddingReads) {
  auto parse = [](const std::string& semantic) {
    return ParseWorkflow(R"(
inputs: {a: {type: text}, b: {type: text, optional: true}}
nodes:
  - {id: embed, kind: model, model: double, from: {x: inputs.a}}
  - {id: answer, kind: model, model: double, from: {x: embed.y}}
outputs: {answer: answer.y}
semantic_cache: )" + semantic +
                             "\n",
                         "s", "s.yaml", Catalog);
  };
  auto good = parse("{embedding: embed.y, threshold: 0.9, capacity: 10, ttl_s: 30}");
  ASSERT_TRUE(good.ok()) << good.status().message();
  const SemanticCacheSpec& spec = *(*good)->semantic_cache;
  EXPECT_EQ(spec.threshold, 0.9F);
  EXPECT_EQ(spec.capacity, 10u);
  EXPECT_EQ(spec.ttl, std::chrono::seconds(30));
  EXPECT_THAT(spec.upstream, ::testing::ElementsAre("embed"));
  EXPECT_THAT(spec.uncovered, ::testing::ElementsAre("b"));
  EXPECT_FALSE(spec.reads_query);
  EXPECT_THAT(parse("{embedding: answer.y}")->get()->semantic_cache->upstream,
              ::testing::ElementsAre("answer", "embed"));
  EXPECT_THAT(parse("{embedding: embed.y, threshold: 1.5}").status().message(),
              HasSubstr("threshold is 1.5; it must be in (0, 1]"));
  EXPECT_THAT(parse("{embedding: inputs.a}").status().message(),
              HasSubstr("must name a node output, not 'inputs.a'"));
  EXPECT_THAT(parse("{embedding: nowhere.y}").status().message(),
              HasSubstr("missing node 'nowhere'"));
  EXPECT_THAT(parse("{embedding: embed.y, size: 3}").status().message(),
              HasSubstr("unknown field 'size'"));
  EXPECT_THAT(parse("{threshold: 0.9}").status().message(), HasSubstr("with 'embedding'"));
}

TEST(WorkflowCacheKeyTest, EachCanonicalKeyNeedsItsInputType) {
  auto parse = [](const std::string& input) {
    return ParseWorkflow("inputs: {x: " + input + "}\nnodes:\n" +
                             "  - {id: t, kind: template, template: \"{{inputs.x}}\"}\n" +
                             "outputs: {t: t.text}\n",
                         "t", "t.yaml", Catalog)
        .status();
  };
  EXPECT_TRUE(parse("{type: image, cache_key: perceptual}").ok());
  EXPECT_TRUE(parse("{type: text, cache_key: exact}").ok());
  EXPECT_THAT(parse("{type: text, cache_key: perceptual}").message(),
              HasSubstr("a perceptual cache_key is for image inputs"));
  EXPECT_TRUE(parse("{type: text, cache_key: casefold}").ok());
  EXPECT_TRUE(parse("{type: audio, cache_key: pcm}").ok());
  EXPECT_THAT(parse("{type: image, cache_key: normalized}").message(),
              HasSubstr("a normalized cache_key is for text inputs"));
  EXPECT_THAT(parse("{type: text, cache_key: pcm}").message(),
              HasSubstr("a pcm cache_key is for audio inputs"));
  EXPECT_THAT(parse("{type: image, cache_key: fuzzy}").message(),
              HasSubstr("has cache_key 'fuzzy'; expected exact, normalized, casefold, perceptual "
                        "or pcm"));
}

TEST_F(CachingExecutorTest, ConcurrentRunsComputeASharedNodeOnce) {
  const WorkflowPtr workflow = Load(kDiamond);
  Recorder one, two;
  executor_.Start(workflow, {{"a", Number(7)}}, {}, one.Sink());
  executor_.Start(workflow, {{"a", Number(7)}}, {}, two.Sink());
  runner_.ReleaseWhenHeld(1);
  one.Wait();
  two.Wait();
  EXPECT_EQ(runner_.calls(), 1u) << "the second run waited for the first one's model call";
  EXPECT_TRUE(two.Cached()["left"]);
  EXPECT_EQ(cache_.Stats().coalesced, 1u);
}

TEST_F(CachingExecutorTest, ACachedNodeIsKeyedOnceNotAgainByTheModel) {
  Recorder run;
  executor_.Start(Load(kDiamond), {{"a", Number(4)}}, {}, run.Sink());
  runner_.ReleaseWhenHeld(1);
  run.Wait();
  EXPECT_THAT(runner_.used_cache(), ::testing::ElementsAre(false))
      << "the node's entry is the only one: the model call skips the model's own cache";

  HeldRunner runner;
  ThreadPool pool{2};
  WorkflowExecutor uncached{runner, pool, SteadyClock()};
  Recorder plain;
  uncached.Start(Load(kDiamond), {{"a", Number(4)}}, {}, plain.Sink());
  runner.ReleaseWhenHeld(1);
  plain.Wait();
  EXPECT_THAT(runner.used_cache(), ::testing::ElementsAre(true))
      << "without the executor's cache the model's own applies";
}

TEST_F(CachingExecutorTest, PrecomputeFillsTheCacheWithoutPresentingResults) {
  const WorkflowPtr workflow = Load(kDiamond);
  Recorder precompute;
  RunOptions options;
  options.precompute = true;
  executor_.Start(workflow, {{"a", Number(2)}}, options, precompute.Sink());
  runner_.ReleaseWhenHeld(1);
  precompute.Wait();
  EXPECT_THAT(precompute.Names(WorkflowEvent::Type::kNodeFinished),
              ::testing::Contains("report:skipped"));

  Recorder run;
  executor_.Start(workflow, {{"a", Number(2)}}, {}, run.Sink());
  run.Wait();
  EXPECT_TRUE(run.Cached()["left"]);
  EXPECT_EQ(runner_.calls(), 1u);
}

}  // namespace
}  // namespace braid
