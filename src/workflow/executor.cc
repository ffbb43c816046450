#include "workflow/executor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cache/canonical_keys.h"
#include "preprocess/canonical_text.h"
#include "workflow/node_kind.h"

namespace braid {
namespace {

// A workflow input's key by its content.
Hash128 InputKey(const Tensor& input) { return Hasher().Add("input").Add(input).Finish(); }

// Node results in the cache: their names as a BYTES tensor, then the tensors.
std::vector<Tensor> PackOutputs(const NamedTensors& outputs) {
  std::vector<std::string> names;
  std::vector<Tensor> packed(1);
  for (const auto& [name, tensor] : outputs) {
    names.push_back(name);
    packed.push_back(tensor);
  }
  packed[0] = *Tensor::FromStrings(names, {static_cast<std::int64_t>(names.size())});
  return packed;
}

Result<NamedTensors> UnpackOutputs(const std::vector<Tensor>& packed) {
  if (packed.empty() || packed[0].dtype() != DataType::kBytes)
    return Internal("cached node result has no names");
  BRAID_ASSIGN_OR_RETURN(auto names, packed[0].Strings());
  if (names.size() + 1 != packed.size()) return Internal("cached node result is inconsistent");
  NamedTensors outputs;
  for (std::size_t i = 0; i < names.size(); ++i) outputs[std::string(names[i])] = packed[i + 1];
  return outputs;
}

// How long NodeCaching::kStored results (decoded media) live.
constexpr Duration kStoredTtl = std::chrono::minutes(10);

}  // namespace

std::string RenderTensor(const Tensor& tensor) {
  if (tensor.dtype() == DataType::kBytes) {
    auto strings = tensor.Strings();
    if (!strings.ok()) return "";
    std::string out;
    for (std::size_t i = 0; i < strings->size(); ++i)
      out += (i ? " " : "") + std::string((*strings)[i]);
    return out;
  }
  if (tensor.dtype() == DataType::kBool) return tensor.span<std::uint8_t>()[0] ? "true" : "false";
  if (tensor.dtype() == DataType::kFp32) {
    auto values = tensor.span<float>();
    if (values.size() == 1) return fmt::format("{:.4f}", values[0]);
    if (values.size() <= 8) return fmt::format("[{:.4f}]", fmt::join(values, ", "));
    return fmt::format("[{} values]", values.size());
  }
  return fmt::format("[{} {} values]", tensor.element_count(), DataTypeName(tensor.dtype()));
}

// One run's state. Shared by the callbacks of its nodes; the last holder frees it.
class WorkflowRun : public std::enable_shared_from_this<WorkflowRun> {
 public:
  // `input_keys`: keys found for inputs beforehand (perceptual and pcm); the
  // others are keyed by their content.
  WorkflowRun(Gate::Holder admitted, WorkflowExecutor& executor, WorkflowPtr workflow,
              NamedTensors inputs, RunOptions options, EventSink sink,
              std::map<std::string, Hash128> input_keys)
      : admitted_(std::move(admitted)),
        executor_(executor),
        workflow_(std::move(workflow)),
        inputs_(std::move(inputs)),
        options_(std::move(options)),
        tracked_(executor.live_.Add(options_.cancellation)),
        sink_(std::move(sink)),
        start_(executor.clock_.Now()),
        input_keys_(std::move(input_keys)) {
    for (const auto& node : workflow_->nodes) state_[node.id] = State::kPending;
    if (executor_.cache_ != nullptr) {
      for (const auto& [name, tensor] : inputs_) {
        if (!input_keys_.count(name)) input_keys_[name] = InputKey(tensor);
      }
      if (workflow_->semantic_cache && !options_.precompute) {
        semantic_ = executor_.SemanticCacheFor(workflow_);
        semantic_context_ = SemanticContext();
        semantic_pending_ = options_.semantic_cache;
        if (!options_.semantic_cache) executor_.cache_->CountSemantic(SemanticOutcome::kRefused);
      }
    }
  }

  void Start() {
    WorkflowEvent started;
    started.type = WorkflowEvent::Type::kWorkflowStarted;
    Emit(started);
    std::unique_lock lock(mutex_);
    Advance(lock);
  }

 private:
  enum class State { kPending, kRunning, kDone, kSkipped };

  // A node's Merkle key; `ttl` is set when its result is worth caching.
  struct NodeKey {
    Hash128 key;
    std::optional<Duration> ttl;
  };

  // Starts (or skips) every node whose dependencies are resolved. Called
  // with the lock held; releases it around emitting and starting.
  void Advance(std::unique_lock<std::mutex>& lock) {
    while (!finished_) {
      // A skipped embedding has nothing to look up: the held nodes go on.
      if (semantic_pending_ &&
          state_[workflow_->semantic_cache->embedding.node] == State::kSkipped) {
        semantic_pending_ = false;
      }
      const NodeSpec* ready = nullptr;
      for (const auto& node : workflow_->nodes) {
        if (state_[node.id] != State::kPending) continue;
        if (semantic_pending_ && !workflow_->semantic_cache->upstream.count(node.id)) continue;
        bool resolved =
            std::all_of(node.depends_on.begin(), node.depends_on.end(), [&](const std::string& d) {
              return state_[d] == State::kDone || state_[d] == State::kSkipped;
            });
        if (resolved) {
          ready = &node;
          break;
        }
      }
      if (ready == nullptr) break;
      if (options_.cancellation->cancelled()) return EndStopped(lock);
      if (options_.deadline != TimePoint::max() && executor_.clock_.Now() >= options_.deadline) {
        return EndFailed(
            *ready, StatusCode::kDeadlineExceeded,
            fmt::format("the run's deadline passed before node '{}' could start", ready->id), lock);
      }
      if (options_.serial && running_ > 0) break;
      NamedTensors inputs;
      const NodeKind& kind = *FindNodeKind(ready->kind);
      if (!Gather(*ready, &inputs) || (options_.precompute && !kind.precomputed())) {
        state_[ready->id] = State::kSkipped;
        WorkflowEvent skipped;
        skipped.type = WorkflowEvent::Type::kNodeFinished;
        skipped.node_id = ready->id;
        skipped.node_kind = ready->kind;
        skipped.status = "skipped";
        lock.unlock();
        Emit(skipped);
        lock.lock();
        continue;
      }
      state_[ready->id] = State::kRunning;
      ++running_;
      WorkflowEvent started;
      started.type = WorkflowEvent::Type::kNodeStarted;
      started.node_id = ready->id;
      started.node_kind = ready->kind;
      started.index = ++started_count_;
      const TimePoint node_start = executor_.clock_.Now();
      const std::optional<NodeKey> key = KeyOf(*ready, kind);
      if (key) node_keys_[ready->id] = key->key;
      lock.unlock();
      Emit(started);
      Execute(*ready, kind, std::move(inputs), node_start, key);
      lock.lock();
    }
    const bool all_resolved = std::all_of(state_.begin(), state_.end(), [](const auto& entry) {
      return entry.second == State::kDone || entry.second == State::kSkipped;
    });
    if (all_resolved && !finished_) {
      finished_ = true;
      WorkflowEvent done;
      done.type = WorkflowEvent::Type::kWorkflowFinished;
      done.status = "succeeded";
      done.elapsed = executor_.clock_.Now() - start_;
      for (const auto& [name, ref] : workflow_->outputs) {
        if (auto value = Lookup(ref)) done.outputs[name] = *value;
      }
      if (semantic_) {
        auto embedding = Lookup(workflow_->semantic_cache->embedding);
        if (embedding && embedding->dtype() == DataType::kFp32)
          semantic_->Put(embedding->span<float>(), semantic_context_, done.outputs);
      }
      lock.unlock();
      Emit(done);
      lock.lock();
    }
  }

  // What a semantic hit must share with this run besides the embedding:
  // the inputs the embedding does not read (by their keys), the chat query
  // unless the embedding reads it, and whether an upstream chat is there.
  Hash128 SemanticContext() const {
    const SemanticCacheSpec& spec = *workflow_->semantic_cache;
    Hasher hasher;
    hasher.Add("semantic");
    for (const auto& name : spec.uncovered) {
      hasher.Add(name);
      auto key = input_keys_.find(name);
      if (key != input_keys_.end()) {
        hasher.Add(key->second);
      } else {
        hasher.Add("absent");
      }
    }
    if (!spec.reads_query) hasher.Add("query").Add(options_.query);
    return hasher.Add(std::int64_t{executor_.upstream_.has_value()}).Finish();
  }

  // After the embedding node: answers the run from the semantic cache when
  // an earlier run was close enough (true), or lets the held nodes go on.
  // Called with the lock held.
  bool AnsweredSemantically(std::unique_lock<std::mutex>& lock) {
    semantic_pending_ = false;
    auto embedding = Lookup(workflow_->semantic_cache->embedding);
    if (!embedding || embedding->dtype() != DataType::kFp32) return false;
    auto hit = semantic_->Find(embedding->span<float>(), semantic_context_,
                               workflow_->semantic_cache->threshold);
    executor_.cache_->CountSemantic(hit ? SemanticOutcome::kHit : SemanticOutcome::kMiss);
    if (!hit) return false;
    // Only the embedding and what it needs have run: nothing else to stop.
    finished_ = true;
    WorkflowEvent done;
    done.type = WorkflowEvent::Type::kWorkflowFinished;
    done.status = "succeeded";
    done.elapsed = executor_.clock_.Now() - start_;
    done.outputs = std::move(hit->outputs);
    done.semantic = true;
    done.similarity = hit->similarity;
    lock.unlock();
    Emit(done);
    lock.lock();
    return true;
  }

  // The tensor a reference points at, if present.
  std::optional<Tensor> Lookup(const Reference& ref) const {
    if (ref.node == "config") {
      if (!executor_.upstream_) return std::nullopt;
      auto flag = *Tensor::Allocate(DataType::kBool, {1});
      flag.mutable_span<std::uint8_t>()[0] = 1;
      return flag;
    }
    if (ref.node == "sys") {
      if (options_.query.empty()) return std::nullopt;
      return *Tensor::FromStrings({options_.query}, {1});
    }
    if (ref.node == "inputs") {
      auto it = inputs_.find(ref.output);
      if (it == inputs_.end()) return std::nullopt;
      return it->second;
    }
    auto node = outputs_.find(ref.node);
    if (node == outputs_.end()) return std::nullopt;
    auto value = node->second.find(ref.output);
    if (value == node->second.end()) return std::nullopt;
    return value->second;
  }

  // The key of the value a reference points at; nullopt when absent.
  // Called with the lock held.
  std::optional<Hash128> ValueKey(const Reference& ref) const {
    if (ref.node == "config")
      return Hasher()
          .Add("config")
          .Add(ref.output)
          .Add(std::int64_t{executor_.upstream_.has_value()})
          .Finish();
    if (ref.node == "sys") {
      if (options_.query.empty()) return std::nullopt;
      return Hasher().Add("sys").Add(ref.output).Add(options_.query).Finish();
    }
    if (ref.node == "inputs") {
      auto it = input_keys_.find(ref.output);
      if (it == input_keys_.end()) return std::nullopt;
      return it->second;
    }
    auto node = output_keys_.find(ref.node);
    if (node == output_keys_.end()) return std::nullopt;
    auto value = node->second.find(ref.output);
    if (value == node->second.end()) return std::nullopt;
    return value->second;
  }

  // The node's key from its kind, parameters, model version and its
  // inputs' keys; nullopt without a cache and for nodes whose result may
  // differ between runs (NodeCaching::kNone, models without response_cache).
  // Called with the lock held.
  std::optional<NodeKey> KeyOf(const NodeSpec& node, const NodeKind& kind) const {
    if (executor_.cache_ == nullptr || kind.caching() == NodeCaching::kNone) return std::nullopt;
    Hasher hasher;
    hasher.Add("node").Add(node.kind);
    for (const auto& [name, value] : node.params) hasher.Add(name).Add(value);
    std::optional<Duration> ttl;
    if (kind.caching() == NodeCaching::kModel) {
      auto policy = executor_.runner_.CachePolicyFor(kind.Model(node));
      if (!policy) return std::nullopt;
      hasher.Add(policy->version);
      ttl = policy->ttl;
    } else if (kind.caching() == NodeCaching::kStored) {
      ttl = kStoredTtl;
    }
    auto add = [&](const Reference& ref) {
      if (auto key = ValueKey(ref)) {
        hasher.Add(*key);
      } else {
        hasher.Add("absent");
      }
    };
    for (const auto& [field, ref] : node.from) {
      hasher.Add(field);
      add(ref);
    }
    for (const auto& ref : node.any_of) add(ref);
    return NodeKey{hasher.Finish(), ttl};
  }

  // Collects a node's inputs; false when the node must be skipped.
  bool Gather(const NodeSpec& node, NamedTensors* inputs) {
    auto condition = [&](const std::string& id) {
      auto value = Lookup({id, "result", true});
      return value && value->span<std::uint8_t>()[0] != 0;
    };
    for (const auto& gate : node.run_if) {
      if (!condition(gate)) return false;
    }
    for (const auto& gate : node.run_unless) {
      if (condition(gate)) return false;
    }
    if (!node.any_of.empty()) {
      bool any = std::any_of(node.any_of.begin(), node.any_of.end(),
                             [&](const Reference& ref) { return Lookup(ref).has_value(); });
      auto flag = *Tensor::Allocate(DataType::kBool, {1});
      flag.mutable_span<std::uint8_t>()[0] = any;
      (*inputs)["result"] = flag;
      return true;
    }
    for (const auto& [field, ref] : node.from) {
      auto value = Lookup(ref);
      if (!value) {
        if (ref.optional) continue;
        return false;
      }
      (*inputs)[field] = *value;
    }
    return true;
  }

  // Runs the node, or answers it from the cache (or from an identical
  // node of another run that is computing it right now).
  void Execute(const NodeSpec& node, const NodeKind& kind, NamedTensors inputs,
               TimePoint node_start, std::optional<NodeKey> key) {
    auto self = shared_from_this();
    auto finish = [self, &node, node_start](Result<NamedTensors> result) {
      self->Finish(node, std::move(result), node_start, false);
    };
    if (!key || !key->ttl) {
      Run(node, kind, std::move(inputs), false, std::move(finish));
      return;
    }
    executor_.cache_->Lookup(
        key->key, [self, &node, &kind, node_start, inputs = std::move(inputs), key = *key,
                   finish](std::optional<ResultCache::Hit> hit) mutable {
          if (hit) return self->Finish(node, UnpackOutputs(hit->value), node_start, true);
          self->LeadOrWait(node, kind, std::move(inputs), node_start, key, std::move(finish));
        });
  }

  // After a cache miss: leads the node's computation, waits for an
  // identical one under way, or (more urgent than it) leads beside it.
  void LeadOrWait(const NodeSpec& node, const NodeKind& kind, NamedTensors inputs,
                  TimePoint node_start, const NodeKey& key,
                  std::function<void(Result<NamedTensors>)> finish) {
    auto self = shared_from_this();
    ResultCache& cache = *executor_.cache_;
    auto waiter = [self, &node, &kind, node_start, inputs,
                   finish](const Result<std::vector<Tensor>>& result) {
      if (result.ok()) {
        self->Finish(node, UnpackOutputs(*result), node_start, true);
      } else {
        self->Run(node, kind, inputs, false, finish);  // the leader failed: compute it here
      }
    };
    // A model node's computation may be held back by its priority (a
    // precompute runs at the off-peak level), so a more urgent run does not
    // wait for it; a preprocessing node runs at once whoever asked, so
    // waiting for it is never slower than computing again.
    // Leading alone or beside a less urgent leader, the result fills the
    // cache.
    const int urgency = kind.queued_by_priority() ? options_.priority : 1;
    if (cache.Lead(key.key, urgency, std::move(waiter)) == ResultCache::Flight::kWait) return;
    Run(node, kind, std::move(inputs), true, [self, finish, key](Result<NamedTensors> result) {
      ResultCache& cache = *self->executor_.cache_;
      if (result.ok()) {
        auto packed = PackOutputs(*result);
        cache.Put(key.key, packed, *key.ttl);
        cache.Land(key.key, packed);
      } else {
        cache.Land(key.key, result.status());
      }
      finish(std::move(result));
    });
  }

  // Computes the node; `done` gets its outputs. `cached_here`: this run
  // caches the node's result, so its model call skips the model's own cache.
  void Run(const NodeSpec& node, const NodeKind& kind, NamedTensors inputs, bool cached_here,
           std::function<void(Result<NamedTensors>)> done) {
    auto emit_text = [self = shared_from_this(), &node](std::string text) {
      if (self->options_.cancellation->cancelled()) return;  // stopped: nothing more is shown
      WorkflowEvent chunk;
      chunk.type = WorkflowEvent::Type::kTextChunk;
      chunk.node_id = node.id;
      chunk.node_kind = node.kind;
      chunk.text = std::move(text);
      self->Emit(chunk);
    };
    kind.Run(NodeRun{node, std::move(inputs),
                     ModelCall{options_.priority, options_.deadline, options_.cancellation,
                               !cached_here},
                     executor_, std::move(emit_text)},
             std::move(done));
  }

  void Finish(const NodeSpec& node, Result<NamedTensors> result, TimePoint node_start,
              bool cached) {
    std::unique_lock lock(mutex_);
    --running_;
    if (finished_) return;
    if (options_.cancellation->cancelled()) return EndStopped(lock);
    if (!result.ok()) {
      return EndFailed(
          node, result.status().code(),
          fmt::format("node '{}' ({}) failed: {}", node.id, node.kind, result.status().message()),
          lock);
    }
    WorkflowEvent finished;
    finished.type = WorkflowEvent::Type::kNodeFinished;
    finished.node_id = node.id;
    finished.node_kind = node.kind;
    finished.status = "succeeded";
    finished.cached = cached;
    finished.outputs = *result;
    finished.elapsed = executor_.clock_.Now() - node_start;
    // The node counts as done only once its event is out: until then no
    // other thread can see every node resolved and finish the run ahead of
    // this node_finished.
    lock.unlock();
    Emit(finished);
    lock.lock();
    if (finished_) return;
    outputs_[node.id] = *result;
    state_[node.id] = State::kDone;
    if (executor_.cache_ != nullptr) {
      // A deterministic node's outputs are keyed by its key; others by content.
      auto node_key = node_keys_.find(node.id);
      for (const auto& [name, tensor] : *result) {
        output_keys_[node.id][name] = node_key != node_keys_.end()
                                          ? Hasher().Add(node_key->second).Add(name).Finish()
                                          : Hasher().Add("content").Add(tensor).Finish();
      }
    }
    if (semantic_pending_ && node.id == workflow_->semantic_cache->embedding.node &&
        AnsweredSemantically(lock)) {
      return;
    }
    Advance(lock);
  }

  // Ends a run whose cancellation came from outside (a stop request, the
  // client leaving): one error event, kCancelled; nothing starts after it.
  // Called with the lock held.
  void EndStopped(std::unique_lock<std::mutex>& lock) {
    finished_ = true;
    WorkflowEvent stopped;
    stopped.type = WorkflowEvent::Type::kError;
    stopped.status = "stopped";
    stopped.error_code = StatusCode::kCancelled;
    stopped.text = "the run was stopped";
    stopped.elapsed = executor_.clock_.Now() - start_;
    lock.unlock();
    Emit(stopped);
    lock.lock();
  }

  // Ends the run with one error event for `node` (status "failed", `code`
  // and `text`) and drops its queued model work. Called with the lock held.
  void EndFailed(const NodeSpec& node, StatusCode code, std::string text,
                 std::unique_lock<std::mutex>& lock) {
    finished_ = true;
    options_.cancellation->Cancel();
    WorkflowEvent error;
    error.type = WorkflowEvent::Type::kError;
    error.node_id = node.id;
    error.node_kind = node.kind;
    error.status = "failed";
    error.error_code = code;
    error.text = std::move(text);
    error.elapsed = executor_.clock_.Now() - start_;
    lock.unlock();
    Emit(error);
    lock.lock();
  }

  void Emit(const WorkflowEvent& event) {
    std::lock_guard lock(emit_mutex_);
    sink_(event);
  }

  // First member, so destroyed last: the executor may be destroyed as soon
  // as it is released.
  Gate::Holder admitted_;
  WorkflowExecutor& executor_;
  const WorkflowPtr workflow_;
  const NamedTensors inputs_;
  RunOptions options_;  // with a cancellation (Start makes one when none is given)
  const CancellationSet::Entry tracked_;  // in executor_.live_
  const EventSink sink_;
  const TimePoint start_;
  std::mutex emit_mutex_;  // one event at a time to the sink; taken after mutex_ is released
  std::mutex mutex_;
  std::map<std::string, State> state_;           // guarded by mutex_
  std::map<std::string, NamedTensors> outputs_;  // guarded by mutex_
  std::map<std::string, Hash128> input_keys_;    // set before the run starts
  std::map<std::string, Hash128> node_keys_;     // guarded by mutex_
  // The workflow's semantic cache (null without one or without a cache)
  // and what a hit must share with this run.
  std::shared_ptr<SemanticCache> semantic_;
  Hash128 semantic_context_;
  // Until the embedding is looked up, only the nodes it needs start.
  bool semantic_pending_ = false;                                      // guarded by mutex_
  std::map<std::string, std::map<std::string, Hash128>> output_keys_;  // guarded by mutex_
  int running_ = 0;                                                    // guarded by mutex_
  int started_count_ = 0;                                              // guarded by mutex_
  bool finished_ = false;                                              // guarded by mutex_
};

WorkflowExecutor::WorkflowExecutor(ModelRunner& runner, ThreadPool& pool, Clock& clock)
    : runner_(runner), pool_(pool), clock_(clock) {}

WorkflowExecutor::~WorkflowExecutor() {
  runs_.Close();
  runs_.Wait();
}

bool WorkflowExecutor::Drain(std::chrono::steady_clock::time_point deadline) {
  runs_.Close();
  return runs_.Wait(deadline);
}

void WorkflowExecutor::CancelRuns() { live_.CancelAll(); }

void WorkflowExecutor::SetUpstreamChat(UpstreamChat upstream) { upstream_ = std::move(upstream); }

WorkflowEvent RefusedRunEvent(StatusCode code, std::string message) {
  WorkflowEvent refused;
  refused.type = WorkflowEvent::Type::kError;
  refused.status = "failed";
  refused.error_code = code;
  refused.text = std::move(message);
  return refused;
}

void WorkflowExecutor::Start(WorkflowPtr workflow, NamedTensors inputs, RunOptions options,
                             EventSink sink) {
  std::optional<Gate::Holder> admitted = runs_.TryEnter();
  if (!admitted) {
    sink(RefusedRunEvent(StatusCode::kUnavailable,
                         "the server is shutting down and starts no new workflow runs"));
    return;
  }
  if (!options.cancellation) options.cancellation = std::make_shared<CancellationToken>();
  // Canonical keys. Perceptual keys of bytes seen before are known at once;
  // new images are fingerprinted, audio decoded and long texts normalised on
  // the pool, off the caller's thread.
  std::map<std::string, Hash128> keys;
  std::map<std::string, Hash128> contents;  // new images' content keys, for their fingerprints
  bool offload = false;
  for (const auto& input : workflow->inputs) {
    auto given = inputs.find(input.name);
    if (given == inputs.end()) continue;
    switch (input.cache_key) {
      case CacheKeying::kExact:
        break;
      case CacheKeying::kNormalized:
      case CacheKeying::kCasefold:
        offload |= FirstString(given->second).size() > kInlineCanonicalBytes;
        break;
      case CacheKeying::kPerceptual: {
        if (cache_ == nullptr) break;
        const Hash128 content = InputKey(given->second);
        if (auto known = cache_->perceptual().Known(content)) {
          keys[input.name] = *known;
        } else {
          contents[input.name] = content;
          offload = true;
        }
        break;
      }
      case CacheKeying::kPcm:
        offload |= cache_ != nullptr;
        break;
    }
  }
  auto start = [this, admitted = std::make_shared<Gate::Holder>(std::move(*admitted)), workflow,
                inputs = std::move(inputs), options = std::move(options), sink = std::move(sink),
                keys = std::move(keys), contents = std::move(contents)]() mutable {
    for (const auto& input : workflow->inputs) {
      auto given = inputs.find(input.name);
      if (given == inputs.end() || keys.count(input.name)) continue;
      switch (input.cache_key) {
        case CacheKeying::kExact:
          break;
        case CacheKeying::kNormalized:
        case CacheKeying::kCasefold:
          // The canonical text replaces the input: the nodes compute from
          // it, so a cached result is always what its key computes.
          CanonicalizeText(given->second, input.cache_key == CacheKeying::kCasefold);
          break;
        case CacheKeying::kPerceptual:
          if (cache_ != nullptr) {
            keys[input.name] = PerceptualImageKey(*cache_, contents.at(input.name),
                                                  FirstString(given->second), image_limits_);
          }
          break;
        case CacheKeying::kPcm:
          if (cache_ != nullptr) {
            keys[input.name] = PcmAudioKey(*cache_, FirstString(given->second), audio_limits_)
                                   .value_or(InputKey(given->second));
          }
          break;
      }
    }
    auto run = std::make_shared<WorkflowRun>(std::move(*admitted), *this, std::move(workflow),
                                             std::move(inputs), std::move(options), std::move(sink),
                                             std::move(keys));
    run->Start();
  };
  if (!offload || !pool_.Submit(start)) start();
}

void WorkflowExecutor::CanonicalizeText(Tensor& text, bool casefold) {
  const std::string_view sent = FirstString(text);
  std::string canonical = CanonicalText(sent, casefold);
  const bool changed = canonical != sent;
  if (changed) text = *Tensor::FromStrings({std::move(canonical)}, {1});
  if (cache_ != nullptr) cache_->CountTextKey(changed);
}

std::shared_ptr<SemanticCache> WorkflowExecutor::SemanticCacheFor(const WorkflowPtr& workflow) {
  std::lock_guard lock(semantic_mutex_);
  auto& [version, cache] = semantic_caches_[workflow->name];
  if (version != workflow) {
    version = workflow;
    cache = std::make_shared<SemanticCache>(workflow->semantic_cache->capacity,
                                            workflow->semantic_cache->ttl, clock_);
  }
  return cache;
}

}  // namespace braid
