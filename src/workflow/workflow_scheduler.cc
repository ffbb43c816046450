#include "workflow/workflow_scheduler.h"

#include <algorithm>

namespace braid {

ModelPtr WorkflowSignature(const Workflow& workflow) {
  ModelConfig config;
  config.name = workflow.name;
  config.backend = "workflow";
  config.max_batch_size = 0;
  for (const auto& input : workflow.inputs)
    config.inputs.push_back({input.name, DataType::kBytes, {1}, input.optional});
  for (const auto& [name, reference] : workflow.outputs)
    config.outputs.push_back({name, DataType::kBytes, {-1}});
  return std::make_shared<Model>(std::move(config), 1, std::vector<ModelInstancePtr>{});
}

WorkflowScheduler::WorkflowScheduler(WorkflowExecutor& executor, WorkflowPtr workflow, Clock& clock)
    : executor_(executor),
      workflow_(std::move(workflow)),
      signature_(WorkflowSignature(*workflow_)),
      clock_(clock) {}

WorkflowScheduler::~WorkflowScheduler() { Shutdown(true); }

Status WorkflowScheduler::Enqueue(InferenceRequestPtr& request) {
  const auto& specs = signature_->config().inputs;
  if (request->inputs.size() != specs.size()) {
    return InvalidArgument("workflow '{}' takes {} inputs, not {}", workflow_->name, specs.size(),
                           request->inputs.size());
  }
  auto admitted = Admit(true);
  if (!admitted) return Unavailable("workflow '{}' is shutting down", workflow_->name);
  NamedTensors inputs;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    if (!request->inputs[i].empty()) inputs.emplace(specs[i].name, std::move(request->inputs[i]));
  }
  const TimePoint start = clock_.Now();
  RunOptions options;
  options.priority = request->priority;
  options.deadline = request->deadline;
  // 0, as for a model's queue, leaves the deadline alone; so does a timeout
  // past the end of time.
  if (request->timeout_us > 0 &&
      request->timeout_us <
          std::chrono::duration_cast<std::chrono::microseconds>(TimePoint::max() - start).count()) {
    options.deadline =
        std::min(options.deadline, start + std::chrono::microseconds(request->timeout_us));
  }
  options.cancellation =
      request->cancellation ? request->cancellation : std::make_shared<CancellationToken>();
  Launch(std::move(*admitted), std::move(inputs), std::move(options),
         [this, start, request = std::shared_ptr<InferenceRequest>(std::move(request))](
             const WorkflowEvent& event) {
           if (!event.ends_run()) return;
           auto on_complete = std::move(request->on_complete);
           on_complete(ResultOf(event, clock_.Now() - start));
         });
  return Status::Ok();
}

void WorkflowScheduler::Start(NamedTensors inputs, RunOptions options, EventSink sink) {
  auto admitted = Admit(!options.precompute);
  if (!admitted) {
    sink(RefusedRunEvent(StatusCode::kUnavailable,
                         fmt::format("workflow '{}' is shutting down", workflow_->name)));
    return;
  }
  if (!options.cancellation) options.cancellation = std::make_shared<CancellationToken>();
  Launch(std::move(*admitted), std::move(inputs), std::move(options), std::move(sink));
}

std::optional<Gate::Holder> WorkflowScheduler::Admit(bool counted) {
  auto admitted = runs_.TryEnter();
  if (!admitted && counted) {
    std::lock_guard lock(mutex_);
    ++stats_.rejected;
  }
  return admitted;
}

void WorkflowScheduler::Launch(Gate::Holder admitted, NamedTensors inputs, RunOptions options,
                               EventSink sink) {
  // What the executor's sink holds, shared by its copies; `admitted`
  // first, so that it is released last.
  struct Run {
    Gate::Holder admitted;
    CancellationSet::Entry tracked;
    EventSink sink;
  };
  auto run = std::make_shared<Run>(
      Run{std::move(admitted), live_.Add(options.cancellation), std::move(sink)});
  const bool counted = !options.precompute;
  executor_.Start(workflow_, std::move(inputs), std::move(options),
                  [this, run, counted, start = clock_.Now()](const WorkflowEvent& event) {
                    if (counted && event.ends_run()) Count(event, clock_.Now() - start);
                    run->sink(event);
                  });
}

InferenceResult WorkflowScheduler::ResultOf(const WorkflowEvent& last, Duration elapsed) const {
  static const Tensor kSkipped = *Tensor::FromStrings({}, {0});
  InferenceResult result;
  result.batch_size = 1;
  result.compute_time = elapsed;
  if (last.type == WorkflowEvent::Type::kError) {
    result.status = Status(last.error_code, last.text);
    return result;
  }
  for (const auto& spec : signature_->config().outputs) {
    auto found = last.outputs.find(spec.name);
    result.outputs.push_back(found != last.outputs.end() ? found->second : kSkipped);
  }
  return result;
}

void WorkflowScheduler::Count(const WorkflowEvent& last, Duration elapsed) {
  std::lock_guard lock(mutex_);
  const StatusCode code =
      last.type == WorkflowEvent::Type::kError ? last.error_code : StatusCode::kOk;
  if (code == StatusCode::kOk) {
    ++stats_.success;
    ++stats_.executions;
    ++stats_.inferences;
    stats_.compute_time.Add(elapsed);
  } else if (code == StatusCode::kCancelled) {
    ++stats_.cancelled;
  } else if (code == StatusCode::kDeadlineExceeded) {
    ++stats_.timed_out;
  } else if (code == StatusCode::kUnavailable && last.node_id.empty()) {
    ++stats_.rejected;  // the executor refused the run: it is draining
  } else {
    ++stats_.failure;
  }
}

void WorkflowScheduler::Shutdown(bool drain) {
  runs_.Close();
  if (!drain) live_.CancelAll();
  runs_.Wait();
}

SchedulerStats WorkflowScheduler::Stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace braid
