#include "serving/embedder.h"

#include <cmath>
#include <mutex>

#include "core/base64.h"
#include "preprocess/image.h"
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

Result<EmbedItem> ParseEmbedItem(const rapidjson::Value& part) {
  auto text = [](std::string value) -> Result<EmbedItem> {
    if (value.empty() || !IsValidUtf8(value))
      return InvalidArgument("text inputs must be non-empty UTF-8");
    return EmbedItem{EmbedItem::Kind::kText, std::move(value)};
  };
  if (part.IsString()) return text(part.GetString());
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
    BRAID_ASSIGN_OR_RETURN(DataUrl data, ParseDataUrl(url->GetString()));
    // Dify sends audio (and video) as image_url: route by media type.
    if (data.media_type.starts_with("audio/"))
      return EmbedItem{EmbedItem::Kind::kAudio, std::move(data.data)};
    if (data.media_type.starts_with("image/"))
      return EmbedItem{EmbedItem::Kind::kImage, std::move(data.data)};
    return InvalidArgument("cannot embed a data URL of type {}", data.media_type);
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
    BRAID_ASSIGN_OR_RETURN(EmbedItem item, ParseEmbedItem(part));
    items.push_back(std::move(item));
  }
  return items;
}

float Cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) dot += double(a[i]) * b[i];
  return static_cast<float>(dot);
}

Embedder::Embedder(InferenceService& service, WorkflowExecutor& executor, ThreadPool& pool)
    : service_(service), executor_(executor), pool_(pool) {}

std::size_t Embedder::CountTokens(const std::vector<EmbedItem>& items) {
  std::size_t tokens = 0;
  auto tokenizer = executor_.TokenizerFor(kTextModel);
  for (const auto& item : items) {
    tokens += item.kind == EmbedItem::Kind::kText && tokenizer.ok()
                  ? (*tokenizer)->CountTokens(item.data)
                  : 1;
  }
  return tokens;
}

void Embedder::EmbedAll(std::vector<EmbedItem> items, int dimensions, VectorsDone done,
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
    Embed(items[i], dimensions, [gather, i, normalize](Result<std::vector<float>> result) {
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

void Embedder::Score(EmbedItem query, std::vector<EmbedItem> documents, int dimensions,
                     ScoresDone done) {
  documents.insert(documents.begin(), std::move(query));
  EmbedAll(std::move(documents), dimensions,
           [done = std::move(done)](Result<std::vector<std::vector<float>>> vectors) {
             if (!vectors.ok()) return done(vectors.status());
             std::vector<float> scores;
             for (std::size_t d = 1; d < vectors->size(); ++d)
               scores.push_back(Cosine((*vectors)[0], (*vectors)[d]));
             done(std::move(scores));
           });
}

void Embedder::Project(std::vector<float> vector, bool image, VectorDone done) {
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

void Embedder::EmbedText(const std::string& text, int dimensions, VectorDone done) {
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

void Embedder::Embed(const EmbedItem& item, int dimensions, VectorDone done) {
  if (item.kind == EmbedItem::Kind::kText) return EmbedText(item.data, dimensions, std::move(done));
  if (item.kind == EmbedItem::Kind::kAudio) {
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

}  // namespace braid
