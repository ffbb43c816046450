// Collections over HTTP: add texts and images (embedded through the
// schedulers, so batching and the result cache apply), search them by text,
// image or vector, delete items and collections.
//
// - POST /v1/collections/{c}/items {items: [{id?, text | image | vector,
//   metadata?}], space?}: `image` is a data URL, plain base64, or
//   {upload_file_id} from /v1/files/upload; `vector` is an embedding the
//   client brings. The collection is created by its first add, in `space`
//   (document, 128 dimensions, the default: braid's text embedder plus an
//   image's layout; text, 96; clip, 512; or clip-aligned, 128), which it
//   keeps. An existing id is replaced. → {collection, ids, created, count}.
// - POST /v1/collections/{c}/search {query: {text | image | vector} or a
//   string, top_k?} → {collection, results: [{id, score, text?,
//   media_type?, name?, metadata?}]}, best first; score is the cosine.
// - GET /v1/collections, GET /v1/collections/{c} → {name, space,
//   dimensions, count, index}.
// - DELETE /v1/collections/{c}/items/{id}, DELETE /v1/collections/{c}.
// Errors: 400 bad body, wrong space or vector length; 404 unknown
// collection or item; 413 past the caps.
#pragma once

#include "collections/collection_store.h"
#include "core/thread_pool.h"
#include "frontends/http/http_server.h"
#include "frontends/http/route_table.h"
#include "serving/embedder.h"
#include "serving/file_store.h"

namespace braid {

class CollectionsApi {
 public:
  // Everything passed must outlive the API. Searches and writes run on
  // `pool`, never on the network threads.
  CollectionsApi(CollectionStore& store, Embedder& embedder, FileStore& files, ThreadPool& pool);

  // Adds the endpoints above to `routes`.
  void AddRoutes(RouteTable& routes);

 private:
  // A route for /v1/collections/{c}...: `handler` gets the collection's
  // name once it is a valid one.
  using Named = std::function<void(const std::string& name, HttpRequest& request,
                                   HttpResponderPtr responder, const PathParams& params)>;
  static Route WithName(Named handler);
  void AddItems(const std::string& name, const HttpRequest& request, HttpResponderPtr responder);
  void Search(const std::string& name, const HttpRequest& request, HttpResponderPtr responder);
  void Describe(const std::string& name, HttpResponderPtr responder);
  void List(HttpResponderPtr responder);
  // Runs `work` on the pool and sends what it returns.
  void Answer(HttpResponderPtr responder, std::function<HttpResponse()> work);

  CollectionStore& store_;
  Embedder& embedder_;
  FileStore& files_;
  ThreadPool& pool_;
};

}  // namespace braid
