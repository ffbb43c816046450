// Paired image and text embeddings: what `braid align` trains and evaluates
// on. Row i of the images belongs with row i of the texts. On disk a set of
// pairs is two .npy files of FP32 [N, D] with the same N, by convention
// PREFIX.image.npy and PREFIX.text.npy.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <utility>

#include "core/status.h"

namespace braid::align {

// Row-major, like .npy files and ONNX tensors, so rows copy straight across.
using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowVector = Eigen::RowVectorXf;

// The served align model's dimensions (models/align/config.yaml): CLIP
// ViT-B/32's 512-d embeddings in, the shared 128-d space out.
inline constexpr std::int64_t kEmbedDim = 512;
inline constexpr std::int64_t kAlignDim = 128;

struct EmbeddingPairs {
  Matrix images;  // [N, D]
  Matrix texts;   // [N, D]
  std::int64_t count() const { return images.rows(); }
  std::int64_t dim() const { return images.cols(); }
};

struct PairFiles {
  std::filesystem::path images;
  std::filesystem::path texts;
};

// PREFIX.image.npy and PREFIX.text.npy.
PairFiles PairFilesFromPrefix(const std::string& prefix);

// Reads both files. NotFound for a missing file; InvalidArgument, naming the
// file, for one that is not FP32, not two-dimensional, not `expected_dim`
// wide (when above 0), empty, or holds a NaN or infinity; and for two files
// whose row counts or widths differ.
Result<EmbeddingPairs> LoadPairs(const PairFiles& files, std::int64_t expected_dim);

Status SavePairs(const EmbeddingPairs& pairs, const PairFiles& files);

// A seeded random split: (training, held out), with round(count * holdout)
// pairs held out, at least 1 and leaving at least 1. `pairs` needs 2 or more.
std::pair<EmbeddingPairs, EmbeddingPairs> SplitPairs(const EmbeddingPairs& pairs, double holdout,
                                                     std::uint32_t seed);

// The given rows of `matrix`, in that order.
Matrix GatherRows(const Matrix& matrix, std::span<const std::int64_t> rows);

// The rows of `matrix` scaled to unit L2 norm (zero rows stay zero).
Matrix NormalizedRows(const Matrix& matrix);

}  // namespace braid::align
