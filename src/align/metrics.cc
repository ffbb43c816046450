#include "align/metrics.h"

#include <algorithm>

namespace braid::align {
namespace {

constexpr Eigen::Index kQueryBlock = 256;

}  // namespace

RetrievalMetrics EvaluateRetrieval(const Matrix& queries, const Matrix& gallery) {
  const Matrix q = NormalizedRows(queries);
  const Matrix g = NormalizedRows(gallery);
  const Eigen::Index count = q.rows();
  RetrievalMetrics metrics;
  for (Eigen::Index start = 0; start < count; start += kQueryBlock) {
    const Eigen::Index rows = std::min(kQueryBlock, count - start);
    const Matrix scores = q.middleRows(start, rows) * g.transpose();
    for (Eigen::Index r = 0; r < rows; ++r) {
      const float match = scores(r, start + r);
      // 1 + the other items scoring at least as high as the match.
      const auto rank = (scores.row(r).array() >= match).count();
      metrics.recall_at_1 += rank <= 1;
      metrics.recall_at_5 += rank <= 5;
      metrics.recall_at_10 += rank <= 10;
      if (rank <= 10) metrics.map_at_10 += 1.0 / static_cast<double>(rank);
      metrics.mrr += 1.0 / static_cast<double>(rank);
    }
  }
  const double n = static_cast<double>(std::max<Eigen::Index>(count, 1));
  metrics.recall_at_1 /= n;
  metrics.recall_at_5 /= n;
  metrics.recall_at_10 /= n;
  metrics.map_at_10 /= n;
  metrics.mrr /= n;
  return metrics;
}

CrossModalMetrics EvaluateCrossModal(const EmbeddingPairs& pairs) {
  return {EvaluateRetrieval(pairs.texts, pairs.images),
          EvaluateRetrieval(pairs.images, pairs.texts)};
}

RetrievalMetrics ChanceMetrics(std::int64_t count) {
  const double n = static_cast<double>(std::max<std::int64_t>(count, 1));
  RetrievalMetrics metrics;
  metrics.recall_at_1 = std::min(1.0, 1 / n);
  metrics.recall_at_5 = std::min(1.0, 5 / n);
  metrics.recall_at_10 = std::min(1.0, 10 / n);
  for (std::int64_t rank = 1; rank <= count; ++rank) {
    if (rank <= 10) metrics.map_at_10 += 1 / (static_cast<double>(rank) * n);
    metrics.mrr += 1 / (static_cast<double>(rank) * n);
  }
  return metrics;
}

}  // namespace braid::align
