#include "collections/collection_store.h"

#include <spdlog/spdlog.h>

#include <mutex>

namespace braid {

CollectionStore::CollectionStore(CollectionStoreOptions options) : options_(std::move(options)) {}

void CollectionStore::Load() {
  std::error_code error;
  if (options_.directory.empty() || !std::filesystem::is_directory(options_.directory, error))
    return;
  std::unique_lock lock(mutex_);
  for (const auto& entry : std::filesystem::directory_iterator(options_.directory, error)) {
    const std::string name = entry.path().filename().string();
    // A link could make start-up tidy (delete files in) a folder elsewhere.
    if (entry.is_symlink()) {
      spdlog::warn("collection '{}' left out: it is a symbolic link", name);
      continue;
    }
    if (!entry.is_directory()) continue;
    auto collection = Collection::Open(name, entry.path(), options_.collection);
    if (!collection.ok()) {
      spdlog::warn("collection '{}' left out: {}", name, collection.status().message());
      continue;
    }
    items_ += (*collection)->Info().count;
    collections_[name] = std::move(*collection);
  }
  if (error) spdlog::warn("cannot list {}: {}", options_.directory.string(), error.message());
  spdlog::info("{} collections with {} items from {}", collections_.size(), items_.load(),
               options_.directory.string());
}

Result<CollectionPtr> CollectionStore::Get(const std::string& name) const {
  BRAID_RETURN_IF_ERROR(ValidateCollectionName(name));
  std::shared_lock lock(mutex_);
  auto it = collections_.find(name);
  if (it == collections_.end()) return NotFound("no collection '{}'", name);
  return it->second;
}

Result<CollectionPtr> CollectionStore::GetOrCreate(const std::string& name, EmbeddingSpace space) {
  BRAID_RETURN_IF_ERROR(ValidateCollectionName(name));
  CollectionPtr collection;
  {
    std::unique_lock lock(mutex_);
    if (auto it = collections_.find(name); it != collections_.end()) {
      collection = it->second;
    } else {
      if (collections_.size() >= options_.max_collections) {
        return MakeStatus(StatusCode::kTooLarge, "at most {} collections",
                          options_.max_collections);
      }
      // A folder left by a collection that failed to load is not reused.
      const auto directory =
          options_.directory.empty() ? options_.directory : options_.directory / name;
      if (!directory.empty() && std::filesystem::exists(directory)) {
        return MakeStatus(StatusCode::kFailedPrecondition,
                          "{} exists but holds no readable collection", directory.string());
      }
      BRAID_ASSIGN_OR_RETURN(collection,
                             Collection::Create(name, space, directory, options_.collection));
      collections_[name] = collection;
    }
  }
  if (collection->space() != space) {
    return InvalidArgument("collection '{}' holds {} vectors ({} dimensions), not {}", name,
                           SpaceName(collection->space()), collection->dimension(),
                           SpaceName(space));
  }
  return collection;
}

Result<Collection::Added> CollectionStore::Add(const std::string& name, EmbeddingSpace space,
                                               std::vector<Item> items,
                                               std::vector<std::vector<float>> vectors) {
  // A rejected add creates no collection: the items are checked first.
  BRAID_RETURN_IF_ERROR(Collection::CheckItems(items, vectors, Dimensions(space)));
  const std::size_t count = items.size();
  if (items_.fetch_add(count) + count > options_.max_items) {
    items_ -= count;
    return MakeStatus(StatusCode::kTooLarge, "at most {} items in all collections together",
                      options_.max_items);
  }
  auto collection = GetOrCreate(name, space);
  if (!collection.ok()) {
    items_ -= count;
    return collection.status();
  }
  auto added = (*collection)->Add(std::move(items), std::move(vectors));
  items_ -= count - (added.ok() ? added->created : 0);
  return added;
}

Status CollectionStore::Remove(const std::string& name, const std::string& id) {
  BRAID_ASSIGN_OR_RETURN(CollectionPtr collection, Get(name));
  BRAID_RETURN_IF_ERROR(collection->Remove(id));
  --items_;
  return Status::Ok();
}

Status CollectionStore::Drop(const std::string& name) {
  BRAID_ASSIGN_OR_RETURN(CollectionPtr collection, Get(name));
  {
    std::unique_lock lock(mutex_);
    auto it = collections_.find(name);
    if (it == collections_.end() || it->second != collection)
      return NotFound("no collection '{}'", name);
    collections_.erase(it);
  }
  const std::size_t count = collection->Info().count;
  BRAID_RETURN_IF_ERROR(collection->Drop());
  items_ -= count;
  return Status::Ok();
}

std::vector<CollectionInfo> CollectionStore::List() const {
  std::vector<CollectionPtr> collections;
  {
    std::shared_lock lock(mutex_);
    for (const auto& [name, collection] : collections_) collections.push_back(collection);
  }
  std::vector<CollectionInfo> infos;
  for (const auto& collection : collections) infos.push_back(collection->Info());
  return infos;
}

}  // namespace braid
