// Levenshtein distance: how many insertions, deletions and substitutions
// turn one sequence into another. Used to suggest what a client meant and
// by the recognition tests and benches to count errors.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace braid {

// Levenshtein distance between two sequences (characters or words).
template <typename Sequence>
std::size_t EditDistance(const Sequence& a, const Sequence& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

}  // namespace braid
