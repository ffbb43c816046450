#include "frontends/tei/tei_api.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "frontends/kserve/kserve.h"
#include "preprocess/tokenizer.h"

namespace braid {
namespace {

constexpr char kVersion[] = "0.1.0";

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

TeiApi::TeiApi(Embedder& embedder, InferenceService& service, OpenAiApi& openai)
    : embedder_(embedder), service_(service), openai_(openai) {}

void TeiApi::AddRoutes(RouteTable& routes) {
  for (const std::string_view prefix : {"", "/tei/embedding", "/tei/reranker"}) {
    const bool reranker = prefix.ends_with("reranker");
    const auto path = [prefix](std::string_view endpoint) {
      return std::string(prefix) + std::string(endpoint);
    };
    routes.Add("GET", path("/info"),
               [this, reranker](HttpRequest&, HttpResponderPtr responder, const PathParams&) {
                 Info(reranker, std::move(responder));
               });
    routes.Add("POST", path("/embed"), RouteTo(this, &TeiApi::Embed));
    routes.Add("POST", path("/rerank"), RouteTo(this, &TeiApi::Rerank));
    routes.Add("POST", path("/tokenize"), RouteTo(this, &TeiApi::Tokenize));
    if (prefix.empty()) continue;
    routes.Add("POST", path("/v1/embeddings"), RouteTo(&openai_, &OpenAiApi::Embeddings));
  }
}

void TeiApi::Info(bool reranker, HttpResponderPtr responder) {
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

void TeiApi::Embed(const HttpRequest& request, HttpResponderPtr responder) {
  auto doc = ParseJsonObject(*request.body);
  if (!doc.ok()) return responder->Send(JsonError(doc.status()));
  auto texts = Texts(*doc, "inputs");
  if (!texts.ok()) return responder->Send(JsonError(texts.status()));
  auto normalize = OptionalJsonBool(*doc, "normalize", true);
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

void TeiApi::Rerank(const HttpRequest& request, HttpResponderPtr responder) {
  auto doc = ParseJsonObject(*request.body);
  if (!doc.ok()) return responder->Send(JsonError(doc.status()));
  if (!doc->HasMember("query") || !(*doc)["query"].IsString() ||
      (*doc)["query"].GetStringLength() == 0)
    return responder->Send(JsonError(400, "'query' must be a non-empty string"));
  auto texts = Texts(*doc, "texts");
  if (!texts.ok()) return responder->Send(JsonError(texts.status()));
  auto raw = OptionalJsonBool(*doc, "raw_scores", false);
  auto return_text = OptionalJsonBool(*doc, "return_text", false);
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
                    for (std::size_t index : RankedByScore(*scores)) {
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

void TeiApi::Tokenize(const HttpRequest& request, HttpResponderPtr responder) {
  auto doc = ParseJsonObject(*request.body);
  if (!doc.ok()) return responder->Send(JsonError(doc.status()));
  auto texts = Texts(*doc, "inputs");
  if (!texts.ok()) return responder->Send(JsonError(texts.status()));
  auto special = OptionalJsonBool(*doc, "add_special_tokens", true);
  if (!special.ok()) return responder->Send(JsonError(special.status()));
  auto tokenizer = service_.TokenizerFor(Embedder::kTextModel);
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
