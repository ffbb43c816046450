// ModelScheduler: the request queue, dynamic batcher and instance workers of
// one loaded model version. Everything that runs a model goes through it, so
// concurrent requests from any client or workflow batch together.
//
// Threads: one worker thread per model instance, and one expiry thread that
// completes requests at their timeouts and deadlines (and drops cancelled
// ones when poked) while every instance is busy. An idle worker takes the
// scheduler lock, drops requests that expired or were cancelled, decides
// whether to dispatch now or wait (see below), forms a batch, releases the
// lock, runs the batch on its instance and completes the requests. Workers
// pull, so no instance idles while a dispatchable batch is queued. The lock
// is held only to move requests between queues; callbacks run outside it.
//
// Batching (when the config has dynamic_batching and max_batch_size > 0):
//   - a batch takes requests from one priority level, the highest that has
//     any, FIFO, stopping at the first request that does not fit or whose
//     variable dims differ. Its size is the largest preferred_batch_size
//     that the queued items reach (all of them, up to max_batch_size, when
//     none is configured or reached). Keeping levels apart means a
//     high-priority request never waits for a long low-priority batch that
//     it joined;
//   - with adaptive: false it waits for more requests until the queued items
//     reach max_batch_size or a preferred_batch_size (the largest, or one
//     exactly), or the oldest request has waited max_queue_delay_us;
//   - with adaptive: true it waits only while AdaptiveWindow says that the
//     next arrival is expected sooner than the time batching would save, and
//     never past max_queue_delay_us (rule in adaptive_window.h).
//   Inputs of several requests are copied once into one batch buffer; a lone
//   request runs on its own buffers; outputs are split back as views.
//
// Priorities and queue policy: each level has its own queue and policy.
// A full level rejects at once (RESOURCE_EXHAUSTED), and so does admission
// when the work ahead of a request, at the batch times measured so far,
// would not let it start before its timeout or deadline:
// a request the server would only time out is refused in microseconds, not
// held until its timeout. While a level has traffic (arrivals in the last
// second), the batches of the levels below it are cut to
// priority_blocking_us of expected compute, so that an urgent request waits
// for a short batch, not a long one. At a request's queue
// timeout, `reject` completes it with DEADLINE_EXCEEDED and `delay` moves it
// behind every level. A request's hard deadline always drops it. Requests of
// the `offpeak` levels are held while utilisation exceeds the threshold and
// released when it falls, still bounded by their timeouts.
//
// Priority instances (instance_group.priority_instances): extra workers
// that take a batch only from a level above every batch the other
// instances are running while those are all busy, at once and without
// waiting for it to fill. An urgent request starts beside a long
// lower-priority batch instead of behind it. With a budget the regular
// workers compute in its regular tier of OS priority and the priority
// workers at the process's, so the urgent batch also gets the cores.
//
// Background instances (instance_group.background_instances): extra
// workers that take only the off-peak levels, at once, computing at the
// OS's idle priority (ComputeBudget::EnterBackgroundTier); the regular
// instances then leave those levels to them.
//
// Compute budget (SchedulerOptions::budget): a worker that decided to
// dispatch asks the budget for a lease at the priority of the level it is
// about to serve (off-peak levels as background work) and forms its batch
// only once granted, so that requests arriving meanwhile join it.
// Completion callbacks run on SchedulerOptions::completions when given,
// so that the model's worker goes back to the queue at once; a batch run on
// the enqueuing thread (inline_max_us) completes there too, as that thread
// is waiting for nothing else.
//
// Autoscaling (when the config has `autoscale`): the model loads
// max_instances instances; only the first `active` take work, the others
// wait. Once a second the expiry thread feeds the active instances'
// utilisation and the arrival rate to an Autoscaler (autoscaler.h) and
// wakes or parks instances to match its answer.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/compute_budget.h"
#include "core/thread_pool.h"
#include "model/model.h"
#include "scheduler/adaptive_window.h"
#include "scheduler/autoscaler.h"
#include "scheduler/request.h"
#include "scheduler/scheduler.h"
#include "scheduler/utilization.h"

namespace braid {

// `braid serve`'s SchedulerOptions::inline_max_us.
inline constexpr std::int64_t kDefaultInlineMaxUs = 100;

struct SchedulerOptions {
  // Overrides whether requests are batched together (for baselines);
  // nullopt follows the config (dynamic_batching present and max_batch_size > 0).
  std::optional<bool> batching;
  // The window over which utilisation is measured.
  Duration utilization_window = std::chrono::seconds(1);
  // How often a worker re-checks utilisation while only deferred off-peak
  // requests are queued.
  Duration offpeak_recheck = std::chrono::milliseconds(5);
  // The compute budget each batch takes a lease from; null: none (a batch
  // starts as soon as an instance is free). Must outlive the scheduler.
  ComputeBudget* budget = nullptr;
  // Where completion callbacks run; null: on the worker that ran the batch.
  // Must outlive the scheduler.
  ThreadPool* completions = nullptr;
  // A batch expected (from the batches measured so far) to take at most
  // this long runs on the thread that enqueues its request when it would
  // start at once anyway: nothing else queued, an idle regular instance, a
  // lease free now, and a request that allows it (InferenceRequest::
  // caller_may_compute), while requests arrive less often than once per two
  // batch times (otherwise the next one would likely wait for this run, and a
  // worker's batch serves both with one hand-off). Handing it to a worker and
  // back would cost more than the batch. 0: never.
  std::int64_t inline_max_us = 0;
};

class ModelScheduler final : public Scheduler {
 public:
  // Starts one worker per instance of `model`. `clock` must outlive the scheduler.
  ModelScheduler(ModelPtr model, Clock& clock, SchedulerOptions options = {});
  // Shutdown(true) if not already shut down.
  ~ModelScheduler();
  ModelScheduler(const ModelScheduler&) = delete;
  ModelScheduler& operator=(const ModelScheduler&) = delete;

  // Admits `request` or refuses it at once; never blocks on inference.
  // On OK the scheduler owns the request and calls its on_complete exactly
  // once. On error the caller keeps it and on_complete is not called:
  // INVALID_ARGUMENT for a priority outside 1..priority_levels,
  // RESOURCE_EXHAUSTED when its level's queue is full or the work ahead of
  // it would not let it start before its timeout or deadline, UNAVAILABLE after
  // Shutdown began. Thread-safe.
  Status Enqueue(InferenceRequestPtr& request) override;

  // Wakes the workers so that they notice cancelled requests now rather
  // than at their next event. Thread-safe.
  void Poke();

  // Stops admitting. With `drain`, runs everything queued first; without,
  // completes queued requests with UNAVAILABLE. Then joins the workers.
  // Blocks. Idempotent.
  void Shutdown(bool drain) override;

  SchedulerStats Stats() const override;
  // Batch items waiting in the queues now, off-peak ones included.
  std::size_t queued_items() const;
  // The utilisation last computed, in [0, 1] (see CurrentLoad); lock-free.
  double utilization() const { return utilization_.load(std::memory_order_relaxed); }
  // How loaded the model is, in [0, 1], for load reports to a router;
  // lock-free (readiness probes read it). 1 while requests wait with every
  // active instance busy (a backlog is full load whatever the window says:
  // published as requests arrive and leave and batches start and end),
  // else utilization(): computed at each batching decision, and by the
  // expiry thread every tenth of the window while a batch runs or busy time
  // is still leaving the window, so never older than that.
  double CurrentLoad() const;
  const Model& model() const { return *model_; }
  ModelPtr shared_model() const override { return model_; }
  bool batching() const { return batching_; }

 private:
  struct Pending {
    InferenceRequestPtr request;
    TimePoint enqueued;
    TimePoint queue_deadline;  // TimePoint::max() when the level has no timeout
    std::int64_t items = 1;
    bool preempted = false;  // its batch was stopped once for a more urgent one
  };
  struct Level {
    QueuePolicy policy;
    bool offpeak = false;
    std::deque<Pending> queue;
    std::optional<TimePoint> last_arrival;
  };
  struct Decision {
    bool dispatch = false;
    TimePoint wake_at = TimePoint::max();
  };
  using Completion = std::pair<InferenceRequestPtr, InferenceResult>;

  void WorkerLoop(std::size_t instance);
  void ExpiryLoop();
  // The earliest queue timeout or deadline of anything queued.
  TimePoint NextExpiryLocked() const;
  // Moves expired, cancelled and timed-out requests out of the queues.
  void ExpireLocked(TimePoint now, std::vector<Completion>* done);
  bool OffpeakDeferredLocked(TimePoint now);
  Decision DecideLocked(TimePoint now);
  // The level the next batch comes from: the highest with eligible
  // requests, levels_.size() for the delayed queue.
  std::size_t NextLevelLocked(TimePoint now);
  // A level above every batch running on the regular instances, which are
  // all busy, with requests queued: what a priority instance may take.
  std::optional<std::size_t> UrgentLevelLocked(TimePoint now);
  // The highest off-peak level with requests queued, unless the offpeak
  // policy holds them back now (then *recheck says when to look again):
  // what a background instance may take.
  std::optional<std::size_t> BackgroundLevelLocked(TimePoint now, TimePoint* recheck);
  // Takes a batch from `level` (levels_.size(): the delayed queue).
  std::vector<Pending> TakeBatchLocked(TimePoint now, std::size_t level);
  // The budget's view of a level: background for off-peak levels.
  ComputeClass ClassOfLevel(std::size_t level) const;
  // Runs the request just queued at `level` on the calling thread, with its
  // completion, when SchedulerOptions::inline_max_us allows it; false:
  // it stays queued for a worker.
  bool RunInlineLocked(std::unique_lock<std::mutex>& lock, std::size_t level, TimePoint now);
  // Runs `batch`, taken from `batch_level`, on `instance` with the lock
  // released, and books it (running list, utilisation, stats, batch times);
  // `done` gets its completions.
  void RunTakenBatch(std::unique_lock<std::mutex>& lock, std::size_t instance,
                     std::size_t batch_level, TimePoint now, std::vector<Pending>& batch,
                     ComputeBudget::Lease lease, std::vector<Completion>* done);
  // Runs `batch` on `instance` and fills `done` (outside the lock); false,
  // with `batch` and `done` untouched, when the run was stopped for a more
  // urgent request (only when `stoppable`).
  bool RunBatch(std::size_t instance, std::vector<Pending>& batch, TimePoint start,
                std::vector<Completion>* done, Duration* compute, bool stoppable = true);
  // Whether no request waits (at the off-peak levels too when `offpeak`).
  bool QueuesEmptyLocked(bool offpeak = true) const;
  // Publishes whether requests wait with every active instance busy, and
  // has the expiry thread recompute the utilisation from `now` on while it
  // can change on its own (a batch runs, or the window holds busy time).
  void PublishLoadLocked(TimePoint now);
  // Publishes `utilization`, computed at `now`, then as PublishLoadLocked.
  void PublishUtilizationLocked(TimePoint now, double utilization);
  // Runs the callbacks of `done` with the lock released (callbacks may
  // enqueue again), then clears it and re-takes the lock. `here`: all on
  // this thread (an inline run's caller), none handed to `completions`.
  void CompleteUnlocked(std::unique_lock<std::mutex>& lock, std::vector<Completion>* done,
                        bool here = false);
  std::size_t QueuedItemsLocked(bool include_offpeak) const;
  // The time until a request admitted now at `level` (0-based) would start:
  // the rest of the batch running now (none when an instance is idle), the
  // batches that the levels above have queued, and the full batches ahead
  // of it at its own level, shared by the active instances. nullopt until a
  // batch has been measured.
  std::optional<Duration> ExpectedWaitLocked(std::size_t level, TimePoint now) const;
  // Admission refuses when the expected wait times the margin passes the
  // request's timeout. The margin learns the estimate's error: it grows by a
  // fifth at each admitted request that times out in the queue and shrinks
  // by a thousandth at each that starts in time (so about one in 180
  // admitted requests may still time out), within these bounds.
  static constexpr double kInlineGapFactor = 2;  // see SchedulerOptions::inline_max_us
  static constexpr double kMinAdmissionMargin = 1.1;
  static constexpr double kMaxAdmissionMargin = 4.0;
  void WidenAdmissionMarginLocked();
  // The batch TakeBatchLocked forms at `level` when plenty is queued.
  std::int64_t FullBatchLocked(std::size_t level, TimePoint now) const;
  // Expected compute of a batch of `items` (on a background instance when
  // `background`): measured at that size, else scaled from the nearest size
  // measured; 0 when none has been.
  double ExpectedBatchUsLocked(std::int64_t items, bool background = false) const;
  // `target` cut by priority_blocking_us when a level above `level` had
  // arrivals in the last second, and always at an off-peak level.
  std::int64_t BlockingCapLocked(std::size_t level, TimePoint now, std::int64_t target) const;
  // With dynamic_batching.preempt: stops the running batch that keeps a
  // request just queued at `level` waiting (see the config key).
  void PreemptForLocked(std::size_t level, TimePoint now);
  // The autoscaler's once-a-second decision.
  void AutoscaleTickLocked(TimePoint now);

  const ModelPtr model_;
  Clock& clock_;
  const SchedulerOptions options_;
  const bool batching_;
  const int max_batch_;
  // Instances [0, regular_instances_) take any work (but the off-peak
  // levels when there are background instances); then come the priority
  // instances, then from background_begin_ the background instances.
  const std::size_t regular_instances_;
  const std::size_t background_begin_;
  const bool offpeak_on_background_;  // background instances take the off-peak levels

  mutable std::mutex mutex_;
  std::condition_variable work_;     // active regular workers wait here
  std::condition_variable standby_;  // parked, priority and background workers wait here
  std::vector<Level> levels_;        // guarded by mutex_; [0] is priority 1
  std::deque<Pending> delayed_;      // guarded by mutex_
  std::condition_variable expiry_;
  TimePoint expiry_sleeps_until_ = TimePoint::max();  // guarded by mutex_
  bool expiry_stop_ = false;                          // guarded by mutex_
  bool stopping_ = false;                             // guarded by mutex_
  bool drain_ = true;                                 // guarded by mutex_
  AdaptiveWindow adaptive_;                           // guarded by mutex_
  mutable UtilizationWindow utilization_window_;      // guarded by mutex_
  std::vector<RunningBatch> running_;                 // guarded by mutex_
  std::vector<bool> instance_busy_;  // guarded by mutex_; [i]: instance i runs a batch
  // [i]: the batch running on instance i was asked to stop, or may no
  // longer be; cleared with mutex_ held when a batch starts, then set once
  // by PreemptForLocked or by the run itself.
  std::unique_ptr<std::atomic<bool>[]> preempt_asked_;
  int inline_runs_ = 0;  // guarded by mutex_; batches run by enqueuing threads
  // Guarded by mutex_: workers waiting on work_ for the instance an inline
  // run holds; the run wakes workers only when there are such or when
  // anything is queued after it.
  int inline_waiters_ = 0;
  std::condition_variable inline_done_;  // Shutdown waits here for inline_runs_ to reach 0
  double admission_margin_ = kMinAdmissionMargin;  // guarded by mutex_
  std::vector<double> batch_us_;  // guarded by mutex_; [b] = EWMA compute of b items, 0 unseen
  std::vector<double> background_batch_us_;  // guarded by mutex_; the same on background instances
  SchedulerStats stats_;                     // guarded by mutex_
  std::size_t active_instances_ = 0;         // guarded by mutex_
  std::optional<Autoscaler> autoscaler_;     // guarded by mutex_
  TimePoint next_tick_ = TimePoint::max();   // guarded by mutex_
  TimePoint last_tick_{};                    // guarded by mutex_
  std::uint64_t arrivals_since_tick_ = 0;    // guarded by mutex_
  std::atomic<double> utilization_{0.0};     // written by PublishUtilizationLocked
  std::atomic<bool> backlog_{false};         // written by PublishLoadLocked
  // When the expiry thread next recomputes the utilisation; max() while it
  // cannot change on its own.
  TimePoint next_utilization_ = TimePoint::max();  // guarded by mutex_

  std::mutex shutdown_mutex_;  // serialises Shutdown callers
  std::vector<std::thread> workers_;
  std::thread expiry_thread_;
};

// Concatenates the same input of several requests along the batch
// dimension into one new buffer (one copy). Exposed for tests.
Result<Tensor> ConcatenateBatch(const std::vector<const Tensor*>& parts);

}  // namespace braid
