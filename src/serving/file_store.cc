#include "serving/file_store.h"

#include <fmt/format.h>

#include "core/random_id.h"

namespace braid {

FileStore::FileStore(Clock& clock, std::size_t max_bytes, Duration max_age,
                     std::size_t max_owner_bytes, std::size_t max_files)
    : clock_(clock),
      max_bytes_(max_bytes),
      max_age_(max_age),
      max_owner_bytes_(max_owner_bytes > 0 ? max_owner_bytes : max_bytes / 4),
      max_files_(max_files) {}

void FileStore::EraseLocked(std::map<std::string, StoredFile>::iterator it) {
  const std::size_t size = it->second.bytes.size();
  bytes_ -= size;
  auto owner = owner_bytes_.find(it->second.owner);
  if ((owner->second -= size) == 0) owner_bytes_.erase(owner);
  files_.erase(it);
}

void FileStore::EvictLocked(TimePoint now) {
  while (!order_.empty()) {
    auto it = files_.find(order_.front());
    if (it == files_.end()) {
      order_.pop_front();
      continue;
    }
    if (now - it->second.stored < max_age_ && bytes_ <= max_bytes_ && files_.size() <= max_files_)
      break;
    EraseLocked(it);
    order_.pop_front();
  }
}

Result<StoredFile> FileStore::Put(std::string owner, std::string name, std::string media_type,
                                  std::string bytes) {
  if (bytes.size() > max_owner_bytes_) {
    return Status(StatusCode::kTooLarge,
                  fmt::format("a file of {} bytes is over the {} bytes one client may keep",
                              bytes.size(), max_owner_bytes_));
  }
  StoredFile file;
  file.id = RandomUuid();
  file.owner = std::move(owner);
  file.name = std::move(name);
  file.media_type = std::move(media_type);
  file.bytes = std::move(bytes);
  file.created_at = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  file.stored = clock_.Now();
  std::lock_guard lock(mutex_);
  // Past its quota, the owner's own oldest files make room.
  const auto held = [&] {
    auto it = owner_bytes_.find(file.owner);
    return it == owner_bytes_.end() ? std::size_t{0} : it->second;
  };
  for (auto id = order_.begin();
       id != order_.end() && held() + file.bytes.size() > max_owner_bytes_; ++id) {
    auto it = files_.find(*id);
    if (it != files_.end() && it->second.owner == file.owner) EraseLocked(it);
  }
  owner_bytes_[file.owner] += file.bytes.size();
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
