#include "frontends/openai/openai_api.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <rapidjson/document.h>

#include <chrono>
#include <cmath>

#include "core/base64.h"
#include "core/random_id.h"
#include "frontends/http/multipart.h"
#include "frontends/kserve/kserve.h"
#include "frontends/status_mapping.h"
#include "preprocess/image.h"

namespace braid {
namespace {

constexpr const char* kTextModel = Embedder::kTextModel;
constexpr const char* kImageModel = Embedder::kImageModel;

std::int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

OpenAiApi::OpenAiApi(InferenceService& service, const WorkflowRegistry& workflows,
                     WorkflowExecutor& executor, Embedder& embedder)
    : service_(service), workflows_(workflows), executor_(executor), embedder_(embedder) {}

bool OpenAiApi::Handle(HttpRequest& request, HttpResponderPtr& responder) {
  const std::string& path = request.path;
  if (path != "/v1/models" && path != "/v1/embeddings" && path != "/v1/audio/transcriptions" &&
      path != "/v1/chat/completions") {
    return false;
  }
  const char* method = path == "/v1/models" ? "GET" : "POST";
  if (request.method != method) {
    responder->Send(JsonError(405, fmt::format("{} takes {}", path, method)));
    return true;
  }
  if (path == "/v1/models") Models(responder);
  if (path == "/v1/embeddings") Embeddings(request, responder);
  if (path == "/v1/audio/transcriptions") Transcriptions(request, responder);
  if (path == "/v1/chat/completions") ChatCompletions(request, responder);
  return true;
}

void OpenAiApi::Models(HttpResponderPtr responder) {
  std::vector<std::string> items;
  for (const auto& status : service_.Index()) {
    if (status.state != ModelState::kReady) continue;
    items.push_back(fmt::format(R"({{"id":{},"object":"model","created":0,"owned_by":"braid"}})",
                                JsonQuoted(status.name)));
  }
  items.push_back(R"({"id":"clip","object":"model","created":0,"owned_by":"braid"})");
  items.push_back(R"({"id":"clip-aligned","object":"model","created":0,"owned_by":"braid"})");
  for (const auto& [name, entry] : workflows_.entries()) {
    if (entry.workflow)
      items.push_back(
          fmt::format(R"({{"id":{},"object":"model","created":0,"owned_by":"braid-workflow"}})",
                      JsonQuoted(name)));
  }
  HttpResponse response;
  response.body = fmt::format(R"({{"object":"list","data":[{}]}})", fmt::join(items, ","));
  responder->Send(std::move(response));
}

void OpenAiApi::Embeddings(HttpRequest& request, HttpResponderPtr responder) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(request.body->data(), request.body->size());
  if (doc.HasParseError() || !doc.IsObject())
    return responder->Send(JsonError(400, "the body must be a JSON object"));
  // Without a model (as Dify's TEI provider sends it): clip.
  if (doc.HasMember("model") && !doc["model"].IsString())
    return responder->Send(JsonError(400, "'model' must be a string"));
  const std::string model = doc.HasMember("model") ? doc["model"].GetString() : "clip";
  if (model != "clip" && model != kTextModel && model != kImageModel) {
    return responder->Send(JsonError(
        404, fmt::format("unknown embedding model '{}' (available: clip, clip-text, clip-image)",
                         model)));
  }
  int dimensions = 512;
  if (doc.HasMember("dimensions")) {
    if (!doc["dimensions"].IsInt() ||
        (doc["dimensions"].GetInt() != 512 && doc["dimensions"].GetInt() != 128)) {
      return responder->Send(JsonError(400, "'dimensions' must be 512 or 128 (the aligned space)"));
    }
    dimensions = doc["dimensions"].GetInt();
  }
  bool base64 = false;
  if (doc.HasMember("encoding_format")) {
    std::string format =
        doc["encoding_format"].IsString() ? doc["encoding_format"].GetString() : "";
    if (format != "float" && format != "base64")
      return responder->Send(JsonError(400, "'encoding_format' must be float or base64"));
    base64 = format == "base64";
  }
  if (!doc.HasMember("input")) return responder->Send(JsonError(400, "'input' is required"));
  auto items = ParseEmbedItems(doc["input"]);
  if (!items.ok()) return responder->Send(JsonError(items.status()));
  if (items->empty()) return responder->Send(JsonError(400, "'input' is empty"));
  const std::size_t tokens = embedder_.CountTokens(*items);
  embedder_.EmbedAll(
      std::move(items).value(), dimensions,
      [responder, model, base64, tokens](Result<std::vector<std::vector<float>>> vectors) {
        if (!vectors.ok()) return responder->Send(JsonError(vectors.status()));
        responder->SendFrom([vectors = std::move(vectors).value(), model, base64, tokens] {
          std::string data;
          for (std::size_t k = 0; k < vectors.size(); ++k) {
            const auto& v = vectors[k];
            if (k) data += ',';
            data += fmt::format(R"({{"object":"embedding","index":{},"embedding":)", k);
            if (base64) {
              data += JsonQuoted(Base64Encode(std::string_view(
                  reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float))));
            } else {
              data += fmt::format("[{}]", fmt::join(v, ","));
            }
            data += '}';
          }
          HttpResponse response;
          response.body = fmt::format(
              R"({{"object":"list","data":[{}],"model":{},"usage":{{"prompt_tokens":{},"total_tokens":{}}}}})",
              data, JsonQuoted(model), tokens, tokens);
          return response;
        });
      });
}

void OpenAiApi::Transcriptions(HttpRequest& request, HttpResponderPtr responder) {
  auto parts = ParseMultipart(request.Header("Content-Type"), *request.body);
  if (!parts.ok()) return responder->Send(JsonError(parts.status()));
  std::string_view file;
  std::string format = "json", model;
  for (const auto& part : *parts) {
    if (part.name == "file") file = part.data;
    if (part.name == "response_format") format = std::string(part.data);
    if (part.name == "model") model = std::string(part.data);
  }
  if (file.empty())
    return responder->Send(JsonError(400, "the multipart 'file' part (the audio) is required"));
  if (format != "json" && format != "text" && format != "verbose_json") {
    return responder->Send(JsonError(400, "response_format must be json, text or verbose_json"));
  }
  if (!model.empty() && model != "asr" && model != "whisper-1") {
    return responder->Send(
        JsonError(404, fmt::format("unknown transcription model '{}' (available: asr)", model)));
  }
  auto clip = *Tensor::FromStrings({std::string(file)}, {1});
  // Keep the body alive: the tensor above copied the file already.
  service_.Infer("asr", 0, {{"audio", clip}}, {}, [responder, format](Result<InferResponse> result) {
    if (!result.ok()) return responder->Send(JsonError(result.status()));
    const std::string text(FirstString(result->outputs[0]));
    HttpResponse response;
    if (format == "text") {
      response.content_type = "text/plain; charset=utf-8";
      response.body = text + "\n";
    } else if (format == "json") {
      response.body = fmt::format(R"({{"text":{}}})", JsonQuoted(text));
    } else {
      auto words = result->outputs[1].Strings();
      auto timings = result->outputs[2].span<float>();
      std::vector<std::string> items;
      for (std::size_t w = 0; words.ok() && w < words->size(); ++w) {
        items.push_back(fmt::format(R"({{"word":{},"start":{:.2f},"end":{:.2f}}})",
                                    JsonQuoted((*words)[w]), timings[2 * w], timings[2 * w + 1]));
      }
      const float start = timings.empty() ? 0 : timings.front();
      const float end = timings.empty() ? 0 : timings.back();
      response.body = fmt::format(
          R"({{"task":"transcribe","language":"english","duration":{:.2f},"text":{},"segments":[{{"id":0,"seek":0,"start":{:.2f},"end":{:.2f},"text":{}}}],"words":[{}]}})",
          end, JsonQuoted(text), start, end, JsonQuoted(text), fmt::join(items, ","));
    }
    responder->Send(std::move(response));
  });
}

void OpenAiApi::ChatCompletions(HttpRequest& request, HttpResponderPtr responder) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(request.body->data(), request.body->size());
  if (doc.HasParseError() || !doc.IsObject())
    return responder->Send(JsonError(400, "the body must be a JSON object"));
  if (!doc.HasMember("model") || !doc["model"].IsString())
    return responder->Send(JsonError(400, "'model' (a workflow) is required"));
  const std::string model = doc["model"].GetString();
  auto workflow = workflows_.Get(model);
  if (!workflow.ok()) return responder->Send(JsonError(workflow.status()));
  if (!doc.HasMember("messages") || !doc["messages"].IsArray() || doc["messages"].Empty()) {
    return responder->Send(JsonError(400, "'messages' must be a non-empty list"));
  }
  const bool stream = doc.HasMember("stream") && doc["stream"].IsBool() && doc["stream"].GetBool();
  const bool include_usage = stream && doc.HasMember("stream_options") &&
                             doc["stream_options"].IsObject() &&
                             doc["stream_options"].HasMember("include_usage") &&
                             doc["stream_options"]["include_usage"].IsTrue();
  // The last user message carries the request's text and media.
  const rapidjson::Value* message = nullptr;
  for (const auto& m : doc["messages"].GetArray()) {
    if (m.IsObject() && m.HasMember("role") && m["role"].IsString() &&
        std::string_view(m["role"].GetString()) == "user")
      message = &m;
  }
  if (message == nullptr || !message->HasMember("content"))
    return responder->Send(JsonError(400, "no user message"));
  std::string text;
  NamedTensors inputs;
  auto add_media = [&](const std::string& kind, std::string bytes) -> Status {
    if (!(*workflow)->FindInput(kind))
      return InvalidArgument("workflow '{}' takes no {} input", model, kind);
    inputs[kind] = *Tensor::FromStrings({std::move(bytes)}, {1});
    return Status::Ok();
  };
  const auto& content = (*message)["content"];
  Status parsed = Status::Ok();
  if (content.IsString()) {
    text = content.GetString();
  } else if (content.IsArray()) {
    for (const auto& part : content.GetArray()) {
      if (!part.IsObject() || !part.HasMember("type") || !part["type"].IsString()) {
        parsed = InvalidArgument("content parts need a 'type'");
        break;
      }
      std::string type = part["type"].GetString();
      if (type == "text" && part.HasMember("text") && part["text"].IsString()) {
        text += (text.empty() ? "" : "\n") + std::string(part["text"].GetString());
      } else if (type == "image_url" && part.HasMember("image_url")) {
        const auto& image = part["image_url"];
        const rapidjson::Value* url =
            image.IsObject() && image.HasMember("url") ? &image["url"] : &image;
        auto data = url->IsString() ? ParseDataUrl(url->GetString())
                                    : Result<DataUrl>(InvalidArgument("image_url needs a url"));
        if (!data.ok()) {
          parsed = data.status();
          break;
        }
        // Dify sends audio as image_url too: route by the media type.
        parsed = add_media(data->media_type.starts_with("audio/") ? "audio" : "image",
                           std::move(data->data));
      } else if (type == "input_audio" && part.HasMember("input_audio") &&
                 part["input_audio"].IsObject() && part["input_audio"].HasMember("data") &&
                 part["input_audio"]["data"].IsString()) {
        auto bytes = Base64Decode(part["input_audio"]["data"].GetString());
        parsed = bytes.ok() ? add_media("audio", std::move(bytes).value()) : bytes.status();
      } else {
        parsed = InvalidArgument("unsupported content part '{}'", type);
      }
      if (!parsed.ok()) break;
    }
  } else {
    parsed = InvalidArgument("'content' must be a string or a list of parts");
  }
  if (!parsed.ok()) return responder->Send(JsonError(parsed));
  if (!text.empty()) {
    if (!(*workflow)->FindInput("text"))
      return responder->Send(
          JsonError(400, fmt::format("workflow '{}' takes no text input", model)));
    if (!IsValidUtf8(text))
      return responder->Send(JsonError(400, "message text is not valid UTF-8"));
    inputs["text"] = *Tensor::FromStrings({text}, {1});
  }
  for (const auto& input : (*workflow)->inputs) {
    if (!input.optional && !inputs.count(input.name)) {
      return responder->Send(
          JsonError(400, fmt::format("workflow '{}' needs its '{}' input in the user message",
                                     model, input.name)));
    }
  }

  const std::string id = RandomId("chatcmpl-");
  const std::int64_t created = Now();
  const std::size_t prompt_tokens = executor_.TokenizerFor(kTextModel).ok()
                                        ? (*executor_.TokenizerFor(kTextModel))->CountTokens(text)
                                        : 0;
  struct Answer {
    std::string text;
    std::size_t chunks = 0;
  };
  auto answer = std::make_shared<Answer>();
  auto chunk_json = [id, created, model](const std::string& delta, const char* finish) {
    return fmt::format(
        R"({{"id":"{}","object":"chat.completion.chunk","created":{},"model":{},"choices":[{{"index":0,"delta":{},"finish_reason":{}}}]}})",
        id, created, JsonQuoted(model), delta, finish ? JsonQuoted(finish) : "null");
  };
  if (stream) responder->StartStream(200, "text/event-stream");
  if (stream)
    responder->WriteChunk("data: " + chunk_json(R"({"role":"assistant","content":""})", nullptr) +
                          "\n\n");
  RunOptions options;
  options.cancellation = std::make_shared<CancellationToken>();
  responder->OnDisconnect([token = options.cancellation] { token->Cancel(); });
  executor_.Start(
      *workflow, std::move(inputs), options,
      [=, cancellation = options.cancellation](const WorkflowEvent& event) {
        using Type = WorkflowEvent::Type;
        if (event.type == Type::kTextChunk) {
          answer->text += event.text;
          ++answer->chunks;
          if (stream &&
              !responder->WriteChunk(
                  "data: " +
                  chunk_json(fmt::format(R"({{"content":{}}})", JsonQuoted(event.text)), nullptr) +
                  "\n\n")) {
            cancellation->Cancel();
          }
          return;
        }
        if (event.type == Type::kError) {
          if (!stream)
            return responder->Send(JsonError(HttpStatusFor(event.error_code), event.text));
          responder->WriteChunk(
              "data: " +
              fmt::format(R"({{"error":{{"message":{},"type":"workflow_error"}}}})",
                          JsonQuoted(event.text)) +
              "\n\n");
          responder->WriteChunk("data: [DONE]\n\n");
          return responder->EndStream();
        }
        if (event.type != Type::kWorkflowFinished) return;
        std::string content = answer->text;
        if (content.empty()) {  // no template streamed: the first text output
          for (const auto& [name, tensor] : event.outputs) {
            if (tensor.dtype() == DataType::kBytes) {
              content = std::string(FirstString(tensor));
              break;
            }
          }
        }
        const std::size_t completion_tokens = std::max<std::size_t>(answer->chunks, 1);
        const std::string usage =
            fmt::format(R"({{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{}}})",
                        prompt_tokens, completion_tokens, prompt_tokens + completion_tokens);
        if (stream) {
          if (answer->chunks == 0 && !content.empty()) {
            responder->WriteChunk(
                "data: " +
                chunk_json(fmt::format(R"({{"content":{}}})", JsonQuoted(content)), nullptr) +
                "\n\n");
          }
          responder->WriteChunk("data: " + chunk_json("{}", "stop") + "\n\n");
          if (include_usage) {
            responder->WriteChunk(
                "data: " +
                fmt::format(
                    R"({{"id":"{}","object":"chat.completion.chunk","created":{},"model":{},"choices":[],"usage":{}}})",
                    id, created, JsonQuoted(model), usage) +
                "\n\n");
          }
          responder->WriteChunk("data: [DONE]\n\n");
          return responder->EndStream();
        }
        HttpResponse response;
        response.body = fmt::format(
            R"({{"id":"{}","object":"chat.completion","created":{},"model":{},"choices":[{{"index":0,"message":{{"role":"assistant","content":{}}},"finish_reason":"stop"}}],"usage":{}}})",
            id, created, JsonQuoted(model), JsonQuoted(content), usage);
        responder->Send(std::move(response));
      });
}

}  // namespace braid
