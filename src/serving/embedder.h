// Embeddings of text, images and audio, shared by the OpenAI-compatible
// embeddings and rerank endpoints, the TEI-compatible ones, collections and
// retrieve nodes, in one of four spaces (collections/collection.h):
//   - text: braid's own text embedder (`text-embed`, trained on WordNet);
//     images are embedded by the text OCR reads in them, audio by its
//     transcript. The default of /v1/embeddings and TEI.
//   - document: the same, followed by an image's layout and colour
//     descriptor (zeros for texts and audio; an image OCR reads nothing in
//     keeps its layout alone, DocumentVector). The default of collections
//     and /v1/rerank. These two spaces are the ones whose vectors mean
//     something on the embedded default repository.
//   - clip: CLIP's (clip-text, clip-image; the bundled models are stand-ins
//     with random weights until a real CLIP export replaces them).
//   - clip-aligned: the clip vectors through the trained projection heads.
// Each item runs through a built-in pipeline of the workflow engine
// (EmbeddingPipeline), so embeddings get what every workflow gets: model
// calls batched through the schedulers, each node's result cached under its
// content key, decoding on the executor's pool.
#pragma once

#include <rapidjson/document.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "collections/collection.h"
#include "workflow/executor.h"

namespace braid {

struct EmbedItem {
  enum class Kind { kText, kImage, kAudio } kind = Kind::kText;
  std::string data;  // UTF-8 text, or the encoded image or audio
};

// A request body that must be a JSON object (parsed iteratively, so deep
// nesting cannot exhaust the stack).
Result<rapidjson::Document> ParseJsonObject(std::string_view body);
// The boolean member `name` of `doc`; `fallback` when it is absent or null.
Result<bool> OptionalJsonBool(const rapidjson::Value& doc, const char* name, bool fallback);
// Indexes of `scores` by descending score (ties in index order): the order
// of rerank answers.
std::vector<std::size_t> RankedByScore(const std::vector<float>& scores);

// A string, or a content part {type: "text", text} or {type: "image_url",
// image_url: {url: "data:..."}} (an audio data URL is audio, as Dify sends
// it). A string that is an image or audio data URL ("data:image/png;base64,...")
// is that image or audio. InvalidArgument otherwise, or for empty or invalid
// UTF-8 text.
Result<EmbedItem> ParseEmbedItem(const rapidjson::Value& value);
// One item, or an array of them (at most kMaxEmbedItems).
inline constexpr std::size_t kMaxEmbedItems = 256;
Result<std::vector<EmbedItem>> ParseEmbedItems(const rapidjson::Value& value);

class Embedder {
 public:
  static constexpr char kTextModel[] = "text-embed";
  static constexpr char kClipTextModel[] = "clip-text";
  static constexpr char kClipImageModel[] = "clip-image";

  // `executor` runs the pipelines and must outlive the embedder; `catalog`
  // checks them against the served models. A pipeline whose models are
  // missing answers its items Unavailable, saying why.
  Embedder(WorkflowExecutor& executor, const ModelCatalog& catalog);

  using VectorsDone = std::function<void(Result<std::vector<std::vector<float>>>)>;
  // Every item's vector in `space`, L2-normalised unless `normalize` is
  // false, in order; the first error otherwise. `done` runs once, on
  // whichever thread finished last.
  void EmbedAll(std::vector<EmbedItem> items, EmbeddingSpace space, VectorsDone done,
                bool normalize = true);

  using ScoresDone = std::function<void(Result<std::vector<float>>)>;
  // The cosine similarity of `query` to each document, in document order.
  void Score(EmbedItem query, std::vector<EmbedItem> documents, EmbeddingSpace space,
             ScoresDone done);

  // Tokens the text items hold in `space`'s tokenizer, for usage figures
  // (an image or audio item counts one).
  std::size_t CountTokens(const std::vector<EmbedItem>& items,
                          EmbeddingSpace space = EmbeddingSpace::kText);

 private:
  using VectorDone = std::function<void(Result<std::vector<float>>)>;
  void Embed(const EmbedItem& item, EmbeddingSpace space, VectorDone done);

  WorkflowExecutor& executor_;
  struct Pipeline {
    WorkflowPtr workflow;  // null when its models are not served
    Status why_not;
  };
  // Indexed by item kind, then space.
  Pipeline pipelines_[3][std::size(kEmbeddingSpaces)];
};

// The YAML of the pipeline that embeds `kind` in `space`; `attention_mask`:
// the space's text model takes one beside the token ids (a Hugging Face
// export does).
std::string EmbeddingPipeline(EmbedItem::Kind kind, EmbeddingSpace space, bool attention_mask);

// The model whose tokenizer counts a space's text tokens.
std::string_view TextModelOf(EmbeddingSpace space);

// Cosine similarity of two L2-normalised vectors of the same length.
float Cosine(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace braid
