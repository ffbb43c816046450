#include "align/pairs.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "core/npy.h"
#include "core/tensor.h"

namespace braid::align {
namespace {

Result<Matrix> LoadEmbeddings(const std::filesystem::path& path, std::int64_t expected_dim) {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) return NotFound("{}: no such file", path.string());
  BRAID_ASSIGN_OR_RETURN(Tensor tensor, ReadNpy(path));
  if (tensor.dtype() != DataType::kFp32) {
    return InvalidArgument("{}: embeddings must be FP32 (float32), not {}", path.string(),
                           DataTypeName(tensor.dtype()));
  }
  const Shape& shape = tensor.shape();
  if (shape.size() != 2) {
    return InvalidArgument("{}: embeddings must be a 2-D array [count, dim], not shape {}",
                           path.string(), ShapeToString(shape));
  }
  if (shape[0] == 0 || shape[1] == 0) {
    return InvalidArgument("{}: no embeddings (shape {})", path.string(), ShapeToString(shape));
  }
  if (expected_dim > 0 && shape[1] != expected_dim) {
    return InvalidArgument("{}: embeddings are {}-dimensional, expected {} (shape {})",
                           path.string(), shape[1], expected_dim, ShapeToString(shape));
  }
  auto values = tensor.span<float>();
  auto bad = std::find_if(values.begin(), values.end(), [](float v) { return !std::isfinite(v); });
  if (bad != values.end()) {
    const auto index = bad - values.begin();
    return InvalidArgument("{}: row {} holds a non-finite value ({})", path.string(),
                           index / shape[1], *bad);
  }
  return Matrix(Eigen::Map<const Matrix>(values.data(), shape[0], shape[1]));
}

Status SaveEmbeddings(const Matrix& matrix, const std::filesystem::path& path) {
  BRAID_ASSIGN_OR_RETURN(Tensor tensor,
                         Tensor::Allocate(DataType::kFp32, {matrix.rows(), matrix.cols()}));
  Eigen::Map<Matrix>(tensor.mutable_span<float>().data(), matrix.rows(), matrix.cols()) = matrix;
  return WriteNpy(path, tensor);
}

}  // namespace

PairFiles PairFilesFromPrefix(const std::string& prefix) {
  return {prefix + ".image.npy", prefix + ".text.npy"};
}

Result<EmbeddingPairs> LoadPairs(const PairFiles& files, std::int64_t expected_dim) {
  EmbeddingPairs pairs;
  BRAID_ASSIGN_OR_RETURN(pairs.images, LoadEmbeddings(files.images, expected_dim));
  BRAID_ASSIGN_OR_RETURN(pairs.texts, LoadEmbeddings(files.texts, expected_dim));
  if (pairs.images.rows() != pairs.texts.rows()) {
    return InvalidArgument(
        "mismatched pair counts: {} has {} image embeddings but {} has {} text "
        "embeddings (row i of each must belong together)",
        files.images.string(), pairs.images.rows(), files.texts.string(), pairs.texts.rows());
  }
  if (pairs.images.cols() != pairs.texts.cols()) {
    return InvalidArgument("mismatched dims: {} is {}-dimensional but {} is {}-dimensional",
                           files.images.string(), pairs.images.cols(), files.texts.string(),
                           pairs.texts.cols());
  }
  return pairs;
}

Status SavePairs(const EmbeddingPairs& pairs, const PairFiles& files) {
  BRAID_RETURN_IF_ERROR(SaveEmbeddings(pairs.images, files.images));
  return SaveEmbeddings(pairs.texts, files.texts);
}

std::pair<EmbeddingPairs, EmbeddingPairs> SplitPairs(const EmbeddingPairs& pairs, double holdout,
                                                     std::uint32_t seed) {
  const std::int64_t count = pairs.count();
  const auto held = std::clamp<std::int64_t>(std::llround(count * holdout), 1, count - 1);
  std::vector<std::int64_t> order(count);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 random(seed);
  std::shuffle(order.begin(), order.end(), random);
  std::vector<std::int64_t> kept(order.begin() + held, order.end());
  std::vector<std::int64_t> out(order.begin(), order.begin() + held);
  return {{GatherRows(pairs.images, kept), GatherRows(pairs.texts, kept)},
          {GatherRows(pairs.images, out), GatherRows(pairs.texts, out)}};
}

Matrix GatherRows(const Matrix& matrix, std::span<const std::int64_t> rows) {
  Matrix out(static_cast<Eigen::Index>(rows.size()), matrix.cols());
  for (std::size_t i = 0; i < rows.size(); ++i) out.row(i) = matrix.row(rows[i]);
  return out;
}

Matrix NormalizedRows(const Matrix& matrix) {
  Eigen::VectorXf norms = matrix.rowwise().norm();
  Matrix out = matrix;
  for (Eigen::Index i = 0; i < out.rows(); ++i) {
    if (norms[i] > 0) out.row(i) /= norms[i];
  }
  return out;
}

}  // namespace braid::align
