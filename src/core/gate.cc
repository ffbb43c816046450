#include "core/gate.h"

namespace braid {

Gate::Holder& Gate::Holder::operator=(Holder&& other) noexcept {
  if (this != &other) {
    Leave();
    gate_ = other.gate_;
    other.gate_ = nullptr;
  }
  return *this;
}

void Gate::Holder::Leave() {
  if (gate_ == nullptr) return;
  Gate* gate = gate_;
  gate_ = nullptr;
  std::lock_guard lock(gate->mutex_);
  // Notified under the lock: the waiter may destroy the gate as soon as it
  // sees zero, so nothing here may touch it after the unlock.
  if (--gate->in_flight_ == 0) gate->empty_.notify_all();
}

std::optional<Gate::Holder> Gate::TryEnter() {
  std::lock_guard lock(mutex_);
  if (closed_) return std::nullopt;
  ++in_flight_;
  return Holder(this);
}

void Gate::Close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
}

bool Gate::Wait(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  if (deadline == std::chrono::steady_clock::time_point::max()) {
    empty_.wait(lock, [this] { return in_flight_ == 0; });
    return true;
  }
  return empty_.wait_until(lock, deadline, [this] { return in_flight_ == 0; });
}

bool Gate::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

std::size_t Gate::in_flight() const {
  std::lock_guard lock(mutex_);
  return in_flight_;
}

}  // namespace braid
