#include "api/openai_api.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <rapidjson/document.h>

#include <chrono>
#include <cmath>
#include <random>

#include "api/kserve.h"
#include "api/multipart.h"
#include "api/status_mapping.h"
#include "core/base64.h"
#include "preprocess/image.h"

namespace braid {
namespace {

constexpr std::size_t kMaxEmbeddingInputs = 256;
constexpr char kTextModel[] = "clip-text";
constexpr char kImageModel[] = "clip-image";

HttpResponse Error(const Status& status) {
  return JsonError(HttpStatusFor(status.code()), status.message());
}

std::int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Quote(std::string_view text) {
  std::string out;
  AppendJsonString(out, text);
  return out;
}

std::string RandomId(std::string_view prefix) {
  static thread_local std::mt19937_64 random(std::random_device{}());
  return fmt::format("{}{:016x}", prefix, random());
}

void Normalise(std::vector<float>& v) {
  double norm = 0;
  for (float x : v) norm += double(x) * x;
  norm = std::sqrt(norm);
  if (norm > 0) {
    for (float& x : v) x = static_cast<float>(x / norm);
  }
}

}  // namespace

struct OpenAiApi::Item {
  enum class Kind { kText, kImage, kAudio } kind = Kind::kText;
  std::string data;
};

OpenAiApi::OpenAiApi(InferenceService& service, const WorkflowRegistry& workflows,
                     WorkflowExecutor& executor, ThreadPool& pool)
    : service_(service), workflows_(workflows), executor_(executor), pool_(pool) {}

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
                                Quote(status.name)));
  }
  items.push_back(R"({"id":"clip","object":"model","created":0,"owned_by":"braid"})");
  for (const auto& [name, entry] : workflows_.entries()) {
    if (entry.workflow)
      items.push_back(fmt::format(
          R"({{"id":{},"object":"model","created":0,"owned_by":"braid-workflow"}})", Quote(name)));
  }
  HttpResponse response;
  response.body = fmt::format(R"({{"object":"list","data":[{}]}})", fmt::join(items, ","));
  responder->Send(std::move(response));
}

void OpenAiApi::Project(std::vector<float> vector, bool image,
                        std::function<void(Result<std::vector<float>>)> done) {
  // The align model takes both towers; the other slot gets zeros.
  NamedTensors inputs;
  for (const char* name : {"image_embeds", "text_embeds"}) {
    Tensor t = *Tensor::Allocate(DataType::kFp32, {1, static_cast<std::int64_t>(vector.size())});
    if ((image && name[0] == 'i') || (!image && name[0] == 't'))
      std::copy(vector.begin(), vector.end(), t.mutable_span<float>().begin());
    inputs[name] = t;
  }
  service_.Infer("align", 0, std::move(inputs), {},
                 [image, done = std::move(done)](Result<InferResponse> result) {
                   if (!result.ok()) return done(result.status());
                   const Tensor& out = result->outputs[image ? 0 : 1];
                   done(std::vector<float>(out.span<float>().begin(), out.span<float>().end()));
                 });
}

void OpenAiApi::EmbedText(const std::string& text, int dimensions,
                          std::function<void(Result<std::vector<float>>)> done) {
  auto tokenizer = executor_.TokenizerFor(kTextModel);
  if (!tokenizer.ok()) return done(tokenizer.status());
  auto ids = (*tokenizer)->Encode(text);
  if (!ids.ok()) return done(ids.status());
  Tensor tensor = *Tensor::Allocate(DataType::kInt64, {1, static_cast<std::int64_t>(ids->size())});
  std::copy(ids->begin(), ids->end(), tensor.mutable_span<std::int64_t>().begin());
  service_.Infer(kTextModel, 0, {{"input_ids", tensor}}, {},
                 [this, dimensions, done = std::move(done)](Result<InferResponse> result) mutable {
                   if (!result.ok()) return done(result.status());
                   std::vector<float> v(result->outputs[0].span<float>().begin(),
                                        result->outputs[0].span<float>().end());
                   if (dimensions == 128) return Project(std::move(v), false, std::move(done));
                   done(std::move(v));
                 });
}

void OpenAiApi::Embed(const Item& item, int dimensions,
                      std::function<void(Result<std::vector<float>>)> done) {
  if (item.kind == Item::Kind::kText) return EmbedText(item.data, dimensions, std::move(done));
  if (item.kind == Item::Kind::kAudio) {
    auto clip = *Tensor::FromStrings({item.data}, {1});
    service_.Infer(
        "asr", 0, {{"audio", clip}}, {},
        [this, dimensions, done = std::move(done)](Result<InferResponse> result) mutable {
          if (!result.ok()) return done(result.status());
          EmbedText(std::string(FirstString(result->outputs[0])), dimensions, std::move(done));
        });
    return;
  }
  // Decoding runs on the pool, not on the network thread.
  pool_.Submit([this, data = item.data, dimensions, done = std::move(done)]() mutable {
    auto rgb = DecodeImage(std::as_bytes(std::span(data.data(), data.size())),
                           executor_.image_limits(), false, 224);
    if (!rgb.ok()) return done(rgb.status());
    Tensor pixels = *Tensor::Allocate(DataType::kFp32, {1, 3, 224, 224});
    if (Status s = ClipPreprocess(*rgb, pixels.mutable_span<float>().data()); !s.ok())
      return done(s);
    service_.Infer(
        kImageModel, 0, {{"pixel_values", pixels}}, {},
        [this, dimensions, done = std::move(done)](Result<InferResponse> result) mutable {
          if (!result.ok()) return done(result.status());
          std::vector<float> v(result->outputs[0].span<float>().begin(),
                               result->outputs[0].span<float>().end());
          if (dimensions == 128) return Project(std::move(v), true, std::move(done));
          done(std::move(v));
        });
  });
}

void OpenAiApi::Embeddings(HttpRequest& request, HttpResponderPtr responder) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(request.body->data(), request.body->size());
  if (doc.HasParseError() || !doc.IsObject())
    return responder->Send(JsonError(400, "the body must be a JSON object"));
  if (!doc.HasMember("model") || !doc["model"].IsString())
    return responder->Send(JsonError(400, "'model' is required"));
  const std::string model = doc["model"].GetString();
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
  std::vector<Item> items;
  auto add_part = [&](const rapidjson::Value& part) -> Status {
    if (part.IsString()) {
      items.push_back({Item::Kind::kText, part.GetString()});
      return Status::Ok();
    }
    if (!part.IsObject() || !part.HasMember("type") || !part["type"].IsString()) {
      return InvalidArgument("each input must be a string or a content part {{type, ...}}");
    }
    std::string type = part["type"].GetString();
    if (type == "text" && part.HasMember("text") && part["text"].IsString()) {
      items.push_back({Item::Kind::kText, part["text"].GetString()});
      return Status::Ok();
    }
    if (type == "image_url" && part.HasMember("image_url")) {
      const auto& image = part["image_url"];
      const rapidjson::Value* url = image.IsString()                             ? &image
                                    : image.IsObject() && image.HasMember("url") ? &image["url"]
                                                                                 : nullptr;
      if (url == nullptr || !url->IsString()) return InvalidArgument("image_url needs a url");
      BRAID_ASSIGN_OR_RETURN(DataUrl data, ParseDataUrl(url->GetString()));
      // Dify sends audio (and video) as image_url: route by media type.
      if (data.media_type.starts_with("audio/")) {
        items.push_back({Item::Kind::kAudio, std::move(data.data)});
      } else if (data.media_type.starts_with("image/")) {
        items.push_back({Item::Kind::kImage, std::move(data.data)});
      } else {
        return InvalidArgument("cannot embed a data URL of type {}", data.media_type);
      }
      return Status::Ok();
    }
    return InvalidArgument("unsupported content part type '{}'", type);
  };
  const auto& input = doc["input"];
  Status parsed = Status::Ok();
  if (input.IsArray()) {
    for (const auto& part : input.GetArray()) {
      parsed = add_part(part);
      if (!parsed.ok()) break;
    }
  } else {
    parsed = add_part(input);
  }
  if (!parsed.ok()) return responder->Send(Error(parsed));
  if (items.empty()) return responder->Send(JsonError(400, "'input' is empty"));
  if (items.size() > kMaxEmbeddingInputs)
    return responder->Send(JsonError(400, fmt::format("at most {} inputs", kMaxEmbeddingInputs)));
  for (const auto& item : items) {
    if (item.kind == Item::Kind::kText && (item.data.empty() || !IsValidUtf8(item.data))) {
      return responder->Send(JsonError(400, "text inputs must be non-empty UTF-8"));
    }
  }

  std::size_t tokens = 0;
  if (auto tokenizer = executor_.TokenizerFor(kTextModel); tokenizer.ok()) {
    for (const auto& item : items)
      tokens += item.kind == Item::Kind::kText ? (*tokenizer)->CountTokens(item.data) : 1;
  }
  struct Gather {
    std::mutex mutex;
    std::vector<std::vector<float>> vectors;
    std::size_t remaining;
    Status error;
  };
  auto gather = std::make_shared<Gather>();
  gather->vectors.resize(items.size());
  gather->remaining = items.size();
  for (std::size_t i = 0; i < items.size(); ++i) {
    Embed(
        items[i], dimensions,
        [gather, i, responder, model, base64, tokens](Result<std::vector<float>> result) {
          std::unique_lock lock(gather->mutex);
          if (result.ok()) {
            gather->vectors[i] = std::move(result).value();
          } else if (gather->error.ok()) {
            gather->error = result.status();
          }
          if (--gather->remaining > 0) return;
          lock.unlock();
          if (!gather->error.ok()) return responder->Send(Error(gather->error));
          responder->SendFrom([gather, model, base64, tokens] {
            std::string data;
            for (std::size_t k = 0; k < gather->vectors.size(); ++k) {
              auto& v = gather->vectors[k];
              Normalise(v);
              if (k) data += ',';
              data += fmt::format(R"({{"object":"embedding","index":{},"embedding":)", k);
              if (base64) {
                data += Quote(Base64Encode(std::string_view(reinterpret_cast<const char*>(v.data()),
                                                            v.size() * sizeof(float))));
              } else {
                data += fmt::format("[{}]", fmt::join(v, ","));
              }
              data += '}';
            }
            HttpResponse response;
            response.body = fmt::format(
                R"({{"object":"list","data":[{}],"model":{},"usage":{{"prompt_tokens":{},"total_tokens":{}}}}})",
                data, Quote(model), tokens, tokens);
            return response;
          });
        });
  }
}

void OpenAiApi::Transcriptions(HttpRequest& request, HttpResponderPtr responder) {
  auto parts = ParseMultipart(request.Header("Content-Type"), *request.body);
  if (!parts.ok()) return responder->Send(Error(parts.status()));
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
    if (!result.ok()) return responder->Send(Error(result.status()));
    const std::string text(FirstString(result->outputs[0]));
    HttpResponse response;
    if (format == "text") {
      response.content_type = "text/plain; charset=utf-8";
      response.body = text + "\n";
    } else if (format == "json") {
      response.body = fmt::format(R"({{"text":{}}})", Quote(text));
    } else {
      auto words = result->outputs[1].Strings();
      auto timings = result->outputs[2].span<float>();
      std::vector<std::string> items;
      for (std::size_t w = 0; words.ok() && w < words->size(); ++w) {
        items.push_back(fmt::format(R"({{"word":{},"start":{:.2f},"end":{:.2f}}})",
                                    Quote((*words)[w]), timings[2 * w], timings[2 * w + 1]));
      }
      const float start = timings.empty() ? 0 : timings.front();
      const float end = timings.empty() ? 0 : timings.back();
      response.body = fmt::format(
          R"({{"task":"transcribe","language":"english","duration":{:.2f},"text":{},"segments":[{{"id":0,"seek":0,"start":{:.2f},"end":{:.2f},"text":{}}}],"words":[{}]}})",
          end, Quote(text), start, end, Quote(text), fmt::join(items, ","));
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
  if (!workflow.ok()) return responder->Send(Error(workflow.status()));
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
  if (!parsed.ok()) return responder->Send(Error(parsed));
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
        id, created, Quote(model), delta, finish ? Quote(finish) : "null");
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
                  chunk_json(fmt::format(R"({{"content":{}}})", Quote(event.text)), nullptr) +
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
                          Quote(event.text)) +
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
                "data: " + chunk_json(fmt::format(R"({{"content":{}}})", Quote(content)), nullptr) +
                "\n\n");
          }
          responder->WriteChunk("data: " + chunk_json("{}", "stop") + "\n\n");
          if (include_usage) {
            responder->WriteChunk(
                "data: " +
                fmt::format(
                    R"({{"id":"{}","object":"chat.completion.chunk","created":{},"model":{},"choices":[],"usage":{}}})",
                    id, created, Quote(model), usage) +
                "\n\n");
          }
          responder->WriteChunk("data: [DONE]\n\n");
          return responder->EndStream();
        }
        HttpResponse response;
        response.body = fmt::format(
            R"({{"id":"{}","object":"chat.completion","created":{},"model":{},"choices":[{{"index":0,"message":{{"role":"assistant","content":{}}},"finish_reason":"stop"}}],"usage":{}}})",
            id, created, Quote(model), Quote(content), usage);
        responder->Send(std::move(response));
      });
}

}  // namespace braid
