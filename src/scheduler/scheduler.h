// Scheduler: what serves the requests for one name, whatever it runs. A
// model version's scheduler (ModelScheduler: priority queues, batches, a
// compute budget) and a workflow's (WorkflowScheduler: the DAG executor,
// one run per request) take the same request and give the same result, so
// that InferenceService, and every front end above it, serves a model and a
// workflow by name the same way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "model/model.h"
#include "scheduler/request.h"

namespace braid {

// A fixed-bucket histogram of durations in microseconds; buckets are upper
// bounds, with a final overflow bucket.
struct DurationHistogram {
  static constexpr double kBoundsUs[] = {50,    100,   250,   500,    1000,   2500,   5000,
                                         10000, 25000, 50000, 100000, 250000, 500000, 1000000};
  std::vector<std::uint64_t> counts = std::vector<std::uint64_t>(std::size(kBoundsUs) + 1, 0);
  std::uint64_t count = 0;
  double sum_us = 0;

  void Add(Duration d);
};

struct SchedulerStats {
  std::uint64_t success = 0;         // requests completed OK
  std::uint64_t failure = 0;         // requests whose batch failed
  std::uint64_t rejected = 0;        // refused at admission (queue full, or too late)
  std::uint64_t timed_out = 0;       // dropped at a timeout or deadline
  std::uint64_t cancelled = 0;       // dropped because cancelled
  std::uint64_t delayed = 0;         // moved behind every level at their timeout
  std::uint64_t computed_late = 0;   // started past their deadline (should stay 0)
  std::uint64_t inline_batches = 0;  // run by the enqueuing thread (inline_max_us)
  std::uint64_t preempted = 0;       // batches stopped for a more urgent request, then requeued
  std::uint64_t executions = 0;      // batches run
  std::uint64_t inferences = 0;      // items run (sum of batch sizes)
  DurationHistogram queue_time;      // per request
  std::vector<DurationHistogram> queue_time_by_level;  // [level-1], per request
  DurationHistogram compute_time;                      // per batch
  std::vector<std::uint64_t> batch_sizes;              // [b] = batches of b items
  std::vector<std::size_t> queue_depth;                // [level-1] = requests queued now
  std::size_t delayed_depth = 0;
  double utilization = 0;            // busy fraction over the utilisation window
  std::size_t active_instances = 0;  // instances taking work now
  std::uint64_t scale_ups = 0;       // autoscaler decisions
  std::uint64_t scale_downs = 0;
};

class Scheduler {
 public:
  virtual ~Scheduler() = default;

  // Admits `request` or refuses it at once; never blocks on its work. On
  // OK the scheduler owns the request and calls its on_complete exactly
  // once; on an error the caller keeps it and on_complete is not called.
  // `request->inputs` are in the order of shared_model()'s config, and the
  // result's outputs in the order of its outputs. Thread-safe.
  virtual Status Enqueue(InferenceRequestPtr& request) = 0;
  // Stops admitting. With `drain`, what was admitted finishes; without, it
  // is cut short (answered UNAVAILABLE or cancelled). Blocks until its own
  // threads are done with it; an on_complete handed to another pool
  // (SchedulerOptions::completions) may still run, and that pool's owner
  // waits for it. Idempotent.
  virtual void Shutdown(bool drain) = 0;
  virtual SchedulerStats Stats() const = 0;
  // What it serves: a model version, or a workflow's signature (a model
  // with no instances whose config names its inputs and outputs).
  virtual ModelPtr shared_model() const = 0;
};

}  // namespace braid
