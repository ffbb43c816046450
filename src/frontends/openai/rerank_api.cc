#include "frontends/openai/rerank_api.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "core/random_id.h"
#include "frontends/kserve/kserve.h"
#include "frontends/status_mapping.h"

namespace braid {
namespace {

std::string Serialise(const rapidjson::Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace

RerankApi::RerankApi(Embedder& embedder) : embedder_(embedder) {}

void RerankApi::AddRoutes(RouteTable& routes) {
  routes.Add("POST", "/v1/rerank", RouteTo(this, &RerankApi::Rerank));
}

void RerankApi::Rerank(const HttpRequest& request, HttpResponderPtr responder) {
  auto doc = ParseJsonObject(*request.body);
  if (!doc.ok()) return responder->Send(JsonError(doc.status()));
  std::string model = Embedder::kTextModel;
  if (doc->HasMember("model")) {
    if (!(*doc)["model"].IsString())
      return responder->Send(JsonError(400, "'model' must be a string"));
    model = (*doc)["model"].GetString();
  }
  // The model names the space: text-embed's (as the document space, so that
  // images are compared by their layout as well as their words), CLIP's, or
  // the aligned one.
  const EmbeddingSpace space = model == "clip"           ? EmbeddingSpace::kClip
                               : model == "clip-aligned" ? EmbeddingSpace::kClipAligned
                                                         : EmbeddingSpace::kDocument;
  if (space == EmbeddingSpace::kDocument && model != Embedder::kTextModel) {
    return responder->Send(
        JsonError(404, fmt::format("unknown rerank model '{}' (available: {}, clip, clip-aligned)",
                                   model, Embedder::kTextModel)));
  }
  if (!doc->HasMember("query")) return responder->Send(JsonError(400, "'query' is required"));
  auto query = ParseEmbedItem((*doc)["query"]);
  if (!query.ok()) return responder->Send(JsonError(query.status().WithContext("query")));
  if (!doc->HasMember("documents") || !(*doc)["documents"].IsArray())
    return responder->Send(JsonError(400, "'documents' must be an array"));
  const auto& documents = (*doc)["documents"];
  if (documents.Empty()) return responder->Send(JsonError(400, "'documents' is empty"));
  if (documents.Size() >= kMaxEmbedItems)
    return responder->Send(JsonError(400, fmt::format("at most {} documents", kMaxEmbedItems - 1)));
  std::vector<EmbedItem> items;
  std::vector<std::string> echoes;  // what return_documents gives back
  for (rapidjson::SizeType d = 0; d < documents.Size(); ++d) {
    const auto& document = documents[d];
    // Cohere's {text: ...} form as well as strings and content parts.
    const bool text_object =
        document.IsObject() && !document.HasMember("type") && document.HasMember("text");
    auto item = ParseEmbedItem(text_object ? document["text"] : document);
    if (!item.ok())
      return responder->Send(JsonError(item.status().WithContext(fmt::format("documents[{}]", d))));
    if (item->kind == EmbedItem::Kind::kText) {
      std::string echo = "{\"text\":";
      AppendJsonString(echo, item->data);
      echoes.push_back(echo + "}");
    } else {
      echoes.push_back(Serialise(document));
    }
    items.push_back(std::move(item).value());
  }
  std::size_t top_n = items.size();
  if (doc->HasMember("top_n") && !(*doc)["top_n"].IsNull()) {
    if (!(*doc)["top_n"].IsInt() || (*doc)["top_n"].GetInt() < 1)
      return responder->Send(JsonError(400, "'top_n' must be a positive integer"));
    top_n = std::min<std::size_t>(top_n, (*doc)["top_n"].GetInt());
  }
  auto return_documents = OptionalJsonBool(*doc, "return_documents", true);
  if (!return_documents.ok()) return responder->Send(JsonError(return_documents.status()));
  std::vector<EmbedItem> counted = items;
  counted.push_back(*query);
  const std::size_t tokens = embedder_.CountTokens(counted, space);
  embedder_.Score(
      std::move(*query), std::move(items), space,
      [responder, model, top_n, echoes = std::move(echoes), documents = *return_documents,
       tokens](Result<std::vector<float>> scores) {
        if (!scores.ok()) return responder->Send(JsonError(scores.status()));
        std::vector<std::string> results;
        for (std::size_t index : RankedByScore(*scores)) {
          if (results.size() == top_n) break;
          std::string result = fmt::format(R"({{"index":{},"relevance_score":{}}})", index,
                                           (1 + (*scores)[index]) / 2);
          if (documents) result.insert(result.size() - 1, ",\"document\":" + echoes[index]);
          results.push_back(std::move(result));
        }
        std::string quoted;
        AppendJsonString(quoted, model);
        responder->Send(Json(fmt::format(
            R"({{"id":"{}","model":{},"results":[{}],"usage":{{"prompt_tokens":{},"total_tokens":{}}}}})",
            RandomId("rerank-"), quoted, fmt::join(results, ","), tokens, tokens)));
      });
}

}  // namespace braid
