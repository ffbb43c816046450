// ManualClock: time that moves only when a test advances it.
//
// Waiters for a deadline poll in short real-time slices and re-check Now(),
// so a worker waiting for a manual deadline notices Advance() promptly;
// every decision still depends only on the manual time and the queue state.
// A wait without a deadline ends only when notified, as on the steady clock.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>

#include "core/clock.h"

namespace braid::testing {

class ManualClock : public Clock {
 public:
  ManualClock() : now_(TimePoint{} + std::chrono::hours(1)) {}

  // Clock
  TimePoint Now() const override {
    std::lock_guard lock(mutex_);
    return now_;
  }
  void WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                 TimePoint deadline) override {
    if (Now() >= deadline) return;
    if (deadline == TimePoint::max()) {
      sleepers_.fetch_add(1);
      cv.wait(lock);
      sleepers_.fetch_sub(1);
      wakes_.fetch_add(1);
      return;
    }
    cv.wait_for(lock, std::chrono::microseconds(200));
  }

  // Threads now in a wait without a deadline, and how many such waits have
  // ended (each by a notification).
  int sleepers() const { return sleepers_.load(); }
  int wakes() const { return wakes_.load(); }

  void Advance(Duration by) {
    std::lock_guard lock(mutex_);
    now_ += by;
  }

 private:
  mutable std::mutex mutex_;
  TimePoint now_;
  std::atomic<int> sleepers_{0};
  std::atomic<int> wakes_{0};
};

}  // namespace braid::testing
