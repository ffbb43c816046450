// Hashed word and character n-gram features: the tokenizer of braid's own
// text embedder (`text-embed`, trained on WordNet by tools/textembed).
//
// Text is lower-cased (ASCII) and split into words at every byte that is not
// an ASCII letter or digit (bytes above 0x7F stay inside words, so non-ASCII
// words are kept as they are). Each word gives one feature for the word
// itself and one for each character n-gram (min_n to max_n) of the word
// wrapped in '<' and '>' — fastText's sub-word idea: an unseen word or a
// typo still shares most of its n-grams with the word it resembles. Words
// and n-grams are hashed (XXH3) into buckets, so there is no vocabulary
// file and no unknown word. The model sums the rows of its embedding table
// for the features and normalises the sum (mean pooling under L2
// normalisation).
//
// Feature ids: 0 pads, 1 stands for text without a word, then the word
// buckets, then the n-gram buckets.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "preprocess/tokenizer.h"

namespace braid {

struct NgramSpec {
  std::int64_t word_buckets = std::int64_t{1} << 16;
  std::int64_t ngram_buckets = std::int64_t{1} << 16;
  int min_n = 3;
  int max_n = 4;
  // Features a text keeps (the words' features in order, then cut); Encode
  // pads to this length.
  std::size_t max_features = 512;

  // Rows of the embedding table: pad, empty, words, n-grams.
  std::int64_t rows() const { return 2 + word_buckets + ngram_buckets; }
};

inline constexpr std::int64_t kPadFeature = 0;
inline constexpr std::int64_t kEmptyFeature = 1;

// The normalised words of `text`.
std::vector<std::string> NgramWords(std::string_view text);

// One feature of a text: its id, the word or n-gram (with '<' and '>' at
// the word's edges) and the bytes of the input it covers.
struct NgramFeature {
  std::int64_t id = 0;
  std::string text;
  std::size_t start = 0, stop = 0;
};
// The features of `text` in order, at most spec.max_features; none for text
// without a word.
std::vector<NgramFeature> NgramFeatureList(std::string_view text, const NgramSpec& spec);

// The feature ids of `text` without padding: at most spec.max_features, at
// least one (kEmptyFeature for text without a word).
std::vector<std::int64_t> NgramFeatures(std::string_view text, const NgramSpec& spec);

class NgramTokenizer : public Tokenizer {
 public:
  explicit NgramTokenizer(NgramSpec spec) : spec_(spec) {}

  // NgramFeatures padded with kPadFeature to max_features.
  Result<std::vector<std::int64_t>> Encode(std::string_view text) const override;
  // Features before padding.
  std::size_t CountTokens(std::string_view text) const override;
  // The features before the padding.
  std::size_t Unpadded(const std::vector<std::int64_t>& ids) const override;
  // The features with their words and n-grams and the bytes they cover.
  Result<std::vector<Token>> Tokenize(std::string_view text) const override;
  std::size_t vocab_size() const override { return static_cast<std::size_t>(spec_.rows()); }
  const NgramSpec& spec() const { return spec_; }

 protected:
  std::string TokenString(std::int64_t id) const override;
  bool IsSpecial(std::int64_t id) const override { return id < 2; }
  std::string Surface(const std::string& /*token*/) const override { return ""; }

 private:
  NgramSpec spec_;
};

// The tokenizer.json that ParseTokenizer reads back as `spec`:
// {"model": {"type": "HashedNgrams", "word_buckets": ..., ...}}.
std::string NgramTokenizerJson(const NgramSpec& spec);

}  // namespace braid
