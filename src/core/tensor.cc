#include "core/tensor.h"

#include <fmt/ranges.h>

#include <cstring>
#include <limits>
#include <new>

namespace braid {
namespace {

constexpr std::size_t kAlignment = 64;

struct AlignedDelete {
  void operator()(std::byte* p) const { ::operator delete (p, std::align_val_t{kAlignment}); }
};

std::uint32_t ReadLength(const std::byte* p) {
  std::uint32_t value;
  std::memcpy(&value, p, sizeof(value));
  return value;  // braid only builds for little-endian hosts.
}

}  // namespace

Result<std::int64_t> ElementCount(const Shape& shape) {
  std::int64_t count = 1;
  for (std::int64_t dim : shape) {
    if (dim < 0) return InvalidArgument("negative dimension in shape {}", ShapeToString(shape));
    if (dim != 0 && count > std::numeric_limits<std::int64_t>::max() / dim) {
      return InvalidArgument("shape {} has too many elements", ShapeToString(shape));
    }
    count *= dim;
  }
  return count;
}

Result<std::size_t> ByteSizeOf(DataType type, std::int64_t count, std::size_t limit) {
  std::size_t element = DataTypeSize(type);
  if (count < 0 || element == 0)
    return InvalidArgument("no fixed byte size for {}", DataTypeName(type));
  auto elements = static_cast<std::uint64_t>(count);
  if (elements > limit / element) {
    return Status(StatusCode::kTooLarge, fmt::format("{} elements of {} exceed the {} byte limit",
                                                     count, DataTypeName(type), limit));
  }
  return static_cast<std::size_t>(elements * element);
}

std::string ShapeToString(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ",")); }

std::string_view FirstString(const Tensor& tensor) {
  auto strings = tensor.Strings();
  return strings.ok() && !strings->empty() ? (*strings)[0] : std::string_view();
}

Result<Tensor> Tensor::Allocate(DataType type, Shape shape) {
  BRAID_ASSIGN_OR_RETURN(std::int64_t count, ElementCount(shape));
  BRAID_ASSIGN_OR_RETURN(std::size_t size, ByteSizeOf(type, count));
  std::shared_ptr<std::byte> buffer(
      static_cast<std::byte*>(
          ::operator new (std::max<std::size_t>(size, 1), std::align_val_t{kAlignment})),
      AlignedDelete());
  std::memset(buffer.get(), 0, size);
  std::byte* data = buffer.get();
  return Wrap(type, std::move(shape), data, size, std::move(buffer));
}

Tensor Tensor::Wrap(DataType type, Shape shape, std::byte* data, std::size_t size,
                    std::shared_ptr<const void> owner) {
  Tensor tensor;
  tensor.dtype_ = type;
  tensor.shape_ = std::move(shape);
  tensor.data_ = data;
  tensor.byte_size_ = size;
  tensor.owner_ = std::move(owner);
  return tensor;
}

Result<Tensor> Tensor::FromStrings(const std::vector<std::string>& values, Shape shape) {
  BRAID_ASSIGN_OR_RETURN(std::int64_t count, ElementCount(shape));
  if (count != static_cast<std::int64_t>(values.size())) {
    return InvalidArgument("{} strings do not fill shape {}", values.size(), ShapeToString(shape));
  }
  std::size_t size = 0;
  for (const auto& value : values) size += sizeof(std::uint32_t) + value.size();
  auto buffer = std::make_shared<std::vector<std::byte>>(size);
  std::byte* out = buffer->data();
  for (const auto& value : values) {
    auto length = static_cast<std::uint32_t>(value.size());
    std::memcpy(out, &length, sizeof(length));
    std::memcpy(out + sizeof(length), value.data(), value.size());
    out += sizeof(length) + value.size();
  }
  std::byte* data = buffer->data();
  return Wrap(DataType::kBytes, std::move(shape), data, size, std::move(buffer));
}

std::int64_t Tensor::element_count() const {
  auto count = ElementCount(shape_);
  return count.ok() ? *count : 0;
}

Result<std::vector<std::string_view>> Tensor::Strings() const {
  if (dtype_ != DataType::kBytes)
    return InvalidArgument("tensor is {}, not BYTES", DataTypeName(dtype_));
  std::vector<std::string_view> values;
  std::size_t offset = 0;
  while (offset < byte_size_) {
    if (byte_size_ - offset < sizeof(std::uint32_t)) {
      return InvalidArgument("BYTES element {} has a truncated length prefix", values.size());
    }
    std::uint32_t length = ReadLength(data_ + offset);
    offset += sizeof(std::uint32_t);
    if (length > byte_size_ - offset) {
      return InvalidArgument("BYTES element {} claims {} bytes past the end of the tensor",
                             values.size(), length);
    }
    values.emplace_back(reinterpret_cast<const char*>(data_ + offset), length);
    offset += length;
  }
  if (static_cast<std::int64_t>(values.size()) != element_count()) {
    return InvalidArgument("BYTES tensor holds {} elements but its shape {} needs {}",
                           values.size(), ShapeToString(shape_), element_count());
  }
  return values;
}

Result<Tensor> Tensor::Slice(std::int64_t begin, std::int64_t end) const {
  if (shape_.empty()) return InvalidArgument("cannot slice a scalar");
  if (begin < 0 || end < begin || end > shape_[0]) {
    return InvalidArgument("slice [{},{}) is outside the first dimension of {}", begin, end,
                           ShapeToString(shape_));
  }
  Shape shape = shape_;
  shape[0] = end - begin;
  if (dtype_ == DataType::kBytes) {
    BRAID_ASSIGN_OR_RETURN(auto values, Strings());
    std::int64_t per_row =
        shape_[0] == 0 ? 0 : static_cast<std::int64_t>(values.size()) / shape_[0];
    auto offset_of = [&](std::int64_t row) -> std::size_t {
      if (row * per_row == static_cast<std::int64_t>(values.size())) return byte_size_;
      return reinterpret_cast<const std::byte*>(values[row * per_row].data()) - data_ -
             sizeof(std::uint32_t);
    };
    std::size_t from = offset_of(begin);
    Tensor slice = Wrap(dtype_, std::move(shape), data_ + from, offset_of(end) - from, owner_);
    slice.retained_bytes_ = retained_bytes();
    return slice;
  }
  std::size_t row_bytes = shape_[0] == 0 ? 0 : byte_size_ / static_cast<std::size_t>(shape_[0]);
  Tensor slice =
      Wrap(dtype_, std::move(shape), data_ + row_bytes * begin, row_bytes * (end - begin), owner_);
  slice.retained_bytes_ = retained_bytes();
  return slice;
}

Tensor Tensor::Compact() const {
  if (retained_bytes() <= byte_size_) return *this;
  auto buffer = std::make_shared<std::vector<std::byte>>(data_, data_ + byte_size_);
  std::byte* data = buffer->data();
  return Wrap(dtype_, shape_, data, byte_size_, std::move(buffer));
}

Result<Tensor> Tensor::Reshape(Shape shape) const {
  BRAID_ASSIGN_OR_RETURN(std::int64_t count, ElementCount(shape));
  if (count != element_count()) {
    return InvalidArgument("cannot reshape {} to {}", ShapeToString(shape_), ShapeToString(shape));
  }
  Tensor reshaped = Wrap(dtype_, std::move(shape), data_, byte_size_, owner_);
  reshaped.retained_bytes_ = retained_bytes();
  return reshaped;
}

}  // namespace braid

namespace braid {

Result<Tensor> RandomTensor(DataType type, Shape shape, std::mt19937& random) {
  if (type == DataType::kBytes) return InvalidArgument("random BYTES tensors are not defined");
  BRAID_ASSIGN_OR_RETURN(Tensor tensor, Tensor::Allocate(type, std::move(shape)));
  std::uniform_real_distribution<float> real(-1.0f, 1.0f);
  std::uniform_int_distribution<int> small(0, 99);
  switch (type) {
    case DataType::kFp32:
      for (auto& v : tensor.mutable_span<float>()) v = real(random);
      break;
    case DataType::kInt64:
      for (auto& v : tensor.mutable_span<std::int64_t>()) v = small(random);
      break;
    case DataType::kInt32:
      for (auto& v : tensor.mutable_span<std::int32_t>()) v = small(random);
      break;
    case DataType::kFp16:
      for (auto& v : tensor.mutable_span<std::uint16_t>()) v = FloatToHalf(real(random));
      break;
    case DataType::kUint8:
    case DataType::kBool:
      for (auto& v : tensor.mutable_span<std::uint8_t>())
        v = static_cast<std::uint8_t>(small(random) % 2);
      break;
    case DataType::kBytes:
      break;
  }
  return tensor;
}

}  // namespace braid
