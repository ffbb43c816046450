#include "serving/embedder.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>

#include "core/base64.h"
#include "preprocess/ngram_tokenizer.h"
#include "preprocess/tokenizer.h"

namespace braid {
namespace {

void Normalise(std::vector<float>& v) {
  double norm = 0;
  for (float x : v) norm += double(x) * x;
  norm = std::sqrt(norm);
  if (norm > 0) {
    for (float& x : v) x = static_cast<float>(x / norm);
  }
}

}  // namespace

Result<rapidjson::Document> ParseJsonObject(std::string_view body) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(body.data(), body.size());
  if (doc.HasParseError() || !doc.IsObject())
    return InvalidArgument("the body must be a JSON object");
  return doc;
}

Result<bool> OptionalJsonBool(const rapidjson::Value& doc, const char* name, bool fallback) {
  if (!doc.HasMember(name) || doc[name].IsNull()) return fallback;
  if (!doc[name].IsBool()) return InvalidArgument("'{}' must be true or false", name);
  return doc[name].GetBool();
}

std::vector<std::size_t> RankedByScore(const std::vector<float>& scores) {
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
  return order;
}

Result<EmbedItem> ParseEmbedItem(const rapidjson::Value& part) {
  auto text = [](std::string value) -> Result<EmbedItem> {
    if (value.empty() || !IsValidUtf8(value))
      return InvalidArgument("text inputs must be non-empty UTF-8");
    return EmbedItem{EmbedItem::Kind::kText, std::move(value)};
  };
  // Dify sends audio (and video) as image_url: a data URL goes by its media type.
  auto media = [](std::string_view url) -> Result<EmbedItem> {
    BRAID_ASSIGN_OR_RETURN(DataUrl data, ParseDataUrl(url));
    if (data.media_type.starts_with("audio/"))
      return EmbedItem{EmbedItem::Kind::kAudio, std::move(data.data)};
    if (data.media_type.starts_with("image/"))
      return EmbedItem{EmbedItem::Kind::kImage, std::move(data.data)};
    return InvalidArgument("cannot embed a data URL of type {}", data.media_type);
  };
  if (part.IsString()) {
    const std::string_view value(part.GetString(), part.GetStringLength());
    // An image or audio data URL sent as a plain string is that media, not text.
    if (value.starts_with("data:image/") || value.starts_with("data:audio/")) return media(value);
    return text(std::string(value));
  }
  if (!part.IsObject() || !part.HasMember("type") || !part["type"].IsString())
    return InvalidArgument("each input must be a string or a content part {{type, ...}}");
  const std::string type = part["type"].GetString();
  if (type == "text" && part.HasMember("text") && part["text"].IsString())
    return text(part["text"].GetString());
  if (type == "image_url" && part.HasMember("image_url")) {
    const auto& image = part["image_url"];
    const rapidjson::Value* url = image.IsString()                             ? &image
                                  : image.IsObject() && image.HasMember("url") ? &image["url"]
                                                                               : nullptr;
    if (url == nullptr || !url->IsString()) return InvalidArgument("image_url needs a url");
    return media(url->GetString());
  }
  return InvalidArgument("unsupported content part type '{}'", type);
}

Result<std::vector<EmbedItem>> ParseEmbedItems(const rapidjson::Value& value) {
  std::vector<EmbedItem> items;
  if (!value.IsArray()) {
    BRAID_ASSIGN_OR_RETURN(EmbedItem item, ParseEmbedItem(value));
    items.push_back(std::move(item));
    return items;
  }
  if (value.Size() > kMaxEmbedItems) return InvalidArgument("at most {} inputs", kMaxEmbedItems);
  for (const auto& part : value.GetArray()) {
    auto item = ParseEmbedItem(part);
    if (!item.ok()) return item.status().WithContext(fmt::format("input[{}]", items.size()));
    items.push_back(std::move(item).value());
  }
  return items;
}

float Cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) dot += double(a[i]) * b[i];
  return static_cast<float>(dot);
}

std::string_view TextModelOf(EmbeddingSpace space) {
  return space == EmbeddingSpace::kText || space == EmbeddingSpace::kDocument
             ? Embedder::kTextModel
             : Embedder::kClipTextModel;
}

std::string EmbeddingPipeline(EmbedItem::Kind kind, EmbeddingSpace space, bool attention_mask) {
  const bool aligned = space == EmbeddingSpace::kClipAligned;
  std::string yaml;
  std::string vector;
  const bool document = space == EmbeddingSpace::kDocument;
  if (kind == EmbedItem::Kind::kImage && (space == EmbeddingSpace::kClip || aligned)) {
    yaml = R"(inputs: {image: {type: image}}
nodes:
  - {id: pixels, kind: preprocess.image, from: {image: inputs.image}}
  - {id: embedding, kind: model, model: clip-image, from: {pixel_values: pixels.pixel_values}}
)";
    vector = aligned ? "aligned.image" : "embedding.image_embeds";
    if (aligned)
      yaml += "  - {id: aligned, kind: project, from: {image: embedding.image_embeds}}\n";
    return yaml + "outputs: {vector: " + vector + "}\n";
  }
  // Text, or text read from the item first: the transcript of audio, or
  // what OCR reads in an image (in the text and document spaces; the
  // document space adds the image's layout, and the token ids tell whether
  // anything was read).
  std::string text = "inputs.text";
  if (kind == EmbedItem::Kind::kAudio) {
    yaml = R"(inputs: {audio: {type: audio}}
nodes:
  - {id: transcript, kind: model, model: asr, from: {audio: inputs.audio}}
)";
    text = "transcript.text";
  } else if (kind == EmbedItem::Kind::kImage) {
    yaml = R"(inputs: {image: {type: image}}
nodes:
  - {id: reading, kind: model, model: ocr, from: {image: inputs.image}}
)";
    text = "reading.text";
    if (document)
      yaml += "  - {id: layout, kind: preprocess.layout, from: {image: inputs.image}}\n";
  } else {
    yaml = "inputs: {text: {type: text}}\nnodes:\n";
  }
  const std::string_view model = TextModelOf(space);
  yaml += fmt::format(
      "  - {{id: tokens, kind: preprocess.text, tokenizer: {0}, from: {{text: {1}}}}}\n"
      "  - {{id: embedding, kind: model, model: {0}, from: {{input_ids: tokens.input_ids{2}}}}}\n",
      model, text, attention_mask ? ", attention_mask: tokens.attention_mask" : "");
  vector = aligned ? "aligned.text" : "embedding.text_embeds";
  if (aligned) yaml += "  - {id: aligned, kind: project, from: {text: embedding.text_embeds}}\n";
  std::string outputs = "vector: " + vector;
  if (document) outputs += ", ids: tokens.input_ids";
  if (document && kind == EmbedItem::Kind::kImage) outputs += ", layout: layout.descriptor";
  return yaml + "outputs: {" + outputs + "}\n";
}

Embedder::Embedder(WorkflowExecutor& executor, const ModelCatalog& catalog) : executor_(executor) {
  for (auto kind : {EmbedItem::Kind::kText, EmbedItem::Kind::kImage, EmbedItem::Kind::kAudio}) {
    for (auto space : kEmbeddingSpaces) {
      constexpr const char* kKindNames[] = {"text", "image", "audio"};
      const std::string name =
          fmt::format("embed-{}-{}", kKindNames[static_cast<int>(kind)], SpaceName(space));
      const bool mask =
          catalog(std::string(TextModelOf(space)), {"input_ids", "attention_mask"}).ok();
      auto parsed =
          ParseWorkflow(EmbeddingPipeline(kind, space, mask), name, "(built in)", catalog);
      Pipeline& pipeline = pipelines_[static_cast<int>(kind)][static_cast<int>(space)];
      if (parsed.ok()) {
        pipeline.workflow = *std::move(parsed);
      } else {
        pipeline.why_not =
            Unavailable("embeddings of this kind are not served: {}", parsed.status().message());
      }
    }
  }
}

std::size_t Embedder::CountTokens(const std::vector<EmbedItem>& items, EmbeddingSpace space) {
  std::size_t tokens = 0;
  auto tokenizer = executor_.runner().TokenizerFor(std::string(TextModelOf(space)));
  for (const auto& item : items) {
    tokens += item.kind == EmbedItem::Kind::kText && tokenizer.ok()
                  ? (*tokenizer)->CountTokens(item.data)
                  : 1;
  }
  return tokens;
}

void Embedder::EmbedAll(std::vector<EmbedItem> items, EmbeddingSpace space, VectorsDone done,
                        bool normalize) {
  struct Gather {
    std::mutex mutex;
    std::vector<std::vector<float>> vectors;
    std::size_t remaining;
    Status error;
    VectorsDone done;
  };
  if (items.empty()) return done(std::vector<std::vector<float>>{});
  auto gather = std::make_shared<Gather>();
  gather->vectors.resize(items.size());
  gather->remaining = items.size();
  gather->done = std::move(done);
  for (std::size_t i = 0; i < items.size(); ++i) {
    Embed(items[i], space, [gather, i, normalize](Result<std::vector<float>> result) {
      std::unique_lock lock(gather->mutex);
      if (result.ok()) {
        gather->vectors[i] = std::move(result).value();
        if (normalize) Normalise(gather->vectors[i]);
      } else if (gather->error.ok()) {
        gather->error = result.status();
      }
      if (--gather->remaining > 0) return;
      lock.unlock();
      if (!gather->error.ok()) return gather->done(gather->error);
      gather->done(std::move(gather->vectors));
    });
  }
}

void Embedder::Score(EmbedItem query, std::vector<EmbedItem> documents, EmbeddingSpace space,
                     ScoresDone done) {
  documents.insert(documents.begin(), std::move(query));
  EmbedAll(std::move(documents), space,
           [done = std::move(done)](Result<std::vector<std::vector<float>>> vectors) {
             if (!vectors.ok()) return done(vectors.status());
             std::vector<float> scores;
             for (std::size_t d = 1; d < vectors->size(); ++d)
               scores.push_back(Cosine((*vectors)[0], (*vectors)[d]));
             done(std::move(scores));
           });
}

void Embedder::Embed(const EmbedItem& item, EmbeddingSpace space, VectorDone done) {
  const Pipeline& pipeline = pipelines_[static_cast<int>(item.kind)][static_cast<int>(space)];
  if (!pipeline.workflow) return done(pipeline.why_not);
  const WorkflowPtr& workflow = pipeline.workflow;
  NamedTensors inputs = {{workflow->inputs[0].name, *Tensor::FromStrings({item.data}, {1})}};
  executor_.Start(
      workflow, std::move(inputs), RunOptions{},
      [space, done = std::move(done)](const WorkflowEvent& event) {
        if (event.type == WorkflowEvent::Type::kError)
          return done(Status(event.error_code, event.text));
        if (event.type != WorkflowEvent::Type::kWorkflowFinished) return;
        auto vector = event.outputs.find("vector");
        if (vector == event.outputs.end())
          return done(Internal("the embedding pipeline produced no vector"));
        auto values = vector->second.span<float>();
        if (space != EmbeddingSpace::kDocument)
          return done(std::vector<float>(values.begin(), values.end()));
        auto ids = event.outputs.find("ids");
        const bool read_nothing = ids != event.outputs.end() && ids->second.element_count() > 0 &&
                                  ids->second.span<std::int64_t>()[0] == kEmptyFeature;
        auto layout = event.outputs.find("layout");
        done(DocumentVector(values, read_nothing,
                            layout == event.outputs.end() ? std::span<const float>()
                                                          : layout->second.span<float>()));
      });
}

}  // namespace braid
