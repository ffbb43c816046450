#include "frontends/workflow/workflow_api.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <rapidjson/document.h>
#include <spdlog/spdlog.h>

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

std::string WorkflowEventJson(const WorkflowEvent& event, const std::string& run_id,
                              const std::string& workflow) {
  std::string head = fmt::format(R"({{"event":"{}","workflow_run_id":"{}","task_id":"{}")",
                                 EventName(event.type), run_id, run_id);
  std::string node;
  AppendJsonString(node, event.node_id);
  switch (event.type) {
    case WorkflowEvent::Type::kWorkflowStarted:
      return head + fmt::format(R"(,"data":{{"id":"{}","workflow_id":{},"created_at":{}}}}})",
                                run_id,
                                [&] {
                                  std::string s;
                                  AppendJsonString(s, workflow);
                                  return s;
                                }(),
                                UnixSeconds());
    case WorkflowEvent::Type::kNodeStarted:
      return head +
             fmt::format(
                 R"(,"data":{{"node_id":{},"node_type":"{}","title":{},"index":{},"created_at":{}}}}})",
                 node, event.node_kind, node, event.index, UnixSeconds());
    case WorkflowEvent::Type::kNodeFinished:
      return head +
             fmt::format(
                 R"(,"data":{{"node_id":{},"node_type":"{}","title":{},"status":"{}","outputs":{},"elapsed_time":{:.6f},"cached":{}}}}})",
                 node, event.node_kind, node, event.status, OutputsJson(event.outputs),
                 Seconds(event.elapsed), event.cached);
    case WorkflowEvent::Type::kTextChunk: {
      std::string text;
      AppendJsonString(text, event.text);
      return head + fmt::format(R"(,"data":{{"text":{},"from_variable_selector":[{},"text"]}}}})",
                                text, node);
    }
    case WorkflowEvent::Type::kWorkflowFinished:
      return head +
             fmt::format(
                 R"(,"data":{{"id":"{}","status":"succeeded","outputs":{},"elapsed_time":{:.6f},"created_at":{}}}}})",
                 run_id, OutputsJson(event.outputs), Seconds(event.elapsed), UnixSeconds());
    case WorkflowEvent::Type::kError: {
      std::string message;
      AppendJsonString(message, event.text);
      return head + fmt::format(R"(,"status":{},"code":"node_failed","node_id":{},"message":{}}})",
                                HttpStatusFor(event.error_code), node, message);
    }
  }
  return head + "}";
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

// The request's inputs as BYTES tensors: text as UTF-8, media from data URLs
// or uploaded files ({"transfer_method": "local_file", "upload_file_id": ID},
// as Dify sends them). `out` may already hold inputs given as multipart files.
Result<NamedTensors> ParseInputs(const Workflow& workflow, const rapidjson::Value& inputs,
                                 FileStore& files, NamedTensors out) {
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
    if (member.value.IsNull()) continue;
    if (member.value.IsObject()) {
      const auto& ref = member.value;
      if (!ref.HasMember("upload_file_id") || !ref["upload_file_id"].IsString()) {
        return InvalidArgument(
            "input '{}': only uploaded files (upload_file_id) can be referenced; remote URLs are "
            "not fetched",
            name);
      }
      BRAID_ASSIGN_OR_RETURN(StoredFile file, files.Get(ref["upload_file_id"].GetString()));
      if (spec->type != InputType::kText) BRAID_RETURN_IF_ERROR(CheckMedia(*spec, file.media_type));
      BRAID_ASSIGN_OR_RETURN(Tensor tensor, Tensor::FromStrings({file.bytes}, {1}));
      out[name] = tensor;
      continue;
    }
    if (!member.value.IsString()) {
      return InvalidArgument(
          "input '{}' must be a string (text or a data: URL) or a file reference", name);
    }
    std::string value(member.value.GetString(), member.value.GetStringLength());
    if (spec->type == InputType::kText) {
      if (value.starts_with("data:")) {
        BRAID_ASSIGN_OR_RETURN(DataUrl url, ParseDataUrl(value));
        value = std::move(url.data);
      }
      if (!IsValidUtf8(value)) return InvalidArgument("input '{}' is not valid UTF-8", name);
      if (value.empty()) continue;
    } else {
      auto url = ParseDataUrl(value);
      if (!url.ok()) {
        return InvalidArgument("input '{}' must be a data: URL with base64 {} data", name,
                               InputTypeName(spec->type));
      }
      // Dify sends audio as image_url too: inputs are checked by media type.
      BRAID_RETURN_IF_ERROR(CheckMedia(*spec, url->media_type));
      value = std::move(url->data);
    }
    BRAID_ASSIGN_OR_RETURN(Tensor tensor, Tensor::FromStrings({value}, {1}));
    out[name] = tensor;
  }
  for (const auto& input : workflow.inputs) {
    if (!input.optional && !out.count(input.name)) {
      return InvalidArgument("workflow '{}' needs input '{}'", workflow.name, input.name);
    }
  }
  return out;
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

Result<std::filesystem::path> ServiceModelRunner::ModelDirectory(const std::string& model) {
  BRAID_ASSIGN_OR_RETURN(ModelPtr loaded, service_.GetModel(model));
  return loaded->config().directory / std::to_string(loaded->version());
}

ModelCatalog MakeModelCatalog(InferenceService& service) {
  return [&service](const std::string& name,
                    const std::vector<std::string>& inputs) -> Result<std::vector<std::string>> {
    BRAID_ASSIGN_OR_RETURN(ModelPtr model, service.GetModel(name));
    for (const auto& input : inputs) {
      if (!model->config().FindInput(input))
        return InvalidArgument("model '{}' has no input '{}'", name, input);
    }
    std::vector<std::string> outputs;
    for (const auto& spec : model->config().outputs) outputs.push_back(spec.name);
    return outputs;
  };
}

WorkflowApi::WorkflowApi(const WorkflowRegistry& registry, WorkflowExecutor& executor,
                         FileStore& files, std::size_t max_upload_bytes)
    : registry_(registry),
      executor_(executor),
      files_(files),
      max_upload_bytes_(max_upload_bytes) {}

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
  auto stored = files_.Put(file->filename, file->content_type, std::string(file->data));
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
  if (!executor_.caching()) return;
  const auto kind = MediaKind(file);
  if (!kind) return;
  auto tensor = Tensor::FromStrings({file.bytes}, {1});
  if (!tensor.ok()) return;
  for (const auto& [name, entry] : registry_.entries()) {
    if (!entry.workflow) continue;
    for (const auto& input : entry.workflow->inputs) {
      if (input.type != *kind) continue;
      RunOptions options;
      options.precompute = true;
      options.priority = kLowestPriority;
      executor_.Start(entry.workflow, {{input.name, *tensor}}, options,
                      [workflow = name, id = file.id](const WorkflowEvent& event) {
                        if (event.type == WorkflowEvent::Type::kError)
                          spdlog::debug("precompute of {} for {}: {}", id, workflow, event.text);
                      });
    }
  }
}

bool WorkflowApi::Handle(HttpRequest& request, HttpResponderPtr& responder) {
  if (request.path == "/v1/files/upload") {
    if (request.method != "POST") {
      responder->Send(JsonError(405, "/v1/files/upload takes POST"));
    } else {
      Upload(request, responder);
    }
    return true;
  }
  if (request.path == "/v1/workflows") {
    if (request.method != "GET") {
      responder->Send(JsonError(405, "/v1/workflows takes GET"));
      return true;
    }
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
    return true;
  }
  constexpr std::string_view kPrefix = "/v1/workflows/";
  if (request.path.starts_with(kPrefix) && request.path.ends_with("/run")) {
    std::string name =
        request.path.substr(kPrefix.size(), request.path.size() - kPrefix.size() - 4);
    if (request.method != "POST") {
      responder->Send(JsonError(405, "workflow runs take POST"));
      return true;
    }
    Run(name, request, responder);
    return true;
  }
  return false;
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
  static const rapidjson::Value kEmpty(rapidjson::kObjectType);
  auto inputs = ParseInputs(**workflow, doc.HasMember("inputs") ? doc["inputs"] : kEmpty, files_,
                            std::move(file_inputs));
  if (!inputs.ok()) return fail(inputs.status());

  const std::string run_id = NewRunId();
  RunOptions options;
  options.cancellation = std::make_shared<CancellationToken>();
  // A client that disconnects cancels the run's queued model work.
  responder->OnDisconnect([token = options.cancellation] { token->Cancel(); });
  if (mode == "streaming") {
    responder->StartStream(200, "text/event-stream", {{"X-Workflow-Run-Id", run_id}});
    executor_.Start(
        *workflow, std::move(*inputs), options,
        [responder, run_id, name, cancellation = options.cancellation](const WorkflowEvent& event) {
          if (!responder->WriteChunk("data: " + WorkflowEventJson(event, run_id, name) + "\n\n"))
            cancellation->Cancel();
          if (event.type == WorkflowEvent::Type::kWorkflowFinished ||
              event.type == WorkflowEvent::Type::kError) {
            responder->EndStream();
          }
        });
    return;
  }
  // Blocking: collect what the response needs, answer at the end.
  struct Collected {
    std::vector<std::string> nodes;
    int steps = 0;
  };
  auto collected = std::make_shared<Collected>();
  executor_.Start(
      *workflow, std::move(*inputs), options,
      [responder, run_id, name, collected](const WorkflowEvent& event) {
        if (event.type == WorkflowEvent::Type::kNodeFinished) {
          std::string id;
          AppendJsonString(id, event.node_id);
          collected->nodes.push_back(fmt::format(
              R"({{"id":{},"node_type":"{}","status":"{}","elapsed_time":{:.6f},"cached":{}}})", id,
              event.node_kind, event.status, Seconds(event.elapsed), event.cached));
          if (event.status == "succeeded") ++collected->steps;
          return;
        }
        if (event.type != WorkflowEvent::Type::kWorkflowFinished &&
            event.type != WorkflowEvent::Type::kError)
          return;
        const bool ok = event.type == WorkflowEvent::Type::kWorkflowFinished;
        std::string error = "null";
        if (!ok) {
          error.clear();
          AppendJsonString(error, event.text);
        }
        std::string workflow_id;
        AppendJsonString(workflow_id, name);
        HttpResponse response;
        if (!ok) response.status = HttpStatusFor(event.error_code);
        response.body = fmt::format(
            R"({{"workflow_run_id":"{}","task_id":"{}","data":{{"id":"{}","workflow_id":{},"status":"{}","outputs":{},"error":{},"elapsed_time":{:.6f},"total_steps":{},"nodes":[{}]}}}})",
            run_id, run_id, run_id, workflow_id, ok ? "succeeded" : "failed",
            ok ? OutputsJson(event.outputs) : "{}", error, Seconds(event.elapsed), collected->steps,
            fmt::join(collected->nodes, ","));
        responder->Send(std::move(response));
      });
}

}  // namespace braid
