// Reranking for Dify's "OpenAI-API-compatible" provider (TEI's protocol is
// frontends/tei): POST /v1/rerank {model, query, documents, top_n,
// return_documents}: documents are strings, {text} objects or content parts
// with image data URLs; `model` is text-embed (the default), clip (CLIP's
// 512-dimensional space) or clip-aligned (through the align heads, 128
// dimensions). relevance_score is (1 + cosine) / 2, in [0, 1]; results are
// sorted by it.
#pragma once

#include "frontends/http/http_server.h"
#include "frontends/http/route_table.h"
#include "serving/embedder.h"

namespace braid {

class RerankApi {
 public:
  // Everything passed must outlive the API.
  explicit RerankApi(Embedder& embedder);

  // Adds POST /v1/rerank to `routes`.
  void AddRoutes(RouteTable& routes);

 private:
  void Rerank(const HttpRequest& request, HttpResponderPtr responder);

  Embedder& embedder_;
};

}  // namespace braid
