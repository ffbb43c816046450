// A fixed set of worker threads that run submitted tasks in FIFO order.
//
// Thread-safe. Submit() never blocks on task execution. The destructor stops
// admitting, runs every task already queued, then joins the workers.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace braid {

class ThreadPool {
 public:
  explicit ThreadPool(std::size_t threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Queues `task`. Returns false (and drops the task) once shutdown began.
  bool Submit(std::function<void()> task);

  // Blocks until every task submitted so far has finished.
  void WaitIdle();

  // Stops admitting (Submit returns false), runs every task already queued
  // (tasks they submit are refused) and joins the workers. What the
  // destructor does; for an owner that must stop the pool before its
  // members go. Call from outside the pool.
  void Stop();

  std::size_t size() const { return workers_.size(); }

 private:
  void WorkerLoop();

  std::mutex mutex_;
  std::condition_variable work_available_;
  std::condition_variable idle_;
  std::deque<std::function<void()>> tasks_;  // guarded by mutex_
  std::size_t running_ = 0;                  // guarded by mutex_
  bool stopping_ = false;                    // guarded by mutex_
  std::vector<std::thread> workers_;
};

}  // namespace braid
