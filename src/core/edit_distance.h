// Levenshtein distance: how many insertions, deletions and substitutions
// turn one sequence into another. Used to suggest what a client meant and
// by the recognition tests and benches to count errors.
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
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

// The name in `names` nearest to `asked`, when it is near enough to be a
// likely typo (at most a quarter of the asked name's letters off, and at
// least 2): what "did you mean" suggests.
template <typename Names>
std::optional<std::string_view> NearestName(std::string_view asked, const Names& names) {
  std::optional<std::string_view> nearest;
  std::size_t best = std::max<std::size_t>(2, asked.size() / 4) + 1;
  for (const auto& name : names) {
    const std::string_view candidate(name);
    const std::size_t distance = EditDistance(asked, candidate);
    if (distance < best) {
      best = distance;
      nearest = candidate;
    }
  }
  return nearest;
}

// "did you mean 'NAME'? " for the nearest of `names`, or nothing.
template <typename Names>
std::string DidYouMean(std::string_view asked, const Names& names) {
  const auto nearest = NearestName(asked, names);
  return nearest ? "did you mean '" + std::string(*nearest) + "'? " : std::string();
}

}  // namespace braid
