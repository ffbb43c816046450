// The Dify-shaped workflow API over HTTP: GET /v1/workflows and
// POST /v1/workflows/{name}/run with response_mode blocking or streaming
// (Server-Sent Events: workflow_started, node_started, node_finished,
// text_chunk, workflow_finished, error). An upload to /v1/files/upload
// starts the predictive precompute of the file's node results.
#pragma once

#include <memory>

#include "core/thread_pool.h"
#include "frontends/http/http_server.h"
#include "serving/file_store.h"
#include "serving/inference_service.h"
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
  Result<std::filesystem::path> ModelDirectory(const std::string& model) override;
  std::optional<CachePolicy> CachePolicyFor(const std::string& model) override;

 private:
  InferenceService& service_;
};

// Checks workflow model nodes against the loaded models.
ModelCatalog MakeModelCatalog(InferenceService& service);

class WorkflowApi {
 public:
  // Everything passed must outlive the API. An uploaded file may hold up to
  // `max_upload_bytes`.
  WorkflowApi(const WorkflowRegistry& registry, WorkflowExecutor& executor, FileStore& files,
              std::size_t max_upload_bytes = std::size_t{64} << 20);

  // Answers the request if its path is a workflow endpoint (or
  // /v1/files/upload); false otherwise.
  bool Handle(HttpRequest& request, HttpResponderPtr& responder);

 private:
  void Run(const std::string& name, HttpRequest& request, HttpResponderPtr responder);
  void Upload(HttpRequest& request, HttpResponderPtr responder);
  // Predictive precompute: runs, at the models' lowest priority and for
  // the cache only, what every workflow taking this kind of file would
  // compute from it, so that a later run with the file hits the cache.
  void Precompute(const StoredFile& file);

  const WorkflowRegistry& registry_;
  WorkflowExecutor& executor_;
  FileStore& files_;
  const std::size_t max_upload_bytes_;
};

// One workflow event as Dify's workflow API shapes it (the SSE `data:`).
std::string WorkflowEventJson(const WorkflowEvent& event, const std::string& run_id,
                              const std::string& workflow);

// A tensor as a JSON value: a string for one BYTES element, a number for one
// number, a flat list otherwise, {"datatype","shape"} past 4096 elements.
void AppendTensorJson(std::string& out, const Tensor& tensor);

}  // namespace braid
