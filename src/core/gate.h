// Gate: "stop new work, wait for the work in flight" (Seastar's gate).
//
// Work enters through TryEnter() and holds the returned Holder until it is
// done; Close() refuses new entries, and Wait() blocks until every holder is
// gone. The owner of a subsystem closes and waits on its gate before it
// destroys what the work uses, so a holder never outlives the gate.
//
// Thread-safe. Only Wait() blocks.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <optional>

namespace braid {

class Gate {
 public:
  // One unit of work in flight; leaving (destruction) may wake Wait().
  class Holder {
   public:
    Holder(Holder&& other) noexcept : gate_(other.gate_) { other.gate_ = nullptr; }
    Holder& operator=(Holder&& other) noexcept;
    Holder(const Holder&) = delete;
    Holder& operator=(const Holder&) = delete;
    ~Holder() { Leave(); }

   private:
    friend class Gate;
    explicit Holder(Gate* gate) : gate_(gate) {}
    void Leave();
    Gate* gate_;
  };

  Gate() = default;
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;

  // A holder, or nullopt once the gate is closed.
  std::optional<Holder> TryEnter();
  // Refuses every later TryEnter(). Holders already out stay valid.
  void Close();
  // Blocks until no holder is left or `deadline` passes; true if none is left.
  bool Wait(std::chrono::steady_clock::time_point deadline =
                std::chrono::steady_clock::time_point::max());

  bool closed() const;
  std::size_t in_flight() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable empty_;
  std::size_t in_flight_ = 0;  // guarded by mutex_
  bool closed_ = false;        // guarded by mutex_
};

}  // namespace braid
