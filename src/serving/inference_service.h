// InferenceService: what the HTTP and gRPC front ends share. It keeps one
// ModelScheduler per loaded model version in step with the repository, turns
// a request's named tensors into a scheduled InferenceRequest, and tracks
// in-flight requests for readiness and graceful drain.
//
// Thread-safe. Infer() never blocks on inference: it validates, enqueues and
// returns; the callback runs later on the completion pool (or at once, on the
// caller's thread, when the request is refused).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "cache/result_cache.h"
#include "core/clock.h"
#include "core/thread_pool.h"
#include "model/repository.h"
#include "preprocess/audio.h"
#include "preprocess/image.h"
#include "preprocess/tokenizer.h"
#include "scheduler/model_scheduler.h"
#include "workflow/workflow_scheduler.h"

namespace braid {

struct InferOptions {
  int priority = 0;  // 0: the model's default; kLowestPriority: its lowest (off-peak) level
  std::int64_t timeout_us = -1;  // -1: the queue policy's
  TimePoint deadline = TimePoint::max();
  std::shared_ptr<CancellationToken> cancellation;
  bool use_cache = true;  // false: neither read nor fill the result cache
  // The callback only hands the result to the caller's own thread (the HTTP
  // front end posts it to the connection's network thread): it may run on
  // the model's worker (InferenceRequest::light_completion).
  bool light_completion = false;
  // The calling thread may run a short batch and the callback itself
  // (InferenceRequest::caller_may_compute; implied by light_completion).
  bool caller_may_compute = false;
};

struct InferResponse {
  ModelPtr model;               // the version that ran; its config names the outputs
  std::vector<Tensor> outputs;  // config order
  Duration queue_time{};
  Duration compute_time{};
  bool cached = false;  // answered from the result cache or by an identical request's run
};

using InferCallback = std::function<void(Result<InferResponse>)>;

// A request parameter's value as a front end decoded it (a KServe JSON
// value or a protobuf InferParameter); std::monostate for any other kind.
using ParameterValue = std::variant<std::monostate, bool, std::int64_t, std::uint64_t>;

// The one parser of the request parameters every front end honours, so that
// HTTP and gRPC take the same values: priority (0..1000, 0 the model's
// default), timeout (microseconds, 0..2^63) and cache (a boolean). Other
// keys are ignored. InvalidArgument, with a message for the client, for a
// value of the wrong kind or out of range.
Status ApplyInferParameter(std::string_view key, const ParameterValue& value,
                           InferOptions* options);

// `tensor`, one item of `config`'s input `input` (its dims, no batch
// dimension), with a batch dimension of 1 when the model batches; as it is
// otherwise (or when it has one already).
Tensor AsOneItem(const ModelConfig& config, std::string_view input, Tensor tensor);

class InferenceService {
 public:
  // `repository`, `clock` and `cache` (may be null: no result cache) must
  // outlive the service, and so must options.budget and options.completions
  // when set (without completions, the service runs the callbacks on a pool
  // of its own). Models with response_cache.enable read and fill
  // `cache`, keyed by model, version and the inputs' types, shapes and
  // bytes; concurrent identical requests to them run once.
  InferenceService(ModelRepository& repository, Clock& clock, SchedulerOptions options = {},
                   ResultCache* cache = nullptr);
  ~InferenceService();

  // Caps for decoding encoded media into canonical cache keys
  // (response_cache.key perceptual or pcm). Call before the first request.
  void SetMediaLimits(ImageLimits image, AudioLimits audio) {
    image_limits_ = image;
    audio_limits_ = audio;
  }

  // Loads every model in the repository and starts their schedulers.
  Status LoadAll();
  // Loads or reloads one model; the old version's scheduler drains in the
  // background while the new one takes requests.
  Status Load(const std::string& name);
  Status Unload(const std::string& name);
  // Serves a workflow's DAG (`scheduler`) under `name`, as version 1,
  // beside the repository's models: its requests then go the way a model's
  // do (Infer validates them against its signature; no result cache: the
  // workflow caches its nodes), and Run starts runs that report events. A
  // model the repository knows by the same name, loaded or not, comes first
  // for Infer. Shutdown shuts it down and lets it go.
  void Serve(const std::string& name, std::shared_ptr<WorkflowScheduler> scheduler);
  // Starts a run of the workflow served under `name` whose events go to
  // `sink` (WorkflowScheduler::Start): what the front ends that stream a
  // run's progress or text call (the workflow API, chat completions,
  // generate, upload precompute), so that their runs end with the
  // workflow's scheduler and count in its statistics (those that only
  // precompute do not). An unknown name, or a service that no longer
  // admits, gets one error event at once.
  void Run(std::string_view name, NamedTensors inputs, RunOptions options, EventSink sink);

  // The loaded version (0: newest ready); NotFound / Unavailable otherwise.
  Result<ModelPtr> GetModel(std::string_view name, std::int64_t version = 0) const;
  // Whether a scheduler is served under `name` (Serve) for `version` (0
  // or 1) and no model of the repository has that name: a workflow takes
  // requests by it.
  bool ServesWorkflow(std::string_view name, std::int64_t version = 0) const;
  // The label a request for `name` is counted under in metrics: the name
  // when such a model or workflow is served, else "unknown" (a client's
  // string never becomes a label).
  std::string_view MetricsLabel(std::string_view name) const;
  std::vector<ModelVersionStatus> Index() const { return repository_.Index(); }

  // The tokenizer of `model`'s newest ready version (its tokenizer.json),
  // loaded once per version: what the front ends count tokens with and
  // workflow tokenize nodes encode with. Thread-safe; the first call for a
  // version reads and parses its tokenizer files on the caller's thread.
  Result<std::shared_ptr<const Tokenizer>> TokenizerFor(std::string_view model);

  // Validates `inputs` against the model (or the served scheduler's
  // signature) and schedules them. `done` is
  // called exactly once. Refusals (unknown model, bad input, full queue,
  // draining) call it before Infer returns.
  void Infer(std::string_view model, std::int64_t version, std::map<std::string, Tensor> inputs,
             const InferOptions& options, InferCallback done);

  // Statistics of every scheduled model version and served scheduler, by
  // name then version.
  std::map<std::string, std::map<std::int64_t, SchedulerStats>> Stats() const;

  // Ready to serve: not draining and at least one model ready. Lock-free.
  bool Ready() const;
  // How busy the server is, in [0, 1]: the load of its busiest model
  // (ModelScheduler::CurrentLoad, which takes no lock), read under the
  // model table's shared lock as a request's lookup is. Reported to
  // `braid router` with each readiness check.
  double Load() const;
  // Batch items waiting in the schedulers' queues now.
  std::size_t QueuedItems() const;
  // Readiness turns false, so that load balancers and `braid router` send
  // no more; requests are still admitted (those the front ends are
  // finishing, and the later nodes of workflow runs in flight).
  void BeginDrain();
  bool draining() const { return draining_.load(); }
  // Stops admitting (new requests get UNAVAILABLE) and blocks until no
  // request is in flight or `deadline` passes; true if none is left.
  bool Drain(std::chrono::steady_clock::time_point deadline);
  // Stops admitting and shuts every scheduler down: with `drain` their
  // queued requests run first, without they are answered UNAVAILABLE. Then
  // waits for every completion callback. Blocks; idempotent. The destructor
  // calls Shutdown(true).
  void Shutdown(bool drain);
  std::size_t in_flight() const { return in_flight_.load(); }
  // The result cache's figures; empty without a cache.
  std::optional<ResultCacheStats> cache_stats() const;
  // The compute budget's figures; empty without a budget.
  std::optional<ComputeBudgetStats> budget_stats() const {
    if (options_.budget == nullptr) return std::nullopt;
    return options_.budget->Stats();
  }

 private:
  using SchedulerPtr = std::shared_ptr<ModelScheduler>;

  // The scheduler options of `model`'s versions.
  SchedulerOptions OptionsFor(const Model& model) const;
  // Makes the schedulers match the repository's loaded versions of `name`.
  void SyncSchedulers(const std::string& name);
  void Retire(std::shared_ptr<Scheduler> scheduler);
  // Calls `done` with `result`, destroys it (and what it holds, such as a
  // client connection's responder), then counts the request finished: so
  // Drain() never returns while a callback is still alive somewhere.
  void Answer(InferCallback& done, Result<InferResponse> result);
  // Enqueues `inputs` on `scheduler`. With `lead`, the result fills the
  // cache under that key and answers the requests that waited for it.
  void Schedule(Scheduler& scheduler, std::vector<Tensor> inputs, const InferOptions& options,
                std::optional<Hash128> lead, InferCallback done);
  // After a cache miss: leads the computation of `key`, waits for the one
  // under way, or (more urgent than it) computes its own.
  void LeadOrWait(const SchedulerPtr& scheduler, std::vector<Tensor> inputs,
                  const InferOptions& options, const Hash128& key, InferCallback done);
  void FinishOne();
  // The result cache key of `inputs` for `model`: its name and version and
  // each input, encoded media by the canonical form its response_cache.key
  // declares (which decodes them: call it off the network threads then).
  Hash128 KeyOf(const Model& model, const std::vector<Tensor>& inputs);
  // Looks `key` up: a hit answers, a miss leads, waits or computes.
  void LookUp(const SchedulerPtr& scheduler, const Hash128& key, std::vector<Tensor> inputs,
              const InferOptions& options, InferCallback done);

  ModelRepository& repository_;
  Clock& clock_;
  ResultCache* cache_;
  ImageLimits image_limits_;
  AudioLimits audio_limits_;
  // Runs the schedulers' completion callbacks (cache fills, answers, the
  // next workflow node) off the models' workers, unless the options name
  // another pool. Drained in the destructor once every scheduler stopped.
  ThreadPool completions_{2};
  SchedulerOptions options_;
  mutable std::shared_mutex mutex_;
  std::map<std::string, std::map<std::int64_t, SchedulerPtr>, std::less<>>
      schedulers_;  // guarded by mutex_
  std::map<std::string, std::shared_ptr<WorkflowScheduler>, std::less<>>
      served_;                         // guarded by mutex_
  std::atomic<bool> serving_{false};   // some scheduler exists; written under mutex_
  std::atomic<bool> draining_{false};  // not ready
  std::atomic<bool> admitting_{true};  // false once Drain() or Shutdown() began
  std::atomic<std::size_t> in_flight_{0};
  std::mutex idle_mutex_;
  std::condition_variable idle_;
  std::mutex tokenizers_mutex_;
  // model name → the version its tokenizer belongs to, and the tokenizer
  std::map<std::string, std::pair<std::int64_t, std::shared_ptr<const Tokenizer>>, std::less<>>
      tokenizers_;             // guarded by tokenizers_mutex_
  ThreadPool retirements_{1};  // drains replaced schedulers off the request path
  // Decodes encoded media into canonical keys (response_cache.key) off the
  // callers' threads; its tasks count in in_flight_.
  ThreadPool keying_{2};
};

}  // namespace braid
