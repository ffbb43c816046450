#include "api/workflow_api.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <rapidjson/document.h>

#include <chrono>
#include <random>

#include "api/kserve.h"
#include "api/status_mapping.h"
#include "core/base64.h"

namespace braid {
namespace {

constexpr std::int64_t kMaxJsonElements = 4096;

std::string NewRunId() {
  static thread_local std::mt19937_64 random(std::random_device{}());
  return fmt::format("{:016x}{:016x}", random(), random());
}

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
                 R"(,"data":{{"node_id":{},"node_type":"{}","title":{},"status":"{}","outputs":{},"elapsed_time":{:.6f},"cached":false}}}})",
                 node, event.node_kind, node, event.status, OutputsJson(event.outputs),
                 Seconds(event.elapsed));
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

// The request's inputs as BYTES tensors: text as UTF-8, media from data URLs.
Result<NamedTensors> ParseInputs(const Workflow& workflow, const rapidjson::Value& inputs) {
  if (!inputs.IsObject()) return InvalidArgument("'inputs' must be an object");
  NamedTensors out;
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
    if (!member.value.IsString())
      return InvalidArgument("input '{}' must be a string (text or a data: URL)", name);
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
      if (!url.ok())
        return InvalidArgument("input '{}' must be a data: URL with base64 {} data", name,
                               spec->type == InputType::kImage ? "image" : "audio");
      const bool image = spec->type == InputType::kImage;
      const std::string& media = url->media_type;
      // Dify sends audio as image_url too: route by the media type.
      if (!(media.starts_with(image ? "image/" : "audio/") ||
            media == "application/octet-stream")) {
        return InvalidArgument("input '{}' expects {} but the data URL holds {}", name,
                               image ? "an image" : "audio", media);
      }
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
  if (tensor.dtype() == DataType::kBytes) {
    auto strings = tensor.Strings();
    if (!strings.ok()) {
      out += "null";
      return;
    }
    if (strings->size() == 1) {
      AppendJsonString(out, (*strings)[0]);
      return;
    }
    out += '[';
    for (std::size_t i = 0; i < strings->size(); ++i) {
      if (i) out += ',';
      AppendJsonString(out, (*strings)[i]);
    }
    out += ']';
    return;
  }
  if (tensor.dtype() == DataType::kFp32 && tensor.element_count() == 1) {
    float v = tensor.span<float>()[0];
    out += std::isfinite(v) ? fmt::format("{}", v) : "null";
    return;
  }
  if (tensor.dtype() == DataType::kBool && tensor.element_count() == 1) {
    out += tensor.span<std::uint8_t>()[0] ? "true" : "false";
    return;
  }
  out += '[';
  switch (tensor.dtype()) {
    case DataType::kFp32: {
      auto values = tensor.span<float>();
      for (std::size_t i = 0; i < values.size(); ++i)
        out += fmt::format("{}{}", i ? "," : "", std::isfinite(values[i]) ? values[i] : 0.0f);
      break;
    }
    case DataType::kInt64:
      out += fmt::format("{}", fmt::join(tensor.span<std::int64_t>(), ","));
      break;
    case DataType::kInt32:
      out += fmt::format("{}", fmt::join(tensor.span<std::int32_t>(), ","));
      break;
    default:
      break;
  }
  out += ']';
}

void ServiceModelRunner::Run(const std::string& model, NamedTensors inputs, int priority,
                             TimePoint deadline, std::shared_ptr<CancellationToken> cancellation,
                             std::function<void(Result<NamedTensors>)> done) {
  InferOptions options;
  options.priority = priority;
  options.deadline = deadline;
  options.cancellation = std::move(cancellation);
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

WorkflowApi::WorkflowApi(const WorkflowRegistry& registry, WorkflowExecutor& executor, Clock& clock)
    : registry_(registry), executor_(executor), clock_(clock) {}

bool WorkflowApi::Handle(HttpRequest& request, HttpResponderPtr& responder) {
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
                              input.name,
                              input.type == InputType::kText    ? "text"
                              : input.type == InputType::kImage ? "image"
                                                                : "audio",
                              input.optional);
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
  auto workflow = registry_.Get(name);
  if (!workflow.ok())
    return responder->Send(
        JsonError(HttpStatusFor(workflow.status().code()), workflow.status().message()));
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(request.body->data(), request.body->size());
  if (doc.HasParseError() || !doc.IsObject())
    return responder->Send(JsonError(400, "the body must be a JSON object"));
  std::string mode = "blocking";
  if (doc.HasMember("response_mode")) {
    if (!doc["response_mode"].IsString())
      return responder->Send(JsonError(400, "'response_mode' must be a string"));
    mode = doc["response_mode"].GetString();
    if (mode != "blocking" && mode != "streaming") {
      return responder->Send(JsonError(400, "response_mode must be 'blocking' or 'streaming'"));
    }
  }
  static const rapidjson::Value kEmpty(rapidjson::kObjectType);
  auto inputs = ParseInputs(**workflow, doc.HasMember("inputs") ? doc["inputs"] : kEmpty);
  if (!inputs.ok())
    return responder->Send(
        JsonError(HttpStatusFor(inputs.status().code()), inputs.status().message()));

  const std::string run_id = NewRunId();
  RunOptions options;
  options.cancellation = std::make_shared<CancellationToken>();
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
              R"({{"id":{},"node_type":"{}","status":"{}","elapsed_time":{:.6f},"cached":false}})",
              id, event.node_kind, event.status, Seconds(event.elapsed)));
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
