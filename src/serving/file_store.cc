#include "serving/file_store.h"

#include <fmt/format.h>

#include "core/random_id.h"

namespace braid {

FileStore::FileStore(Clock& clock, std::size_t max_bytes, Duration max_age)
    : clock_(clock), max_bytes_(max_bytes), max_age_(max_age) {}

void FileStore::EvictLocked(TimePoint now) {
  while (!order_.empty()) {
    auto it = files_.find(order_.front());
    if (it == files_.end()) {
      order_.pop_front();
      continue;
    }
    if (now - it->second.stored < max_age_ && bytes_ <= max_bytes_) break;
    bytes_ -= it->second.bytes.size();
    files_.erase(it);
    order_.pop_front();
  }
}

Result<StoredFile> FileStore::Put(std::string name, std::string media_type, std::string bytes) {
  if (bytes.size() > max_bytes_) {
    return Status(
        StatusCode::kTooLarge,
        fmt::format("a file of {} bytes is over the store's {} bytes", bytes.size(), max_bytes_));
  }
  StoredFile file;
  file.id = RandomUuid();
  file.name = std::move(name);
  file.media_type = std::move(media_type);
  file.bytes = std::move(bytes);
  file.created_at = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  file.stored = clock_.Now();
  std::lock_guard lock(mutex_);
  bytes_ += file.bytes.size();
  order_.push_back(file.id);
  files_[file.id] = file;
  EvictLocked(file.stored);
  return file;
}

Result<StoredFile> FileStore::Get(const std::string& id) {
  std::lock_guard lock(mutex_);
  EvictLocked(clock_.Now());
  auto it = files_.find(id);
  if (it == files_.end()) return NotFound("no uploaded file '{}' (unknown or expired)", id);
  return it->second;
}

}  // namespace braid
