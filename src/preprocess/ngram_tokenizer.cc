#include "preprocess/ngram_tokenizer.h"

#include <fmt/format.h>

#include "core/hash.h"

namespace braid {
namespace {

bool IsWordByte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

std::uint64_t HashText(std::string_view text) {
  return HashBytes(std::as_bytes(std::span(text.data(), text.size()))).low;
}

// Calls fn(word, start, stop) for each normalised word of `text` and the
// bytes it came from, until fn returns false.
template <typename Fn>
void ForEachWord(std::string_view text, Fn fn) {
  std::string word;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    const auto c = i < text.size() ? static_cast<unsigned char>(text[i]) : 0;
    if (i < text.size() && IsWordByte(c)) {
      if (word.empty()) start = i;
      word.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : text[i]);
    } else if (!word.empty()) {
      if (!fn(word, start, i)) return;
      word.clear();
    }
  }
}

// Calls fn(id, piece, start, stop) for each feature of `text` in order,
// at most spec.max_features: the word or n-gram (with '<' and '>' at the
// word's edges) and the input bytes it covers.
template <typename Fn>
void ForEachFeature(std::string_view text, const NgramSpec& spec, Fn fn) {
  const std::int64_t ngram_base = 2 + spec.word_buckets;
  auto bucket = [](std::string_view piece, std::int64_t buckets) {
    return static_cast<std::int64_t>(HashText(piece) % static_cast<std::uint64_t>(buckets));
  };
  std::size_t count = 0;
  ForEachWord(text, [&](const std::string& word, std::size_t start, std::size_t stop) {
    if (count++ >= spec.max_features) return false;
    fn(2 + bucket(word, spec.word_buckets), std::string_view(word), start, stop);
    const std::string wrapped = "<" + word + ">";
    for (int n = spec.min_n; n <= spec.max_n; ++n) {
      for (std::size_t at = 0; at + n <= wrapped.size(); ++at) {
        if (count++ >= spec.max_features) return false;
        const std::string_view piece = std::string_view(wrapped).substr(at, n);
        // The input bytes under the n-gram, '<' and '>' not being in it.
        const std::size_t first = at == 0 ? 0 : at - 1;
        const std::size_t last = std::min(word.size(), at + n - 1);
        fn(ngram_base + bucket(piece, spec.ngram_buckets), piece, start + first, start + last);
      }
    }
    return true;
  });
}

}  // namespace

std::vector<std::string> NgramWords(std::string_view text) {
  std::vector<std::string> words;
  ForEachWord(text, [&](const std::string& word, std::size_t, std::size_t) {
    words.push_back(word);
    return true;
  });
  return words;
}

std::vector<NgramFeature> NgramFeatureList(std::string_view text, const NgramSpec& spec) {
  std::vector<NgramFeature> features;
  ForEachFeature(text, spec,
                 [&](std::int64_t id, std::string_view piece, std::size_t start, std::size_t stop) {
                   features.push_back({id, std::string(piece), start, stop});
                 });
  return features;
}

std::vector<std::int64_t> NgramFeatures(std::string_view text, const NgramSpec& spec) {
  std::vector<std::int64_t> ids;
  ForEachFeature(text, spec, [&](std::int64_t id, std::string_view, std::size_t, std::size_t) {
    ids.push_back(id);
  });
  if (ids.empty()) ids.push_back(kEmptyFeature);
  return ids;
}

Result<std::vector<std::int64_t>> NgramTokenizer::Encode(std::string_view text) const {
  if (!IsValidUtf8(text)) return InvalidArgument("text is not valid UTF-8");
  std::vector<std::int64_t> ids = NgramFeatures(text, spec_);
  ids.resize(spec_.max_features, kPadFeature);
  return ids;
}

std::size_t NgramTokenizer::CountTokens(std::string_view text) const {
  return NgramFeatures(text, spec_).size();
}

std::size_t NgramTokenizer::Unpadded(const std::vector<std::int64_t>& ids) const {
  std::size_t length = ids.size();
  while (length > 0 && ids[length - 1] == kPadFeature) --length;
  return length;
}

Result<std::vector<Token>> NgramTokenizer::Tokenize(std::string_view text) const {
  if (!IsValidUtf8(text)) return InvalidArgument("text is not valid UTF-8");
  std::vector<Token> tokens;
  for (auto& feature : NgramFeatureList(text, spec_)) {
    tokens.push_back({feature.id, std::move(feature.text), false, feature.start, feature.stop});
  }
  if (tokens.empty())
    tokens.push_back({kEmptyFeature, "<empty>", true, std::nullopt, std::nullopt});
  return tokens;
}

std::string NgramTokenizer::TokenString(std::int64_t id) const {
  if (id == kPadFeature) return "<pad>";
  if (id == kEmptyFeature) return "<empty>";
  if (id < 2 + spec_.word_buckets) return fmt::format("word#{}", id - 2);
  return fmt::format("ngram#{}", id - 2 - spec_.word_buckets);
}

std::string NgramTokenizerJson(const NgramSpec& spec) {
  return fmt::format(
      "{{\"version\": \"1.0\", \"model\": {{\"type\": \"HashedNgrams\", \"word_buckets\": {}, "
      "\"ngram_buckets\": {}, \"min_n\": {}, \"max_n\": {}, \"max_features\": {}}}}}\n",
      spec.word_buckets, spec.ngram_buckets, spec.min_n, spec.max_n, spec.max_features);
}

}  // namespace braid
