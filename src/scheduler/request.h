// What flows through a model's scheduler: one inference request in, one
// result out through the request's completion callback.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "core/tensor.h"

namespace braid {

// Shared between the party that may give up on a request (a client that
// disconnected, a workflow that failed) and the scheduler, which drops a
// cancelled request from its queue without computing it.
class CancellationToken {
 public:
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> cancelled_{false};
};

// The cancellation tokens of the work in flight, so that one call cancels
// them all, and every token added after it (what a drain does at its
// deadline: work admitted at that moment is cancelled too). A token stays
// in the set while its Entry lives. Thread-safe.
class CancellationSet {
 public:
  class Entry {
   public:
    Entry(Entry&& other) noexcept : set_(std::exchange(other.set_, nullptr)), it_(other.it_) {}
    Entry& operator=(Entry&&) = delete;
    ~Entry() {
      if (set_ == nullptr) return;
      std::lock_guard lock(set_->mutex_);
      set_->tokens_.erase(it_);
    }

   private:
    friend class CancellationSet;
    using Iterator = std::list<std::weak_ptr<CancellationToken>>::iterator;
    Entry(CancellationSet* set, Iterator it) : set_(set), it_(it) {}
    CancellationSet* set_;
    Iterator it_;
  };

  // The set must outlive the entry.
  Entry Add(const std::shared_ptr<CancellationToken>& token) {
    std::lock_guard lock(mutex_);
    if (cancelling_) token->Cancel();
    return Entry(this, tokens_.insert(tokens_.end(), token));
  }
  void CancelAll() {
    std::lock_guard lock(mutex_);
    cancelling_ = true;
    for (const auto& entry : tokens_) {
      if (auto token = entry.lock()) token->Cancel();
    }
  }

 private:
  std::mutex mutex_;
  std::list<std::weak_ptr<CancellationToken>> tokens_;  // guarded by mutex_
  bool cancelling_ = false;                             // guarded by mutex_
};

// The largest priority a request may ask for (0 is the model's default);
// the model's levels bound it further (ModelScheduler refuses a level it
// does not have).
inline constexpr int kMaxRequestPriority = 1000;

// `number` as the priority a request asks for: the one check of every way
// to ask (KServe's parameter over HTTP and gRPC, a workflow's model node).
inline Result<int> RequestPriority(std::int64_t number) {
  if (number < 0 || number > kMaxRequestPriority)
    return InvalidArgument("priority {} is out of range (0..{})", number, kMaxRequestPriority);
  return static_cast<int>(number);
}

// InferenceRequest::priority for background work (precompute): the model's
// lowest level, which its offpeak policy may defer while the model is busy.
inline constexpr int kLowestPriority = -1;

struct InferenceResult {
  Status status;
  std::vector<Tensor> outputs;  // config order; views into the batch's outputs
  Duration queue_time{};        // enqueue → start of the batch's compute
  Duration compute_time{};      // the batch's compute
  int batch_size = 0;           // items in the batch this request ran in
};

struct InferenceRequest {
  // Validated inputs in config order (see Model::OrderInputs).
  std::vector<Tensor> inputs;
  // 1 is the highest; 0 means the model's default_priority, kLowestPriority
  // its priority_levels.
  int priority = 0;
  // Queue timeout in microseconds replacing the priority level's timeout_us
  // when the level allows overrides; -1 keeps the level's. What happens at
  // the timeout follows the level's timeout_action.
  std::int64_t timeout_us = -1;
  // A hard deadline (the client's): past it the request is dropped with
  // DEADLINE_EXCEEDED whatever the queue policy says. Never computed after.
  TimePoint deadline = TimePoint::max();
  // Optional; checked before the request is put into a batch.
  std::shared_ptr<CancellationToken> cancellation;
  // Called exactly once, from a scheduler thread (or the enqueuing one, see
  // caller_may_compute), when the request finishes, fails, times out or is
  // cancelled. Must not block: hand heavy work to
  // another thread.
  std::function<void(InferenceResult)> on_complete;
  // on_complete only hands the result to another thread (a front end's
  // network thread): it runs on the model's worker, saving a thread hop,
  // instead of on SchedulerOptions::completions.
  bool light_completion = false;
  // The thread that enqueues the request may run its batch and on_complete
  // itself (SchedulerOptions::inline_max_us): it is a front end's thread
  // that can afford a short batch. Implied by light_completion.
  bool caller_may_compute = false;
};
using InferenceRequestPtr = std::unique_ptr<InferenceRequest>;

}  // namespace braid
