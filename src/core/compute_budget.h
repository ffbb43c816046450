// ComputeBudget: the process's compute, shared by every model and engine.
//
// braid runs on the cores the process may use (its CPU affinity and cgroup
// quota), and every batch of every model draws on the same budget: the
// ONNX Runtime sessions share one process-wide intra-op thread pool of
// `threads()` threads that does not spin (onnxruntime_backend.cc), so a lone
// run gets every core and concurrent runs split them as their parallel loops
// claim work; and a batch starts only with a lease from this budget, which
// holds runs back when they would compete with more urgent ones.
//
// Who gets the next lease when the budget is full is decided here, at batch
// boundaries:
//   - interactive work before background work (off-peak levels and
//     predictive precompute), then the higher priority (1 is highest), then
//     the longest waiting;
//   - runs of one priority level share a full budget (their parallel loops
//     split the pool's threads, so holding one back would only idle a core
//     when another finishes), but a level waits while a more urgent level
//     holds it, and a level above the running work may start only on the
//     reserved share: one lease above threads(), for priority 1 alone. That
//     is how an urgent request runs beside a long batch instead of behind
//     it (counted as a preemption);
//   - background work never holds more than threads − 1 leases (at least 1),
//     so a core stays free for an interactive request that arrives, and it
//     starts only while no interactive run holds a lease: it takes what
//     interactive work leaves, and an interactive run's loops spread over
//     every core of the pool.
//
// A lease decides when a batch starts; once two batches run, the kernel
// decides how the cores are split between their threads. So compute runs in
// two tiers of OS priority (Linux per-thread nice): the threads of regular
// batches (the scheduler's regular workers, ONNX Runtime's shared pool and
// the pools of regular sessions) run `regular_nice` steps below the
// process, the threads of priority instances (their scheduler worker and
// their session's own pool) at the process's own priority. An urgent batch
// started on the reserved share beside a long regular batch then gets the
// cores (about 9:1 at 10 steps) instead of a third of them, and a batch alone is as
// fast as before: idle cores go to whoever runs.
//
// Thread-safe. Acquire blocks; everything else does not.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace braid {

enum class ComputeClass { kInteractive = 0, kBackground = 1 };
std::string_view ComputeClassName(ComputeClass cls);

// The cores this process may use: the CPU affinity mask, lowered by a
// cgroup (v2 cpu.max or v1 cfs quota) CPU limit; at least 1.
int AvailableCores();

// How many nice steps regular compute runs below the process by default.
inline constexpr int kDefaultRegularNice = 10;

struct ComputeBudgetStats {
  int threads = 0;
  std::array<int, 2> in_use{};             // [class] leases held now
  std::array<int, 2> waiting{};            // [class] runs waiting for a lease now
  std::array<std::uint64_t, 2> granted{};  // [class] leases granted
  std::array<std::uint64_t, 2> waited{};   // [class] leases that had to wait
  std::uint64_t preemptions = 0;           // granted on the reserved share
  std::map<std::string, std::array<int, 2>> in_use_by_model;  // [model][class]
  std::map<std::string, std::array<std::uint64_t, 2>> granted_by_model;
};

class ComputeBudget {
  // One model's leases: held now and granted, by class.
  struct ModelUsage {
    std::array<int, 2> in_use{};
    std::array<std::uint64_t, 2> granted{};
  };

 public:
  // `threads` ≥ 1: how many runs may compute at once (and the size of the
  // shared ONNX Runtime pool for the process budget). `regular_nice` (0 to
  // 19; 0: one tier): the regular tier's distance below the process.
  explicit ComputeBudget(int threads, int regular_nice = 0);
  ComputeBudget(const ComputeBudget&) = delete;
  ComputeBudget& operator=(const ComputeBudget&) = delete;

  // One run's permission to compute; released when destroyed. Movable.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    ~Lease();
    explicit operator bool() const { return budget_ != nullptr; }

   private:
    friend class ComputeBudget;
    Lease(ComputeBudget* budget, ModelUsage* model, ComputeClass cls, int priority)
        : budget_(budget), model_(model), class_(cls), priority_(priority) {}
    ComputeBudget* budget_ = nullptr;
    ModelUsage* model_ = nullptr;  // the budget's record of the lease's model
    ComputeClass class_ = ComputeClass::kInteractive;
    int priority_ = 0;
  };

  // Blocks until `model`'s batch of class `cls` at `priority` (1 highest)
  // may compute, by the rules above.
  Lease Acquire(std::string_view model, ComputeClass cls, int priority);
  // The same lease if it may be granted at once; an empty one otherwise.
  Lease TryAcquire(std::string_view model, ComputeClass cls, int priority);

  int threads() const { return threads_; }
  int regular_nice() const { return regular_nice_; }
  ComputeBudgetStats Stats() const;

  // Moves the calling thread to the regular tier; a thread never goes back
  // (raising a thread's priority needs privileges), so only threads that
  // compute regular batches for their whole life call this.
  void EnterRegularTier() const;
  // Moves the calling thread to the background tier: the idle scheduling
  // class (SCHED_IDLE), which runs only on cores no other thread wants and
  // yields to any that wakes; nice 19 where the kernel refuses it. For the
  // workers of background instances, for their whole life.
  static void EnterBackgroundTier();

 private:
  struct Waiter {
    ComputeClass cls;
    int priority;
    std::uint64_t ticket;
  };
  // Whether `waiter` may take a lease now, ignoring the other waiters;
  // sets *reserved when only the reserved share lets it.
  bool EligibleLocked(const Waiter& waiter, bool* reserved) const;
  // Whether a waiter ordered before `waiter` is eligible now.
  bool BetterWaiterEligibleLocked(const Waiter& waiter) const;
  // Grants `waiter`'s lease (it may start now).
  Lease GrantLocked(std::string_view model, const Waiter& waiter, bool reserved);
  void Release(const Lease& lease);

  const int threads_;
  const int regular_nice_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Waiter> waiters_;                 // guarded by mutex_
  std::uint64_t next_ticket_ = 0;              // guarded by mutex_
  std::map<int, int> interactive_priorities_;  // priority → leases held; guarded by mutex_
  // Per model, created at its first lease and never erased, so that a lease
  // can point at its record (guarded by mutex_).
  std::map<std::string, ModelUsage, std::less<>> models_;
  // Guarded by mutex_; its per-model maps are filled from models_ by Stats().
  ComputeBudgetStats stats_;
};

// Runs the process's OpenMP and OpenBLAS engines (Tesseract, FAISS) on the
// calling thread alone, so that they draw on the budget through the
// scheduler's leases instead of starting teams of spinning threads of
// their own (Tesseract asks OpenMP for up to 10 per call). Both libraries
// read their limits from the environment when they load, so when
// OMP_THREAD_LIMIT is not set this sets OMP_THREAD_LIMIT=1,
// OMP_WAIT_POLICY=passive and OPENBLAS_NUM_THREADS=1 and executes the
// program again with `argv`; it returns when the limits are in place (or
// when the re-execution failed). An operator who sets OMP_THREAD_LIMIT
// keeps their own. Call first thing in main().
void KeepEnginesSingleThreaded(char** argv);

// The process's budget: AvailableCores() threads and kDefaultRegularNice
// unless the setters below ran first. Created on first use.
ComputeBudget& ProcessComputeBudget();
// Sizes the process budget (and with it the shared ONNX Runtime pool).
// Call before the first model loads; later calls have no effect and return
// false.
bool SetProcessComputeThreads(int threads);
// The process budget's regular_nice (0: one tier), by the same rule.
bool SetProcessRegularNice(int steps);

}  // namespace braid
