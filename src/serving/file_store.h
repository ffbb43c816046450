// FileStore: files uploaded through POST /v1/files/upload, kept in memory so
// that a later workflow run can name them by id. Bounded by total bytes and
// file count (the oldest go first), by age, and per owner (a client
// address): past its quota an owner's own oldest files go, never another's.
// Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>

#include "core/clock.h"
#include "core/status.h"

namespace braid {

struct StoredFile {
  std::string id;
  std::string owner;
  std::string name;
  std::string media_type;
  std::string bytes;
  std::int64_t created_at = 0;  // unix seconds
  TimePoint stored{};
};

class FileStore {
 public:
  // `max_owner_bytes` 0: a quarter of `max_bytes`.
  FileStore(Clock& clock, std::size_t max_bytes = std::size_t{512} << 20,
            Duration max_age = std::chrono::hours(1), std::size_t max_owner_bytes = 0,
            std::size_t max_files = 65536);

  // Stores a copy for `owner`; returns it (with its new id). TooLarge past
  // the owner's quota.
  Result<StoredFile> Put(std::string owner, std::string name, std::string media_type,
                         std::string bytes);
  // NotFound for an unknown or expired id.
  Result<StoredFile> Get(const std::string& id);

 private:
  void EvictLocked(TimePoint now);
  // Forgets one file (its id stays in order_, skipped later).
  void EraseLocked(std::map<std::string, StoredFile>::iterator it);

  Clock& clock_;
  const std::size_t max_bytes_;
  const Duration max_age_;
  const std::size_t max_owner_bytes_;
  const std::size_t max_files_;
  std::mutex mutex_;
  std::map<std::string, StoredFile> files_;         // guarded by mutex_
  std::deque<std::string> order_;                   // guarded by mutex_; oldest first
  std::size_t bytes_ = 0;                           // guarded by mutex_
  std::map<std::string, std::size_t> owner_bytes_;  // guarded by mutex_
};

}  // namespace braid
