#include "frontends/kserve/generate_api.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <rapidjson/document.h>

#include <algorithm>

#include "core/base64.h"
#include "frontends/kserve/kserve.h"
#include "frontends/status_mapping.h"
#include "preprocess/tokenizer.h"
#include "serving/embedder.h"
#include "serving/text_answer.h"

namespace braid {
namespace {

// max_tokens and stop, from the top level (vLLM's habit) or "parameters".
Status ReadLimits(const rapidjson::Value& doc, CompletionLimits* limits) {
  BRAID_RETURN_IF_ERROR(ReadCompletionLimits(doc, limits));
  if (!doc.HasMember("parameters")) return Status::Ok();
  if (!doc["parameters"].IsObject()) return InvalidArgument("'parameters' must be an object");
  return ReadCompletionLimits(doc["parameters"], limits);
}

// The workflow's inputs from the body: text_input to the first text input
// (or `query`), other keys naming inputs as text or data URLs.
Status ReadInputs(const Workflow& workflow, const rapidjson::Value& doc, NamedTensors* inputs,
                  std::string* query, std::string* text) {
  if (doc.HasMember("text_input")) {
    if (!doc["text_input"].IsString()) return InvalidArgument("'text_input' must be a string");
    *text = doc["text_input"].GetString();
    if (!IsValidUtf8(*text)) return InvalidArgument("'text_input' is not valid UTF-8");
  }
  for (const auto& member : doc.GetObject()) {
    const WorkflowInput* spec = workflow.FindInput(member.name.GetString());
    if (spec == nullptr) continue;  // text_input, parameters, sampling settings
    if (!member.value.IsString())
      return InvalidArgument("input '{}' must be a string (text or a data: URL)", spec->name);
    std::string value(member.value.GetString(), member.value.GetStringLength());
    if (spec->type != InputType::kText) {
      BRAID_ASSIGN_OR_RETURN(DataUrl url, ParseDataUrl(value));
      if (!url.media_type.starts_with(InputTypeName(spec->type))) {
        return InvalidArgument("input '{}' takes {}, not {}", spec->name, InputTypeName(spec->type),
                               url.media_type);
      }
      value = std::move(url.data);
    } else if (!IsValidUtf8(value)) {
      return InvalidArgument("input '{}' is not valid UTF-8", spec->name);
    }
    BRAID_ASSIGN_OR_RETURN((*inputs)[spec->name], Tensor::FromStrings({value}, {1}));
  }
  if (!text->empty()) {
    const auto input =
        std::find_if(workflow.inputs.begin(), workflow.inputs.end(), [&](const WorkflowInput& i) {
          return i.type == InputType::kText && !inputs->count(i.name);
        });
    if (input != workflow.inputs.end()) {
      BRAID_ASSIGN_OR_RETURN((*inputs)[input->name], Tensor::FromStrings({*text}, {1}));
    } else {
      *query = *text;
    }
  }
  return Status::Ok();
}

}  // namespace

GenerateApi::GenerateApi(const WorkflowRegistry& workflows, InferenceService& service)
    : workflows_(workflows), service_(service) {}

void GenerateApi::AddRoutes(RouteTable& routes) {
  for (const bool stream : {false, true}) {
    for (const char* model : {"/v2/models/{model}", "/v2/models/{model}/versions/{version}"}) {
      routes.Add("POST", fmt::format("{}/{}", model, stream ? "generate_stream" : "generate"),
                 [this, stream](HttpRequest& request, HttpResponderPtr responder,
                                const PathParams& params) {
                   Generate(std::string(params[0]), stream, request, std::move(responder));
                 });
    }
  }
}

void GenerateApi::Generate(const std::string& model, bool stream, HttpRequest& request,
                           HttpResponderPtr responder) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(request.body->data(), request.body->size());
  if (doc.HasParseError() || !doc.IsObject()) {
    responder->Send(JsonError(400, "the body must be a JSON object"));
    return;
  }
  auto workflow = workflows_.Get(model);
  if (!workflow.ok()) {
    GenerateFromModel(model, stream, doc, responder);
    return;
  }
  CompletionLimits limits;
  NamedTensors inputs;
  std::string query, text;
  Status parsed = ReadLimits(doc, &limits);
  if (parsed.ok()) parsed = ReadInputs(**workflow, doc, &inputs, &query, &text);
  if (!parsed.ok()) {
    responder->Send(JsonError(parsed));
    return;
  }
  // Token counts (max_tokens, usage) in CLIP's BPE, GPT-like tokens.
  auto tokenizer = service_.TokenizerFor(Embedder::kClipTextModel);
  std::shared_ptr<const Tokenizer> counter = tokenizer.ok() ? *tokenizer : nullptr;
  CompletionText answer(std::move(limits.stop), limits.max_tokens, counter.get());

  const std::string head =
      fmt::format(R"({{"model_name":{},"model_version":"1","text_output":)", JsonQuoted(model));
  if (stream) responder->StartStream(200, "text/event-stream");
  auto write = [responder, head](const std::string& piece, const char* finish) {
    std::string event = "data: " + head + JsonQuoted(piece);
    if (finish != nullptr) event += fmt::format(R"(,"finish_reason":"{}")", finish);
    return responder->WriteChunk(event + "}\n\n");
  };
  auto collected = std::make_shared<std::string>();
  TextAnswerSink sink{
      [stream, write, collected](const std::string& piece) {
        if (stream) return write(piece, nullptr);
        *collected += piece;
        return true;
      },
      // Holds the tokenizer `answer` counts with for as long as the run.
      [stream, write, collected, responder, head, counter](const char* reason, std::size_t) {
        if (stream) {
          write("", reason);
          return responder->EndStream();
        }
        HttpResponse response;
        response.body = head + JsonQuoted(*collected) + "}";
        responder->Send(std::move(response));
      },
      [stream, responder](StatusCode code, const std::string& message) {
        if (!stream) return responder->Send(JsonError(HttpStatusFor(code), message));
        responder->WriteChunk(fmt::format("data: {{\"error\":{}}}\n\n", JsonQuoted(message)));
        responder->EndStream();
      }};
  // Like a chat credential check: a request without the media the workflow
  // needs is answered with what to send.
  if (const auto missing = MissingInputs(**workflow, inputs); !missing.empty()) {
    const std::string needs =
        WhatItNeeds(**workflow, missing, "Send {} with the request (a data: URL for media)", true);
    std::string sendable = answer.Add(needs);
    sendable += answer.Finish();
    sink.piece(sendable);
    sink.done(answer.finish_reason(), answer.tokens());
    return;
  }
  RunOptions run;
  run.cancellation = std::make_shared<CancellationToken>();
  run.query = std::move(query);
  responder->OnDisconnect([token = run.cancellation] { token->Cancel(); });
  RunForText(service_, (*workflow)->name, std::move(inputs), std::move(run), std::move(answer),
             std::move(sink));
}

void GenerateApi::GenerateFromModel(const std::string& name, bool stream,
                                    const rapidjson::Value& doc, HttpResponderPtr responder) {
  auto model = service_.GetModel(name);
  if (!model.ok()) {
    return responder->Send(
        JsonError(404, fmt::format("no workflow or model named '{}' (GET /v1/models)", name)));
  }
  const ModelConfig& config = (*model)->config();
  const auto text_output =
      std::find_if(config.outputs.begin(), config.outputs.end(),
                   [](const TensorSpec& spec) { return spec.datatype == DataType::kBytes; });
  const bool bytes_in = std::all_of(config.inputs.begin(), config.inputs.end(),
                                    [](const auto& s) { return s.datatype == DataType::kBytes; });
  if (!bytes_in || text_output == config.outputs.end()) {
    return responder->Send(JsonError(
        400, fmt::format("model '{}' has no text answer: generate serves workflows and models "
                         "whose inputs are BYTES and which have a BYTES output",
                         name)));
  }
  std::map<std::string, Tensor> inputs;
  for (const auto& spec : config.inputs) {
    const char* key = spec.name.c_str();
    if (!doc.HasMember(key) && config.inputs.size() == 1 && doc.HasMember("text_input"))
      key = "text_input";
    if (!doc.HasMember(key)) continue;
    if (!doc[key].IsString())
      return responder->Send(JsonError(400, fmt::format("'{}' must be a string", key)));
    std::string value(doc[key].GetString(), doc[key].GetStringLength());
    if (value.starts_with("data:")) {
      auto url = ParseDataUrl(value);
      if (!url.ok()) return responder->Send(JsonError(url.status()));
      value = std::move(url->data);
    }
    inputs[spec.name] = *Tensor::FromStrings({std::move(value)}, {1});
  }
  const std::size_t output = text_output - config.outputs.begin();
  service_.Infer(name, 0, std::move(inputs), {},
                 [responder, stream, output, name](Result<InferResponse> result) {
                   if (!result.ok()) return responder->Send(JsonError(result.status()));
                   const std::string head =
                       fmt::format(R"({{"model_name":{},"model_version":"{}","text_output":{})",
                                   JsonQuoted(name), result->model->version(),
                                   JsonQuoted(FirstString(result->outputs[output])));
                   if (!stream) {
                     HttpResponse response;
                     response.body = head + "}";
                     return responder->Send(std::move(response));
                   }
                   responder->StartStream(200, "text/event-stream");
                   responder->WriteChunk("data: " + head + R"(,"finish_reason":"stop"})" + "\n\n");
                   responder->EndStream();
                 });
}

}  // namespace braid
