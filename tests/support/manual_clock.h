// ManualClock: time that moves only when a test advances it.
//
// Waiters poll in short real-time slices and re-check Now(), so a worker
// waiting for a manual deadline notices Advance() promptly; every decision
// still depends only on the manual time and the queue state.
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
    waits_.fetch_add(1);
    if (cv.wait_for(lock, std::chrono::microseconds(200)) == std::cv_status::no_timeout)
      notified_wakes_.fetch_add(1);
  }

  // How many waits began, and how many of them a notification ended (the
  // others ended their poll slice).
  int waits() const { return waits_.load(); }
  int notified_wakes() const { return notified_wakes_.load(); }

  void Advance(Duration by) {
    std::lock_guard lock(mutex_);
    now_ += by;
  }

 private:
  mutable std::mutex mutex_;
  TimePoint now_;
  std::atomic<int> waits_{0};
  std::atomic<int> notified_wakes_{0};
};

}  // namespace braid::testing
