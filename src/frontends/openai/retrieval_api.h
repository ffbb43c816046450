// Reranking and the Text Embeddings Inference (TEI) protocol, for Dify's
// "OpenAI-API-compatible" and "Text Embedding Inference" providers.
//
// - POST /v1/rerank {model, query, documents, top_n, return_documents}:
//   documents are strings, {text} objects or content parts with image data
//   URLs; `model` is clip (CLIP's 512-dimensional space) or clip-aligned
//   (through the align heads, 128 dimensions). relevance_score is
//   (1 + cosine) / 2, in [0, 1]; results are sorted by it.
// - TEI: GET /info, POST /embed, /rerank ({query, texts, raw_scores,
//   return_text}), /tokenize. Dify reads the model type from /info, so the
//   same endpoints also answer under /tei/embedding/ and /tei/reranker/,
//   whose /info says "embedding" or "reranker" (the bare ones say
//   "embedding"); under those prefixes /v1/embeddings is served too, as
//   Dify's TEI provider embeds through it.
#pragma once

#include "frontends/http/http_server.h"
#include "frontends/http/route_table.h"
#include "frontends/openai/openai_api.h"
#include "serving/embedder.h"

namespace braid {

class RetrievalApi {
 public:
  // Everything passed must outlive the API.
  RetrievalApi(Embedder& embedder, WorkflowExecutor& executor, OpenAiApi& openai);

  // Adds POST /v1/rerank and TEI's endpoints, bare (/embed) and under
  // /tei/embedding and /tei/reranker, to `routes`.
  void AddRoutes(RouteTable& routes);

 private:
  void Rerank(const HttpRequest& request, HttpResponderPtr responder);
  void TeiInfo(bool reranker, HttpResponderPtr responder);
  void TeiEmbed(const HttpRequest& request, HttpResponderPtr responder);
  void TeiRerank(const HttpRequest& request, HttpResponderPtr responder);
  void TeiTokenize(const HttpRequest& request, HttpResponderPtr responder);

  Embedder& embedder_;
  WorkflowExecutor& executor_;
  OpenAiApi& openai_;
};

}  // namespace braid
