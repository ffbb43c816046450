// WorkflowExecutor: runs a Workflow as a DAG. A node starts as soon as the
// nodes it depends on have finished; independent nodes run at the same time.
// Model nodes go through the model's scheduler (via ModelRunner), so they
// batch with every other request and run; CPU nodes (preprocessing,
// templates, similarity) run on a shared thread pool. Nothing blocks a
// thread while waiting for another node.
//
// Events, in order per node: node_started, then text_chunk (templates), then
// node_finished; the run ends with exactly one workflow_finished or error.
// A failing node fails the run: its error event comes at once, the run's
// queued model requests are cancelled, and later completions are dropped.
// A run cancelled from outside (RunOptions::cancellation: a stop request, the
// client leaving) starts no further node and ends with one error event whose
// status is "stopped" (kCancelled).
//
// A workflow with a semantic_cache (and an executor with a cache) first runs
// only the nodes its embedding needs; when an earlier run with the same
// context was close enough, the run ends there with that run's outputs
// (workflow_finished says semantic, with the similarity), otherwise the
// other nodes go on and the run's outputs are remembered at its end.
#pragma once

#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "cache/result_cache.h"
#include "collections/collection_store.h"
#include "collections/semantic_cache.h"
#include "core/clock.h"
#include "core/gate.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "preprocess/audio.h"
#include "preprocess/image.h"
#include "preprocess/tokenizer.h"
#include "scheduler/request.h"
#include "workflow/node_kind.h"
#include "workflow/remote_chat.h"
#include "workflow/workflow.h"

namespace braid {

// How the executor reaches models. Implemented over the schedulers by the
// server and by `braid run`. Thread-safe.
class ModelRunner {
 public:
  virtual ~ModelRunner() = default;
  // Runs `model` on `inputs`; `done` gets its named outputs. May call `done`
  // on any thread, including before returning.
  virtual void Run(const std::string& model, NamedTensors inputs, const ModelCall& call,
                   std::function<void(Result<NamedTensors>)> done) = 0;
  // The tokenizer of the model's served version (its tokenizer.json).
  virtual Result<std::shared_ptr<const Tokenizer>> TokenizerFor(const std::string& model) = 0;

  // Whether the model's results may be cached (response_cache.enable): its
  // served version, which is part of the key, and how long results live.
  struct CachePolicy {
    std::int64_t version = 0;
    Duration ttl{};
  };
  virtual std::optional<CachePolicy> CachePolicyFor(const std::string& model) {
    return std::nullopt;
  }
};

struct WorkflowEvent {
  enum class Type {
    kWorkflowStarted,
    kNodeStarted,
    kNodeFinished,
    kTextChunk,
    kWorkflowFinished,
    kError
  };
  Type type = Type::kWorkflowStarted;
  std::string node_id;
  std::string node_kind;
  std::string status;    // node_finished / workflow_finished: succeeded, skipped, failed;
                         // error: failed, or stopped (cancelled from outside)
  NamedTensors outputs;  // node_finished: the node's; workflow_finished: the workflow's
  std::string text;      // text_chunk: the chunk; error: the message
  Duration elapsed{};    // node_finished, workflow_finished
  int index = 0;         // order in which the node started (1-based)
  bool cached = false;   // node_finished: the result came from the cache, not this run
  // workflow_finished: the outputs are an earlier run's whose embedding was
  // `similarity` (cosine) to this run's (the workflow's semantic_cache).
  bool semantic = false;
  float similarity = 0;
  StatusCode error_code = StatusCode::kOk;  // error: the failing node's status code

  // The run's last event: workflow_finished or error.
  bool ends_run() const { return type == Type::kWorkflowFinished || type == Type::kError; }
};
using EventSink = std::function<void(const WorkflowEvent&)>;

// The one event of a run refused before it started: an error event
// ("failed") with `code` and `message`.
WorkflowEvent RefusedRunEvent(StatusCode code, std::string message);

struct RunOptions {
  bool serial = false;  // one node at a time, in topological order: the benchmark's baseline
  int priority = 0;
  // Fill the cache only: nodes whose results are not cached (template,
  // remote.chat, retrieve) are skipped. For predictive precompute on upload.
  bool precompute = false;
  // No node starts past it (the run ends with an error event,
  // kDeadlineExceeded), and its model calls carry it; a node already
  // running finishes.
  TimePoint deadline = TimePoint::max();
  std::shared_ptr<CancellationToken> cancellation;  // also cancels the run's queued model work
  // `sys.query`: the chat message's text when the workflow has no text input
  // to take it (templates and remote.chat prompts may use it). Empty: absent.
  std::string query;
  // false: the client refuses answers from the workflow's semantic cache
  // (this run's outputs are still remembered for others).
  bool semantic_cache = true;
};

class WorkflowExecutor {
 public:
  // `runner`, `pool` and `clock` must outlive the executor and its runs.
  WorkflowExecutor(ModelRunner& runner, ThreadPool& pool, Clock& clock);
  // Starts no new run and blocks until every run has ended.
  ~WorkflowExecutor();

  // Starts a run; returns at once. `inputs` holds the workflow's inputs
  // present in the request, each a BYTES [1] tensor (UTF-8 text, or the
  // encoded image or audio). `sink` receives the events, one at a time.
  // Once Drain() has begun, `sink` gets one error event (Unavailable), at once.
  void Start(WorkflowPtr workflow, NamedTensors inputs, RunOptions options, EventSink sink);

  // Starts no new run; blocks until every run has ended (true) or `deadline`
  // passes (false).
  bool Drain(std::chrono::steady_clock::time_point deadline);
  std::size_t runs_in_flight() const { return runs_.in_flight(); }
  // Cancels every run in flight and every run started from now on (their
  // queued model work and remote.chat calls too): what the drain does with
  // the runs left at its deadline.
  void CancelRuns();

  // Gives remote.chat nodes an upstream and makes config.upstream_chat
  // present. Call before the first run.
  void SetUpstreamChat(UpstreamChat upstream);

  // Caches node results in `cache` (must outlive the executor). Each node
  // is keyed Merkle-style from its kind, parameters, model version and the
  // keys of its inputs (a workflow input's key is its content hash, or the
  // canonical key its cache_key declares), so a repeated image reuses its
  // preprocessing, embedding and OCR even when the other inputs differ. Cached:
  // preprocess.image/audio, and model and project nodes whose model has response_cache.enable. Call
  // before the first run.
  void SetCache(ResultCache* cache) { cache_ = cache; }
  bool caching() const { return cache_ != nullptr; }

  // Caps for preprocess.image and preprocess.audio. Call before the first run.
  void SetMediaLimits(ImageLimits image, AudioLimits audio) {
    image_limits_ = image;
    audio_limits_ = audio;
  }
  const ImageLimits& image_limits() const { return image_limits_; }

  // Turns a retrieve node's text or image query (UTF-8 text, or the encoded
  // image) into a vector of `space`; `done` may run on any thread.
  using QueryEmbedder = std::function<void(InputType type, std::string data, EmbeddingSpace space,
                                           std::function<void(Result<std::vector<float>>)> done)>;
  // Gives retrieve nodes their collections and the embedder of their
  // queries; both must outlive the executor. Without it retrieve nodes fail
  // (Unavailable). Call before the first run.
  void SetCollections(CollectionStore* store, QueryEmbedder embed) {
    collections_ = store;
    embed_query_ = std::move(embed);
  }

  // The semantic cache of `workflow` (which declares one), made at its
  // first use and made anew when the workflow was reloaded. Thread-safe.
  std::shared_ptr<SemanticCache> SemanticCacheFor(const WorkflowPtr& workflow);

  // What node kinds use while they run.
  ModelRunner& runner() { return runner_; }
  ThreadPool& pool() { return pool_; }
  ThreadPool& remote_pool() { return remote_pool_; }
  const std::optional<UpstreamChat>& upstream() const { return upstream_; }
  CollectionStore* collections() { return collections_; }
  const QueryEmbedder& query_embedder() const { return embed_query_; }
  const AudioLimits& audio_limits() const { return audio_limits_; }

 private:
  friend class WorkflowRun;
  // Replaces a text input declared `cache_key: normalized|casefold` by its
  // canonical form.
  void CanonicalizeText(Tensor& text, bool casefold);
  // Texts longer than this are normalised on the pool.
  static constexpr std::size_t kInlineCanonicalBytes = 16 * 1024;

  ModelRunner& runner_;
  ThreadPool& pool_;
  Clock& clock_;
  std::optional<UpstreamChat> upstream_;
  ResultCache* cache_ = nullptr;
  ImageLimits image_limits_;
  AudioLimits audio_limits_;
  CollectionStore* collections_ = nullptr;
  QueryEmbedder embed_query_;
  // remote.chat calls block on the network: their own threads.
  ThreadPool remote_pool_{4};
  std::mutex semantic_mutex_;
  // workflow name → the workflow version its cache belongs to, and the cache
  std::map<std::string, std::pair<WorkflowPtr, std::shared_ptr<SemanticCache>>>
      semantic_caches_;  // guarded by semantic_mutex_
  // The cancellation of every run in flight, for CancelRuns.
  CancellationSet live_;
  // Every run holds it from Start until its last callback is gone.
  Gate runs_;
};

// Renders a tensor for templates and reports: text for BYTES, numbers with
// four decimals, "[N values]" for long vectors.
std::string RenderTensor(const Tensor& tensor);

}  // namespace braid
