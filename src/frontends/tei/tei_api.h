// The Text Embeddings Inference (TEI) protocol, for Dify's "Text Embedding
// Inference" provider: GET /info, POST /embed, /rerank ({query, texts,
// raw_scores, return_text}), /tokenize, on the text-embed model. Dify reads
// the model type from /info, so the same endpoints also answer under
// /tei/embedding/ and /tei/reranker/, whose /info says "embedding" or
// "reranker" (the bare ones say "embedding"); under those prefixes
// /v1/embeddings is served too, as Dify's TEI provider embeds through it.
#pragma once

#include "frontends/http/http_server.h"
#include "frontends/http/route_table.h"
#include "frontends/openai/openai_api.h"
#include "serving/embedder.h"
#include "serving/inference_service.h"

namespace braid {

class TeiApi {
 public:
  // Everything passed must outlive the API.
  TeiApi(Embedder& embedder, InferenceService& service, OpenAiApi& openai);

  // Adds TEI's endpoints, bare (/embed) and under /tei/embedding and
  // /tei/reranker, to `routes`.
  void AddRoutes(RouteTable& routes);

 private:
  void Info(bool reranker, HttpResponderPtr responder);
  void Embed(const HttpRequest& request, HttpResponderPtr responder);
  void Rerank(const HttpRequest& request, HttpResponderPtr responder);
  void Tokenize(const HttpRequest& request, HttpResponderPtr responder);

  Embedder& embedder_;
  InferenceService& service_;
  OpenAiApi& openai_;
};

}  // namespace braid
