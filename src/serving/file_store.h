// FileStore: files uploaded through POST /v1/files/upload, kept in memory so
// that a later workflow run can name them by id. Bounded by total bytes (the
// oldest go first) and by age. Thread-safe.
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
  std::string name;
  std::string media_type;
  std::string bytes;
  std::int64_t created_at = 0;  // unix seconds
  TimePoint stored{};
};

class FileStore {
 public:
  FileStore(Clock& clock, std::size_t max_bytes = std::size_t{512} << 20,
            Duration max_age = std::chrono::hours(1));

  // Stores a copy; returns it (with its new id). TooLarge past max_bytes.
  Result<StoredFile> Put(std::string name, std::string media_type, std::string bytes);
  // NotFound for an unknown or expired id.
  Result<StoredFile> Get(const std::string& id);

 private:
  void EvictLocked(TimePoint now);

  Clock& clock_;
  const std::size_t max_bytes_;
  const Duration max_age_;
  std::mutex mutex_;
  std::map<std::string, StoredFile> files_;  // guarded by mutex_
  std::deque<std::string> order_;            // guarded by mutex_; oldest first
  std::size_t bytes_ = 0;                    // guarded by mutex_
};

}  // namespace braid
