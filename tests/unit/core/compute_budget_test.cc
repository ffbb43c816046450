// The compute budget's grant rules, decided from which Acquire calls return
// (each waiter runs on its own thread and reports when it got its lease).
#include "core/compute_budget.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace braid {
namespace {

constexpr auto kPatience = std::chrono::seconds(10);

// Threads that each Acquire a lease and hold it until told to let go.
class Holders {
 public:
  explicit Holders(ComputeBudget& budget) : budget_(budget) {}
  ~Holders() {
    {
      std::lock_guard lock(mutex_);
      release_all_ = true;
    }
    changed_.notify_all();
    for (auto& thread : threads_) thread.join();
  }

  // Starts a thread that acquires a lease; returns its index.
  int Start(const std::string& model, ComputeClass cls, int priority) {
    std::lock_guard lock(mutex_);
    const int index = static_cast<int>(granted_.size());
    granted_.push_back(false);
    released_.push_back(false);
    threads_.emplace_back([this, index, model, cls, priority] {
      ComputeBudget::Lease lease = budget_.Acquire(model, cls, priority);
      std::unique_lock lock(mutex_);
      granted_[index] = true;
      order_.push_back(index);
      changed_.notify_all();
      changed_.wait(lock, [&] { return released_[index] || release_all_; });
    });
    return index;
  }
  bool WaitGranted(int index) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kPatience, [&] { return granted_[index]; });
  }
  bool granted(int index) {
    std::lock_guard lock(mutex_);
    return granted_[index];
  }
  void Release(int index) {
    std::lock_guard lock(mutex_);
    released_[index] = true;
    changed_.notify_all();
  }
  std::vector<int> order() {
    std::lock_guard lock(mutex_);
    return order_;
  }

 private:
  ComputeBudget& budget_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<bool> granted_, released_;
  std::vector<int> order_;
  bool release_all_ = false;
  std::vector<std::thread> threads_;
};

// Waits until the budget counts `count` waiters of `cls`.
void WaitForWaiters(ComputeBudget& budget, ComputeClass cls, int count) {
  const auto until = std::chrono::steady_clock::now() + kPatience;
  while (budget.Stats().waiting[static_cast<int>(cls)] != count &&
         std::chrono::steady_clock::now() < until)
    std::this_thread::yield();
  ASSERT_EQ(budget.Stats().waiting[static_cast<int>(cls)], count);
}

TEST(ComputeBudgetTest, AvailableCoresIsAtLeastOne) { EXPECT_GE(AvailableCores(), 1); }

TEST(ComputeBudgetTest, RunsOfOneLevelShareAFullBudget) {
  ComputeBudget budget(2);
  Holders holders(budget);
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(holders.WaitGranted(holders.Start("m", ComputeClass::kInteractive, 2)));
  auto stats = budget.Stats();
  EXPECT_EQ(stats.in_use[0], 4);
  EXPECT_EQ(stats.in_use_by_model["m"][0], 4);
  EXPECT_EQ(stats.waited[0], 0u);
}

TEST(ComputeBudgetTest, ALowerLevelWaitsWhileAMoreUrgentOneFillsTheBudget) {
  ComputeBudget budget(2);
  Holders holders(budget);
  const int a = holders.Start("a", ComputeClass::kInteractive, 1);
  const int b = holders.Start("b", ComputeClass::kInteractive, 1);
  ASSERT_TRUE(holders.WaitGranted(a) && holders.WaitGranted(b));
  const int low = holders.Start("c", ComputeClass::kInteractive, 2);
  WaitForWaiters(budget, ComputeClass::kInteractive, 1);
  EXPECT_FALSE(holders.granted(low));
  holders.Release(a);
  EXPECT_TRUE(holders.WaitGranted(low));
  EXPECT_EQ(budget.Stats().waited[0], 1u);
}

TEST(ComputeBudgetTest, PriorityOneStartsBesideLowerWorkOnTheReservedShare) {
  ComputeBudget budget(2);
  Holders holders(budget);
  const int b = holders.Start("b", ComputeClass::kBackground, 3);
  ASSERT_TRUE(holders.WaitGranted(b));
  const int a = holders.Start("a", ComputeClass::kInteractive, 2);
  ASSERT_TRUE(holders.WaitGranted(a));
  const int urgent = holders.Start("c", ComputeClass::kInteractive, 1);
  EXPECT_TRUE(holders.WaitGranted(urgent));
  EXPECT_EQ(budget.Stats().preemptions, 1u);
  // The share is one lease: a second priority-1 run waits.
  const int second = holders.Start("d", ComputeClass::kInteractive, 1);
  WaitForWaiters(budget, ComputeClass::kInteractive, 1);
  EXPECT_FALSE(holders.granted(second));
  holders.Release(urgent);
  EXPECT_TRUE(holders.WaitGranted(second));
}

TEST(ComputeBudgetTest, BackgroundLeavesACoreAndRunsOnlyWhileNoInteractiveRunDoes) {
  ComputeBudget budget(3);
  Holders holders(budget);
  const int b1 = holders.Start("p", ComputeClass::kBackground, 3);
  const int b2 = holders.Start("p", ComputeClass::kBackground, 3);
  ASSERT_TRUE(holders.WaitGranted(b1) && holders.WaitGranted(b2));
  const int b3 = holders.Start("p", ComputeClass::kBackground, 3);
  WaitForWaiters(budget, ComputeClass::kBackground, 1);
  EXPECT_FALSE(holders.granted(b3)) << "background holds at most threads - 1";
  const int i1 = holders.Start("m", ComputeClass::kInteractive, 2);
  ASSERT_TRUE(holders.WaitGranted(i1)) << "the core background left free";
  // Full now, with background work in it: priority 2 waits, then goes
  // before the background waiter.
  const int i2 = holders.Start("m", ComputeClass::kInteractive, 2);
  WaitForWaiters(budget, ComputeClass::kInteractive, 1);
  EXPECT_FALSE(holders.granted(i2));
  holders.Release(b1);
  ASSERT_TRUE(holders.WaitGranted(i2));
  EXPECT_FALSE(holders.granted(b3));
  // Room in the budget is not enough: background starts only while no
  // interactive run holds a lease (that run's loops use every core).
  holders.Release(i1);
  const auto until = std::chrono::steady_clock::now() + kPatience;
  while (budget.Stats().in_use[0] != 1 && std::chrono::steady_clock::now() < until)
    std::this_thread::yield();
  ASSERT_EQ(budget.Stats().in_use[0], 1);
  EXPECT_EQ(budget.Stats().in_use[1], 1) << "room for one more, but an interactive run is on";
  EXPECT_FALSE(holders.granted(b3));
  holders.Release(i2);
  EXPECT_TRUE(holders.WaitGranted(b3));
  EXPECT_EQ(budget.Stats().in_use[1], 2);
}

TEST(ComputeBudgetTest, WaitersAreServedInteractiveFirstThenByPriority) {
  ComputeBudget budget(1);
  Holders holders(budget);
  const int first = holders.Start("a", ComputeClass::kInteractive, 1);
  ASSERT_TRUE(holders.WaitGranted(first));
  const int background = holders.Start("b", ComputeClass::kBackground, 3);
  WaitForWaiters(budget, ComputeClass::kBackground, 1);
  const int three = holders.Start("c", ComputeClass::kInteractive, 3);
  WaitForWaiters(budget, ComputeClass::kInteractive, 1);
  const int two = holders.Start("d", ComputeClass::kInteractive, 2);
  WaitForWaiters(budget, ComputeClass::kInteractive, 2);
  holders.Release(first);
  ASSERT_TRUE(holders.WaitGranted(two));
  holders.Release(two);
  ASSERT_TRUE(holders.WaitGranted(three));
  holders.Release(three);
  ASSERT_TRUE(holders.WaitGranted(background));
  EXPECT_EQ(holders.order(), (std::vector<int>{first, two, three, background}));
}

}  // namespace
}  // namespace braid
