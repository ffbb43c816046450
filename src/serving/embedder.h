// Embeddings of text, images and audio in CLIP's space, shared by the
// OpenAI-compatible embeddings and rerank endpoints and the TEI-compatible
// ones. Text goes through clip-text, images through clip-image, audio
// through asr and then clip-text; with 128 dimensions the vector is
// projected by the align heads into the shared cross-modal space. Every
// model call goes through the server's schedulers (batched with other
// requests, answered from the result cache when the model has one).
#pragma once

#include <rapidjson/document.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/thread_pool.h"
#include "serving/inference_service.h"
#include "workflow/executor.h"

namespace braid {

struct EmbedItem {
  enum class Kind { kText, kImage, kAudio } kind = Kind::kText;
  std::string data;  // UTF-8 text, or the encoded image or audio
};

// A request body that must be a JSON object (parsed iteratively, so deep
// nesting cannot exhaust the stack).
Result<rapidjson::Document> ParseJsonObject(std::string_view body);

// A string, or a content part {type: "text", text} or {type: "image_url",
// image_url: {url: "data:..."}} (an audio data URL is audio, as Dify sends
// it). InvalidArgument otherwise, or for empty or invalid UTF-8 text.
Result<EmbedItem> ParseEmbedItem(const rapidjson::Value& value);
// One item, or an array of them (at most kMaxEmbedItems).
inline constexpr std::size_t kMaxEmbedItems = 256;
Result<std::vector<EmbedItem>> ParseEmbedItems(const rapidjson::Value& value);

class Embedder {
 public:
  static constexpr char kTextModel[] = "clip-text";
  static constexpr char kImageModel[] = "clip-image";

  // Everything passed must outlive the embedder. `pool` runs image decoding
  // off the network threads; `executor` lends its tokenizers and media caps.
  Embedder(InferenceService& service, WorkflowExecutor& executor, ThreadPool& pool);

  using VectorsDone = std::function<void(Result<std::vector<std::vector<float>>>)>;
  // Every item's vector (512 dimensions, or 128 in the aligned space),
  // L2-normalised unless `normalize` is false, in order; the first error
  // otherwise. `done` runs once, on whichever thread finished last.
  void EmbedAll(std::vector<EmbedItem> items, int dimensions, VectorsDone done,
                bool normalize = true);

  using ScoresDone = std::function<void(Result<std::vector<float>>)>;
  // The cosine similarity of `query` to each document, in document order.
  void Score(EmbedItem query, std::vector<EmbedItem> documents, int dimensions, ScoresDone done);

  // Tokens the text items hold, for usage figures (an image or audio item
  // counts one).
  std::size_t CountTokens(const std::vector<EmbedItem>& items);

 private:
  using VectorDone = std::function<void(Result<std::vector<float>>)>;
  void Embed(const EmbedItem& item, int dimensions, VectorDone done);
  void EmbedText(const std::string& text, int dimensions, VectorDone done);
  void Project(std::vector<float> vector, bool image, VectorDone done);

  InferenceService& service_;
  WorkflowExecutor& executor_;
  ThreadPool& pool_;
};

// Cosine similarity of two L2-normalised vectors of the same length.
float Cosine(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace braid
