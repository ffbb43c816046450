// The Dify-shaped workflow API over HTTP: GET /v1/workflows and
// POST /v1/workflows/{name}/run with response_mode blocking or streaming
// (Server-Sent Events: workflow_started, node_started, node_finished,
// text_chunk, workflow_finished, error; `event: ping` on a quiet stream),
// POST /v1/workflows/tasks/{task_id}/stop. A run's body may carry
// `"semantic_cache": false` to refuse an answer from the workflow's semantic
// cache; a workflow_finished answered from it carries `"cached": "semantic"`
// and the `similarity`. An upload to /v1/files/upload
// starts the predictive precompute of the file's node results.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/thread_pool.h"
#include "frontends/http/http_server.h"
#include "frontends/http/route_table.h"
#include "serving/file_store.h"
#include "serving/inference_service.h"
#include "serving/url_fetcher.h"
#include "workflow/executor.h"
#include "workflow/registry.h"

namespace braid {

// ModelRunner over the server's schedulers: workflow model nodes batch with
// every other request.
class ServiceModelRunner : public ModelRunner {
 public:
  explicit ServiceModelRunner(InferenceService& service) : service_(service) {}

  // ModelRunner
  void Run(const std::string& model, NamedTensors inputs, const ModelCall& call,
           std::function<void(Result<NamedTensors>)> done) override;
  Result<std::shared_ptr<const Tokenizer>> TokenizerFor(const std::string& model) override;
  std::optional<CachePolicy> CachePolicyFor(const std::string& model) override;

 private:
  InferenceService& service_;
};

// Checks workflow model nodes against the loaded models.
ModelCatalog MakeModelCatalog(InferenceService& service);

// Runs under way, by task id, for the stop endpoint and the keep-alive
// pings of their streams. Shared with the runs' event sinks.
class WorkflowTasks;

struct WorkflowApiOptions {
  std::size_t max_upload_bytes = std::size_t{64} << 20;  // an uploaded or attached file
  // A streaming run quiet this long gets an `event: ping`.
  std::chrono::milliseconds ping_interval = std::chrono::seconds(10);
  // Inputs given as Dify `remote_url` files; off unless hosts are allowed.
  FetchOptions fetch;
  // Predictive precompute on upload: only worth it when node results are
  // cached (WorkflowExecutor::caching).
  bool precompute = false;
};

class WorkflowApi {
 public:
  // Everything passed must outlive the API.
  // Runs go through `service` (InferenceService::Run).
  WorkflowApi(const WorkflowRegistry& registry, InferenceService& service, FileStore& files,
              WorkflowApiOptions options = {});
  // Waits for fetches under way and stops the pings; runs still under way
  // end on their own.
  ~WorkflowApi();

  // Adds the workflow endpoints (and /v1/files/upload) to `routes`.
  void AddRoutes(RouteTable& routes);

 private:
  // GET /v1/workflows.
  void List(HttpResponderPtr responder);
  void Run(const std::string& name, HttpRequest& request, HttpResponderPtr responder);
  // Starts a run whose inputs are all present and answers as `mode` says;
  // `semantic_cache` false refuses answers from the workflow's semantic cache.
  void StartRun(WorkflowPtr workflow, NamedTensors inputs, const std::string& mode,
                bool semantic_cache, HttpResponderPtr responder);
  // POST /v1/workflows/tasks/{task_id}/stop: cancels the run.
  void Stop(const std::string& task_id, HttpResponderPtr responder);
  void Upload(HttpRequest& request, HttpResponderPtr responder);
  // Predictive precompute: runs, at the models' lowest priority and for
  // the cache only, what every workflow taking this kind of file would
  // compute from it, so that a later run with the file hits the cache.
  void Precompute(const StoredFile& file);
  static constexpr int kMaxPrecomputeRuns = 4;

  const WorkflowRegistry& registry_;
  InferenceService& service_;
  FileStore& files_;
  const bool precompute_;
  const std::size_t max_upload_bytes_;
  const UrlFetcher fetcher_;
  const std::shared_ptr<WorkflowTasks> tasks_;
  // Precompute runs under way; shared with their event sinks.
  const std::shared_ptr<std::atomic<int>> precomputing_ = std::make_shared<std::atomic<int>>(0);
  std::thread pinger_;
  ThreadPool fetch_pool_{2};  // remote_url fetches, off the network threads
};

// One run's events as Dify's workflow API shapes them (each SSE `data:`),
// with the fields Dify clients read: each node's execution id, `index` (the
// order nodes appeared), `predecessor_node_id`, `created_at`/`finished_at`
// (Unix seconds), `elapsed_time` (seconds). A stopped run ends with
// workflow_finished, status "stopped". Called one event at a time.
class WorkflowEventWriter {
 public:
  WorkflowEventWriter(WorkflowPtr workflow, std::string run_id);

  std::string Json(const WorkflowEvent& event);
  // For a blocking response: notes what the run object lists.
  void Collect(const WorkflowEvent& event);
  // The blocking response after the run's last event; a run that did not
  // succeed carries an "error" string beside the run object.
  std::string Blocking(const WorkflowEvent& last);

 private:
  struct NodeRecord {
    std::string id;  // this node execution's
    int index = 0;
    std::int64_t created_at = 0;
  };
  NodeRecord& Record(const std::string& node_id);
  std::string NodeFields(const WorkflowEvent& event, const NodeRecord& record);
  std::string RunFields(const WorkflowEvent& event, std::string_view status);

  const WorkflowPtr workflow_;
  const std::string run_id_;
  const std::int64_t created_at_;
  std::map<std::string, NodeRecord> nodes_;
  std::vector<std::string> nodes_json_;  // blocking: each finished node
  int steps_ = 0;                        // nodes that succeeded
};

// A tensor as a JSON value: a string for one BYTES element, a number for one
// number, a flat list otherwise, {"datatype","shape"} past 4096 elements.
void AppendTensorJson(std::string& out, const Tensor& tensor);

}  // namespace braid
