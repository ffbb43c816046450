// WorkflowScheduler: a workflow served the way a model version is
// (Scheduler), so that KServe's infer over HTTP and gRPC runs a workflow
// by its name, as Triton runs an ensemble. Each request is one run of the
// DAG on the executor: its inputs are the workflow's (in its signature's
// order, an empty tensor for an optional one left out), its result the
// workflow's outputs (an empty BYTES [0] tensor for one the run skipped).
// The request's priority goes to the run's model calls, its timeout (from
// admission) and deadline bound the run (RunOptions::deadline), and its
// cancellation cancels it.
#pragma once

#include <memory>
#include <mutex>
#include <optional>

#include "core/clock.h"
#include "core/gate.h"
#include "scheduler/scheduler.h"
#include "workflow/executor.h"

namespace braid {

// `workflow` as a model config: a model with no instances (backend
// "workflow", version 1, no batching) whose inputs are the workflow's, each
// BYTES [1] (text, or the encoded image or audio; optional ones marked),
// and whose outputs are the workflow's by name. An output's type is known
// only once a run made it: encoders take each tensor's own, and the
// signature says BYTES [-1] for all.
ModelPtr WorkflowSignature(const Workflow& workflow);

class WorkflowScheduler final : public Scheduler {
 public:
  // `executor` and `clock` must outlive the scheduler.
  WorkflowScheduler(WorkflowExecutor& executor, WorkflowPtr workflow, Clock& clock);
  // Shutdown(true).
  ~WorkflowScheduler() override;
  WorkflowScheduler(const WorkflowScheduler&) = delete;
  WorkflowScheduler& operator=(const WorkflowScheduler&) = delete;

  // Starts a run at once (UNAVAILABLE once Shutdown began); the executor's
  // own refusals (draining) come through on_complete.
  Status Enqueue(InferenceRequestPtr& request) override;
  // Starts a run whose events go to `sink`, as WorkflowExecutor::Start does:
  // what the front ends that want events call (through
  // InferenceService::Run). It counts in Stats() unless it only precomputes
  // (RunOptions::precompute), and Shutdown waits for it and, without drain,
  // cancels it. Once Shutdown began, `sink` gets one error event
  // (Unavailable) at once.
  void Start(NamedTensors inputs, RunOptions options, EventSink sink);
  // Without `drain`, cancels the runs in flight; then waits for every run.
  void Shutdown(bool drain) override;
  // Runs: success, failure, cancelled (a run its caller stopped, or cut
  // short by Shutdown), timed_out, rejected (refused by the scheduler or the
  // draining executor); each run is one execution and one inference, its
  // time compute_time. Runs that only precompute are not counted.
  SchedulerStats Stats() const override;
  ModelPtr shared_model() const override { return signature_; }

 private:
  // A place for one run; none (counted rejected when `counted`) once
  // Shutdown began.
  std::optional<Gate::Holder> Admit(bool counted);
  // Starts the admitted run on the executor, tracked until `sink` is
  // destroyed. `options.cancellation` must be set.
  void Launch(Gate::Holder admitted, NamedTensors inputs, RunOptions options, EventSink sink);
  // A request's result from its run's last event (workflow_finished or
  // error), which came `elapsed` after admission.
  InferenceResult ResultOf(const WorkflowEvent& last, Duration elapsed) const;
  // Counts a run that ended with `last` after `elapsed`.
  void Count(const WorkflowEvent& last, Duration elapsed);

  WorkflowExecutor& executor_;
  const WorkflowPtr workflow_;
  const ModelPtr signature_;
  Clock& clock_;
  // Held by each run from admission (Enqueue, Start) until its sink is
  // destroyed.
  Gate runs_;
  // The runs' cancellations, for Shutdown(false).
  CancellationSet live_;
  mutable std::mutex mutex_;
  SchedulerStats stats_;  // guarded by mutex_
};

}  // namespace braid
