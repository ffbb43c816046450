#include "scheduler/model_scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <limits>

namespace braid {
namespace {

// True when two requests' inputs can share a batch: equal dims after the
// batch dimension (they differ only where the config has variable dims).
bool SameItemShapes(const InferenceRequest& a, const InferenceRequest& b) {
  for (std::size_t i = 0; i < a.inputs.size(); ++i) {
    const Shape& x = a.inputs[i].shape();
    const Shape& y = b.inputs[i].shape();
    if (x.size() != y.size() || !std::equal(x.begin() + 1, x.end(), y.begin() + 1)) return false;
  }
  return true;
}

}  // namespace

void DurationHistogram::Add(Duration d) {
  double us = ToMicros(d);
  std::size_t bucket = 0;
  while (bucket < std::size(kBoundsUs) && us > kBoundsUs[bucket]) ++bucket;
  ++counts[bucket];
  ++count;
  sum_us += us;
}

Result<Tensor> ConcatenateBatch(const std::vector<const Tensor*>& parts) {
  const Tensor& first = *parts.front();
  Shape shape = first.shape();
  std::size_t bytes = 0;
  shape[0] = 0;
  for (const Tensor* part : parts) {
    shape[0] += part->shape()[0];
    bytes += part->byte_size();
  }
  if (first.dtype() == DataType::kBytes) {
    auto buffer = std::make_shared<std::vector<std::byte>>(bytes);
    std::size_t offset = 0;
    for (const Tensor* part : parts) {
      std::memcpy(buffer->data() + offset, part->data(), part->byte_size());
      offset += part->byte_size();
    }
    std::byte* data = buffer->data();
    return Tensor::Wrap(DataType::kBytes, std::move(shape), data, bytes, std::move(buffer));
  }
  BRAID_ASSIGN_OR_RETURN(Tensor batch, Tensor::Allocate(first.dtype(), std::move(shape)));
  std::size_t offset = 0;
  for (const Tensor* part : parts) {
    std::memcpy(batch.mutable_data() + offset, part->data(), part->byte_size());
    offset += part->byte_size();
  }
  return batch;
}

ModelScheduler::ModelScheduler(ModelPtr model, Clock& clock, SchedulerOptions options)
    : model_(std::move(model)),
      clock_(clock),
      options_(options),
      batching_(options.batching.value_or(model_->config().dynamic_batching.enabled) &&
                model_->config().max_batch_size > 0),
      max_batch_(std::max(1, model_->config().max_batch_size)),
      regular_instances_(
          model_->instance_count() -
          std::min<std::size_t>(model_->config().instance_group.priority_instances +
                                    model_->config().instance_group.background_instances,
                                model_->instance_count())),
      background_begin_(model_->instance_count() -
                        std::min<std::size_t>(model_->config().instance_group.background_instances,
                                              model_->instance_count())),
      offpeak_on_background_(background_begin_ < model_->instance_count()),
      levels_(model_->config().dynamic_batching.priority_levels),
      utilization_window_(options.utilization_window, static_cast<int>(regular_instances_)) {
  const DynamicBatching& batching = model_->config().dynamic_batching;
  for (int level = 1; level <= batching.priority_levels; ++level) {
    auto custom = batching.priority_queue_policy.find(level);
    levels_[level - 1].policy = custom != batching.priority_queue_policy.end()
                                    ? custom->second
                                    : batching.default_queue_policy;
    const auto& offpeak = batching.offpeak.priorities;
    levels_[level - 1].offpeak = std::find(offpeak.begin(), offpeak.end(), level) != offpeak.end();
  }
  stats_.batch_sizes.assign(max_batch_ + 1, 0);
  stats_.queue_time_by_level.resize(levels_.size());
  batch_us_.assign(max_batch_ + 1, 0.0);
  background_batch_us_.assign(max_batch_ + 1, 0.0);
  active_instances_ = regular_instances_;
  if (const AutoscaleConfig& scale = model_->config().autoscale; scale.enabled) {
    AutoscalePolicy policy;
    policy.min_instances = scale.min_instances;
    policy.max_instances = std::min<int>(scale.max_instances, regular_instances_);
    policy.scale_up_utilization = scale.scale_up_utilization;
    policy.scale_down_utilization = scale.scale_down_utilization;
    policy.window = std::chrono::seconds(scale.window_s);
    policy.cooldown = std::chrono::seconds(scale.cooldown_s);
    const TimePoint now = clock_.Now();
    autoscaler_.emplace(policy, model_->config().instance_group.count, now);
    active_instances_ = autoscaler_->instances();
    last_tick_ = now;
    next_tick_ = now + std::chrono::seconds(1);
  }
  utilization_window_.set_instances(static_cast<int>(active_instances_));
  stats_.active_instances = active_instances_;
  instance_busy_.assign(model_->instance_count(), false);
  preempt_asked_ = std::make_unique<std::atomic<bool>[]>(model_->instance_count());
  for (std::size_t i = 0; i < model_->instance_count(); ++i) {
    workers_.emplace_back([this, i] { WorkerLoop(i); });
  }
  expiry_thread_ = std::thread([this] { ExpiryLoop(); });
}

ModelScheduler::~ModelScheduler() { Shutdown(true); }

Status ModelScheduler::Enqueue(InferenceRequestPtr& request) {
  const DynamicBatching& batching = model_->config().dynamic_batching;
  int priority = request->priority;
  if (priority == 0) priority = batching.default_priority;
  if (priority == kLowestPriority) priority = batching.priority_levels;
  if (priority < 1 || priority > batching.priority_levels) {
    return InvalidArgument("priority {} is outside 1..{} for model '{}'", request->priority,
                           batching.priority_levels, model_->name());
  }
  std::int64_t items = 1;
  if (model_->config().max_batch_size > 0 && !request->inputs.empty() &&
      !request->inputs[0].shape().empty()) {
    items = request->inputs[0].shape()[0];
  }
  const bool caller_may_compute = request->caller_may_compute || request->light_completion;
  bool wake_priority_instances = false;
  {
    std::unique_lock lock(mutex_);
    if (stopping_) return Unavailable("model '{}' is shutting down", model_->name());
    Level& level = levels_[priority - 1];
    if (level.queue.size() >= level.policy.max_queue_size) {
      ++stats_.rejected;
      return MakeStatus(StatusCode::kResourceExhausted,
                        "model '{}' has {} requests queued at priority {}, its limit",
                        model_->name(), level.queue.size(), priority);
    }
    const TimePoint now = clock_.Now();
    std::int64_t timeout_us = level.policy.timeout_us;
    if (request->timeout_us >= 0 && level.policy.allow_timeout_override)
      timeout_us = request->timeout_us;
    TimePoint queue_deadline =
        timeout_us > 0 ? now + std::chrono::microseconds(timeout_us) : TimePoint::max();
    level.last_arrival = now;
    ++arrivals_since_tick_;  // demand, for the autoscaler, whether admitted or not
    TimePoint start_by = request->deadline;
    if (level.policy.timeout_action == QueuePolicy::TimeoutAction::kReject)
      start_by = std::min(start_by, queue_deadline);
    if (start_by != TimePoint::max()) {
      auto wait = ExpectedWaitLocked(priority - 1, now);
      if (wait &&
          now + std::chrono::duration_cast<Duration>(*wait * admission_margin_) >= start_by) {
        ++stats_.rejected;
        return MakeStatus(
            StatusCode::kResourceExhausted,
            "model '{}' would start the request after its timeout: about {:.1f} ms "
            "of work is ahead of it at priority {} and above, and it allows {:.1f} ms",
            model_->name(), ToMicros(*wait) / 1000, priority, ToMicros(start_by - now) / 1000);
      }
    }
    adaptive_.OnArrival(now);
    const TimePoint expires = std::min(queue_deadline, request->deadline);
    level.queue.push_back({std::move(request), now, queue_deadline, items});
    PublishLoadLocked(now);
    if (expires < expiry_sleeps_until_) expiry_.notify_one();
    if (caller_may_compute && RunInlineLocked(lock, static_cast<std::size_t>(priority - 1), now))
      return Status::Ok();
    PreemptForLocked(static_cast<std::size_t>(priority - 1), now);
    // Only a priority instance can start it now when every regular one is
    // busy; an off-peak request may be the background instances'.
    wake_priority_instances =
        (regular_instances_ < background_begin_ && running_.size() >= active_instances_) ||
        (offpeak_on_background_ && level.offpeak);
  }
  work_.notify_one();
  if (wake_priority_instances) standby_.notify_all();
  return Status::Ok();
}

void ModelScheduler::WidenAdmissionMarginLocked() {
  admission_margin_ = std::min(kMaxAdmissionMargin, admission_margin_ * 1.2);
}

void ModelScheduler::CompleteUnlocked(std::unique_lock<std::mutex>& lock,
                                      std::vector<Completion>* done, bool here) {
  lock.unlock();
  auto batch = std::make_shared<std::vector<Completion>>();
  for (auto& [request, result] : *done) {
    if (here || request->light_completion) {
      request->on_complete(std::move(result));
    } else {
      batch->emplace_back(std::move(request), std::move(result));
    }
  }
  done->clear();
  auto run = [batch] {
    for (auto& [request, result] : *batch) request->on_complete(std::move(result));
  };
  if (!batch->empty() && (options_.completions == nullptr || !options_.completions->Submit(run)))
    run();
  lock.lock();
}

void ModelScheduler::Poke() {
  std::lock_guard lock(mutex_);  // orders the flag reads after the caller's Cancel()
  expiry_.notify_one();
}

void ModelScheduler::Shutdown(bool drain) {
  std::lock_guard shutdown_lock(shutdown_mutex_);
  // Fails whatever is still queued so that every callback runs once.
  auto fail_queued = [this] {
    std::vector<Completion> done;
    {
      std::lock_guard lock(mutex_);
      auto fail_all = [&](std::deque<Pending>& queue) {
        for (auto& pending : queue) {
          InferenceResult result;
          result.status =
              Unavailable("model '{}' shut down before the request ran", model_->name());
          result.queue_time = clock_.Now() - pending.enqueued;
          done.emplace_back(std::move(pending.request), std::move(result));
        }
        queue.clear();
      };
      for (auto& level : levels_) fail_all(level.queue);
      fail_all(delayed_);
    }
    for (auto& [request, result] : done) request->on_complete(std::move(result));
  };
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && workers_.empty() && !expiry_thread_.joinable()) return;
    stopping_ = true;
    drain_ = drain;
  }
  if (!drain) fail_queued();
  work_.notify_all();
  standby_.notify_all();
  for (auto& worker : workers_) worker.join();
  workers_.clear();
  {
    std::unique_lock lock(mutex_);
    inline_done_.wait(lock, [&] { return inline_runs_ == 0; });
    expiry_stop_ = true;
  }
  expiry_.notify_one();
  if (expiry_thread_.joinable()) expiry_thread_.join();
  fail_queued();  // a model without instances has nobody to drain its queue
}

bool ModelScheduler::QueuesEmptyLocked(bool offpeak) const {
  if (!delayed_.empty()) return false;
  return std::all_of(levels_.begin(), levels_.end(), [offpeak](const Level& l) {
    return l.queue.empty() || (l.offpeak && !offpeak);
  });
}

std::size_t ModelScheduler::QueuedItemsLocked(bool include_offpeak) const {
  std::size_t items = 0;
  for (const auto& level : levels_) {
    if (level.offpeak && !include_offpeak) continue;
    for (const auto& pending : level.queue) items += pending.items;
  }
  for (const auto& pending : delayed_) items += pending.items;
  return items;
}

void ModelScheduler::ExpireLocked(TimePoint now, std::vector<Completion>* done) {
  auto drop = [&](Pending& pending, Status status, std::uint64_t* counter) {
    ++*counter;
    InferenceResult result;
    result.status = std::move(status);
    result.queue_time = now - pending.enqueued;
    done->emplace_back(std::move(pending.request), std::move(result));
  };
  auto sweep = [&](std::deque<Pending>& queue, const QueuePolicy* policy) {
    for (auto it = queue.begin(); it != queue.end();) {
      InferenceRequest& request = *it->request;
      // The deadline first: a gRPC call past its deadline is cancelled too.
      if (now >= request.deadline) {
        if (policy != nullptr) WidenAdmissionMarginLocked();
        drop(*it,
             MakeStatus(StatusCode::kDeadlineExceeded,
                        "request to model '{}' passed its deadline after {:.0f} us queued",
                        model_->name(), ToMicros(now - it->enqueued)),
             &stats_.timed_out);
      } else if (request.cancellation && request.cancellation->cancelled()) {
        drop(*it,
             MakeStatus(StatusCode::kCancelled, "request to model '{}' was cancelled",
                        model_->name()),
             &stats_.cancelled);
      } else if (now >= it->queue_deadline) {
        if (policy != nullptr && policy->timeout_action == QueuePolicy::TimeoutAction::kDelay) {
          ++stats_.delayed;
          it->queue_deadline = TimePoint::max();
          delayed_.push_back(std::move(*it));
        } else {
          WidenAdmissionMarginLocked();
          drop(*it,
               MakeStatus(StatusCode::kDeadlineExceeded,
                          "request to model '{}' timed out after {:.0f} us queued", model_->name(),
                          ToMicros(now - it->enqueued)),
               &stats_.timed_out);
        }
      } else {
        ++it;
        continue;
      }
      it = queue.erase(it);
    }
  };
  const std::size_t before = done->size();
  for (auto& level : levels_) sweep(level.queue, &level.policy);
  sweep(delayed_, nullptr);
  if (done->size() != before) PublishLoadLocked(now);
}

bool ModelScheduler::OffpeakDeferredLocked(TimePoint now) {
  double utilization = utilization_window_.Compute(now, running_);
  PublishUtilizationLocked(now, utilization);
  if (stopping_) return false;  // draining: run everything
  return utilization > model_->config().dynamic_batching.offpeak.defer_above_utilization;
}

ModelScheduler::Decision ModelScheduler::DecideLocked(TimePoint now) {
  Decision decision;
  const bool deferred = OffpeakDeferredLocked(now);
  // The earliest event that can change the decision: a timeout or deadline.
  for (const auto& pending : delayed_)
    decision.wake_at = std::min(decision.wake_at, pending.request->deadline);
  bool offpeak_waiting = false;
  TimePoint oldest = TimePoint::max();
  for (const auto& level : levels_) {
    for (const auto& pending : level.queue) {
      decision.wake_at =
          std::min({decision.wake_at, pending.queue_deadline, pending.request->deadline});
    }
    if (level.queue.empty() || (level.offpeak && offpeak_on_background_)) continue;
    if (level.offpeak && deferred) {
      offpeak_waiting = true;
      continue;
    }
    oldest = std::min(oldest, level.queue.front().enqueued);
  }
  if (!delayed_.empty()) oldest = std::min(oldest, delayed_.front().enqueued);
  if (offpeak_waiting)
    decision.wake_at = std::min(decision.wake_at, now + options_.offpeak_recheck);
  if (oldest == TimePoint::max()) return decision;  // nothing eligible

  const std::size_t items = QueuedItemsLocked(!deferred && !offpeak_on_background_);
  const DynamicBatching& config = model_->config().dynamic_batching;
  if (!batching_ || stopping_ || items >= static_cast<std::size_t>(max_batch_)) {
    decision.dispatch = true;
    return decision;
  }
  const TimePoint window_end = oldest + std::chrono::microseconds(config.max_queue_delay_us);
  if (now >= window_end) {
    decision.dispatch = true;
    return decision;
  }
  if (config.adaptive) {
    auto wait = adaptive_.WaitUntil();
    if (!wait || *wait <= now) {
      decision.dispatch = true;
      return decision;
    }
    decision.wake_at = std::min({decision.wake_at, *wait, window_end});
    return decision;
  }
  const auto& preferred = config.preferred_batch_size;
  if (!preferred.empty() &&
      (items >= static_cast<std::size_t>(preferred.back()) ||
       std::find(preferred.begin(), preferred.end(), static_cast<int>(items)) != preferred.end())) {
    decision.dispatch = true;
    return decision;
  }
  decision.wake_at = std::min(decision.wake_at, window_end);
  return decision;
}

double ModelScheduler::ExpectedBatchUsLocked(std::int64_t items, bool background) const {
  const std::vector<double>& times = background ? background_batch_us_ : batch_us_;
  if (times[items] > 0) return times[items];
  for (std::int64_t step = 1; step <= max_batch_; ++step) {
    for (std::int64_t size : {items - step, items + step}) {
      if (size >= 1 && size <= max_batch_ && times[size] > 0)
        return times[size] * static_cast<double>(items) / static_cast<double>(size);
    }
  }
  return 0;
}

std::int64_t ModelScheduler::BlockingCapLocked(std::size_t level, TimePoint now,
                                               std::int64_t target) const {
  const std::int64_t budget_us = model_->config().dynamic_batching.priority_blocking_us;
  if (budget_us <= 0 || target <= 1) return target;
  // Off-peak (background) batches are always cut: interactive work of any
  // model may arrive while they run.
  const bool background = level < levels_.size() && levels_[level].offpeak;
  const bool urgent =
      background || std::any_of(levels_.begin(), levels_.begin() + std::min(level, levels_.size()),
                                [&](const Level& above) {
                                  return above.last_arrival &&
                                         now - *above.last_arrival < std::chrono::seconds(1);
                                });
  if (!urgent) return target;
  while (target > 1) {
    const double expected = ExpectedBatchUsLocked(target, background && offpeak_on_background_);
    if (expected == 0 || expected <= static_cast<double>(budget_us)) break;
    --target;
  }
  return target;
}

std::int64_t ModelScheduler::FullBatchLocked(std::size_t level, TimePoint now) const {
  if (!batching_) return 1;
  const auto& preferred = model_->config().dynamic_batching.preferred_batch_size;
  const std::int64_t target = preferred.empty() ? max_batch_ : preferred.back();
  return BlockingCapLocked(level, now, target);
}

std::optional<Duration> ModelScheduler::ExpectedWaitLocked(std::size_t level, TimePoint now) const {
  if (stats_.executions == 0) return std::nullopt;
  double wait_us = 0;
  // When every active instance is busy: the rest of the batch that ends
  // first, and at least a quarter of it (one that overran may not be about
  // to end).
  if (!running_.empty() && running_.size() >= active_instances_) {
    double rest_us = std::numeric_limits<double>::max();
    for (const auto& batch : running_) {
      rest_us = std::min(rest_us, std::max(batch.expected_us - ToMicros(now - batch.start),
                                           batch.expected_us / 4));
    }
    wait_us = rest_us;
  }
  // The levels above run first, in batches of up to `full` items; at its own
  // level the request joins the first batch that is not yet full.
  const std::int64_t full = FullBatchLocked(level, now);
  double queued_us = 0;
  for (std::size_t i = 0; i <= level; ++i) {
    std::int64_t items = 0;
    for (const auto& pending : levels_[i].queue) items += pending.items;
    queued_us += static_cast<double>(items / full) * ExpectedBatchUsLocked(full);
    if (i < level && items % full > 0) queued_us += ExpectedBatchUsLocked(items % full);
  }
  wait_us += queued_us / static_cast<double>(std::max<std::size_t>(1, active_instances_));
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double, std::micro>(wait_us));
}

std::size_t ModelScheduler::NextLevelLocked(TimePoint now) {
  const bool deferred = OffpeakDeferredLocked(now);
  for (std::size_t i = 0; i < levels_.size(); ++i) {
    if (levels_[i].queue.empty()) continue;
    if (!levels_[i].offpeak || !(deferred || offpeak_on_background_)) return i;
  }
  return levels_.size();
}

std::optional<std::size_t> ModelScheduler::BackgroundLevelLocked(TimePoint now,
                                                                 TimePoint* recheck) {
  for (std::size_t i = 0; i < levels_.size(); ++i) {
    if (!levels_[i].offpeak || levels_[i].queue.empty()) continue;
    if (OffpeakDeferredLocked(now)) {
      *recheck = now + options_.offpeak_recheck;
      return std::nullopt;
    }
    return i;
  }
  return std::nullopt;
}

std::optional<std::size_t> ModelScheduler::UrgentLevelLocked(TimePoint now) {
  if (running_.empty() || running_.size() < active_instances_) return std::nullopt;
  std::size_t running_level = levels_.size();
  for (const auto& batch : running_) running_level = std::min(running_level, batch.level);
  const std::size_t level = NextLevelLocked(now);
  if (level >= levels_.size() || level >= running_level) return std::nullopt;
  return level;
}

void ModelScheduler::PreemptForLocked(std::size_t level, TimePoint now) {
  if (!model_->config().dynamic_batching.preempt || stopping_) return;
  if (running_.empty() || running_.size() < active_instances_) return;  // a regular one is free
  for (std::size_t i = regular_instances_; i < background_begin_; ++i) {
    if (!instance_busy_[i]) return;  // a priority instance takes it
  }
  // Worth it only when waiting for the rest of a batch would cost the
  // request more than its own run.
  const double own_us = ExpectedBatchUsLocked(levels_[level].queue.back().items);
  const RunningBatch* stop = nullptr;
  for (const RunningBatch& batch : running_) {
    if (batch.level <= level || !batch.preemptible || preempt_asked_[batch.instance]) continue;
    if (batch.expected_us - ToMicros(now - batch.start) <= own_us) continue;
    if (stop == nullptr || batch.level > stop->level) stop = &batch;
  }
  if (stop != nullptr && !preempt_asked_[stop->instance].exchange(true))
    model_->Preempt(stop->instance);
}

ComputeClass ModelScheduler::ClassOfLevel(std::size_t level) const {
  return level < levels_.size() && levels_[level].offpeak ? ComputeClass::kBackground
                                                          : ComputeClass::kInteractive;
}

std::vector<ModelScheduler::Pending> ModelScheduler::TakeBatchLocked(TimePoint now,
                                                                     std::size_t level) {
  std::deque<Pending>* queue = level < levels_.size() ? &levels_[level].queue : &delayed_;
  std::vector<Pending> batch;
  if (queue->empty()) return batch;

  std::int64_t target = 1;
  if (batching_) {
    std::int64_t available = 0;
    for (const auto& pending : *queue) available += pending.items;
    target = std::min<std::int64_t>(available, max_batch_);
    const auto& preferred = model_->config().dynamic_batching.preferred_batch_size;
    for (auto it = preferred.rbegin(); it != preferred.rend(); ++it) {
      if (*it <= target) {
        target = *it;
        break;
      }
    }
    target = BlockingCapLocked(level, now, target);
  }
  std::int64_t items = 0;
  while (!queue->empty()) {
    Pending& next = queue->front();
    if (!batch.empty() &&
        (items + next.items > target || !SameItemShapes(*batch.front().request, *next.request))) {
      break;
    }
    items += next.items;
    batch.push_back(std::move(next));
    queue->pop_front();
  }
  return batch;
}

bool ModelScheduler::RunBatch(std::size_t instance, std::vector<Pending>& batch, TimePoint start,
                              std::vector<Completion>* done, Duration* compute, bool stoppable) {
  const std::size_t input_count = batch.front().request->inputs.size();
  std::vector<Tensor> inputs;
  Status status;
  if (batch.size() == 1) {
    inputs = batch.front().request->inputs;
  } else {
    for (std::size_t i = 0; i < input_count && status.ok(); ++i) {
      std::vector<const Tensor*> parts;
      for (const auto& pending : batch) parts.push_back(&pending.request->inputs[i]);
      auto tensor = ConcatenateBatch(parts);
      if (tensor.ok()) {
        inputs.push_back(std::move(tensor).value());
      } else {
        status = tensor.status();
      }
    }
  }
  // The batch may take until the last of its requests' deadlines.
  TimePoint deadline = TimePoint::min();
  for (const auto& pending : batch) deadline = std::max(deadline, pending.request->deadline);
  const Duration time_left = deadline == TimePoint::max()
                                 ? Duration::max()
                                 : std::max(Duration::zero(), deadline - clock_.Now());
  std::vector<Tensor> outputs;
  if (status.ok()) status = model_->Execute(instance, inputs, &outputs, time_left);
  *compute = clock_.Now() - start;
  if (stoppable && !status.ok() && preempt_asked_[instance]) return false;
  if (status.code() == StatusCode::kInvalidArgument && batch.size() > 1) {
    // One request's input the backend refuses (media it cannot decode)
    // must not fail the requests batched with it: each runs again alone,
    // and can no longer be stopped (unless an ask came first).
    if (stoppable && preempt_asked_[instance].exchange(true)) return false;
    for (auto& pending : batch) {
      std::vector<Pending> alone;
      alone.push_back(std::move(pending));
      Duration own{};
      RunBatch(instance, alone, clock_.Now(), done, &own, /*stoppable=*/false);
      *compute += own;
    }
    return true;
  }

  std::int64_t total = 0;
  for (const auto& pending : batch) total += pending.items;
  const bool batched = model_->config().max_batch_size > 0;
  if (status.ok() && batched) {
    for (const auto& output : outputs) {
      if (output.shape().empty() || output.shape()[0] != total) {
        status = Internal("model '{}' returned an output of shape {} for a batch of {}",
                          model_->name(), ShapeToString(output.shape()), total);
        break;
      }
    }
  }
  std::int64_t offset = 0;
  for (auto& pending : batch) {
    InferenceResult result;
    result.queue_time = start - pending.enqueued;
    result.compute_time = *compute;
    result.batch_size = static_cast<int>(total);
    result.status = status;
    if (status.ok()) {
      if (batch.size() == 1) {
        result.outputs = outputs;
      } else {
        for (const auto& output : outputs) {
          auto slice = output.Slice(offset, offset + pending.items);
          if (!slice.ok()) {
            result.status = slice.status();
            result.outputs.clear();
            break;
          }
          result.outputs.push_back(std::move(slice).value());
        }
      }
    }
    offset += pending.items;
    done->emplace_back(std::move(pending.request), std::move(result));
  }
  return true;
}

void ModelScheduler::WorkerLoop(std::size_t instance) {
  const bool background_instance = instance >= background_begin_;
  const bool priority_instance = !background_instance && instance >= regular_instances_;
  if (background_instance) {
    ComputeBudget::EnterBackgroundTier();
  } else if (!priority_instance && options_.budget != nullptr) {
    options_.budget->EnterRegularTier();
  }
  std::unique_lock lock(mutex_);
  std::vector<Completion> done;
  while (true) {
    TimePoint now = clock_.Now();
    ExpireLocked(now, &done);
    if (!done.empty()) {
      CompleteUnlocked(lock, &done);
      continue;
    }
    // Draining, each kind of instance serves what is left of its levels.
    TimePoint recheck = TimePoint::max();
    if (stopping_ && (priority_instance || !drain_ ||
                      (background_instance ? !BackgroundLevelLocked(now, &recheck)
                                           : QueuesEmptyLocked(!offpeak_on_background_)))) {
      break;
    }
    // The level a priority or background instance takes.
    std::optional<std::size_t> urgent;
    if (background_instance) {
      urgent = BackgroundLevelLocked(now, &recheck);
      if (!urgent) {
        clock_.WaitUntil(lock, standby_, recheck);
        continue;
      }
    } else if (priority_instance) {
      urgent = UrgentLevelLocked(now);
      if (!urgent) {
        clock_.WaitUntil(lock, standby_, TimePoint::max());
        continue;
      }
    } else if (instance >= active_instances_ && !stopping_) {  // parked by the autoscaler
      clock_.WaitUntil(lock, standby_, TimePoint::max());
      continue;
    } else if (instance_busy_[instance]) {  // an enqueuing thread runs a batch on it
      ++inline_waiters_;
      clock_.WaitUntil(lock, work_, TimePoint::max());
      --inline_waiters_;
      continue;
    } else if (Decision decision = DecideLocked(now); !decision.dispatch) {
      clock_.WaitUntil(lock, work_, decision.wake_at);
      continue;
    }
    ComputeBudget::Lease lease;
    if (options_.budget != nullptr) {
      const std::size_t level = urgent ? *urgent : NextLevelLocked(now);
      lock.unlock();
      lease = options_.budget->Acquire(model_->name(), ClassOfLevel(level),
                                       static_cast<int>(level) + 1);
      lock.lock();
      // The queues moved meanwhile: decide on what is there now.
      now = clock_.Now();
      ExpireLocked(now, &done);
      if (!done.empty()) continue;
      if (priority_instance && !(urgent = UrgentLevelLocked(now))) continue;
      if (background_instance && !(urgent = BackgroundLevelLocked(now, &recheck))) continue;
      if (instance_busy_[instance]) continue;  // an inline run took the instance meanwhile
    }
    // A background instance starts in a quiet moment (when its lease is
    // granted) but holds no lease while it runs: the kernel gives its
    // idle-class thread only the cores no one else wants, and a lease it
    // held while starved would keep interactive batches waiting.
    if (background_instance) lease = {};
    const std::size_t batch_level = urgent ? *urgent : NextLevelLocked(now);
    std::vector<Pending> batch = TakeBatchLocked(now, batch_level);
    if (batch.empty()) continue;
    RunTakenBatch(lock, instance, batch_level, now, batch, std::move(lease), &done);
    CompleteUnlocked(lock, &done);
  }
}

bool ModelScheduler::RunInlineLocked(std::unique_lock<std::mutex>& lock, std::size_t level,
                                     TimePoint now) {
  if (options_.inline_max_us <= 0 || stopping_) return false;
  if (levels_[level].offpeak && offpeak_on_background_) return false;  // the background's
  // Only the request just queued, and it would start at once on an idle
  // instance.
  if (!delayed_.empty() || running_.size() >= active_instances_) return false;
  std::size_t queued = 0;
  for (const auto& l : levels_) queued += l.queue.size();
  if (queued != 1) return false;
  const double expected = ExpectedBatchUsLocked(levels_[level].queue.front().items);
  if (expected <= 0 || expected > static_cast<double>(options_.inline_max_us)) return false;
  // When the next request is likely to arrive during the run, it would wait
  // for it, and a worker's batch would serve both with one hand-off.
  const auto gap = adaptive_.MeanGap();
  if (gap && ToMicros(*gap) < kInlineGapFactor * expected) return false;
  std::size_t instance = 0;
  while (instance < active_instances_ && instance_busy_[instance]) ++instance;
  if (instance == active_instances_ || !DecideLocked(now).dispatch) return false;
  ComputeBudget::Lease lease;
  if (options_.budget != nullptr) {
    lease = options_.budget->TryAcquire(model_->name(), ClassOfLevel(level),
                                        static_cast<int>(level) + 1);
    if (!lease) return false;
  }
  std::vector<Pending> batch = TakeBatchLocked(now, level);
  ++inline_runs_;
  ++stats_.inline_batches;
  std::vector<Completion> done;
  RunTakenBatch(lock, instance, level, now, batch, std::move(lease), &done);
  // A worker that found the instance taken waits for it, and a batch stopped
  // for a priority one is queued again; otherwise an idle worker sleeps on.
  if (inline_waiters_ > 0 || !QueuesEmptyLocked(!offpeak_on_background_)) work_.notify_all();
  CompleteUnlocked(lock, &done, true);
  if (--inline_runs_ == 0) inline_done_.notify_all();
  return true;
}

void ModelScheduler::RunTakenBatch(std::unique_lock<std::mutex>& lock, std::size_t instance,
                                   std::size_t batch_level, TimePoint now,
                                   std::vector<Pending>& batch, ComputeBudget::Lease lease,
                                   std::vector<Completion>* done) {
  const bool priority_instance = instance >= regular_instances_;
  std::int64_t batch_items = 0;
  for (const auto& pending : batch) {
    const TimePoint start_by = std::min(pending.request->deadline, pending.queue_deadline);
    if (now >= start_by) ++stats_.computed_late;
    if (start_by != TimePoint::max())
      admission_margin_ = std::max(kMinAdmissionMargin, admission_margin_ * 0.999);
    batch_items += pending.items;
  }
  // A priority or background instance's batches stay out of the running
  // list, which describes the regular instances (utilisation, admission,
  // urgency).
  const bool preemptible =
      std::none_of(batch.begin(), batch.end(), [](const Pending& p) { return p.preempted; });
  const RunningBatch running{now,
                             ExpectedBatchUsLocked(std::min<std::int64_t>(batch_items, max_batch_)),
                             batch_level, instance, preemptible};
  if (!priority_instance) running_.push_back(running);
  // The batch left its queue (and a regular one runs now).
  PublishLoadLocked(now);
  instance_busy_[instance] = true;
  preempt_asked_[instance] = false;
  lock.unlock();

  Duration compute{};
  const bool finished = RunBatch(instance, batch, now, done, &compute);
  lease = {};
  const TimePoint end = clock_.Now();

  lock.lock();
  instance_busy_[instance] = false;
  if (!priority_instance) {
    running_.erase(std::find(running_.begin(), running_.end(), running));
    utilization_window_.AddBusy(now, end);
  }
  if (!finished) {
    // Back to the front of its queue, in order, for after the urgent batch.
    ++stats_.preempted;
    std::deque<Pending>& queue =
        batch_level < levels_.size() ? levels_[batch_level].queue : delayed_;
    for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
      it->preempted = true;
      queue.push_front(std::move(*it));
    }
    PublishLoadLocked(end);
    return;
  }
  std::int64_t items = 0;
  for (const auto& [request, result] : *done) {
    items = result.batch_size;
    stats_.queue_time.Add(result.queue_time);
    if (batch_level < levels_.size())
      stats_.queue_time_by_level[batch_level].Add(result.queue_time);
    if (result.status.ok()) {
      ++stats_.success;
    } else {
      ++stats_.failure;
    }
  }
  ++stats_.executions;
  stats_.inferences += items;
  stats_.compute_time.Add(compute);
  // A background instance's times, which include its idle-class thread's
  // waits for cores, only cut its own batches.
  const bool background = instance >= background_begin_;
  if (items <= max_batch_) {
    ++stats_.batch_sizes[items];
    double& expected = (background ? background_batch_us_ : batch_us_)[items];
    expected = expected == 0 ? ToMicros(compute) : 0.8 * expected + 0.2 * ToMicros(compute);
  }
  if (!background) adaptive_.OnBatch(static_cast<int>(items), compute);
  PublishLoadLocked(end);
}

TimePoint ModelScheduler::NextExpiryLocked() const {
  TimePoint next = TimePoint::max();
  for (const auto& level : levels_) {
    for (const auto& pending : level.queue) {
      next = std::min({next, pending.queue_deadline, pending.request->deadline});
    }
  }
  for (const auto& pending : delayed_) next = std::min(next, pending.request->deadline);
  return next;
}

void ModelScheduler::ExpiryLoop() {
  std::unique_lock lock(mutex_);
  std::vector<Completion> done;
  while (!expiry_stop_) {
    ExpireLocked(clock_.Now(), &done);
    if (!done.empty()) {
      CompleteUnlocked(lock, &done);
      continue;
    }
    const TimePoint now = clock_.Now();
    if (now >= next_tick_) AutoscaleTickLocked(now);
    if (now >= next_utilization_) {
      next_utilization_ = TimePoint::max();
      PublishUtilizationLocked(now, utilization_window_.Compute(now, running_));
    }
    expiry_sleeps_until_ = std::min({NextExpiryLocked(), next_tick_, next_utilization_});
    clock_.WaitUntil(lock, expiry_, expiry_sleeps_until_);
    expiry_sleeps_until_ = TimePoint::min();
  }
}

void ModelScheduler::AutoscaleTickLocked(TimePoint now) {
  const double seconds = std::chrono::duration<double>(now - last_tick_).count();
  const double rate = seconds > 0 ? arrivals_since_tick_ / seconds : 0;
  arrivals_since_tick_ = 0;
  last_tick_ = now;
  next_tick_ = now + std::chrono::seconds(1);
  const double utilization = utilization_window_.Compute(now, running_);
  PublishUtilizationLocked(now, utilization);
  const auto target = static_cast<std::size_t>(autoscaler_->Observe(now, utilization, rate));
  if (target == active_instances_) return;
  spdlog::info(
      "model {} v{}: {} → {} instances (utilisation {:.2f}, predicted {:.2f}, {:.1f} req/s)",
      model_->name(), model_->version(), active_instances_, target, utilization,
      autoscaler_->predicted_utilization(), rate);
  ++(target > active_instances_ ? stats_.scale_ups : stats_.scale_downs);
  active_instances_ = target;
  stats_.active_instances = target;
  utilization_window_.set_instances(static_cast<int>(target));
  PublishLoadLocked(now);
  work_.notify_all();
  standby_.notify_all();
}

void ModelScheduler::PublishLoadLocked(TimePoint now) {
  backlog_.store(running_.size() >= active_instances_ && !QueuesEmptyLocked(false),
                 std::memory_order_relaxed);
  if (next_utilization_ != TimePoint::max() ||
      (running_.empty() && utilization_.load(std::memory_order_relaxed) == 0))
    return;
  next_utilization_ = now + options_.utilization_window / 10;
  if (next_utilization_ < expiry_sleeps_until_) expiry_.notify_one();
}

void ModelScheduler::PublishUtilizationLocked(TimePoint now, double utilization) {
  utilization_.store(utilization, std::memory_order_relaxed);
  PublishLoadLocked(now);
}

double ModelScheduler::CurrentLoad() const {
  return backlog_.load(std::memory_order_relaxed) ? 1.0
                                                  : utilization_.load(std::memory_order_relaxed);
}

std::size_t ModelScheduler::queued_items() const {
  std::lock_guard lock(mutex_);
  return QueuedItemsLocked(true);
}

SchedulerStats ModelScheduler::Stats() const {
  std::lock_guard lock(mutex_);
  SchedulerStats stats = stats_;
  stats.queue_depth.clear();
  for (const auto& level : levels_) stats.queue_depth.push_back(level.queue.size());
  stats.delayed_depth = delayed_.size();
  stats.utilization = utilization_window_.Compute(clock_.Now(), running_);
  return stats;
}

}  // namespace braid
