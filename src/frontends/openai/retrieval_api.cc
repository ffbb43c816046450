#include "frontends/openai/retrieval_api.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <numeric>

#include "core/random_id.h"
#include "frontends/kserve/kserve.h"
#include "frontends/status_mapping.h"
#include "preprocess/tokenizer.h"

namespace braid {
namespace {

constexpr char kVersion[] = "0.1.0";

HttpResponse Json(std::string body) {
  HttpResponse response;
  response.body = std::move(body);
  return response;
}

Result<bool> OptionalBool(const rapidjson::Value& doc, const char* name, bool fallback) {
  if (!doc.HasMember(name) || doc[name].IsNull()) return fallback;
  if (!doc[name].IsBool()) return InvalidArgument("'{}' must be true or false", name);
  return doc[name].GetBool();
}

std::string Serialise(const rapidjson::Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

// Document order by descending score.
std::vector<std::size_t> Ranking(const std::vector<float>& scores) {
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
  return order;
}

// TEI's "inputs": a non-empty UTF-8 string or an array of them.
Result<std::vector<std::string>> Texts(const rapidjson::Value& doc, const char* name) {
  if (!doc.HasMember(name)) return InvalidArgument("'{}' is required", name);
  const auto& value = doc[name];
  std::vector<std::string> texts;
  auto add = [&](const rapidjson::Value& text) -> Status {
    if (!text.IsString() || text.GetStringLength() == 0)
      return InvalidArgument("'{}' must hold non-empty strings", name);
    if (!IsValidUtf8({text.GetString(), text.GetStringLength()}))
      return InvalidArgument("'{}' must be UTF-8", name);
    texts.emplace_back(text.GetString(), text.GetStringLength());
    return Status::Ok();
  };
  if (value.IsArray()) {
    if (value.Empty()) return InvalidArgument("'{}' is empty", name);
    if (value.Size() > kMaxEmbedItems)
      return InvalidArgument("at most {} '{}'", kMaxEmbedItems, name);
    for (const auto& text : value.GetArray()) BRAID_RETURN_IF_ERROR(add(text));
  } else {
    BRAID_RETURN_IF_ERROR(add(value));
  }
  return texts;
}

std::vector<EmbedItem> TextItems(const std::vector<std::string>& texts) {
  std::vector<EmbedItem> items;
  for (const auto& text : texts) items.push_back({EmbedItem::Kind::kText, text});
  return items;
}

}  // namespace

RetrievalApi::RetrievalApi(Embedder& embedder, WorkflowExecutor& executor, OpenAiApi& openai)
    : embedder_(embedder), executor_(executor), openai_(openai) {}

void RetrievalApi::AddRoutes(RouteTable& routes) {
  routes.Add("POST", "/v1/rerank", RouteTo(this, &RetrievalApi::Rerank));
  for (const std::string_view prefix : {"", "/tei/embedding", "/tei/reranker"}) {
    const bool reranker = prefix.ends_with("reranker");
    const auto path = [prefix](std::string_view endpoint) {
      return std::string(prefix) + std::string(endpoint);
    };
    routes.Add("GET", path("/info"),
               [this, reranker](HttpRequest&, HttpResponderPtr responder, const PathParams&) {
                 TeiInfo(reranker, std::move(responder));
               });
    routes.Add("POST", path("/embed"), RouteTo(this, &RetrievalApi::TeiEmbed));
    routes.Add("POST", path("/rerank"), RouteTo(this, &RetrievalApi::TeiRerank));
    routes.Add("POST", path("/tokenize"), RouteTo(this, &RetrievalApi::TeiTokenize));
    if (prefix.empty()) continue;
    routes.Add("POST", path("/v1/embeddings"), RouteTo(&openai_, &OpenAiApi::Embeddings));
  }
}

void RetrievalApi::Rerank(const HttpRequest& request, HttpResponderPtr responder) {
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
  auto return_documents = OptionalBool(*doc, "return_documents", true);
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
        for (std::size_t index : Ranking(*scores)) {
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

void RetrievalApi::TeiInfo(bool reranker, HttpResponderPtr responder) {
  const std::string type =
      reranker ? R"({"reranker":{"id2label":{"0":"LABEL_0"},"label2id":{"LABEL_0":0}}})"
               : R"({"embedding":{"pooling":"cls"}})";
  responder->Send(Json(fmt::format(
      R"({{"model_id":"braid/{}","model_sha":null,"model_dtype":"float32","model_type":{},)"
      R"("max_concurrent_requests":4096,"max_input_length":512,"max_batch_tokens":16384,)"
      R"("max_batch_requests":null,"max_client_batch_size":{},"auto_truncate":true,)"
      R"("tokenization_workers":1,"version":"{}","sha":null,"docker_label":null}})",
      Embedder::kTextModel, type, kMaxEmbedItems, kVersion)));
}

void RetrievalApi::TeiEmbed(const HttpRequest& request, HttpResponderPtr responder) {
  auto doc = ParseJsonObject(*request.body);
  if (!doc.ok()) return responder->Send(JsonError(doc.status()));
  auto texts = Texts(*doc, "inputs");
  if (!texts.ok()) return responder->Send(JsonError(texts.status()));
  auto normalize = OptionalBool(*doc, "normalize", true);
  if (!normalize.ok()) return responder->Send(JsonError(normalize.status()));
  embedder_.EmbedAll(
      TextItems(*texts), EmbeddingSpace::kText,
      [responder](Result<std::vector<std::vector<float>>> vectors) {
        if (!vectors.ok()) return responder->Send(JsonError(vectors.status()));
        std::vector<std::string> rows;
        for (const auto& v : *vectors) rows.push_back(fmt::format("[{}]", fmt::join(v, ",")));
        responder->Send(Json(fmt::format("[{}]", fmt::join(rows, ","))));
      },
      *normalize);
}

void RetrievalApi::TeiRerank(const HttpRequest& request, HttpResponderPtr responder) {
  auto doc = ParseJsonObject(*request.body);
  if (!doc.ok()) return responder->Send(JsonError(doc.status()));
  if (!doc->HasMember("query") || !(*doc)["query"].IsString() ||
      (*doc)["query"].GetStringLength() == 0)
    return responder->Send(JsonError(400, "'query' must be a non-empty string"));
  auto texts = Texts(*doc, "texts");
  if (!texts.ok()) return responder->Send(JsonError(texts.status()));
  auto raw = OptionalBool(*doc, "raw_scores", false);
  auto return_text = OptionalBool(*doc, "return_text", false);
  for (const auto* flag : {&raw, &return_text}) {
    if (!flag->ok()) return responder->Send(JsonError(flag->status()));
  }
  EmbedItem query{EmbedItem::Kind::kText, (*doc)["query"].GetString()};
  if (!IsValidUtf8(query.data)) return responder->Send(JsonError(400, "query must be UTF-8"));
  embedder_.Score(std::move(query), TextItems(*texts), EmbeddingSpace::kText,
                  [responder, texts = *texts, raw = *raw,
                   with_text = *return_text](Result<std::vector<float>> scores) {
                    if (!scores.ok()) return responder->Send(JsonError(scores.status()));
                    std::vector<std::string> results;
                    for (std::size_t index : Ranking(*scores)) {
                      const float score = raw ? (*scores)[index] : (1 + (*scores)[index]) / 2;
                      std::string result = fmt::format(R"({{"index":{},"score":{})", index, score);
                      if (with_text) {
                        result += ",\"text\":";
                        AppendJsonString(result, texts[index]);
                      }
                      results.push_back(result + "}");
                    }
                    responder->Send(Json(fmt::format("[{}]", fmt::join(results, ","))));
                  });
}

void RetrievalApi::TeiTokenize(const HttpRequest& request, HttpResponderPtr responder) {
  auto doc = ParseJsonObject(*request.body);
  if (!doc.ok()) return responder->Send(JsonError(doc.status()));
  auto texts = Texts(*doc, "inputs");
  if (!texts.ok()) return responder->Send(JsonError(texts.status()));
  auto special = OptionalBool(*doc, "add_special_tokens", true);
  if (!special.ok()) return responder->Send(JsonError(special.status()));
  auto tokenizer = executor_.TokenizerFor(Embedder::kTextModel);
  if (!tokenizer.ok()) return responder->Send(JsonError(tokenizer.status()));
  std::vector<std::string> lists;
  for (const auto& text : *texts) {
    auto tokens = (*tokenizer)->Tokenize(text);
    if (!tokens.ok()) return responder->Send(JsonError(tokens.status()));
    std::vector<std::string> items;
    for (const auto& token : *tokens) {
      if (token.special && !*special) continue;
      std::string item = fmt::format(R"({{"id":{},"text":)", token.id);
      AppendJsonString(item, token.text);
      item += fmt::format(R"(,"special":{},"start":{},"stop":{}}})", token.special,
                          token.start ? std::to_string(*token.start) : "null",
                          token.stop ? std::to_string(*token.stop) : "null");
      items.push_back(std::move(item));
    }
    lists.push_back(fmt::format("[{}]", fmt::join(items, ",")));
  }
  responder->Send(Json(fmt::format("[{}]", fmt::join(lists, ","))));
}

}  // namespace braid
