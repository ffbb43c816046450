#include "core/compute_budget.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <tuple>
#include <utility>

namespace braid {
namespace {

// The CPU limit of the process's cgroup in cores (rounded up), or 0 when
// there is none.
int CgroupCores() {
  std::ifstream v2("/sys/fs/cgroup/cpu.max");
  std::string quota;
  double period = 0;
  if (v2 >> quota >> period && quota != "max" && period > 0)
    return static_cast<int>(std::ceil(std::stod(quota) / period));
  std::ifstream v1_quota("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
  std::ifstream v1_period("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  double q = 0;
  if (v1_quota >> q && v1_period >> period && q > 0 && period > 0)
    return static_cast<int>(std::ceil(q / period));
  return 0;
}

// Ordering of waiters: interactive first, then priority, then arrival.
auto Rank(ComputeClass cls, int priority, std::uint64_t ticket) {
  return std::tuple(static_cast<int>(cls), priority, ticket);
}

// The process budget's settings, guarded by process_mutex; fixed once it
// is created.
std::mutex process_mutex;
int process_threads = 0;  // 0: AvailableCores()
int process_regular_nice = kDefaultRegularNice;
bool process_created = false;

}  // namespace

std::string_view ComputeClassName(ComputeClass cls) {
  return cls == ComputeClass::kInteractive ? "interactive" : "background";
}

int AvailableCores() {
  cpu_set_t set;
  int cores = 0;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cores = CPU_COUNT(&set);
  if (cores <= 0) cores = static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  if (const int limit = CgroupCores(); limit > 0) cores = std::min(cores, limit);
  return std::max(1, cores);
}

ComputeBudget::ComputeBudget(int threads, int regular_nice)
    : threads_(std::max(1, threads)), regular_nice_(std::clamp(regular_nice, 0, 19)) {
  stats_.threads = threads_;
}

void ComputeBudget::EnterRegularTier() const {
  if (regular_nice_ == 0) return;
  // Linux: PRIO_PROCESS with a thread id is that thread's nice; with the
  // process id, its main thread's, the nice the process was started with.
  const auto tid = static_cast<id_t>(syscall(SYS_gettid));
  errno = 0;
  const int process = getpriority(PRIO_PROCESS, static_cast<id_t>(getpid()));
  const int current = getpriority(PRIO_PROCESS, tid);
  if (errno != 0) return;
  const int target = std::min(19, process + regular_nice_);
  if (current < target) setpriority(PRIO_PROCESS, tid, target);
}

void ComputeBudget::EnterBackgroundTier() {
  const sched_param param{};
  if (sched_setscheduler(0, SCHED_IDLE, &param) == 0) return;
  const auto tid = static_cast<id_t>(syscall(SYS_gettid));
  setpriority(PRIO_PROCESS, tid, 19);
}

ComputeBudget::Lease::Lease(Lease&& other) noexcept
    : budget_(std::exchange(other.budget_, nullptr)),
      model_(other.model_),
      class_(other.class_),
      priority_(other.priority_) {}

ComputeBudget::Lease& ComputeBudget::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    if (budget_ != nullptr) budget_->Release(*this);
    budget_ = std::exchange(other.budget_, nullptr);
    model_ = other.model_;
    class_ = other.class_;
    priority_ = other.priority_;
  }
  return *this;
}

ComputeBudget::Lease::~Lease() {
  if (budget_ != nullptr) budget_->Release(*this);
}

bool ComputeBudget::EligibleLocked(const Waiter& waiter, bool* reserved) const {
  const int total = stats_.in_use[0] + stats_.in_use[1];
  *reserved = false;
  if (waiter.cls == ComputeClass::kBackground)
    return stats_.in_use[0] == 0 && total < threads_ &&
           stats_.in_use[1] < std::max(1, threads_ - 1);
  if (total < threads_) return true;
  // The budget is full. Equals share it (their runs split the pool's
  // threads); a level waits while more urgent work holds it; priority 1
  // starts beside lower-priority work on the reserved share.
  const int most_urgent = interactive_priorities_.empty() ? std::numeric_limits<int>::max()
                                                          : interactive_priorities_.begin()->first;
  if (most_urgent < waiter.priority) return false;
  const bool lower_running =
      stats_.in_use[1] > 0 || (!interactive_priorities_.empty() &&
                               interactive_priorities_.rbegin()->first > waiter.priority);
  if (!lower_running) return true;
  *reserved = waiter.priority == 1 && total < threads_ + 1;
  return *reserved;
}

bool ComputeBudget::BetterWaiterEligibleLocked(const Waiter& waiter) const {
  bool reserved = false;
  const auto rank = Rank(waiter.cls, waiter.priority, waiter.ticket);
  return std::any_of(waiters_.begin(), waiters_.end(), [&](const Waiter& other) {
    return Rank(other.cls, other.priority, other.ticket) < rank && EligibleLocked(other, &reserved);
  });
}

ComputeBudget::Lease ComputeBudget::Acquire(std::string_view model, ComputeClass cls,
                                            int priority) {
  std::unique_lock lock(mutex_);
  const Waiter waiter{cls, priority, next_ticket_++};
  bool reserved = false;
  auto may_start = [&] {
    return EligibleLocked(waiter, &reserved) && !BetterWaiterEligibleLocked(waiter);
  };
  const int c = static_cast<int>(cls);
  if (!may_start()) {
    ++stats_.waited[c];
    ++stats_.waiting[c];
    waiters_.push_back(waiter);
    changed_.wait(lock, may_start);
    waiters_.erase(std::find_if(waiters_.begin(), waiters_.end(),
                                [&](const Waiter& w) { return w.ticket == waiter.ticket; }));
    --stats_.waiting[c];
  }
  return GrantLocked(model, waiter, reserved);
}

ComputeBudget::Lease ComputeBudget::TryAcquire(std::string_view model, ComputeClass cls,
                                               int priority) {
  std::lock_guard lock(mutex_);
  const Waiter waiter{cls, priority, next_ticket_++};
  bool reserved = false;
  if (!EligibleLocked(waiter, &reserved) || BetterWaiterEligibleLocked(waiter)) return Lease();
  return GrantLocked(model, waiter, reserved);
}

ComputeBudget::Lease ComputeBudget::GrantLocked(std::string_view model, const Waiter& waiter,
                                                bool reserved) {
  const int c = static_cast<int>(waiter.cls);
  if (reserved) ++stats_.preemptions;
  ++stats_.in_use[c];
  ++stats_.granted[c];
  auto usage = models_.find(model);
  if (usage == models_.end()) usage = models_.emplace(std::string(model), ModelUsage{}).first;
  ++usage->second.in_use[c];
  ++usage->second.granted[c];
  if (waiter.cls == ComputeClass::kInteractive) ++interactive_priorities_[waiter.priority];
  // Another waiter may be eligible too (a background one behind this one).
  if (!waiters_.empty()) changed_.notify_all();
  return Lease(this, &usage->second, waiter.cls, waiter.priority);
}

void ComputeBudget::Release(const Lease& lease) {
  {
    std::lock_guard lock(mutex_);
    const int c = static_cast<int>(lease.class_);
    --stats_.in_use[c];
    --lease.model_->in_use[c];
    if (lease.class_ == ComputeClass::kInteractive) {
      auto it = interactive_priorities_.find(lease.priority_);
      if (--it->second == 0) interactive_priorities_.erase(it);
    }
    if (waiters_.empty()) return;
  }
  changed_.notify_all();
}

ComputeBudgetStats ComputeBudget::Stats() const {
  std::lock_guard lock(mutex_);
  ComputeBudgetStats stats = stats_;
  for (const auto& [model, usage] : models_) {
    stats.in_use_by_model[model] = usage.in_use;
    stats.granted_by_model[model] = usage.granted;
  }
  return stats;
}

void KeepEnginesSingleThreaded(char** argv) {
  if (std::getenv("OMP_THREAD_LIMIT") != nullptr) return;
  setenv("OMP_THREAD_LIMIT", "1", 1);
  setenv("OMP_WAIT_POLICY", "passive", 0);
  setenv("OPENBLAS_NUM_THREADS", "1", 0);
  execv("/proc/self/exe", argv);
}

ComputeBudget& ProcessComputeBudget() {
  static ComputeBudget& budget = []() -> ComputeBudget& {
    std::lock_guard lock(process_mutex);
    process_created = true;
    static ComputeBudget instance(process_threads > 0 ? process_threads : AvailableCores(),
                                  process_regular_nice);
    return instance;
  }();
  return budget;
}

bool SetProcessComputeThreads(int threads) {
  std::lock_guard lock(process_mutex);
  if (process_created) return false;
  process_threads = std::max(1, threads);
  return true;
}

bool SetProcessRegularNice(int steps) {
  std::lock_guard lock(process_mutex);
  if (process_created) return false;
  process_regular_nice = steps;
  return true;
}

}  // namespace braid
