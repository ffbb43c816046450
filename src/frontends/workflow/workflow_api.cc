#include "frontends/workflow/workflow_api.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <rapidjson/document.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "core/base64.h"
#include "core/random_id.h"
#include "frontends/http/multipart.h"
#include "frontends/kserve/kserve.h"
#include "frontends/status_mapping.h"
#include "preprocess/image.h"

namespace braid {
namespace {

constexpr std::int64_t kMaxJsonElements = 4096;

std::string NewRunId() { return RandomId({}, 2); }

std::int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double Seconds(Duration d) { return ToMicros(d) / 1e6; }

std::string OutputsJson(const NamedTensors& outputs) {
  std::string out = "{";
  bool first = true;
  for (const auto& [name, tensor] : outputs) {
    if (!first) out += ',';
    first = false;
    AppendJsonString(out, name);
    out += ':';
    AppendTensorJson(out, tensor);
  }
  return out + "}";
}

const char* EventName(WorkflowEvent::Type type) {
  switch (type) {
    case WorkflowEvent::Type::kWorkflowStarted:
      return "workflow_started";
    case WorkflowEvent::Type::kNodeStarted:
      return "node_started";
    case WorkflowEvent::Type::kNodeFinished:
      return "node_finished";
    case WorkflowEvent::Type::kTextChunk:
      return "text_chunk";
    case WorkflowEvent::Type::kWorkflowFinished:
      return "workflow_finished";
    case WorkflowEvent::Type::kError:
      return "error";
  }
  return "unknown";
}

}  // namespace

WorkflowEventWriter::WorkflowEventWriter(WorkflowPtr workflow, std::string run_id)
    : workflow_(std::move(workflow)), run_id_(std::move(run_id)), created_at_(UnixSeconds()) {}

WorkflowEventWriter::NodeRecord& WorkflowEventWriter::Record(const std::string& node_id) {
  auto [it, added] = nodes_.try_emplace(node_id);
  if (added) {
    it->second.id = RandomUuid();
    it->second.index = static_cast<int>(nodes_.size());
    it->second.created_at = UnixSeconds();
  }
  return it->second;
}

std::string WorkflowEventWriter::NodeFields(const WorkflowEvent& event, const NodeRecord& record) {
  const NodeSpec* spec = workflow_->FindNode(event.node_id);
  std::string predecessor = "null";
  if (spec != nullptr && !spec->depends_on.empty()) predecessor = JsonQuoted(spec->depends_on[0]);
  const std::string node = JsonQuoted(event.node_id);
  return fmt::format(
      R"("id":"{}","node_id":{},"node_type":"{}","title":{},"index":{},"predecessor_node_id":{},"inputs":null,"created_at":{})",
      record.id, node, event.node_kind, node, record.index, predecessor, record.created_at);
}

std::string WorkflowEventWriter::RunFields(const WorkflowEvent& event, std::string_view status) {
  const bool ok = status == "succeeded";
  // A semantic cache hit says so, with how similar the earlier run was.
  const std::string semantic =
      event.semantic ? fmt::format(R"(,"cached":"semantic","similarity":{:.4f})", event.similarity)
                     : "";
  return fmt::format(
      R"("id":"{}","workflow_id":{},"status":"{}","outputs":{},"error":{},"elapsed_time":{:.6f},"total_tokens":0,"total_steps":{},"created_at":{},"finished_at":{}{})",
      run_id_, JsonQuoted(workflow_->name), status, ok ? OutputsJson(event.outputs) : "{}",
      ok ? "null" : JsonQuoted(event.text), Seconds(event.elapsed), steps_, created_at_,
      UnixSeconds(), semantic);
}

std::string WorkflowEventWriter::Json(const WorkflowEvent& event) {
  const std::string head = fmt::format(R"({{"event":"{}","workflow_run_id":"{}","task_id":"{}")",
                                       EventName(event.type), run_id_, run_id_);
  switch (event.type) {
    case WorkflowEvent::Type::kWorkflowStarted:
      return head +
             fmt::format(
                 R"(,"data":{{"id":"{}","workflow_id":{},"sequence_number":1,"inputs":{{}},"created_at":{}}}}})",
                 run_id_, JsonQuoted(workflow_->name), created_at_);
    case WorkflowEvent::Type::kNodeStarted:
      return head + R"(,"data":{)" + NodeFields(event, Record(event.node_id)) + "}}";
    case WorkflowEvent::Type::kNodeFinished: {
      const NodeRecord& record = Record(event.node_id);
      if (event.status == "succeeded") ++steps_;
      return head + R"(,"data":{)" + NodeFields(event, record) +
             fmt::format(
                 R"(,"process_data":null,"outputs":{},"status":"{}","error":null,"elapsed_time":{:.6f},"execution_metadata":{{"total_tokens":0}},"finished_at":{},"cached":{}}}}})",
                 OutputsJson(event.outputs), event.status, Seconds(event.elapsed), UnixSeconds(),
                 event.cached);
    }
    case WorkflowEvent::Type::kTextChunk:
      return head + fmt::format(R"(,"data":{{"text":{},"from_variable_selector":[{},"text"]}}}})",
                                JsonQuoted(event.text), JsonQuoted(event.node_id));
    case WorkflowEvent::Type::kWorkflowFinished:
      return head + R"(,"data":{)" + RunFields(event, "succeeded") + "}}";
    case WorkflowEvent::Type::kError:
      // A stopped run finishes as Dify's does; a failure is an error event.
      if (event.error_code == StatusCode::kCancelled) {
        return fmt::format(R"({{"event":"workflow_finished","workflow_run_id":"{}","task_id":"{}")",
                           run_id_, run_id_) +
               R"(,"data":{)" + RunFields(event, "stopped") + "}}";
      }
      return head + fmt::format(R"(,"status":{},"code":"{}","node_id":{},"message":{}}})",
                                HttpStatusFor(event.error_code),
                                event.node_id.empty() ? "workflow_failed" : "node_failed",
                                JsonQuoted(event.node_id), JsonQuoted(event.text));
  }
  return head + "}";
}

std::string WorkflowEventWriter::Blocking(const WorkflowEvent& last) {
  const bool ok = last.type == WorkflowEvent::Type::kWorkflowFinished;
  const bool stopped =
      last.type == WorkflowEvent::Type::kError && last.error_code == StatusCode::kCancelled;
  const std::string status = ok ? "succeeded" : stopped ? "stopped" : "failed";
  std::string body =
      fmt::format(R"({{"workflow_run_id":"{}","task_id":"{}","data":{{)", run_id_, run_id_) +
      RunFields(last, status) + R"(,"nodes":[)" + fmt::format("{}", fmt::join(nodes_json_, ",")) +
      "]}";
  // Every error in braid has an "error" string at the top; a stop is none.
  if (!ok && !stopped) body += ",\"error\":" + JsonQuoted(last.text);
  return body + "}";
}

void WorkflowEventWriter::Collect(const WorkflowEvent& event) {
  if (event.type != WorkflowEvent::Type::kNodeFinished) return;
  Record(event.node_id);
  if (event.status == "succeeded") ++steps_;
  nodes_json_.push_back(
      fmt::format(R"({{"id":{},"node_type":"{}","status":"{}","elapsed_time":{:.6f},"cached":{}}})",
                  JsonQuoted(event.node_id), event.node_kind, event.status, Seconds(event.elapsed),
                  event.cached));
}

namespace {

// Checks that `media_type` fits input `spec` (an image or audio input).
Status CheckMedia(const WorkflowInput& spec, const std::string& media_type) {
  const bool image = spec.type == InputType::kImage;
  if (media_type.empty() || media_type == "application/octet-stream" ||
      media_type.starts_with(image ? "image/" : "audio/")) {
    return Status::Ok();
  }
  return InvalidArgument("input '{}' expects {} but the data holds {}", spec.name,
                         image ? "an image" : "audio", media_type);
}

// A file input given by URL: fetched before the run starts.
struct RemoteInput {
  const WorkflowInput* spec;
  std::string url;
};

struct ParsedInputs {
  NamedTensors tensors;
  std::vector<RemoteInput> remote;
};

// A Dify file object: {"type", "transfer_method": "local_file", "upload_file_id"}
// or {"type", "transfer_method": "remote_url", "url"}. Local files are read
// from the store into `out`; remote ones are added to `remote`.
Status ReadFileObject(const WorkflowInput& spec, const rapidjson::Value& ref, FileStore& files,
                      ParsedInputs& out) {
  auto field = [&](const char* key) -> std::string {
    return ref.HasMember(key) && ref[key].IsString() ? ref[key].GetString() : "";
  };
  const std::string type = field("type");
  if ((type == "image" || type == "audio") && type != InputTypeName(spec.type)) {
    return InvalidArgument("input '{}' takes {}; the file object is of type '{}'", spec.name,
                           InputTypeName(spec.type), type);
  }
  std::string method = field("transfer_method");
  if (method.empty()) method = ref.HasMember("url") ? "remote_url" : "local_file";
  if (method == "remote_url") {
    if (field("url").empty())
      return InvalidArgument("input '{}': remote_url needs a 'url'", spec.name);
    out.remote.push_back({&spec, field("url")});
    return Status::Ok();
  }
  if (method != "local_file") {
    return InvalidArgument("input '{}': transfer_method must be local_file or remote_url",
                           spec.name);
  }
  if (field("upload_file_id").empty())
    return InvalidArgument("input '{}': local_file needs an 'upload_file_id'", spec.name);
  BRAID_ASSIGN_OR_RETURN(StoredFile file, files.Get(field("upload_file_id")));
  if (spec.type != InputType::kText) BRAID_RETURN_IF_ERROR(CheckMedia(spec, file.media_type));
  BRAID_ASSIGN_OR_RETURN(out.tensors[spec.name], Tensor::FromStrings({file.bytes}, {1}));
  return Status::Ok();
}

// The request's inputs as BYTES tensors: text as UTF-8, media from data URLs
// or Dify file objects (alone or as a one-file list). `given` may already
// hold inputs given as multipart files.
Result<ParsedInputs> ParseInputs(const Workflow& workflow, const rapidjson::Value& inputs,
                                 FileStore& files, NamedTensors given) {
  ParsedInputs parsed{std::move(given), {}};
  NamedTensors& out = parsed.tensors;
  if (!inputs.IsObject()) return InvalidArgument("'inputs' must be an object");
  for (const auto& member : inputs.GetObject()) {
    const std::string name = member.name.GetString();
    const WorkflowInput* spec = workflow.FindInput(name);
    if (spec == nullptr) {
      std::vector<std::string> known;
      for (const auto& input : workflow.inputs) known.push_back(input.name);
      return InvalidArgument("workflow '{}' has no input '{}' (its inputs: {})", workflow.name,
                             name, fmt::join(known, ", "));
    }
    const rapidjson::Value* value = &member.value;
    // A Dify file-list variable: an array of file objects, one per input.
    if (value->IsArray()) {
      if (value->Size() > 1) {
        return InvalidArgument("input '{}' takes one file; the list has {}", name, value->Size());
      }
      if (value->Empty()) continue;
      value = &(*value)[0];
    }
    if (value->IsNull()) continue;
    if (value->IsObject()) {
      BRAID_RETURN_IF_ERROR(ReadFileObject(*spec, *value, files, parsed));
      continue;
    }
    if (!value->IsString()) {
      return InvalidArgument(
          "input '{}' must be a string (text or a data: URL) or a file reference", name);
    }
    std::string text(value->GetString(), value->GetStringLength());
    if (spec->type == InputType::kText) {
      if (text.starts_with("data:")) {
        BRAID_ASSIGN_OR_RETURN(DataUrl url, ParseDataUrl(text));
        text = std::move(url.data);
      }
      if (!IsValidUtf8(text)) return InvalidArgument("input '{}' is not valid UTF-8", name);
      if (text.empty()) continue;
    } else {
      auto url = ParseDataUrl(text);
      if (!url.ok()) {
        return InvalidArgument("input '{}' must be a data: URL with base64 {} data", name,
                               InputTypeName(spec->type));
      }
      // Dify sends audio as image_url too: inputs are checked by media type.
      BRAID_RETURN_IF_ERROR(CheckMedia(*spec, url->media_type));
      text = std::move(url->data);
    }
    BRAID_ASSIGN_OR_RETURN(Tensor tensor, Tensor::FromStrings({text}, {1}));
    out[name] = tensor;
  }
  for (const auto& input : workflow.inputs) {
    const bool remote = std::any_of(parsed.remote.begin(), parsed.remote.end(),
                                    [&](const RemoteInput& r) { return r.spec == &input; });
    if (!input.optional && !out.count(input.name) && !remote) {
      return InvalidArgument("workflow '{}' needs input '{}'", workflow.name, input.name);
    }
  }
  return parsed;
}

}  // namespace

void AppendTensorJson(std::string& out, const Tensor& tensor) {
  if (tensor.element_count() > kMaxJsonElements) {
    out += fmt::format(R"({{"datatype":"{}","shape":[{}]}})", DataTypeName(tensor.dtype()),
                       fmt::join(tensor.shape(), ","));
    return;
  }
  if (tensor.element_count() == 1) return AppendTensorData(out, tensor);
  out += '[';
  AppendTensorData(out, tensor);
  out += ']';
}

void ServiceModelRunner::Run(const std::string& model, NamedTensors inputs, const ModelCall& call,
                             std::function<void(Result<NamedTensors>)> done) {
  InferOptions options;
  options.priority = call.priority;
  options.deadline = call.deadline;
  options.cancellation = call.cancellation;
  options.use_cache = call.use_cache;
  // A workflow's values are single items: a batching model takes them as a batch of one.
  if (auto loaded = service_.GetModel(model); loaded.ok()) {
    for (auto& [name, tensor] : inputs) tensor = AsOneItem((*loaded)->config(), name, tensor);
  }
  service_.Infer(model, 0, std::move(inputs), options,
                 [done = std::move(done)](Result<InferResponse> result) {
                   if (!result.ok()) return done(result.status());
                   NamedTensors outputs;
                   const auto& specs = result->model->config().outputs;
                   for (std::size_t o = 0; o < specs.size(); ++o)
                     outputs[specs[o].name] = result->outputs[o];
                   done(std::move(outputs));
                 });
}

std::optional<ModelRunner::CachePolicy> ServiceModelRunner::CachePolicyFor(
    const std::string& model) {
  auto loaded = service_.GetModel(model);
  if (!loaded.ok() || !(*loaded)->config().response_cache.enable) return std::nullopt;
  return CachePolicy{(*loaded)->version(),
                     std::chrono::seconds((*loaded)->config().response_cache.ttl_s)};
}

Result<std::shared_ptr<const Tokenizer>> ServiceModelRunner::TokenizerFor(
    const std::string& model) {
  return service_.TokenizerFor(model);
}

ModelCatalog MakeModelCatalog(InferenceService& service) {
  return [&service](const std::string& name,
                    const std::vector<std::string>& inputs) -> Result<std::vector<std::string>> {
    BRAID_ASSIGN_OR_RETURN(ModelPtr model, service.GetModel(name));
    for (const auto& input : inputs) {
      if (!model->config().FindInput(input))
        return InvalidArgument("model '{}' has no input '{}'", name, input);
    }
    std::vector<std::string> missing;
    for (const auto& spec : model->config().inputs) {
      if (std::find(inputs.begin(), inputs.end(), spec.name) == inputs.end())
        missing.push_back(spec.name);
    }
    if (!missing.empty()) {
      const bool mask =
          std::find(missing.begin(), missing.end(), "attention_mask") != missing.end();
      return InvalidArgument("model '{}' also needs {}{}", name, fmt::join(missing, ", "),
                             mask ? " (a preprocess.text node gives it beside input_ids)" : "");
    }
    std::vector<std::string> outputs;
    for (const auto& spec : model->config().outputs) outputs.push_back(spec.name);
    return outputs;
  };
}

// One streaming run's SSE body: events and pings written in order, nothing
// after its end (the connection may carry the next response).
class SseStream {
 public:
  explicit SseStream(HttpResponderPtr responder) : responder_(std::move(responder)) {}

  // False once the client has gone.
  bool Write(const std::string& event) {
    std::lock_guard lock(mutex_);
    last_write_ = std::chrono::steady_clock::now();
    return !ended_ && responder_->WriteChunk("data: " + event + "\n\n");
  }
  void End() {
    std::lock_guard lock(mutex_);
    if (std::exchange(ended_, true)) return;
    responder_->EndStream();
  }
  void PingIfQuietFor(std::chrono::steady_clock::duration quiet) {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (ended_ || now - last_write_ < quiet) return;
    last_write_ = now;
    responder_->WriteChunk("event: ping\n\n");
  }

 private:
  const HttpResponderPtr responder_;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point last_write_ = std::chrono::steady_clock::now();
  bool ended_ = false;
};

class WorkflowTasks {
 public:
  struct Task {
    std::shared_ptr<CancellationToken> cancellation;
    std::shared_ptr<SseStream> stream;  // null for a blocking run
  };

  void Add(const std::string& id, Task task) {
    std::lock_guard lock(mutex_);
    tasks_[id] = std::move(task);
  }
  void Remove(const std::string& id) {
    std::lock_guard lock(mutex_);
    tasks_.erase(id);
  }
  // False when no such run is under way.
  bool Cancel(const std::string& id) {
    std::lock_guard lock(mutex_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return false;
    it->second.cancellation->Cancel();
    return true;
  }
  // Pings quiet streams every tenth of `interval` until Close().
  void PingUntilClosed(std::chrono::milliseconds interval) {
    std::unique_lock lock(mutex_);
    while (!closed_) {
      closed_cv_.wait_for(lock, std::max(interval / 10, std::chrono::milliseconds(1)));
      std::vector<std::shared_ptr<SseStream>> streams;
      for (const auto& [id, task] : tasks_) {
        if (task.stream) streams.push_back(task.stream);
      }
      lock.unlock();
      for (const auto& stream : streams) stream->PingIfQuietFor(interval);
      lock.lock();
    }
  }
  void Close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    closed_cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable closed_cv_;
  std::map<std::string, Task> tasks_;  // guarded by mutex_
  bool closed_ = false;                // guarded by mutex_
};

WorkflowApi::WorkflowApi(const WorkflowRegistry& registry, InferenceService& service,
                         FileStore& files, WorkflowApiOptions options)
    : registry_(registry),
      service_(service),
      files_(files),
      precompute_(options.precompute),
      max_upload_bytes_(options.max_upload_bytes),
      fetcher_([&] {
        options.fetch.max_bytes = std::min(options.fetch.max_bytes, options.max_upload_bytes);
        return options.fetch;
      }()),
      tasks_(std::make_shared<WorkflowTasks>()),
      pinger_([tasks = tasks_, interval = options.ping_interval] {
        tasks->PingUntilClosed(interval);
      }) {}

WorkflowApi::~WorkflowApi() {
  fetch_pool_.WaitIdle();
  tasks_->Close();
  pinger_.join();
}

void WorkflowApi::Stop(const std::string& task_id, HttpResponderPtr responder) {
  if (!tasks_->Cancel(task_id)) {
    return responder->Send(
        JsonError(404, fmt::format("no workflow run '{}' is under way", task_id)));
  }
  HttpResponse response;
  response.body = R"({"result":"success"})";
  responder->Send(std::move(response));
}

void WorkflowApi::Upload(HttpRequest& request, HttpResponderPtr responder) {
  auto parts = ParseMultipart(request.Header("Content-Type"), *request.body);
  if (!parts.ok()) {
    return responder->Send(
        JsonError(HttpStatusFor(parts.status().code()), parts.status().message()));
  }
  const FormPart* file = nullptr;
  std::string user;
  for (const auto& part : *parts) {
    if (part.name == "file") file = &part;
    if (part.name == "user") user = std::string(part.data);
  }
  if (file == nullptr || file->data.empty()) {
    return responder->Send(JsonError(400, "the multipart 'file' part is required"));
  }
  if (file->data.size() > max_upload_bytes_) {
    return responder->Send(JsonError(413, fmt::format("the file's {} bytes are over the {} allowed",
                                                      file->data.size(), max_upload_bytes_)));
  }
  auto stored =
      files_.Put(request.peer, file->filename, file->content_type, std::string(file->data));
  if (!stored.ok()) {
    return responder->Send(
        JsonError(HttpStatusFor(stored.status().code()), stored.status().message()));
  }
  Precompute(*stored);
  const auto dot = stored->name.rfind('.');
  std::string name, extension, media, by;
  AppendJsonString(name, stored->name);
  AppendJsonString(extension, dot == std::string::npos ? "" : stored->name.substr(dot + 1));
  AppendJsonString(media, stored->media_type);
  AppendJsonString(by, user);
  HttpResponse response;
  response.status = 201;
  response.body = fmt::format(
      R"({{"id":"{}","name":{},"size":{},"extension":{},"mime_type":{},"created_by":{},"created_at":{}}})",
      stored->id, name, stored->bytes.size(), extension, media, by, stored->created_at);
  responder->Send(std::move(response));
}

namespace {

// What an uploaded file holds, from its declared type or its first bytes.
std::optional<InputType> MediaKind(const StoredFile& file) {
  auto bytes = std::as_bytes(std::span(file.bytes.data(), file.bytes.size()));
  if (file.media_type.starts_with("image/") || ProbeImage(bytes).ok()) return InputType::kImage;
  const std::string_view head(file.bytes.data(), std::min<std::size_t>(file.bytes.size(), 12));
  const bool audio_magic = (head.starts_with("RIFF") && head.substr(8) == "WAVE") ||
                           head.starts_with("fLaC") || head.starts_with("OggS") ||
                           head.starts_with("ID3");
  if (file.media_type.starts_with("audio/") || audio_magic) return InputType::kAudio;
  return std::nullopt;
}

}  // namespace

void WorkflowApi::Precompute(const StoredFile& file) {
  if (!precompute_) return;
  const auto kind = MediaKind(file);
  if (!kind) return;
  auto tensor = Tensor::FromStrings({file.bytes}, {1});
  if (!tensor.ok()) return;
  for (const auto& [name, entry] : registry_.entries()) {
    if (!entry.workflow) continue;
    for (const auto& input : entry.workflow->inputs) {
      if (input.type != *kind) continue;
      // Uploads cannot queue precompute without end: past the cap they are
      // stored and computed when a run asks for them.
      if (precomputing_->fetch_add(1) >= kMaxPrecomputeRuns) {
        --*precomputing_;
        spdlog::debug("precompute of {} skipped: {} runs already under way", file.id,
                      kMaxPrecomputeRuns);
        return;
      }
      // Frees its place when the run lets go of its event sink.
      std::shared_ptr<void> place(nullptr, [count = precomputing_](void*) { --*count; });
      RunOptions options;
      options.precompute = true;
      options.priority = kLowestPriority;
      service_.Run(name, {{input.name, *tensor}}, options,
                   [workflow = name, id = file.id, place](const WorkflowEvent& event) {
                     if (event.type == WorkflowEvent::Type::kError)
                       spdlog::debug("precompute of {} for {}: {}", id, workflow, event.text);
                   });
    }
  }
}

void WorkflowApi::AddRoutes(RouteTable& routes) {
  routes.Add("POST", "/v1/files/upload", RouteTo(this, &WorkflowApi::Upload));
  routes.Add("GET", "/v1/workflows",
             [this](HttpRequest&, HttpResponderPtr responder, const PathParams&) {
               List(std::move(responder));
             });
  routes.Add("POST", "/v1/workflows/tasks/{task_id}/stop",
             [this](HttpRequest&, HttpResponderPtr responder, const PathParams& params) {
               Stop(std::string(params[0]), std::move(responder));
             });
  routes.Add("POST", "/v1/workflows/{name}/run",
             [this](HttpRequest& request, HttpResponderPtr responder, const PathParams& params) {
               Run(std::string(params[0]), request, std::move(responder));
             });
  // Dify's own path names no workflow (Dify's API key picks the app); a
  // workflow named "run" is run by it.
  routes.Add("POST", "/v1/workflows/run",
             [this](HttpRequest& request, HttpResponderPtr responder, const PathParams&) {
               if (registry_.entries().count("run")) return Run("run", request, responder);
               responder->Send(JsonError(
                   404, fmt::format("a run names its workflow: POST /v1/workflows/{{name}}/run; "
                                    "the workflows are: {}",
                                    registry_.Names())));
             });
}

void WorkflowApi::List(HttpResponderPtr responder) {
  std::vector<std::string> items;
  for (const auto& [name, entry] : registry_.entries()) {
    std::string item = "{\"name\":";
    AppendJsonString(item, name);
    if (entry.workflow) {
      item += ",\"status\":\"available\",\"description\":";
      AppendJsonString(item, entry.workflow->description);
      item += ",\"inputs\":[";
      for (std::size_t i = 0; i < entry.workflow->inputs.size(); ++i) {
        const auto& input = entry.workflow->inputs[i];
        item += fmt::format(R"({}{{"name":"{}","type":"{}","optional":{}}})", i ? "," : "",
                            input.name, InputTypeName(input.type), input.optional);
      }
      item += "],\"nodes\":[";
      for (std::size_t i = 0; i < entry.workflow->nodes.size(); ++i) {
        const NodeSpec& node = entry.workflow->nodes[i];
        item += i ? ",{\"id\":" : "{\"id\":";
        AppendJsonString(item, node.id);
        item += ",\"kind\":";
        AppendJsonString(item, node.kind);
        item += ",\"depends_on\":[";
        for (std::size_t d = 0; d < node.depends_on.size(); ++d) {
          if (d) item += ',';
          AppendJsonString(item, node.depends_on[d]);
        }
        item += "]}";
      }
      item += "],\"outputs\":[";
      bool first = true;
      for (const auto& [output, reference] : entry.workflow->outputs) {
        if (!std::exchange(first, false)) item += ',';
        AppendJsonString(item, output);
      }
      item += "]}";
    } else {
      item += ",\"status\":\"unavailable\",\"reason\":";
      AppendJsonString(item, entry.reason);
      item += "}";
    }
    items.push_back(std::move(item));
  }
  HttpResponse response;
  response.body = fmt::format("{{\"object\":\"list\",\"data\":[{}]}}", fmt::join(items, ","));
  responder->Send(std::move(response));
}

void WorkflowApi::Run(const std::string& name, HttpRequest& request, HttpResponderPtr responder) {
  auto fail = [&](const Status& status) { responder->Send(JsonError(status)); };
  auto workflow = registry_.Get(name);
  if (!workflow.ok()) return fail(workflow.status());
  // JSON, or multipart/form-data with an `inputs` JSON field, an optional
  // `response_mode` field and file parts named after the workflow's inputs.
  std::string json = *request.body;
  NamedTensors file_inputs;
  std::string mode = "blocking";
  bool semantic_cache = true;
  const std::string_view content_type = request.Header("Content-Type");
  if (content_type.starts_with("multipart/")) {
    auto parts = ParseMultipart(content_type, *request.body);
    if (!parts.ok()) return fail(parts.status());
    json = "{}";
    for (const auto& part : *parts) {
      const WorkflowInput* spec = (*workflow)->FindInput(part.name);
      if (part.name == "inputs") {
        json = fmt::format(R"({{"inputs":{}}})", part.data);
      } else if (part.name == "response_mode") {
        mode = std::string(part.data);
      } else if (part.name == "semantic_cache") {
        if (part.data != "true" && part.data != "false")
          return fail(InvalidArgument("'semantic_cache' must be true or false"));
        semantic_cache = part.data == "true";
      } else if (spec != nullptr && !part.filename.empty()) {
        if (spec->type != InputType::kText) {
          if (Status s = CheckMedia(*spec, part.content_type); !s.ok()) return fail(s);
        }
        if (part.data.size() > max_upload_bytes_) {
          return fail(MakeStatus(StatusCode::kTooLarge,
                                 "file '{}' has {} bytes, over the {} allowed", part.name,
                                 part.data.size(), max_upload_bytes_));
        }
        file_inputs[part.name] = *Tensor::FromStrings({std::string(part.data)}, {1});
      } else if (part.name != "user") {
        return fail(InvalidArgument("unexpected multipart part '{}'", part.name));
      }
    }
  }
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject())
    return fail(InvalidArgument("the body must be a JSON object"));
  if (doc.HasMember("response_mode")) {
    if (!doc["response_mode"].IsString())
      return fail(InvalidArgument("'response_mode' must be a string"));
    mode = doc["response_mode"].GetString();
  }
  if (mode != "blocking" && mode != "streaming") {
    return fail(InvalidArgument("response_mode must be 'blocking' or 'streaming'"));
  }
  if (doc.HasMember("semantic_cache")) {
    if (!doc["semantic_cache"].IsBool())
      return fail(InvalidArgument("'semantic_cache' must be true or false"));
    semantic_cache = doc["semantic_cache"].GetBool();
  }
  static const rapidjson::Value kEmpty(rapidjson::kObjectType);
  auto inputs = ParseInputs(**workflow, doc.HasMember("inputs") ? doc["inputs"] : kEmpty, files_,
                            std::move(file_inputs));
  if (!inputs.ok()) return fail(inputs.status());
  if (inputs->remote.empty())
    return StartRun(*workflow, std::move(inputs->tensors), mode, semantic_cache,
                    std::move(responder));
  if (!fetcher_.enabled()) return fail(fetcher_.Fetch(inputs->remote[0].url).status());
  fetch_pool_.Submit([this, workflow = *workflow, inputs = std::move(inputs).value(), mode,
                      semantic_cache, responder = std::move(responder)]() mutable {
    for (const auto& remote : inputs.remote) {
      auto file = fetcher_.Fetch(remote.url);
      Status status = file.ok() ? Status::Ok() : file.status();
      if (status.ok() && remote.spec->type != InputType::kText)
        status = CheckMedia(*remote.spec, file->media_type);
      if (!status.ok())
        return responder->Send(
            JsonError(status.WithContext(fmt::format("input '{}'", remote.spec->name))));
      inputs.tensors[remote.spec->name] = *Tensor::FromStrings({std::move(file->bytes)}, {1});
    }
    StartRun(workflow, std::move(inputs.tensors), mode, semantic_cache, std::move(responder));
  });
}

void WorkflowApi::StartRun(WorkflowPtr workflow, NamedTensors inputs, const std::string& mode,
                           bool semantic_cache, HttpResponderPtr responder) {
  const std::string run_id = NewRunId();
  RunOptions options;
  options.semantic_cache = semantic_cache;
  options.cancellation = std::make_shared<CancellationToken>();
  // A client that disconnects cancels the run's queued model work.
  responder->OnDisconnect([token = options.cancellation] { token->Cancel(); });
  auto writer = std::make_shared<WorkflowEventWriter>(workflow, run_id);
  if (mode == "streaming") {
    responder->StartStream(200, "text/event-stream", {{"X-Workflow-Run-Id", run_id}});
    auto stream = std::make_shared<SseStream>(responder);
    tasks_->Add(run_id, {options.cancellation, stream});
    service_.Run(workflow->name, std::move(inputs), options,
                 [stream, writer, tasks = tasks_, run_id,
                  cancellation = options.cancellation](const WorkflowEvent& event) {
                   if (!stream->Write(writer->Json(event))) cancellation->Cancel();
                   if (!event.ends_run()) return;
                   tasks->Remove(run_id);
                   stream->End();
                 });
    return;
  }
  // Blocking: collect what the response needs, answer at the end.
  tasks_->Add(run_id, {options.cancellation, nullptr});
  service_.Run(
      workflow->name, std::move(inputs), options,
      [responder, writer, tasks = tasks_, run_id](const WorkflowEvent& event) {
        writer->Collect(event);
        if (!event.ends_run()) return;
        tasks->Remove(run_id);
        HttpResponse response;
        if (event.type == WorkflowEvent::Type::kError && event.error_code != StatusCode::kCancelled)
          response.status = HttpStatusFor(event.error_code);
        response.body = writer->Blocking(event);
        responder->Send(std::move(response));
      });
}

}  // namespace braid
