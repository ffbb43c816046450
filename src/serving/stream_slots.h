// A cap on the live streams open at once, and the counts the metrics show.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace braid {

class StreamSlots {
 public:
  explicit StreamSlots(std::size_t max) : max_(max) {}

  // Takes a slot; false (counted as refused) when all are taken.
  bool TryTake() {
    std::size_t open = open_.load();
    do {
      if (open >= max_) {
        ++refused_;
        return false;
      }
    } while (!open_.compare_exchange_weak(open, open + 1));
    ++opened_;
    return true;
  }
  void GiveBack() { --open_; }

  std::size_t max() const { return max_; }
  std::size_t open() const { return open_.load(); }
  std::uint64_t opened() const { return opened_.load(); }
  std::uint64_t refused() const { return refused_.load(); }

 private:
  const std::size_t max_;
  std::atomic<std::size_t> open_{0};
  std::atomic<std::uint64_t> opened_{0};
  std::atomic<std::uint64_t> refused_{0};
};

}  // namespace braid
