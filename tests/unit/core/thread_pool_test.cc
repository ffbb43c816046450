#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <set>
#include <thread>

namespace braid {
namespace {

TEST(ThreadPoolTest, RunsEveryTask) {
  std::atomic<int> sum{0};
  ThreadPool pool(3);
  for (int i = 1; i <= 1000; ++i) ASSERT_TRUE(pool.Submit([&sum, i] { sum += i; }));
  pool.WaitIdle();
  EXPECT_EQ(sum.load(), 500500);
}

TEST(ThreadPoolTest, UsesSeveralThreads) {
  std::mutex mutex;
  std::set<std::thread::id> ids;
  std::atomic<int> arrived{0};
  ThreadPool pool(2);
  for (int i = 0; i < 2; ++i) {
    pool.Submit([&] {
      {
        std::lock_guard lock(mutex);
        ids.insert(std::this_thread::get_id());
      }
      // Each task waits for the other, which only completes if both run at once.
      ++arrived;
      while (arrived.load() < 2) std::this_thread::yield();
    });
  }
  pool.WaitIdle();
  EXPECT_EQ(ids.size(), 2u);
}

TEST(ThreadPoolTest, DestructorDrainsQueuedTasks) {
  std::atomic<int> done{0};
  {
    ThreadPool pool(1);
    for (int i = 0; i < 50; ++i) pool.Submit([&] { ++done; });
  }
  EXPECT_EQ(done.load(), 50);
}

}  // namespace
}  // namespace braid

namespace braid {
namespace {

// Submits a follow-up when destroyed: what a task's captured owner does
// when the task held its last reference.
struct SubmitsWhenDestroyed {
  ThreadPool* pool = nullptr;
  std::promise<void>* done = nullptr;
  ~SubmitsWhenDestroyed() {
    pool->Submit([done = done] { done->set_value(); });
  }
};

TEST(ThreadPoolTest, ATaskWhoseCapturesSubmitWhenReleasedDoesNotDeadlock) {
  ThreadPool pool(1);
  std::promise<void> done;
  auto owner = std::make_shared<SubmitsWhenDestroyed>();
  owner->pool = &pool;
  owner->done = &done;
  ASSERT_TRUE(pool.Submit([owner = std::move(owner)] {}));
  // Before the fix the worker released the task under its own lock and the
  // follow-up's Submit never returned.
  EXPECT_EQ(done.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
}

}  // namespace
}  // namespace braid
