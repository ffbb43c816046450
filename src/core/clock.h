// Clock: the source of time for everything whose behaviour depends on it
// (batching windows, queue timeouts, utilisation), injected so that tests
// can drive time by hand instead of sleeping.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace braid {

using TimePoint = std::chrono::steady_clock::time_point;
using Duration = std::chrono::steady_clock::duration;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
  // Waits on `cv` (with `lock` held on entry and on return) until notified
  // or until Now() reaches `deadline`. May return early: callers re-check
  // their condition and Now() in a loop, as with any condition variable.
  virtual void WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                         TimePoint deadline) = 0;
};

// The process's steady clock. Thread-safe.
Clock& SteadyClock();

inline double ToMicros(Duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

}  // namespace braid
