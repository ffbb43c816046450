// Cross-modal retrieval quality: every query ranks the whole gallery by
// cosine similarity, and exactly one gallery item (the same row) is right.
#pragma once

#include <cstdint>

#include "align/pairs.h"

namespace braid::align {

struct RetrievalMetrics {
  double recall_at_1 = 0;  // share of queries whose match ranks first
  double recall_at_5 = 0;
  double recall_at_10 = 0;
  // Mean average precision over the top 10. With one relevant item per
  // query, a query's AP@10 is 1/rank when rank <= 10, else 0 (so this equals
  // MRR@10).
  double map_at_10 = 0;
  double mrr = 0;  // mean reciprocal rank of the match, however far down
};

struct CrossModalMetrics {
  RetrievalMetrics text_to_image;  // text queries, image gallery
  RetrievalMetrics image_to_text;  // image queries, text gallery
};

// Row i of `queries` matches row i of `gallery` (same count, same width).
// Ties are counted against the match, so a collapsed embedding scores
// chance, never perfect. Blocks of queries at a time: memory stays at
// O(block * count).
RetrievalMetrics EvaluateRetrieval(const Matrix& queries, const Matrix& gallery);

CrossModalMetrics EvaluateCrossModal(const EmbeddingPairs& pairs);

// What random ranking would score among `count` items: recall@k = k/count.
RetrievalMetrics ChanceMetrics(std::int64_t count);

}  // namespace braid::align
