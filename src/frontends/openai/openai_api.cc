#include "frontends/openai/openai_api.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>

#include "core/base64.h"
#include "core/random_id.h"
#include "frontends/http/multipart.h"
#include "frontends/kserve/kserve.h"
#include "frontends/status_mapping.h"
#include "preprocess/image.h"
#include "serving/completion_text.h"
#include "serving/text_answer.h"

namespace braid {
namespace {

std::int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

OpenAiApi::OpenAiApi(InferenceService& service, const WorkflowRegistry& workflows,
                     Embedder& embedder)
    : service_(service), workflows_(workflows), embedder_(embedder) {}

void OpenAiApi::AddRoutes(RouteTable& routes) {
  routes.Add("GET", "/v1/models",
             [this](HttpRequest&, HttpResponderPtr responder, const PathParams&) {
               Models({}, std::move(responder));
             });
  routes.Add("GET", "/v1/models/{model}",
             [this](HttpRequest&, HttpResponderPtr responder, const PathParams& params) {
               Models(params[0], std::move(responder));
             });
  routes.Add("POST", "/v1/embeddings", RouteTo(this, &OpenAiApi::Embeddings));
  routes.Add("POST", "/v1/audio/transcriptions", RouteTo(this, &OpenAiApi::Transcriptions));
  routes.Add("POST", "/v1/chat/completions", RouteTo(this, &OpenAiApi::ChatCompletions));
}

namespace {

// A /v1/models entry; `braid` says what the name serves (Dify users pick
// names by it): OpenAI's fields are kept as they are.
std::string ModelEntry(const std::string& id, const char* owned_by, const std::string& braid) {
  return fmt::format(R"({{"id":{},"object":"model","created":0,"owned_by":"{}","braid":{}}})",
                     JsonQuoted(id), owned_by, braid);
}

constexpr char kClipNote[] =
    "the bundled CLIP models are stand-ins with random weights: their vectors mean nothing "
    "until a real CLIP export replaces them";

// What a model of the repository serves through the OpenAI and TEI routes
// besides KServe inference, and its config's description.
std::string ModelServes(const ModelVersionStatus& model) {
  std::string serves = R"("serves":["inference"])";
  if (model.name == Embedder::kTextModel) {
    serves = fmt::format(
        R"("serves":["embeddings","rerank","inference"],"inputs":["text","image","audio"],"dimensions":[{},{}],"context_length":512)",
        kTextEmbedDimensions, Dimensions(EmbeddingSpace::kDocument));
  } else if (model.name == Embedder::kClipTextModel) {
    serves =
        R"("serves":["embeddings","inference"],"inputs":["text"],"dimensions":[512,128],"context_length":77)";
  } else if (model.name == Embedder::kClipImageModel) {
    serves = R"("serves":["embeddings","inference"],"inputs":["image"],"dimensions":[512,128])";
  } else if (model.name == "asr") {
    serves = R"("serves":["transcription","inference"],"inputs":["audio"],"aliases":["whisper-1"])";
  } else if (model.backend == "whisper") {
    serves = R"("serves":["transcription","inference"],"inputs":["audio"])";
  } else if (model.name == "tts") {
    serves =
        R"("serves":["speech","inference"],"inputs":["text"],"aliases":["tts-1","tts-1-hd","gpt-4o-mini-tts"])";
  }
  return fmt::format(R"({{{},"description":{}}})", serves, JsonQuoted(model.description));
}

std::string WorkflowServes(const Workflow& workflow) {
  std::vector<std::string> inputs;
  for (const auto& input : workflow.inputs) {
    inputs.push_back(fmt::format(R"({{"name":{},"type":"{}","optional":{}}})",
                                 JsonQuoted(input.name), InputTypeName(input.type),
                                 input.optional));
  }
  return fmt::format(
      R"({{"serves":["chat","workflow","generate"],"inputs":[{}],"description":{}}})",
      fmt::join(inputs, ","), JsonQuoted(workflow.description));
}

}  // namespace

std::vector<std::string> OpenAiApi::ModelEntries(const std::string& only) {
  std::vector<std::string> items;
  auto wanted = [&](const std::string& id) { return only.empty() || id == only; };
  if (wanted("clip")) {
    items.push_back(ModelEntry(
        "clip", "braid",
        fmt::format(
            R"({{"serves":["embeddings","rerank"],"inputs":["text","image","audio"],"dimensions":[512,128],"context_length":77,"description":{}}})",
            JsonQuoted(kClipNote))));
  }
  if (wanted("clip-aligned")) {
    items.push_back(ModelEntry(
        "clip-aligned", "braid",
        fmt::format(
            R"({{"serves":["rerank"],"inputs":["text","image","audio"],"dimensions":[128],"context_length":77,"description":{}}})",
            JsonQuoted(kClipNote))));
  }
  for (const auto& status : service_.Index()) {
    if (status.state == ModelState::kReady && wanted(status.name))
      items.push_back(ModelEntry(status.name, "braid", ModelServes(status)));
  }
  for (const auto& [name, entry] : workflows_.entries()) {
    if (entry.workflow && wanted(name))
      items.push_back(ModelEntry(name, "braid-workflow", WorkflowServes(*entry.workflow)));
  }
  return items;
}

void OpenAiApi::Models(std::string_view id, HttpResponderPtr responder) {
  HttpResponse response;
  if (id.empty()) {
    response.body =
        fmt::format(R"({{"object":"list","data":[{}]}})", fmt::join(ModelEntries({}), ","));
    return responder->Send(std::move(response));
  }
  auto items = ModelEntries(std::string(id));
  if (items.empty())
    return responder->Send(JsonError(404, fmt::format("no model or workflow named '{}'", id)));
  response.body = std::move(items.front());
  responder->Send(std::move(response));
}

void OpenAiApi::Embeddings(HttpRequest& request, HttpResponderPtr responder) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(request.body->data(), request.body->size());
  if (doc.HasParseError() || !doc.IsObject())
    return responder->Send(JsonError(400, "the body must be a JSON object"));
  // Without a model (as Dify's TEI provider sends it): text-embed.
  if (doc.HasMember("model") && !doc["model"].IsString())
    return responder->Send(JsonError(400, "'model' must be a string"));
  const std::string model =
      doc.HasMember("model") ? doc["model"].GetString() : Embedder::kTextModel;
  const bool clip =
      model == "clip" || model == Embedder::kClipTextModel || model == Embedder::kClipImageModel;
  if (!clip && model != Embedder::kTextModel) {
    return responder->Send(JsonError(
        404,
        fmt::format("unknown embedding model '{}' (available: {}, clip, clip-text, clip-image)",
                    model, Embedder::kTextModel)));
  }
  EmbeddingSpace space = clip ? EmbeddingSpace::kClip : EmbeddingSpace::kText;
  if (doc.HasMember("dimensions")) {
    const int wanted = doc["dimensions"].IsInt() ? doc["dimensions"].GetInt() : -1;
    const int document = Dimensions(EmbeddingSpace::kDocument);
    if (!clip && wanted != kTextEmbedDimensions && wanted != document) {
      return responder->Send(
          JsonError(400, fmt::format("'dimensions' of {} must be {} or {} (with an image's layout)",
                                     model, kTextEmbedDimensions, document)));
    }
    if (!clip && wanted == document) space = EmbeddingSpace::kDocument;
    if (clip && wanted != 512 && wanted != 128)
      return responder->Send(JsonError(400, "'dimensions' must be 512 or 128 (the aligned space)"));
    if (clip && wanted == 128) space = EmbeddingSpace::kClipAligned;
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
  // clip-image and clip-text name one tower of the clip space; clip takes any kind.
  for (std::size_t k = 0; k < items->size(); ++k) {
    const EmbedItem::Kind kind = (*items)[k].kind;
    if (model == Embedder::kClipImageModel && kind != EmbedItem::Kind::kImage) {
      return responder->Send(JsonError(
          400, fmt::format("clip-image embeds images; input[{}] is {}: send it to clip-text, or "
                           "every kind to clip",
                           k, kind == EmbedItem::Kind::kText ? "text" : "audio")));
    }
    if (model == Embedder::kClipTextModel && kind == EmbedItem::Kind::kImage) {
      return responder->Send(JsonError(
          400, fmt::format("clip-text embeds text (and transcribed audio); input[{}] is an image: "
                           "send it to clip-image, or every kind to clip",
                           k)));
    }
  }
  const std::size_t tokens = embedder_.CountTokens(*items, space);
  embedder_.EmbedAll(
      std::move(items).value(), space,
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

namespace {

// A model the transcription route can call: encoded audio in, text out.
bool Transcribes(const ModelConfig& config) {
  const TensorSpec* audio = config.FindInput("audio");
  return audio != nullptr && audio->datatype == DataType::kBytes && config.inputs.size() == 1 &&
         std::any_of(config.outputs.begin(), config.outputs.end(),
                     [](const TensorSpec& spec) { return spec.name == "text"; });
}

const Tensor* OutputNamed(const InferResponse& response, std::string_view name) {
  const auto& specs = response.model->config().outputs;
  for (std::size_t k = 0; k < specs.size() && k < response.outputs.size(); ++k) {
    if (specs[k].name == name) return &response.outputs[k];
  }
  return nullptr;
}

struct HeardSegment {
  double start = 0, end = 0;
  std::string text;
};

// What a recogniser heard, from its outputs: a whisper model's segments
// (JSON) and language, or PocketSphinx's words and their times (one segment).
struct Heard {
  std::string text, language = "english";  // a whisper model's is the code ("en")
  std::vector<HeardSegment> segments;
  std::string segments_json, words_json;
};

Heard ReadHeard(const InferResponse& response) {
  Heard heard;
  if (const Tensor* text = OutputNamed(response, "text")) heard.text = FirstString(*text);
  if (const Tensor* language = OutputNamed(response, "language"))
    heard.language = FirstString(*language);
  if (const Tensor* segments = OutputNamed(response, "segments")) {
    heard.segments_json = FirstString(*segments);
    rapidjson::Document doc;
    doc.Parse(heard.segments_json.c_str());
    if (!doc.IsArray()) {
      heard.segments_json = "[]";  // spliced into verbose_json only when it is JSON
      return heard;
    }
    for (const auto& segment : doc.GetArray()) {
      if (segment.IsObject() && segment.HasMember("start") && segment["start"].IsNumber() &&
          segment.HasMember("end") && segment["end"].IsNumber() && segment.HasMember("text") &&
          segment["text"].IsString()) {
        heard.segments.push_back({segment["start"].GetDouble(), segment["end"].GetDouble(),
                                  segment["text"].GetString()});
      }
    }
    return heard;
  }
  const Tensor* words = OutputNamed(response, "words");
  const Tensor* timings = OutputNamed(response, "timings");
  std::vector<std::string> items;
  if (words != nullptr && timings != nullptr) {
    auto strings = words->Strings();
    auto times = timings->span<float>();
    for (std::size_t w = 0; strings.ok() && w < strings->size(); ++w) {
      items.push_back(fmt::format(R"({{"word":{},"start":{:.2f},"end":{:.2f}}})",
                                  JsonQuoted((*strings)[w]), times[2 * w], times[2 * w + 1]));
    }
    if (!times.empty()) heard.segments.push_back({times.front(), times.back(), heard.text});
  }
  if (heard.segments.empty() && !heard.text.empty()) heard.segments.push_back({0, 0, heard.text});
  heard.words_json = fmt::format("[{}]", fmt::join(items, ","));
  heard.segments_json =
      fmt::format(R"([{{"id":0,"seek":0,"start":{:.2f},"end":{:.2f},"text":{}}}])",
                  heard.segments.empty() ? 0.0 : heard.segments[0].start,
                  heard.segments.empty() ? 0.0 : heard.segments[0].end, JsonQuoted(heard.text));
  return heard;
}

// SubRip (`vtt` false) or WebVTT cues of the segments.
std::string Subtitles(const std::vector<HeardSegment>& segments, bool vtt) {
  auto time = [vtt](double seconds) {
    const auto ms = static_cast<std::int64_t>(std::llround(seconds * 1000));
    return fmt::format("{:02}:{:02}:{:02}{}{:03}", ms / 3600000, ms / 60000 % 60, ms / 1000 % 60,
                       vtt ? '.' : ',', ms % 1000);
  };
  std::string out = vtt ? "WEBVTT\n\n" : "";
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (!vtt) out += fmt::format("{}\n", i + 1);
    out += fmt::format("{} --> {}\n{}\n\n", time(segments[i].start), time(segments[i].end),
                       segments[i].text);
  }
  return out;
}

}  // namespace

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
  if (format != "json" && format != "text" && format != "verbose_json" && format != "srt" &&
      format != "vtt") {
    return responder->Send(
        JsonError(400, "response_format must be json, text, verbose_json, srt or vtt"));
  }
  if (model.empty() || model == "whisper-1") model = "asr";
  auto found = service_.GetModel(model);
  if (!found.ok() || !Transcribes((*found)->config())) {
    std::vector<std::string> names;
    for (const auto& status : service_.Index()) {
      auto loaded = service_.GetModel(status.name);
      if (loaded.ok() && Transcribes((*loaded)->config())) names.push_back(status.name);
    }
    return responder->Send(
        JsonError(404, fmt::format("unknown transcription model '{}' (available: {})", model,
                                   fmt::join(names, ", "))));
  }
  auto clip =
      AsOneItem((*found)->config(), "audio", *Tensor::FromStrings({std::string(file)}, {1}));
  // Keep the body alive: the tensor above copied the file already.
  service_.Infer(model, 0, {{"audio", clip}}, {}, [responder, format](Result<InferResponse> result) {
    if (!result.ok()) return responder->Send(JsonError(result.status()));
    const Heard heard = ReadHeard(*result);
    HttpResponse response;
    if (format == "text") {
      response.content_type = "text/plain; charset=utf-8";
      response.body = heard.text + "\n";
    } else if (format == "srt" || format == "vtt") {
      response.content_type =
          format == "vtt" ? "text/vtt; charset=utf-8" : "application/x-subrip; charset=utf-8";
      response.body = Subtitles(heard.segments, format == "vtt");
    } else if (format == "json") {
      response.body = fmt::format(R"({{"text":{}}})", JsonQuoted(heard.text));
    } else {
      const double duration = heard.segments.empty() ? 0 : heard.segments.back().end;
      response.body = fmt::format(
          R"({{"task":"transcribe","language":{},"duration":{:.2f},"text":{},"segments":{}{}}})",
          JsonQuoted(heard.language), duration, JsonQuoted(heard.text), heard.segments_json,
          heard.words_json.empty() ? "" : R"(,"words":)" + heard.words_json);
    }
    responder->Send(std::move(response));
  });
}

namespace {

// What a chat request asks of the completion beyond its messages.
struct ChatOptions {
  bool stream = false;
  bool include_usage = false;
  CompletionLimits limits;
};

Result<ChatOptions> ParseChatOptions(const rapidjson::Value& doc) {
  ChatOptions options;
  if (doc.HasMember("stream")) {
    if (!doc["stream"].IsBool() && !doc["stream"].IsNull())
      return InvalidArgument("'stream' must be true or false");
    options.stream = doc["stream"].IsTrue();
  }
  if (doc.HasMember("stream_options") && doc["stream_options"].IsObject() &&
      doc["stream_options"].HasMember("include_usage")) {
    options.include_usage = options.stream && doc["stream_options"]["include_usage"].IsTrue();
  }
  BRAID_RETURN_IF_ERROR(ReadCompletionLimits(doc, &options.limits));
  if (doc.HasMember("user") && !doc["user"].IsString() && !doc["user"].IsNull())
    return InvalidArgument("'user' must be a string");
  return options;
}

// The last user message mapped onto the workflow's inputs: each medium to
// the first free input of its type, the text to the first text input or,
// without one, to `sys.query`. `missing` lists required inputs it lacks.
struct ChatTurn {
  NamedTensors inputs;
  std::string text;
  std::string query;
  std::vector<const WorkflowInput*> missing;
};

Result<ChatTurn> ReadUserMessage(const Workflow& workflow, const rapidjson::Value& messages) {
  const rapidjson::Value* message = nullptr;
  for (const auto& m : messages.GetArray()) {
    if (m.IsObject() && m.HasMember("role") && m["role"].IsString() &&
        std::string_view(m["role"].GetString()) == "user")
      message = &m;
  }
  if (message == nullptr || !message->HasMember("content"))
    return InvalidArgument("no user message");
  ChatTurn turn;
  auto add_media = [&](const std::string& media_type, std::string bytes) -> Status {
    const InputType type = media_type.starts_with("audio/") ? InputType::kAudio : InputType::kImage;
    if (!media_type.starts_with("audio/") && !media_type.starts_with("image/") &&
        !media_type.empty()) {
      return InvalidArgument("workflow '{}' takes no {} (only images and audio)", workflow.name,
                             media_type);
    }
    for (const auto& input : workflow.inputs) {
      if (input.type == type && !turn.inputs.count(input.name)) {
        BRAID_ASSIGN_OR_RETURN(turn.inputs[input.name],
                               Tensor::FromStrings({std::move(bytes)}, {1}));
        return Status::Ok();
      }
    }
    return InvalidArgument("workflow '{}' takes no{} {} input", workflow.name,
                           turn.inputs.empty() ? "" : " more", InputTypeName(type));
  };
  const auto& content = (*message)["content"];
  if (content.IsString()) {
    turn.text = content.GetString();
  } else if (content.IsArray()) {
    for (const auto& part : content.GetArray()) {
      if (!part.IsObject() || !part.HasMember("type") || !part["type"].IsString())
        return InvalidArgument("content parts need a 'type'");
      const std::string type = part["type"].GetString();
      if (type == "text" && part.HasMember("text") && part["text"].IsString()) {
        turn.text += (turn.text.empty() ? "" : "\n") + std::string(part["text"].GetString());
      } else if (type == "image_url" && part.HasMember("image_url")) {
        const auto& image = part["image_url"];
        const rapidjson::Value* url =
            image.IsObject() && image.HasMember("url") ? &image["url"] : &image;
        if (!url->IsString()) return InvalidArgument("image_url needs a url");
        // Dify sends audio and video as image_url too: routed by media type.
        BRAID_ASSIGN_OR_RETURN(DataUrl data, ParseDataUrl(url->GetString()));
        BRAID_RETURN_IF_ERROR(add_media(data.media_type, std::move(data.data)));
      } else if (type == "input_audio" && part.HasMember("input_audio") &&
                 part["input_audio"].IsObject() && part["input_audio"].HasMember("data") &&
                 part["input_audio"]["data"].IsString()) {
        BRAID_ASSIGN_OR_RETURN(std::string bytes,
                               Base64Decode(part["input_audio"]["data"].GetString()));
        BRAID_RETURN_IF_ERROR(add_media("audio/", std::move(bytes)));
      } else {
        return InvalidArgument("unsupported content part '{}'", type);
      }
    }
  } else {
    return InvalidArgument("'content' must be a string or a list of parts");
  }
  if (!IsValidUtf8(turn.text)) return InvalidArgument("message text is not valid UTF-8");
  if (!turn.text.empty()) {
    const auto text_input =
        std::find_if(workflow.inputs.begin(), workflow.inputs.end(),
                     [](const WorkflowInput& input) { return input.type == InputType::kText; });
    if (text_input != workflow.inputs.end()) {
      BRAID_ASSIGN_OR_RETURN(turn.inputs[text_input->name], Tensor::FromStrings({turn.text}, {1}));
    } else {
      turn.query = turn.text;
    }
  }
  turn.missing = MissingInputs(workflow, turn.inputs);
  return turn;
}

// One completion as it is answered: streamed as chat.completion.chunk
// events, or sent whole at the end.
class ChatReply {
 public:
  ChatReply(HttpResponderPtr responder, std::string model, bool stream, bool include_usage,
            std::size_t prompt_tokens)
      : responder_(std::move(responder)),
        model_(std::move(model)),
        id_(RandomId("chatcmpl-")),
        created_(Now()),
        stream_(stream),
        include_usage_(include_usage),
        prompt_tokens_(prompt_tokens) {
    if (!stream_) return;
    responder_->StartStream(200, "text/event-stream");
    Write(Chunk(R"({"role":"assistant","content":""})", nullptr));
  }

  // False once the client has gone.
  bool Send(const std::string& text) {
    if (!stream_) {
      content_ += text;
      return true;
    }
    return Write(Chunk(fmt::format(R"({{"content":{}}})", JsonQuoted(text)), nullptr));
  }

  void Finish(const char* reason, std::size_t tokens) {
    const std::size_t completion_tokens = std::max<std::size_t>(tokens, 1);
    const std::string usage =
        fmt::format(R"({{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{}}})",
                    prompt_tokens_, completion_tokens, prompt_tokens_ + completion_tokens);
    if (!stream_) {
      HttpResponse response;
      response.body = fmt::format(
          R"({{"id":"{}","object":"chat.completion","created":{},"model":{},"choices":[{{"index":0,"message":{{"role":"assistant","content":{}}},"finish_reason":"{}"}}],"usage":{}}})",
          id_, created_, JsonQuoted(model_), JsonQuoted(content_), reason, usage);
      return responder_->Send(std::move(response));
    }
    Write(Chunk("{}", reason));
    if (include_usage_) {
      Write(fmt::format(
          R"({{"id":"{}","object":"chat.completion.chunk","created":{},"model":{},"choices":[],"usage":{}}})",
          id_, created_, JsonQuoted(model_), usage));
    }
    Write("[DONE]");
    responder_->EndStream();
  }

  void Fail(StatusCode code, const std::string& message) {
    if (!stream_) return responder_->Send(JsonError(HttpStatusFor(code), message));
    Write(fmt::format(R"({{"error":{{"message":{},"type":"workflow_error"}}}})",
                      JsonQuoted(message)));
    Write("[DONE]");
    responder_->EndStream();
  }

 private:
  std::string Chunk(std::string_view delta, const char* finish) const {
    return fmt::format(
        R"({{"id":"{}","object":"chat.completion.chunk","created":{},"model":{},"choices":[{{"index":0,"delta":{},"finish_reason":{}}}]}})",
        id_, created_, JsonQuoted(model_), delta, finish ? JsonQuoted(finish) : "null");
  }
  bool Write(const std::string& data) { return responder_->WriteChunk("data: " + data + "\n\n"); }

  HttpResponderPtr responder_;
  const std::string model_;
  const std::string id_;
  const std::int64_t created_;
  const bool stream_;
  const bool include_usage_;
  const std::size_t prompt_tokens_;
  std::string content_;  // not streamed: the whole text
};

}  // namespace

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
  if (!doc.HasMember("messages") || !doc["messages"].IsArray() || doc["messages"].Empty())
    return responder->Send(JsonError(400, "'messages' must be a non-empty list"));
  auto options = ParseChatOptions(doc);
  if (!options.ok()) return responder->Send(JsonError(options.status()));
  auto turn = ReadUserMessage(**workflow, doc["messages"]);
  if (!turn.ok()) return responder->Send(JsonError(turn.status()));

  // Token counts (max_tokens, usage) in CLIP's BPE, GPT-like tokens.
  auto tokenizer = service_.TokenizerFor(Embedder::kClipTextModel);
  std::shared_ptr<const Tokenizer> counter = tokenizer.ok() ? *tokenizer : nullptr;
  const std::size_t prompt_tokens = counter ? counter->CountTokens(turn->text) : 0;
  auto reply = std::make_shared<ChatReply>(responder, model, options->stream,
                                           options->include_usage, prompt_tokens);
  CompletionText text(std::move(options->limits.stop), options->limits.max_tokens, counter.get());
  if (!turn->missing.empty()) {
    reply->Send(text.Add(WhatItNeeds(**workflow, turn->missing, "Attach {} to the message")));
    reply->Send(text.Finish());
    return reply->Finish(text.finish_reason(), text.tokens());
  }
  RunOptions run;
  run.cancellation = std::make_shared<CancellationToken>();
  run.query = std::move(turn->query);
  responder->OnDisconnect([token = run.cancellation] { token->Cancel(); });
  RunForText(service_, (*workflow)->name, std::move(turn->inputs), std::move(run), std::move(text),
             TextAnswerSink{[reply](const std::string& piece) { return reply->Send(piece); },
                            // Holds the tokenizer `text` counts with for as long as the run.
                            [reply, counter](const char* reason, std::size_t tokens) {
                              reply->Finish(reason, tokens);
                            },
                            [reply](StatusCode code, const std::string& message) {
                              reply->Fail(code, message);
                            }});
}

}  // namespace braid
