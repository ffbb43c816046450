#include "collections/collection.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_io.h>
#include <fcntl.h>
#include <omp.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "core/base64.h"
#include "core/file_util.h"
#include "core/random_id.h"
#include "preprocess/layout.h"
#include "preprocess/tokenizer.h"

namespace braid {
namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;
using Label = faiss::Index::idx_t;

constexpr char kSnapshotFile[] = "collection.json";
// The log is folded into a snapshot once it holds this many entries and a
// quarter of the items: small collections do not rewrite their index on
// every add, large ones keep their log (and its replay) bounded.
constexpr std::size_t kMinLogEntries = 4096;
constexpr std::size_t kMaxIdBytes = 256;

// Searches skip tombstones. Read under the collection's shared lock.
struct LiveSelector : faiss::IDSelector {
  explicit LiveSelector(const std::vector<bool>& deleted) : deleted(deleted) {}
  bool is_member(Label label) const override { return !deleted[label]; }
  const std::vector<bool>& deleted;
};

Status ValidateId(const std::string& id) {
  if (id.empty() || id.size() > kMaxIdBytes)
    return InvalidArgument("an item id must be 1-{} bytes", kMaxIdBytes);
  for (unsigned char c : id) {
    if (c < 0x20 || c == 0x7f || c == '/')
      return InvalidArgument("an item id may not hold '/' or control characters");
  }
  if (!IsValidUtf8(id)) return InvalidArgument("an item id must be UTF-8");
  return Status::Ok();
}

std::string NewId(const std::unordered_map<std::string, Label>& taken) {
  while (true) {
    std::string id = RandomId();
    if (!taken.count(id)) return id;
  }
}

void WriteItem(JsonWriter& writer, const Item& item) {
  writer.StartObject();
  auto field = [&](const char* name, const std::string& value) {
    if (value.empty()) return;
    writer.Key(name);
    writer.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
  };
  field("id", item.id);
  field("text", item.text);
  field("media_type", item.media_type);
  field("name", item.name);
  field("metadata", item.metadata);
  writer.EndObject();
}

Result<Item> ReadItem(const rapidjson::Value& value) {
  if (!value.IsObject()) return InvalidArgument("an item is not an object");
  Item item;
  for (auto [name, field] : {std::pair{"id", &item.id},
                             {"text", &item.text},
                             {"media_type", &item.media_type},
                             {"name", &item.name},
                             {"metadata", &item.metadata}}) {
    if (!value.HasMember(name)) continue;
    if (!value[name].IsString()) return InvalidArgument("item field '{}' is not a string", name);
    field->assign(value[name].GetString(), value[name].GetStringLength());
  }
  BRAID_RETURN_IF_ERROR(ValidateId(item.id));
  return item;
}

// Writes `bytes` to `path` so that a reader sees the old file or the new
// one, never part of one: a temporary file, synced, renamed into place.
Status WriteAtomically(const std::filesystem::path& path, std::string_view bytes) {
  const auto temporary = path.string() + ".tmp";
  const int fd =
      ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return Internal("cannot write {}: {}", temporary, std::strerror(errno));
  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      return Internal("cannot write {}: {}", temporary, std::strerror(error));
    }
    written += static_cast<std::size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced || std::rename(temporary.c_str(), path.c_str()) != 0)
    return Internal("cannot write {}: {}", path.string(), std::strerror(errno));
  return Status::Ok();
}

// Flushes the file at `path` to disk.
Status SyncFile(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Internal("cannot sync {}: {}", path.string(), std::strerror(errno));
  const bool synced = ::fsync(fd) == 0;
  const int error = errno;
  ::close(fd);
  if (!synced) return Internal("cannot sync {}: {}", path.string(), std::strerror(error));
  return Status::Ok();
}

std::unique_ptr<faiss::Index> NewIndex(IndexKind kind, int dimension,
                                       const CollectionOptions& options) {
  if (kind == IndexKind::kFlat) return std::make_unique<faiss::IndexFlatIP>(dimension);
  auto hnsw = std::make_unique<faiss::IndexHNSWFlat>(dimension, options.hnsw_m,
                                                     faiss::METRIC_INNER_PRODUCT);
  hnsw->hnsw.efConstruction = options.hnsw_ef_construction;
  hnsw->hnsw.efSearch = options.hnsw_ef_search;
  return hnsw;
}

}  // namespace

Status Normalise(std::vector<float>& vector, int dimension) {
  if (vector.size() != static_cast<std::size_t>(dimension)) {
    return InvalidArgument("the collection holds {}-dimensional vectors, not {}", dimension,
                           vector.size());
  }
  double norm = 0;
  for (float x : vector) {
    if (!std::isfinite(x)) return InvalidArgument("vectors must hold finite numbers");
    norm += double(x) * x;
  }
  if (norm == 0) return InvalidArgument("a zero vector has no direction to search by");
  const double scale = 1 / std::sqrt(norm);
  for (float& x : vector) x = static_cast<float>(x * scale);
  return Status::Ok();
}

int Dimensions(EmbeddingSpace space) {
  switch (space) {
    case EmbeddingSpace::kText:
      return kTextEmbedDimensions;
    case EmbeddingSpace::kClip:
      return 512;
    case EmbeddingSpace::kClipAligned:
      return 128;
    case EmbeddingSpace::kDocument:
      return kTextEmbedDimensions + kLayoutDimensions;
  }
  return 0;
}

std::string_view SpaceName(EmbeddingSpace space) {
  switch (space) {
    case EmbeddingSpace::kText:
      return "text";
    case EmbeddingSpace::kClip:
      return "clip";
    case EmbeddingSpace::kClipAligned:
      return "clip-aligned";
    case EmbeddingSpace::kDocument:
      return "document";
  }
  return "";
}

Result<EmbeddingSpace> ParseSpace(std::string_view name) {
  for (auto space : kEmbeddingSpaces) {
    if (name == SpaceName(space)) return space;
  }
  return InvalidArgument(
      "unknown space '{}' (known: text, 96 dimensions; document, 128; clip, 512; clip-aligned, "
      "128)",
      name);
}

std::vector<float> DocumentVector(std::span<const float> text, bool read_nothing,
                                  std::span<const float> layout) {
  std::vector<float> vector(kTextEmbedDimensions + kLayoutDimensions, 0.0f);
  const float text_weight = layout.empty() ? 1.0f : std::sqrt(1 - kLayoutShare);
  if (!read_nothing) {
    for (std::size_t i = 0; i < text.size() && i < kTextEmbedDimensions; ++i)
      vector[i] = text[i] * text_weight;
  }
  const float layout_weight = read_nothing ? 1.0f : std::sqrt(kLayoutShare);
  for (std::size_t i = 0; i < layout.size() && i < kLayoutDimensions; ++i)
    vector[kTextEmbedDimensions + i] = layout[i] * layout_weight;
  return vector;
}

std::string_view IndexKindName(IndexKind kind) {
  return kind == IndexKind::kFlat ? "flat" : "hnsw";
}

Status ValidateCollectionName(std::string_view name) {
  const bool valid =
      !name.empty() && name.size() <= 64 && name[0] != '.' &&
      std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
      });
  if (!valid) {
    return InvalidArgument(
        "a collection name is 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-', not starting "
        "with '.'");
  }
  return Status::Ok();
}

Collection::Collection(std::string name, EmbeddingSpace space, std::filesystem::path directory,
                       CollectionOptions options)
    : name_(std::move(name)), space_(space), directory_(std::move(directory)), options_(options) {}

Collection::~Collection() = default;

Result<CollectionPtr> Collection::Create(std::string name, EmbeddingSpace space,
                                         std::filesystem::path directory,
                                         CollectionOptions options) {
  BRAID_RETURN_IF_ERROR(ValidateCollectionName(name));
  CollectionPtr collection(new Collection(std::move(name), space, std::move(directory), options));
  collection->kind_ = collection->KindFor(0);
  collection->index_ = NewIndex(collection->kind_, collection->dimension(), options);
  if (!collection->directory_.empty()) {
    std::error_code error;
    std::filesystem::create_directories(collection->directory_, error);
    if (error)
      return Internal("cannot create {}: {}", collection->directory_.string(), error.message());
    std::unique_lock lock(collection->mutex_);
    BRAID_RETURN_IF_ERROR(collection->WriteSnapshot());
  }
  return collection;
}

Result<CollectionPtr> Collection::Open(std::string name, std::filesystem::path directory,
                                       CollectionOptions options) {
  BRAID_RETURN_IF_ERROR(ValidateCollectionName(name));
  BRAID_ASSIGN_OR_RETURN(std::string text, ReadFile(directory / kSnapshotFile));
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("space") ||
      !doc["space"].IsString() || !doc.HasMember("generation") || !doc["generation"].IsInt64() ||
      !doc.HasMember("items") || !doc["items"].IsArray())
    return InvalidArgument("{} is not a collection snapshot", (directory / kSnapshotFile).string());
  BRAID_ASSIGN_OR_RETURN(EmbeddingSpace space, ParseSpace(doc["space"].GetString()));
  CollectionPtr collection(new Collection(std::move(name), space, std::move(directory), options));
  Collection& c = *collection;
  std::unique_lock lock(c.mutex_);
  c.generation_ = doc["generation"].GetInt64();
  for (const auto& value : doc["items"].GetArray()) {
    if (value.IsNull()) {
      c.items_.emplace_back();
      c.deleted_.push_back(true);
      ++c.tombstones_;
      continue;
    }
    BRAID_ASSIGN_OR_RETURN(Item item, ReadItem(value));
    c.labels_[item.id] = static_cast<Label>(c.items_.size());
    c.items_.push_back(std::move(item));
    c.deleted_.push_back(false);
  }
  BRAID_RETURN_IF_ERROR(c.ReadSnapshot());
  BRAID_RETURN_IF_ERROR(c.ReplayLog());
  // Files of other generations are what a crash mid-snapshot left behind.
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator(c.directory_, ignored)) {
    const auto path = entry.path();
    if (path.filename() != kSnapshotFile && path != c.IndexPath(c.generation_) &&
        path != c.LogPath(c.generation_))
      std::filesystem::remove(path, ignored);
  }
  BRAID_RETURN_IF_ERROR(c.Maintain());
  return collection;
}

Status Collection::ReadSnapshot() {
  const auto path = IndexPath(generation_);
  try {
    index_.reset(faiss::read_index(path.c_str()));
  } catch (const std::exception& e) {
    return InvalidArgument("cannot read {}: {}", path.string(), e.what());
  }
  if (index_->d != dimension() || index_->ntotal != static_cast<Label>(items_.size())) {
    return InvalidArgument("{} holds {} vectors of {} dimensions; {} lists {} of {}", path.string(),
                           index_->ntotal, index_->d, kSnapshotFile, items_.size(), dimension());
  }
  if (auto* hnsw = dynamic_cast<faiss::IndexHNSWFlat*>(index_.get())) {
    kind_ = IndexKind::kHnsw;
    hnsw->hnsw.efSearch = options_.hnsw_ef_search;
  } else if (dynamic_cast<faiss::IndexFlatIP*>(index_.get())) {
    kind_ = IndexKind::kFlat;
  } else {
    return InvalidArgument("{} is neither a flat nor an HNSW index", path.string());
  }
  return Status::Ok();
}

Status Collection::ReplayLog() {
  const auto path = LogPath(generation_);
  if (!std::filesystem::exists(path)) return Status::Ok();
  BRAID_ASSIGN_OR_RETURN(std::string log, ReadFile(path));
  // Consecutive adds are applied as one batch.
  std::vector<Item> items;
  std::vector<std::vector<float>> vectors;
  std::size_t created = 0;
  auto flush = [&]() -> Status {
    BRAID_RETURN_IF_ERROR(ApplyAdds(std::move(items), vectors, &created));
    items.clear();
    vectors.clear();
    return Status::Ok();
  };
  std::size_t start = 0;
  while (start < log.size()) {
    const std::size_t end = log.find('\n', start);
    if (end == std::string::npos) break;  // torn by a crash mid-append
    rapidjson::Document entry;
    entry.Parse(log.data() + start, end - start);
    const std::string where = fmt::format("{} line {}", path.string(), log_entries_ + 1);
    if (entry.HasParseError() || !entry.IsObject() || !entry.HasMember("op") ||
        !entry["op"].IsString())
      return InvalidArgument("{} is not a log entry", where);
    const std::string op = entry["op"].GetString();
    if (op == "add" && entry.HasMember("item") && entry.HasMember("vector") &&
        entry["vector"].IsString()) {
      BRAID_ASSIGN_OR_RETURN(Item item, ReadItem(entry["item"]));
      BRAID_ASSIGN_OR_RETURN(std::string bytes, Base64Decode(entry["vector"].GetString()));
      if (bytes.size() != dimension() * sizeof(float))
        return InvalidArgument("{} has a vector of the wrong length", where);
      std::vector<float> vector(dimension());
      std::memcpy(vector.data(), bytes.data(), bytes.size());
      items.push_back(std::move(item));
      vectors.push_back(std::move(vector));
    } else if (op == "delete" && entry.HasMember("id") && entry["id"].IsString()) {
      BRAID_RETURN_IF_ERROR(flush());
      if (auto label = labels_.find(entry["id"].GetString()); label != labels_.end())
        RemoveLocked(label->second);
    } else {
      return InvalidArgument("{} is not a log entry", where);
    }
    ++log_entries_;
    start = end + 1;
  }
  BRAID_RETURN_IF_ERROR(flush());
  if (start < log.size()) {
    // Later appends must not follow the torn line.
    std::error_code error;
    std::filesystem::resize_file(path, start, error);
    if (error) return Internal("cannot truncate {}: {}", path.string(), error.message());
  }
  return Status::Ok();
}

Status Collection::CheckItems(const std::vector<Item>& items,
                              std::vector<std::vector<float>>& vectors, int dimension) {
  if (items.size() != vectors.size()) return InvalidArgument("one vector per item");
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (!items[i].id.empty())
      BRAID_RETURN_IF_ERROR(ValidateId(items[i].id).WithContext(fmt::format("items[{}]", i)));
    BRAID_RETURN_IF_ERROR(
        Normalise(vectors[i], dimension).WithContext(fmt::format("items[{}]", i)));
  }
  return Status::Ok();
}

Result<Collection::Added> Collection::Add(std::vector<Item> items,
                                          std::vector<std::vector<float>> vectors) {
  // Everything is checked before anything is written or changed.
  BRAID_RETURN_IF_ERROR(CheckItems(items, vectors, dimension()));
  std::unique_lock lock(mutex_);
  BRAID_RETURN_IF_ERROR(CheckAlive());
  Added added;
  for (auto& item : items) {
    if (item.id.empty()) item.id = NewId(labels_);
    added.ids.push_back(item.id);
  }
  if (!directory_.empty()) {
    std::string lines;
    for (std::size_t i = 0; i < items.size(); ++i) {
      rapidjson::StringBuffer buffer;
      JsonWriter writer(buffer);
      writer.StartObject();
      writer.Key("op");
      writer.String("add");
      writer.Key("item");
      WriteItem(writer, items[i]);
      writer.Key("vector");
      const std::string encoded = Base64Encode(std::string_view(
          reinterpret_cast<const char*>(vectors[i].data()), vectors[i].size() * sizeof(float)));
      writer.String(encoded.data(), static_cast<rapidjson::SizeType>(encoded.size()));
      writer.EndObject();
      lines.append(buffer.GetString(), buffer.GetSize()).push_back('\n');
    }
    BRAID_RETURN_IF_ERROR(AppendLog(lines));
    log_entries_ += items.size();
  }
  BRAID_RETURN_IF_ERROR(ApplyAdds(std::move(items), vectors, &added.created));
  BRAID_RETURN_IF_ERROR(Maintain());
  added.count = labels_.size();
  return added;
}

Status Collection::ApplyAdds(std::vector<Item> items,
                             const std::vector<std::vector<float>>& vectors, std::size_t* created) {
  // One batch: HNSW inserts a batch's vectors in parallel.
  std::vector<float> block;
  block.reserve(items.size() * dimension());
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (auto old = labels_.find(items[i].id); old != labels_.end()) {
      RemoveLocked(old->second);
    } else {
      ++*created;
    }
    labels_[items[i].id] = static_cast<Label>(items_.size());
    items_.push_back(std::move(items[i]));
    deleted_.push_back(false);
    block.insert(block.end(), vectors[i].begin(), vectors[i].end());
  }
  try {
    index_->add(static_cast<Label>(vectors.size()), block.data());
  } catch (const std::exception& e) {
    return Internal("faiss: {}", e.what());
  }
  return Status::Ok();
}

Status Collection::Remove(const std::string& id) {
  std::unique_lock lock(mutex_);
  BRAID_RETURN_IF_ERROR(CheckAlive());
  auto label = labels_.find(id);
  if (label == labels_.end()) return NotFound("collection '{}' has no item '{}'", name_, id);
  if (!directory_.empty()) {
    rapidjson::StringBuffer buffer;
    JsonWriter writer(buffer);
    writer.StartObject();
    writer.Key("op");
    writer.String("delete");
    writer.Key("id");
    writer.String(id.data(), static_cast<rapidjson::SizeType>(id.size()));
    writer.EndObject();
    BRAID_RETURN_IF_ERROR(AppendLog(std::string(buffer.GetString(), buffer.GetSize()) + "\n"));
    ++log_entries_;
  }
  RemoveLocked(label->second);
  return Maintain();
}

void Collection::RemoveLocked(Label label) {
  labels_.erase(items_[label].id);
  items_[label] = Item{};
  deleted_[label] = true;
  ++tombstones_;
}

Result<std::vector<Match>> Collection::Search(std::span<const float> query,
                                              std::size_t top_k) const {
  std::vector<float> normalised(query.begin(), query.end());
  BRAID_RETURN_IF_ERROR(Normalise(normalised, dimension()));
  std::shared_lock lock(mutex_);
  BRAID_RETURN_IF_ERROR(CheckAlive());
  const auto k = static_cast<Label>(std::min(top_k, labels_.size()));
  std::vector<Match> matches;
  if (k == 0) return matches;
  LiveSelector live(deleted_);
  faiss::SearchParametersHNSW parameters;
  parameters.sel = tombstones_ > 0 ? &live : nullptr;
  parameters.efSearch = std::max<int>(options_.hnsw_ef_search, static_cast<int>(k));
  std::vector<float> scores(k);
  std::vector<Label> labels(k);
  // One query gains nothing from OpenMP's team, whose start and spinning
  // barrier cost more than an HNSW search; the setting is this thread's.
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  try {
    index_->search(1, normalised.data(), k, scores.data(), labels.data(),
                   kind_ == IndexKind::kHnsw || parameters.sel ? &parameters : nullptr);
  } catch (const std::exception& e) {
    omp_set_num_threads(threads);
    return Internal("faiss: {}", e.what());
  }
  omp_set_num_threads(threads);
  for (Label i = 0; i < k; ++i) {
    if (labels[i] < 0) continue;  // fewer live items than k reachable
    matches.push_back({items_[labels[i]], scores[i]});
  }
  return matches;
}

Status Collection::Drop() {
  std::unique_lock lock(mutex_);
  BRAID_RETURN_IF_ERROR(CheckAlive());
  dropped_ = true;
  if (directory_.empty()) return Status::Ok();
  std::error_code error;
  std::filesystem::remove_all(directory_, error);
  if (error) return Internal("cannot remove {}: {}", directory_.string(), error.message());
  return Status::Ok();
}

CollectionInfo Collection::Info() const {
  std::shared_lock lock(mutex_);
  return {name_, space_, labels_.size(), kind_};
}

Status Collection::CheckAlive() const {
  if (dropped_) return NotFound("collection '{}' was deleted", name_);
  return Status::Ok();
}

IndexKind Collection::KindFor(std::size_t count) const {
  return count >= options_.hnsw_threshold ? IndexKind::kHnsw : IndexKind::kFlat;
}

Status Collection::Maintain() {
  const std::size_t live = labels_.size();
  if (kind_ == IndexKind::kFlat && KindFor(live) == IndexKind::kHnsw)
    return Rebuild(IndexKind::kHnsw);
  if (tombstones_ > 0 && tombstones_ > options_.max_tombstone_fraction * items_.size())
    return Rebuild(KindFor(live));
  if (!directory_.empty() && log_entries_ > std::max(kMinLogEntries, live / 4))
    return WriteSnapshot();
  return Status::Ok();
}

Status Collection::Rebuild(IndexKind kind) {
  auto index = NewIndex(kind, dimension(), options_);
  std::vector<Item> items;
  items.reserve(labels_.size());
  std::vector<float> vectors(labels_.size() * dimension());
  try {
    for (std::size_t label = 0; label < items_.size(); ++label) {
      if (deleted_[label]) continue;
      index_->reconstruct(static_cast<Label>(label), vectors.data() + items.size() * dimension());
      items.push_back(std::move(items_[label]));
    }
    index->add(static_cast<Label>(items.size()), vectors.data());
  } catch (const std::exception& e) {
    return Internal("faiss: {}", e.what());
  }
  index_ = std::move(index);
  kind_ = kind;
  items_ = std::move(items);
  deleted_.assign(items_.size(), false);
  tombstones_ = 0;
  labels_.clear();
  for (std::size_t label = 0; label < items_.size(); ++label)
    labels_[items_[label].id] = static_cast<Label>(label);
  return directory_.empty() ? Status::Ok() : WriteSnapshot();
}

Status Collection::WriteSnapshot() {
  const std::int64_t generation = generation_ + 1;
  const auto index_path = IndexPath(generation);
  const auto temporary = index_path.string() + ".tmp";
  try {
    faiss::write_index(index_.get(), temporary.c_str());
  } catch (const std::exception& e) {
    return Internal("cannot write {}: {}", temporary, e.what());
  }
  BRAID_RETURN_IF_ERROR(SyncFile(temporary));
  if (std::rename(temporary.c_str(), index_path.c_str()) != 0)
    return Internal("cannot write {}: {}", index_path.string(), std::strerror(errno));
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  writer.Key("name");
  writer.String(name_.c_str());
  writer.Key("space");
  writer.String(SpaceName(space_).data(), SpaceName(space_).size());
  writer.Key("generation");
  writer.Int64(generation);
  writer.Key("items");
  writer.StartArray();
  for (std::size_t label = 0; label < items_.size(); ++label) {
    if (deleted_[label]) {
      writer.Null();
    } else {
      WriteItem(writer, items_[label]);
    }
  }
  writer.EndArray();
  writer.EndObject();
  BRAID_RETURN_IF_ERROR(WriteAtomically(directory_ / kSnapshotFile,
                                        std::string_view(buffer.GetString(), buffer.GetSize())));
  std::error_code ignored;
  std::filesystem::remove(IndexPath(generation_), ignored);
  std::filesystem::remove(LogPath(generation_), ignored);
  generation_ = generation;
  log_entries_ = 0;
  return Status::Ok();
}

Status Collection::AppendLog(const std::string& lines) {
  const auto path = LogPath(generation_);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return Internal("cannot append to {}: {}", path.string(), std::strerror(errno));
  std::size_t written = 0;
  int error = 0;
  while (written < lines.size() && error == 0) {
    const ssize_t n = ::write(fd, lines.data() + written, lines.size() - written);
    if (n >= 0) {
      written += static_cast<std::size_t>(n);
    } else if (errno != EINTR) {
      error = errno;
    }
  }
  if (error == 0 && ::fdatasync(fd) != 0) error = errno;
  ::close(fd);
  if (error != 0) return Internal("cannot append to {}: {}", path.string(), std::strerror(error));
  return Status::Ok();
}

std::filesystem::path Collection::IndexPath(std::int64_t generation) const {
  return directory_ / fmt::format("index-{}.faiss", generation);
}

std::filesystem::path Collection::LogPath(std::int64_t generation) const {
  return directory_ / fmt::format("log-{}.jsonl", generation);
}

}  // namespace braid
