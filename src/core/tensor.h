// Tensor: a data type, a shape and one contiguous, row-major buffer.
//
// The buffer is shared and reference counted, so copies of a Tensor and views
// made by Slice() or Reshape() never copy element data. A tensor can also wrap
// memory that something else owns (a request body, an ONNX Runtime output);
// the owner is kept alive as long as any view of it exists.
//
// BYTES tensors hold their elements serialised as KServe v2's binary tensor
// extension does: each element a 4-byte little-endian length then its bytes.
//
// A Tensor is a value type; it is not synchronised. Sharing one between
// threads is safe as long as no thread writes to the elements.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/data_type.h"
#include "core/status.h"

namespace braid {

using Shape = std::vector<std::int64_t>;

// Elements in `shape`; an error for a negative dimension or an overflow.
Result<std::int64_t> ElementCount(const Shape& shape);
// Bytes that `count` elements of `type` take; an error on overflow or past
// `limit`. Not defined for kBytes.
Result<std::size_t> ByteSizeOf(DataType type, std::int64_t count, std::size_t limit = SIZE_MAX);
// "[1,3,224,224]".
std::string ShapeToString(const Shape& shape);

class Tensor;
// A tensor of `shape` with seeded random values: floats in [-1, 1),
// integers in [0, 100), booleans and bytes 0 or 1. Not for kBytes.
Result<Tensor> RandomTensor(DataType type, Shape shape, std::mt19937& random);
// The first element of a BYTES tensor; empty if there is none or the tensor
// is malformed.
std::string_view FirstString(const Tensor& tensor);

class Tensor {
 public:
  Tensor() = default;

  // A zero-filled tensor with a 64-byte aligned buffer. Not for kBytes.
  static Result<Tensor> Allocate(DataType type, Shape shape);
  // Wraps `size` bytes at `data` owned by `owner`; no copy. The caller
  // promises that `size` matches the type and shape (checked for fixed-size
  // types in debug builds).
  static Tensor Wrap(DataType type, Shape shape, std::byte* data, std::size_t size,
                     std::shared_ptr<const void> owner);
  // A kBytes tensor of `values` with the given shape (element count must match).
  static Result<Tensor> FromStrings(const std::vector<std::string>& values, Shape shape);

  bool empty() const { return data_ == nullptr && byte_size_ == 0; }
  DataType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  std::int64_t element_count() const;
  std::size_t byte_size() const { return byte_size_; }
  const std::byte* data() const { return data_; }
  std::byte* mutable_data() { return data_; }
  // What keeps data() alive: hold it to use the bytes past this tensor.
  const std::shared_ptr<const void>& owner() const { return owner_; }
  // The bytes this tensor keeps alive: its own, or more for a slice of a
  // larger buffer (a request's rows of a batch output).
  std::size_t retained_bytes() const { return std::max(retained_bytes_, byte_size_); }
  // This tensor in a buffer of its own when it retains more than it holds
  // (a copy); itself otherwise. For keeping a slice without its batch.
  Tensor Compact() const;

  template <typename T>
  std::span<const T> span() const {
    return {reinterpret_cast<const T*>(data_), byte_size_ / sizeof(T)};
  }
  template <typename T>
  std::span<T> mutable_span() {
    return {reinterpret_cast<T*>(data_), byte_size_ / sizeof(T)};
  }

  // The elements of a kBytes tensor; views into this tensor's buffer. An
  // error if the serialisation is malformed.
  Result<std::vector<std::string_view>> Strings() const;

  // Rows [begin, end) along the first dimension, sharing this buffer.
  Result<Tensor> Slice(std::int64_t begin, std::int64_t end) const;
  // The same buffer seen with another shape of the same element count.
  Result<Tensor> Reshape(Shape shape) const;

 private:
  DataType dtype_ = DataType::kFp32;
  Shape shape_;
  std::shared_ptr<const void> owner_;
  std::byte* data_ = nullptr;
  std::size_t byte_size_ = 0;
  std::size_t retained_bytes_ = 0;  // the whole buffer's, when a slice shares it
};

}  // namespace braid
