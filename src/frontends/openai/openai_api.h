// OpenAI-compatible endpoints, as Dify's "OpenAI-API-compatible" provider and
// the official client libraries call them:
//   GET  /v1/models[/{id}]          the models and the workflows, each with
//                                   a "braid" field saying what it serves
//                                   (embeddings, rerank, transcription,
//                                   speech, chat/workflow/generate,
//                                   inference), its input kinds and dimensions
//   POST /v1/embeddings             text → clip-text, images → clip-image
//                                   (audio data URLs → asr → clip-text);
//                                   dimensions 128 goes through the align
//                                   heads; float or base64; usage counted
//   POST /v1/audio/transcriptions   multipart `file` → asr (json, text,
//                                   verbose_json with segments and words)
//   POST /v1/chat/completions       `model` names a workflow; the last user
//                                   message's image_url and input_audio parts
//                                   become its inputs (data URLs routed by
//                                   media type), its text the text input or,
//                                   without one, `sys.query`; a message that
//                                   lacks a required input is answered with
//                                   what the workflow needs; max_tokens and
//                                   stop cut the answer; stream: true answers
//                                   with chat.completion.chunk events and
//                                   [DONE]
// Embeddings are L2-normalised, as OpenAI's are.
#pragma once

#include <string>
#include <vector>

#include "frontends/http/http_server.h"
#include "frontends/http/route_table.h"
#include "serving/embedder.h"
#include "serving/inference_service.h"
#include "workflow/registry.h"

namespace braid {

class OpenAiApi {
 public:
  // Everything passed must outlive the API.
  OpenAiApi(InferenceService& service, const WorkflowRegistry& workflows, Embedder& embedder);

  // Adds the endpoints above to `routes`.
  void AddRoutes(RouteTable& routes);
  // POST /v1/embeddings, which TEI's prefixed paths serve too.
  void Embeddings(HttpRequest& request, HttpResponderPtr responder);

 private:
  // /v1/models entries: all, or the one named `only` (none if unknown).
  std::vector<std::string> ModelEntries(const std::string& only);
  // GET /v1/models (`id` empty) or /v1/models/{id}.
  void Models(std::string_view id, HttpResponderPtr responder);
  void Transcriptions(HttpRequest& request, HttpResponderPtr responder);
  void ChatCompletions(HttpRequest& request, HttpResponderPtr responder);
  InferenceService& service_;
  const WorkflowRegistry& workflows_;
  Embedder& embedder_;
};

}  // namespace braid
