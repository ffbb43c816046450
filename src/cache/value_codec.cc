#include "cache/value_codec.h"

#include <chrono>
#include <cstring>

namespace braid {
namespace {

template <typename T>
void Append(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(value));
}

class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}

  template <typename T>
  bool Read(T* value) {
    if (bytes_.size() < sizeof(T)) return false;
    std::memcpy(value, bytes_.data(), sizeof(T));
    bytes_.remove_prefix(sizeof(T));
    return true;
  }
  bool Take(std::size_t size, std::string_view* out) {
    if (bytes_.size() < size) return false;
    *out = bytes_.substr(0, size);
    bytes_.remove_prefix(size);
    return true;
  }
  bool empty() const { return bytes_.empty(); }

 private:
  std::string_view bytes_;
};

constexpr std::string_view kMagic = "BRV";
constexpr int kMaxRank = 16;
constexpr std::uint32_t kMaxTensors = 1024;

}  // namespace

std::int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string EncodeCacheValue(const std::vector<Tensor>& tensors, std::int64_t expires_at_ms) {
  std::size_t size = 16;
  for (const Tensor& tensor : tensors) size += 10 + 8 * tensor.shape().size() + tensor.byte_size();
  std::string out;
  out.reserve(size);
  out.append(kMagic);
  Append<std::uint8_t>(out, kCacheValueVersion);
  Append<std::int64_t>(out, expires_at_ms);
  Append<std::uint32_t>(out, static_cast<std::uint32_t>(tensors.size()));
  for (const Tensor& tensor : tensors) {
    Append<std::uint8_t>(out, static_cast<std::uint8_t>(tensor.dtype()));
    Append<std::uint8_t>(out, static_cast<std::uint8_t>(tensor.shape().size()));
    for (auto dim : tensor.shape()) Append<std::int64_t>(out, dim);
    Append<std::uint64_t>(out, tensor.byte_size());
    out.append(reinterpret_cast<const char*>(tensor.data()), tensor.byte_size());
  }
  return out;
}

Result<DecodedValue> DecodeCacheValue(std::string_view bytes) {
  Reader reader(bytes);
  std::string_view magic;
  std::uint8_t version = 0;
  DecodedValue value;
  std::uint32_t count = 0;
  if (!reader.Take(kMagic.size(), &magic) || magic != kMagic || !reader.Read(&version))
    return InvalidArgument("not a braid cache value");
  if (version != kCacheValueVersion)
    return InvalidArgument("cache value version {} (this braid reads {})", version,
                           kCacheValueVersion);
  if (!reader.Read(&value.expires_at_ms) || !reader.Read(&count) || count > kMaxTensors)
    return InvalidArgument("truncated cache value header");
  for (std::uint32_t i = 0; i < count; ++i) {
    std::uint8_t dtype = 0, rank = 0;
    if (!reader.Read(&dtype) || !reader.Read(&rank) || rank > kMaxRank ||
        dtype > static_cast<std::uint8_t>(DataType::kBytes))
      return InvalidArgument("bad tensor header in cache value");
    Shape shape(rank);
    for (auto& dim : shape) {
      if (!reader.Read(&dim)) return InvalidArgument("truncated shape in cache value");
    }
    std::uint64_t size = 0;
    std::string_view data;
    if (!reader.Read(&size) || !reader.Take(size, &data))
      return InvalidArgument("truncated tensor data in cache value");
    const auto type = static_cast<DataType>(dtype);
    BRAID_ASSIGN_OR_RETURN(auto elements, ElementCount(shape));
    if (type == DataType::kBytes) {
      auto owner = std::make_shared<std::string>(data);
      Tensor tensor =
          Tensor::Wrap(type, std::move(shape), reinterpret_cast<std::byte*>(owner->data()),
                       owner->size(), owner);
      BRAID_ASSIGN_OR_RETURN(auto strings, tensor.Strings());
      if (static_cast<std::int64_t>(strings.size()) != elements)
        return InvalidArgument("BYTES tensor holds {} elements, its shape {}", strings.size(),
                               elements);
      value.tensors.push_back(std::move(tensor));
      continue;
    }
    BRAID_ASSIGN_OR_RETURN(auto expected, ByteSizeOf(type, elements, size));
    if (expected != size) return InvalidArgument("tensor size does not match its shape");
    BRAID_ASSIGN_OR_RETURN(Tensor tensor, Tensor::Allocate(type, std::move(shape)));
    std::memcpy(tensor.mutable_data(), data.data(), size);
    value.tensors.push_back(std::move(tensor));
  }
  if (!reader.empty()) return InvalidArgument("trailing bytes after cache value");
  return value;
}

}  // namespace braid
