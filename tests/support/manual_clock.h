// ManualClock: time that moves only when a test advances it.
//
// Waiters poll in short real-time slices and re-check Now(), so a worker
// waiting for a manual deadline notices Advance() promptly; every decision
// still depends only on the manual time and the queue state.
#pragma once

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
    cv.wait_for(lock, std::chrono::microseconds(200));
  }

  void Advance(Duration by) {
    std::lock_guard lock(mutex_);
    now_ += by;
  }

 private:
  mutable std::mutex mutex_;
  TimePoint now_;
};

}  // namespace braid::testing
