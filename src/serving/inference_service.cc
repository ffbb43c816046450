#include "serving/inference_service.h"

#include <spdlog/spdlog.h>

#include <limits>

#include "backends/remote/remote_backend.h"
#include "cache/canonical_keys.h"

namespace braid {

Tensor AsOneItem(const ModelConfig& config, std::string_view input, Tensor tensor) {
  const TensorSpec* spec = config.FindInput(input);
  if (config.max_batch_size <= 0 || spec == nullptr || tensor.shape().size() != spec->dims.size())
    return tensor;
  Shape batched = {1};
  batched.insert(batched.end(), tensor.shape().begin(), tensor.shape().end());
  auto reshaped = tensor.Reshape(std::move(batched));
  return reshaped.ok() ? *std::move(reshaped) : tensor;
}

Status ApplyInferParameter(std::string_view key, const ParameterValue& value,
                           InferOptions* options) {
  if (key == "cache") {
    const bool* flag = std::get_if<bool>(&value);
    if (flag == nullptr) return InvalidArgument("parameter 'cache' must be true or false");
    options->use_cache = *flag;
    return Status::Ok();
  }
  if (key != "priority" && key != "timeout") return Status::Ok();
  std::int64_t number = 0;
  if (const auto* signed_value = std::get_if<std::int64_t>(&value)) {
    number = *signed_value;
  } else if (const auto* unsigned_value = std::get_if<std::uint64_t>(&value)) {
    if (*unsigned_value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      return InvalidArgument("parameter '{}' {} is out of range", key, *unsigned_value);
    number = static_cast<std::int64_t>(*unsigned_value);
  } else {
    return InvalidArgument("parameter '{}' must be an integer", key);
  }
  if (key == "priority") {
    BRAID_ASSIGN_OR_RETURN(options->priority, RequestPriority(number));
    return Status::Ok();
  }
  if (number < 0) return InvalidArgument("parameter 'timeout' must not be negative");
  options->timeout_us = number;
  return Status::Ok();
}

InferenceService::InferenceService(ModelRepository& repository, Clock& clock,
                                   SchedulerOptions options, ResultCache* cache)
    : repository_(repository), clock_(clock), cache_(cache), options_(options) {
  if (options_.completions == nullptr) options_.completions = &completions_;
}

std::optional<ResultCacheStats> InferenceService::cache_stats() const {
  if (cache_ == nullptr) return std::nullopt;
  return cache_->Stats();
}

InferenceService::~InferenceService() { Shutdown(true); }

void InferenceService::Shutdown(bool drain) {
  admitting_ = false;
  std::map<std::string, std::map<std::int64_t, SchedulerPtr>, std::less<>> schedulers;
  std::map<std::string, std::shared_ptr<WorkflowScheduler>, std::less<>> served;
  {
    std::unique_lock lock(mutex_);
    schedulers.swap(schedulers_);
    served.swap(served_);
    serving_ = false;
  }
  // The models first: their queued requests run (drain) or are answered
  // UNAVAILABLE, and the service admits no more, so a workflow run's later
  // model calls are refused and the runs the served schedulers wait for end.
  for (auto& [name, versions] : schedulers) {
    for (auto& [version, scheduler] : versions) scheduler->Shutdown(drain);
  }
  for (auto& [name, scheduler] : served) scheduler->Shutdown(drain);
  retirements_.WaitIdle();
  completions_.WaitIdle();
}

Status InferenceService::LoadAll() {
  BRAID_ASSIGN_OR_RETURN(auto names, repository_.Scan());
  spdlog::info("loading {} models from {}", names.size(), repository_.root().string());
  return repository_.LoadAll([this](const std::string& name, const Status& status,
                                    std::size_t position, std::size_t count, double seconds) {
    SyncSchedulers(name);
    if (status.ok()) {
      spdlog::info("model {} ready ({}/{}, {:.1f} s)", name, position, count, seconds);
    } else {
      spdlog::warn("model {} is unavailable ({}/{}): {}", name, position, count, status.message());
    }
  });
}

Status InferenceService::Load(const std::string& name) {
  Status status = repository_.Load(name);
  SyncSchedulers(name);
  return status;
}

Status InferenceService::Unload(const std::string& name) {
  BRAID_RETURN_IF_ERROR(repository_.Unload(name));
  SyncSchedulers(name);
  return Status::Ok();
}

void InferenceService::SyncSchedulers(const std::string& name) {
  std::map<std::int64_t, ModelPtr> loaded;
  for (const auto& status : repository_.Index()) {
    if (status.name != name || status.version == 0 || status.state != ModelState::kReady) continue;
    if (auto model = repository_.Get(name, status.version); model.ok())
      loaded[status.version] = *model;
  }
  std::vector<SchedulerPtr> retired;
  {
    std::unique_lock lock(mutex_);
    auto& versions = schedulers_[name];
    for (auto it = versions.begin(); it != versions.end();) {
      auto found = loaded.find(it->first);
      if (found == loaded.end() || found->second.get() != &it->second->model()) {
        retired.push_back(std::move(it->second));
        it = versions.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& [version, model] : loaded) {
      if (!versions.count(version))
        versions[version] = std::make_shared<ModelScheduler>(model, clock_, OptionsFor(*model));
    }
    if (versions.empty()) schedulers_.erase(name);
    serving_ = !schedulers_.empty();
  }
  for (auto& scheduler : retired) Retire(std::move(scheduler));
}

void InferenceService::Serve(const std::string& name,
                             std::shared_ptr<WorkflowScheduler> scheduler) {
  std::shared_ptr<Scheduler> replaced;
  {
    std::unique_lock lock(mutex_);
    replaced = std::exchange(served_[name], std::move(scheduler));
  }
  if (replaced) Retire(std::move(replaced));
}

void InferenceService::Run(std::string_view name, NamedTensors inputs, RunOptions options,
                           EventSink sink) {
  std::shared_ptr<WorkflowScheduler> served;
  if (admitting_) {
    std::shared_lock lock(mutex_);
    if (auto found = served_.find(name); found != served_.end()) served = found->second;
  }
  if (served) return served->Start(std::move(inputs), std::move(options), std::move(sink));
  sink(admitting_ ? RefusedRunEvent(StatusCode::kNotFound,
                                    fmt::format("workflow '{}' is not served", name))
                  : RefusedRunEvent(StatusCode::kUnavailable, "the server is shutting down"));
}

bool InferenceService::ServesWorkflow(std::string_view name, std::int64_t version) const {
  {
    std::shared_lock lock(mutex_);
    if (version > 1 || !served_.count(name)) return false;
  }
  return !repository_.Knows(name);
}

std::string_view InferenceService::MetricsLabel(std::string_view name) const {
  return GetModel(name).ok() || ServesWorkflow(name) ? name : "unknown";
}

void InferenceService::Retire(std::shared_ptr<Scheduler> scheduler) {
  retirements_.Submit([scheduler = std::move(scheduler)] { scheduler->Shutdown(true); });
}

Result<std::shared_ptr<const Tokenizer>> InferenceService::TokenizerFor(std::string_view model) {
  BRAID_ASSIGN_OR_RETURN(ModelPtr served, GetModel(model));
  {
    std::lock_guard lock(tokenizers_mutex_);
    auto found = tokenizers_.find(model);
    if (found != tokenizers_.end() && found->second.first == served->version())
      return found->second.second;
  }
  BRAID_ASSIGN_OR_RETURN(
      TokenizerPtr loaded,
      LoadModelTokenizer(served->config().directory / std::to_string(served->version())));
  std::shared_ptr<const Tokenizer> shared = std::move(loaded);
  std::lock_guard lock(tokenizers_mutex_);
  auto& cached = tokenizers_[std::string(model)];
  // Two first calls may race: the newer version stays.
  if (cached.second == nullptr || cached.first <= served->version())
    cached = {served->version(), shared};
  return shared;
}

Result<ModelPtr> InferenceService::GetModel(std::string_view name, std::int64_t version) const {
  return repository_.Get(name, version);
}

void InferenceService::Infer(std::string_view model_name, std::int64_t version,
                             std::map<std::string, Tensor> inputs, const InferOptions& options,
                             InferCallback done) {
  if (!admitting_) {
    done(Unavailable("the server is shutting down"));
    return;
  }
  SchedulerPtr scheduler;
  std::shared_ptr<WorkflowScheduler> served;
  {
    std::shared_lock lock(mutex_);
    auto it = schedulers_.find(model_name);
    if (it != schedulers_.end() && !it->second.empty()) {
      auto found = version == 0 ? std::prev(it->second.end()) : it->second.find(version);
      if (found != it->second.end()) scheduler = found->second;
    } else if (auto other = served_.find(model_name); other != served_.end() && version <= 1) {
      served = other->second;
    }
  }
  // A model the repository knows (loading, failed, unloaded) is never
  // shadowed by a served workflow of its name.
  if (served && repository_.Knows(model_name)) served = nullptr;
  if (served) {
    auto ordered = served->shared_model()->OrderInputs(std::move(inputs));
    if (!ordered.ok()) {
      done(ordered.status());
      return;
    }
    Schedule(*served, std::move(ordered).value(), options, std::nullopt, std::move(done));
    return;
  }
  if (!scheduler) {
    auto model = repository_.Get(model_name, version);
    done(model.ok() ? Unavailable("model '{}' has no scheduler", model_name) : model.status());
    return;
  }
  ModelPtr model = scheduler->shared_model();
  auto ordered = model->OrderInputs(std::move(inputs));
  if (!ordered.ok()) {
    done(ordered.status());
    return;
  }
  // The result cache: a hit answers at once, without the scheduler; a miss
  // that an identical request is already computing waits for that result.
  const auto& cache_config = model->config().response_cache;
  if (cache_ == nullptr || !cache_config.enable || !options.use_cache) {
    Schedule(*scheduler, std::move(ordered).value(), options, std::nullopt, std::move(done));
    return;
  }
  if (cache_config.key == MediaKey::kExact) {
    const Hash128 key = KeyOf(*model, *ordered);
    return LookUp(scheduler, key, std::move(ordered).value(), options, std::move(done));
  }
  // Encoded media keyed by a canonical form: decoded on the keying pool,
  // off the caller's (a network) thread.
  ++in_flight_;
  auto key_and_look_up = [this, scheduler, model, inputs = std::move(ordered).value(), options,
                          done = std::move(done)]() mutable {
    const Hash128 key = KeyOf(*model, inputs);
    LookUp(scheduler, key, std::move(inputs), options, std::move(done));
    FinishOne();
  };
  if (!keying_.Submit(key_and_look_up)) key_and_look_up();
}

Hash128 InferenceService::KeyOf(const Model& model, const std::vector<Tensor>& inputs) {
  Hasher hasher;
  hasher.Add(model.name()).Add(model.version());
  const MediaKey media = model.config().response_cache.key;
  for (const Tensor& tensor : inputs) {
    if (media == MediaKey::kExact || tensor.dtype() != DataType::kBytes ||
        tensor.element_count() != 1) {
      hasher.Add(tensor);
      continue;
    }
    const Hash128 exact = Hasher().Add(tensor).Finish();
    const std::string_view bytes = FirstString(tensor);
    if (media == MediaKey::kPerceptual) {
      hasher.Add(PerceptualImageKey(*cache_, exact, bytes, image_limits_));
    } else {
      hasher.Add(PcmAudioKey(*cache_, bytes, audio_limits_).value_or(exact));
    }
  }
  return hasher.Finish();
}

void InferenceService::LookUp(const SchedulerPtr& scheduler, const Hash128& key,
                              std::vector<Tensor> inputs, const InferOptions& options,
                              InferCallback done) {
  ++in_flight_;  // the lookup, which may end on one of the cache's threads
  cache_->Lookup(key, [this, scheduler, key, inputs = std::move(inputs), options,
                       done = std::move(done)](std::optional<ResultCache::Hit> hit) mutable {
    if (hit) {
      InferResponse response{scheduler->shared_model(), std::move(hit->value), Duration{},
                             Duration{}};
      response.cached = true;
      Answer(done, std::move(response));
      return;
    }
    LeadOrWait(scheduler, std::move(inputs), options, key, std::move(done));
    FinishOne();
  });
}

void InferenceService::LeadOrWait(const SchedulerPtr& scheduler, std::vector<Tensor> inputs,
                                  const InferOptions& options, const Hash128& key,
                                  InferCallback done) {
  ModelPtr model = scheduler->shared_model();
  ++in_flight_;
  auto waiter = [this, scheduler, model, inputs, options,
                 done](const Result<std::vector<Tensor>>& result) mutable {
    if (result.ok()) {
      InferResponse response{model, *result, Duration{}, Duration{}};
      response.cached = true;
      Answer(done, std::move(response));
      return;
    }
    // The leader failed (its client may have gone): compute this one itself.
    Schedule(*scheduler, inputs, options, std::nullopt, std::move(done));
    FinishOne();
  };
  if (cache_->Lead(key, options.priority, std::move(waiter)) == ResultCache::Flight::kWait) return;
  // Leading, alone or beside a less urgent leader: the result fills the cache.
  Schedule(*scheduler, std::move(inputs), options, key, std::move(done));
  FinishOne();  // the waiter was not kept
}

void InferenceService::Schedule(Scheduler& scheduler, std::vector<Tensor> inputs,
                                const InferOptions& options, std::optional<Hash128> lead,
                                InferCallback done) {
  ModelPtr model = scheduler.shared_model();
  auto request = std::make_unique<InferenceRequest>();
  request->inputs = std::move(inputs);
  request->priority = options.priority;
  request->timeout_us = options.timeout_us;
  request->deadline = options.deadline;
  request->cancellation = options.cancellation;
  // A leader's callback also fills the cache and answers its waiters.
  request->light_completion = options.light_completion && !lead;
  request->caller_may_compute = options.caller_may_compute && !lead;
  ++in_flight_;
  const Duration ttl = std::chrono::seconds(model->config().response_cache.ttl_s);
  request->on_complete = [this, model, done, lead, ttl](InferenceResult result) mutable {
    if (lead) {
      if (result.status.ok()) {
        cache_->Put(*lead, result.outputs, ttl);
        cache_->Land(*lead, result.outputs);
      } else {
        cache_->Land(*lead, result.status);
      }
    }
    if (result.status.ok()) {
      Answer(done, InferResponse{model, std::move(result.outputs), result.queue_time,
                                 result.compute_time});
    } else {
      Answer(done, std::move(result.status));
    }
  };
  Status status = scheduler.Enqueue(request);
  if (!status.ok()) {
    if (lead) cache_->Land(*lead, status);
    request.reset();  // drops the callback's copy of `done`
    Answer(done, std::move(status));
  }
}

void InferenceService::Answer(InferCallback& done, Result<InferResponse> result) {
  InferCallback callback = std::move(done);
  done = nullptr;
  callback(std::move(result));
  callback = nullptr;
  FinishOne();
}

void InferenceService::FinishOne() {
  // Only Drain() waits, and it stops admitting before it looks: while
  // admitting, nobody needs the wake-up (and the hot path takes no lock).
  if (--in_flight_ == 0 && !admitting_) {
    std::lock_guard lock(idle_mutex_);
    idle_.notify_all();
  }
}

std::map<std::string, std::map<std::int64_t, SchedulerStats>> InferenceService::Stats() const {
  std::map<std::string, std::map<std::int64_t, SchedulerStats>> stats;
  std::shared_lock lock(mutex_);
  for (const auto& [name, versions] : schedulers_) {
    for (const auto& [version, scheduler] : versions) stats[name][version] = scheduler->Stats();
  }
  for (const auto& [name, scheduler] : served_) {
    if (!stats.count(name)) stats[name][1] = scheduler->Stats();
  }
  return stats;
}

bool InferenceService::Ready() const { return !draining_ && serving_; }

double InferenceService::Load() const {
  double load = 0;
  std::shared_lock lock(mutex_);
  for (const auto& [name, versions] : schedulers_) {
    for (const auto& [version, scheduler] : versions)
      load = std::max(load, scheduler->CurrentLoad());
  }
  return std::min(load, 1.0);
}

std::size_t InferenceService::QueuedItems() const {
  std::size_t queued = 0;
  std::shared_lock lock(mutex_);
  for (const auto& [name, versions] : schedulers_) {
    for (const auto& [version, scheduler] : versions) queued += scheduler->queued_items();
  }
  return queued;
}

SchedulerOptions InferenceService::OptionsFor(const Model& model) const {
  SchedulerOptions options = options_;
  // Its batches run on another server: they hold no local compute.
  if (model.config().backend == kRemoteBackend) options.budget = nullptr;
  return options;
}

void InferenceService::BeginDrain() { draining_ = true; }

bool InferenceService::Drain(std::chrono::steady_clock::time_point deadline) {
  draining_ = true;
  admitting_ = false;
  std::unique_lock lock(idle_mutex_);
  return idle_.wait_until(lock, deadline, [this] { return in_flight_.load() == 0; });
}

}  // namespace braid
