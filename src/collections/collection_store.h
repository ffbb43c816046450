// CollectionStore: the server's collections, each persisted in its own
// folder `<directory>/<name>/` (see collection.h), reopened by Load() at
// start. Caps the number of collections and the items of all of them
// together. Thread-safe; the store's lock is held only to look collections
// up, create and forget them, never across a collection's own work.
#pragma once

#include <atomic>
#include <filesystem>
#include <map>
#include <shared_mutex>
#include <string>
#include <vector>

#include "collections/collection.h"

namespace braid {

struct CollectionStoreOptions {
  std::filesystem::path directory;  // empty: in memory only
  std::size_t max_collections = 256;
  std::size_t max_items = 2'000'000;  // all collections together
  CollectionOptions collection;
};

class CollectionStore {
 public:
  explicit CollectionStore(CollectionStoreOptions options);

  // Opens every collection under the directory (a missing directory holds
  // none). One that cannot be read is logged and left out, its files
  // untouched. Call once, before serving. Blocks on the disk.
  void Load();

  // NotFound for an unknown collection, InvalidArgument for a bad name.
  Result<CollectionPtr> Get(const std::string& name) const;
  // Adds items to `name`, created in `space` when it does not exist yet.
  // InvalidArgument when it exists in another space; TooLarge past the
  // caps (an add of n items needs room for n, even if some replace
  // others). Blocks on the disk.
  Result<Collection::Added> Add(const std::string& name, EmbeddingSpace space,
                                std::vector<Item> items, std::vector<std::vector<float>> vectors);
  // Removes one item; NotFound for an unknown collection or item.
  Status Remove(const std::string& name, const std::string& id);
  // Forgets the collection and deletes its folder.
  Status Drop(const std::string& name);
  // Every collection, by name.
  std::vector<CollectionInfo> List() const;

  const CollectionStoreOptions& options() const { return options_; }

 private:
  Result<CollectionPtr> GetOrCreate(const std::string& name, EmbeddingSpace space);

  const CollectionStoreOptions options_;
  mutable std::shared_mutex mutex_;
  std::map<std::string, CollectionPtr> collections_;  // guarded by mutex_
  // Items of all collections, reserved before an add and corrected after.
  std::atomic<std::size_t> items_{0};
};

}  // namespace braid
