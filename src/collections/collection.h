// Collection: a named set of items (texts, images, or vectors the client
// brings) searchable by meaning. Each item has a string id, what it holds
// (the text, or an image's media type and file name, plus optional client
// metadata as JSON) and an L2-normalised vector in one embedding space fixed
// at creation: `text` (braid's text embedder, 96 dimensions; images are
// read by OCR), `document` (the same plus an image's layout, 128), `clip`
// (512) or `clip-aligned` (128). Scores are
// inner products of normalised vectors, i.e. cosine similarities.
//
// The vectors live in a FAISS index: exact (IndexFlatIP) while the
// collection holds fewer than `hnsw_threshold` items, HNSW (IndexHNSWFlat,
// inner product) from there on; crossing the threshold rebuilds the index.
// A FAISS label is the item's position in the index. HNSW cannot remove
// vectors, so for both kinds a deleted item's position becomes a tombstone
// that searches skip (an IDSelector), and the index is rebuilt without them
// once they pass `max_tombstone_fraction` of it.
//
// Persistence, when the collection has a folder: a snapshot, that is the
// index `index-G.faiss` and `collection.json` (space, generation G, the
// items in label order with null for tombstones), plus an append-only log
// `log-G.jsonl` of the adds and deletes since. A mutation appends to the
// log and flushes it before it returns; a new snapshot (temporary files
// renamed into place, collection.json last, so a crash leaves the old or
// the new generation whole) is written after a rebuild and when the log
// passes a quarter of the items. Opening reads the snapshot, replays the
// log and ignores a torn last line.
//
// Thread-safe: searches share the lock, mutations take it alone. Mutations
// block on the disk; searches on the CPU only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace faiss {
struct Index;
}

namespace braid {

// Where embeddings live: braid's text embedder (`text-embed`; images by the
// text OCR reads in them), CLIP's space, the aligned cross-modal space, or
// the document space: the text embedder's vector followed by an image's
// layout and colour descriptor (zeros for texts and audio), so that
// screenshots and scans with the same words, or none, still differ.
enum class EmbeddingSpace { kText, kClip, kClipAligned, kDocument };
inline constexpr EmbeddingSpace kEmbeddingSpaces[] = {EmbeddingSpace::kText, EmbeddingSpace::kClip,
                                                      EmbeddingSpace::kClipAligned,
                                                      EmbeddingSpace::kDocument};
inline constexpr int kTextEmbedDimensions = 96;  // models/text-embed/config.yaml
int Dimensions(EmbeddingSpace space);
std::string_view SpaceName(EmbeddingSpace space);
// "text", "clip", "clip-aligned" or "document"; InvalidArgument otherwise.
Result<EmbeddingSpace> ParseSpace(std::string_view name);

// The share of a document image's squared norm its layout descriptor holds:
// enough to tell apart pages whose words are alike or absent, little enough
// that a text query's cosine to a page is still what the page says
// (√0.85 ≈ 0.92 of it).
inline constexpr float kLayoutShare = 0.15f;

// A document-space vector: the text embedding (left out when nothing was
// read), then an image's layout descriptor (empty for texts and audio:
// zeros). Of norm 1 when its parts are.
std::vector<float> DocumentVector(std::span<const float> text, bool read_nothing,
                                  std::span<const float> layout);

// Scales `vector` to norm 1 in place; InvalidArgument when it does not hold
// `dimension` values, holds a non-finite one, or is all zeros.
Status Normalise(std::vector<float>& vector, int dimension);

enum class IndexKind { kFlat, kHnsw };
std::string_view IndexKindName(IndexKind kind);

struct CollectionOptions {
  std::size_t hnsw_threshold = 50'000;  // items from which the index is HNSW
  int hnsw_m = 32;                      // graph degree: recall vs memory
  int hnsw_ef_construction = 64;        // build effort: recall vs build time
  int hnsw_ef_search = 64;              // search effort: recall vs latency
  double max_tombstone_fraction = 0.25;
};

struct Item {
  std::string id;          // empty when adding: one is generated
  std::string text;        // a text item's text
  std::string media_type;  // an image item's type ("image/png"), when known
  std::string name;        // an image item's file name, when known
  std::string metadata;    // the client's metadata, a serialised JSON object, or empty
};

struct Match {
  Item item;
  float score = 0;  // cosine similarity to the query
};

struct CollectionInfo {
  std::string name;
  EmbeddingSpace space = EmbeddingSpace::kClip;
  std::size_t count = 0;
  IndexKind index = IndexKind::kFlat;
};

class Collection;
using CollectionPtr = std::shared_ptr<Collection>;

class Collection {
 public:
  // A new, empty collection. With a `directory` (created if missing) it is
  // persisted there; with an empty one it lives in memory only.
  static Result<CollectionPtr> Create(std::string name, EmbeddingSpace space,
                                      std::filesystem::path directory, CollectionOptions options);
  // Reopens the collection persisted in `directory`.
  static Result<CollectionPtr> Open(std::string name, std::filesystem::path directory,
                                    CollectionOptions options);
  ~Collection();

  struct Added {
    std::vector<std::string> ids;  // in the order of the items
    std::size_t created = 0;       // items whose id was new (the others replaced one)
    std::size_t count = 0;         // items in the collection afterwards
  };
  // Adds `items[i]` with `vectors[i]` (dimension() values, normalised here).
  // An item whose id exists replaces it. InvalidArgument for a wrong length,
  // a zero or non-finite vector, or an id that is not 1-256 bytes of UTF-8
  // without '/' or control characters; nothing is added then.
  Result<Added> Add(std::vector<Item> items, std::vector<std::vector<float>> vectors);
  // The checks Add makes before it changes anything (ids given, vectors of
  // `dimension` values, normalised here), for a collection not created yet.
  static Status CheckItems(const std::vector<Item>& items, std::vector<std::vector<float>>& vectors,
                           int dimension);
  // NotFound when no item has the id.
  Status Remove(const std::string& id);
  // The `top_k` items closest to `query` (dimension() values, normalised
  // here), best first.
  Result<std::vector<Match>> Search(std::span<const float> query, std::size_t top_k) const;
  // Removes the folder; every later call fails with NotFound.
  Status Drop();

  CollectionInfo Info() const;
  const std::string& name() const { return name_; }
  EmbeddingSpace space() const { return space_; }
  int dimension() const { return Dimensions(space_); }

 private:
  Collection(std::string name, EmbeddingSpace space, std::filesystem::path directory,
             CollectionOptions options);

  // Each of these is called with mutex_ held exclusively.
  Status ApplyAdds(std::vector<Item> items, const std::vector<std::vector<float>>& vectors,
                   std::size_t* created);
  void RemoveLocked(std::int64_t label);
  Status Rebuild(IndexKind kind);
  Status Maintain();
  Status WriteSnapshot();
  Status AppendLog(const std::string& lines);
  Status ReadSnapshot();
  Status ReplayLog();
  Status CheckAlive() const;
  IndexKind KindFor(std::size_t count) const;
  std::filesystem::path IndexPath(std::int64_t generation) const;
  std::filesystem::path LogPath(std::int64_t generation) const;

  const std::string name_;
  const EmbeddingSpace space_;
  const std::filesystem::path directory_;  // empty: in memory only
  const CollectionOptions options_;

  mutable std::shared_mutex mutex_;
  // Everything below is guarded by mutex_.
  std::unique_ptr<faiss::Index> index_;
  IndexKind kind_ = IndexKind::kFlat;
  std::vector<Item> items_;                               // by label
  std::vector<bool> deleted_;                             // by label: tombstones
  std::size_t tombstones_ = 0;                            // count of true in deleted_
  std::unordered_map<std::string, std::int64_t> labels_;  // id → label, live items only
  std::int64_t generation_ = 0;
  std::size_t log_entries_ = 0;  // lines in the current log
  bool dropped_ = false;
};

// Collection names: 1-64 characters of [A-Za-z0-9._-], not starting with a
// dot, so that a name is always a plain folder name.
Status ValidateCollectionName(std::string_view name);

}  // namespace braid
