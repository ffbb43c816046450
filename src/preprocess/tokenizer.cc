#include "preprocess/tokenizer.h"

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <cctype>
#include <climits>
#include <map>
#include <unordered_map>

#include "core/file_util.h"
#include "preprocess/ngram_tokenizer.h"

namespace braid {
namespace {

// UTF-8 encoding of one code point.
std::string Utf8(std::uint32_t code_point) {
  std::string out;
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else if (code_point < 0x800) {
    out += static_cast<char>(0xC0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (code_point >> 12));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  }
  return out;
}

}  // namespace

const std::vector<std::string>& ByteSymbols() {
  static const std::vector<std::string> symbols = [] {
    std::vector<std::string> table(256);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      table[b] = Utf8(printable ? b : next++);
    }
    return table;
  }();
  return symbols;
}

namespace {

bool IsLetter(unsigned char c) { return std::isalpha(c) || c >= 0x80; }

// CLIP's pre-tokenisation: special tokens, English contractions, runs of
// letters, single digits, runs of other non-space characters.
std::vector<std::string> ClipPieces(const std::string& text) {
  static const char* kContractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  std::vector<std::string> pieces;
  std::size_t i = 0;
  while (i < text.size()) {
    unsigned char c = text[i];
    if (std::isspace(c)) {
      ++i;
      continue;
    }
    bool matched = false;
    for (std::string_view special : {"<|startoftext|>", "<|endoftext|>"}) {
      if (text.compare(i, special.size(), special) == 0) {
        pieces.emplace_back(special);
        i += special.size();
        matched = true;
        break;
      }
    }
    if (matched) continue;
    if (c == '\'') {
      for (const char* contraction : kContractions) {
        std::string_view s(contraction);
        if (text.compare(i, s.size(), s) == 0) {
          pieces.emplace_back(s);
          i += s.size();
          matched = true;
          break;
        }
      }
      if (matched) continue;
    }
    std::size_t start = i;
    if (IsLetter(c)) {
      while (i < text.size() && IsLetter(text[i])) ++i;
    } else if (std::isdigit(c)) {
      ++i;
    } else {
      while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i])) &&
             !IsLetter(text[i]) && !std::isdigit(static_cast<unsigned char>(text[i])))
        ++i;
    }
    pieces.push_back(text.substr(start, i - start));
  }
  return pieces;
}

// Splits a UTF-8 string into its characters.
std::vector<std::string> Characters(std::string_view text) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < text.size();) {
    unsigned char c = text[i];
    std::size_t length = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    out.emplace_back(text.substr(i, length));
    i += length;
  }
  return out;
}

// id → string of a vocabulary.
std::vector<std::string> Strings(const std::unordered_map<std::string, std::int64_t>& vocab) {
  std::int64_t largest = -1;
  for (const auto& [token, id] : vocab) largest = std::max(largest, id);
  std::vector<std::string> strings(static_cast<std::size_t>(largest + 1));
  for (const auto& [token, id] : vocab) {
    if (id >= 0) strings[static_cast<std::size_t>(id)] = token;
  }
  return strings;
}

class BpeTokenizer : public Tokenizer {
 public:
  BpeTokenizer(std::unordered_map<std::string, std::int64_t> vocab,
               std::map<std::pair<std::string, std::string>, int> ranks, std::string suffix,
               std::int64_t unk, std::int64_t bos, std::int64_t eos, std::int64_t pad,
               std::size_t context_length)
      : vocab_(std::move(vocab)),
        strings_(Strings(vocab_)),
        ranks_(std::move(ranks)),
        suffix_(std::move(suffix)),
        unk_(unk),
        bos_(bos),
        eos_(eos),
        pad_(pad),
        context_length_(context_length) {}

  // Tokenizer
  Result<std::vector<std::int64_t>> Encode(std::string_view text) const override {
    if (!IsValidUtf8(text)) return InvalidArgument("text is not valid UTF-8");
    std::vector<std::int64_t> ids;
    if (bos_ >= 0) ids.push_back(bos_);
    for (const auto& piece : ClipPieces(Normalise(text))) {
      auto special = vocab_.find(piece);
      if (special != vocab_.end() && (special->second == bos_ || special->second == eos_)) {
        ids.push_back(special->second);
        continue;
      }
      for (const auto& token : Merge(piece)) {
        auto it = vocab_.find(token);
        if (it != vocab_.end()) {
          ids.push_back(it->second);
        } else if (unk_ >= 0) {
          ids.push_back(unk_);
        }
      }
    }
    if (context_length_ > 0) {
      const std::size_t room = context_length_ - (eos_ >= 0 ? 1 : 0);
      if (ids.size() > room) ids.resize(room);
      if (eos_ >= 0) ids.push_back(eos_);
      ids.resize(context_length_, pad_);
    } else if (eos_ >= 0) {
      ids.push_back(eos_);
    }
    return ids;
  }

  std::size_t CountTokens(std::string_view text) const override {
    auto ids = Encode(text);
    if (!ids.ok()) return 0;
    std::size_t count = 0;
    for (std::size_t i = 0; i < ids->size(); ++i) {
      if ((*ids)[i] == pad_ && i > 0 && (*ids)[i - 1] == eos_) break;
      ++count;
    }
    return count;
  }

  std::size_t vocab_size() const override { return vocab_.size(); }

 protected:
  std::string TokenString(std::int64_t id) const override {
    return id >= 0 && static_cast<std::size_t>(id) < strings_.size() ? strings_[id] : "";
  }
  bool IsSpecial(std::int64_t id) const override { return id == bos_ || id == eos_ || id == unk_; }
  // The byte symbols back to bytes, without the end-of-word suffix.
  std::string Surface(const std::string& token) const override {
    static const std::unordered_map<std::string, char> kBytes = [] {
      std::unordered_map<std::string, char> bytes;
      for (int b = 0; b < 256; ++b) bytes[ByteSymbols()[b]] = static_cast<char>(b);
      return bytes;
    }();
    std::string_view rest = token;
    if (!suffix_.empty() && rest.ends_with(suffix_)) rest.remove_suffix(suffix_.size());
    std::string out;
    for (const auto& symbol : Characters(rest)) {
      auto it = kBytes.find(symbol);
      if (it != kBytes.end()) out += it->second;
    }
    return out;
  }

 private:
  // CLIP: whitespace collapsed and trimmed, lower-case (ASCII).
  std::string Normalise(std::string_view text) const {
    std::string out;
    for (char ch : text) {
      unsigned char c = ch;
      if (std::isspace(c)) {
        if (!out.empty() && out.back() != ' ') out += ' ';
      } else {
        out += static_cast<char>(std::tolower(c));
      }
    }
    if (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
  }

  // Byte-level symbols of `piece`, merged by rank until no pair ranks.
  std::vector<std::string> Merge(const std::string& piece) const {
    std::vector<std::string> symbols;
    for (unsigned char b : piece) symbols.push_back(ByteSymbols()[b]);
    if (symbols.empty()) return symbols;
    symbols.back() += suffix_;
    while (symbols.size() > 1) {
      int best_rank = INT_MAX;
      std::size_t best = 0;
      for (std::size_t i = 0; i + 1 < symbols.size(); ++i) {
        auto it = ranks_.find({symbols[i], symbols[i + 1]});
        if (it != ranks_.end() && it->second < best_rank) {
          best_rank = it->second;
          best = i;
        }
      }
      if (best_rank == INT_MAX) break;
      const std::string left = symbols[best], right = symbols[best + 1];
      std::vector<std::string> merged;
      for (std::size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
          merged.push_back(left + right);
          ++i;
        } else {
          merged.push_back(symbols[i]);
        }
      }
      symbols = std::move(merged);
    }
    return symbols;
  }

  std::unordered_map<std::string, std::int64_t> vocab_;
  std::vector<std::string> strings_;
  std::map<std::pair<std::string, std::string>, int> ranks_;
  std::string suffix_;
  std::int64_t unk_, bos_, eos_, pad_;
  std::size_t context_length_;
};

class WordPieceTokenizer : public Tokenizer {
 public:
  WordPieceTokenizer(std::unordered_map<std::string, std::int64_t> vocab, std::string prefix,
                     std::int64_t unk, std::int64_t cls, std::int64_t sep, bool lowercase)
      : vocab_(std::move(vocab)),
        strings_(Strings(vocab_)),
        prefix_(std::move(prefix)),
        unk_(unk),
        cls_(cls),
        sep_(sep),
        lowercase_(lowercase) {}

  // Tokenizer
  Result<std::vector<std::int64_t>> Encode(std::string_view text) const override {
    if (!IsValidUtf8(text)) return InvalidArgument("text is not valid UTF-8");
    std::vector<std::int64_t> ids;
    if (cls_ >= 0) ids.push_back(cls_);
    for (const auto& word : Words(text)) {
      auto pieces = Pieces(word);
      ids.insert(ids.end(), pieces.begin(), pieces.end());
    }
    if (sep_ >= 0) ids.push_back(sep_);
    return ids;
  }
  std::size_t CountTokens(std::string_view text) const override {
    auto ids = Encode(text);
    return ids.ok() ? ids->size() : 0;
  }
  std::size_t vocab_size() const override { return vocab_.size(); }

 protected:
  std::string TokenString(std::int64_t id) const override {
    return id >= 0 && static_cast<std::size_t>(id) < strings_.size() ? strings_[id] : "";
  }
  bool IsSpecial(std::int64_t id) const override { return id == cls_ || id == sep_ || id == unk_; }
  std::string Surface(const std::string& token) const override {
    return token.starts_with(prefix_) ? token.substr(prefix_.size()) : token;
  }

 private:
  // BERT's basic tokenisation: clean, lower-case, split on whitespace and punctuation.
  std::vector<std::string> Words(std::string_view text) const {
    std::vector<std::string> words;
    std::string current;
    auto flush = [&] {
      if (!current.empty()) words.push_back(std::move(current));
      current.clear();
    };
    for (char ch : text) {
      unsigned char c = ch;
      if (c < 0x20 && !std::isspace(c)) continue;  // control characters
      if (std::isspace(c)) {
        flush();
      } else if (c < 0x80 && std::ispunct(c)) {
        flush();
        words.emplace_back(1, ch);
      } else {
        current += lowercase_ && c < 0x80 ? static_cast<char>(std::tolower(c)) : ch;
      }
    }
    flush();
    return words;
  }

  std::vector<std::int64_t> Pieces(const std::string& word) const {
    constexpr std::size_t kMaxChars = 100;
    auto characters = Characters(word);
    if (characters.size() > kMaxChars) return {unk_};
    std::vector<std::int64_t> ids;
    std::size_t start = 0;
    while (start < characters.size()) {
      std::size_t end = characters.size();
      std::int64_t found = -1;
      while (end > start) {
        std::string candidate = start > 0 ? prefix_ : "";
        for (std::size_t k = start; k < end; ++k) candidate += characters[k];
        auto it = vocab_.find(candidate);
        if (it != vocab_.end()) {
          found = it->second;
          break;
        }
        --end;
      }
      if (found < 0) return {unk_};
      ids.push_back(found);
      start = end;
    }
    return ids;
  }

  std::unordered_map<std::string, std::int64_t> vocab_;
  std::vector<std::string> strings_;
  std::string prefix_;
  std::int64_t unk_, cls_, sep_;
  bool lowercase_;
};

std::int64_t IdOf(const std::unordered_map<std::string, std::int64_t>& vocab,
                  std::string_view token) {
  auto it = vocab.find(std::string(token));
  return it == vocab.end() ? -1 : it->second;
}

// braid's hashed n-gram features (ngram_tokenizer.h).
Result<TokenizerPtr> ParseNgramTokenizer(const rapidjson::Value& model) {
  NgramSpec spec;
  auto member = [&](const char* name, std::int64_t low, std::int64_t high, auto* out) -> Status {
    if (!model.HasMember(name)) return Status::Ok();
    if (!model[name].IsInt64() || model[name].GetInt64() < low || model[name].GetInt64() > high) {
      return InvalidArgument("tokenizer.json: HashedNgrams '{}' must be an integer from {} to {}",
                             name, low, high);
    }
    *out = static_cast<std::remove_pointer_t<decltype(out)>>(model[name].GetInt64());
    return Status::Ok();
  };
  constexpr std::int64_t kMaxBuckets = std::int64_t{1} << 24;
  BRAID_RETURN_IF_ERROR(member("word_buckets", 1, kMaxBuckets, &spec.word_buckets));
  BRAID_RETURN_IF_ERROR(member("ngram_buckets", 1, kMaxBuckets, &spec.ngram_buckets));
  BRAID_RETURN_IF_ERROR(member("min_n", 1, 16, &spec.min_n));
  BRAID_RETURN_IF_ERROR(member("max_n", 1, 16, &spec.max_n));
  BRAID_RETURN_IF_ERROR(member("max_features", 1, 65536, &spec.max_features));
  if (spec.min_n > spec.max_n) {
    return InvalidArgument("tokenizer.json: HashedNgrams min_n {} is above max_n {}", spec.min_n,
                           spec.max_n);
  }
  return TokenizerPtr(std::make_unique<NgramTokenizer>(spec));
}

}  // namespace

Result<std::vector<Token>> Tokenizer::Tokenize(std::string_view text) const {
  BRAID_ASSIGN_OR_RETURN(std::vector<std::int64_t> ids, Encode(text));
  ids.resize(std::min(ids.size(), CountTokens(text)));
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::vector<Token> tokens;
  std::size_t cursor = 0;
  for (std::int64_t id : ids) {
    Token token{id, TokenString(id), IsSpecial(id), std::nullopt, std::nullopt};
    if (!token.special) {
      const std::string surface = Surface(token.text);
      const std::size_t at = surface.empty() ? std::string::npos : lower.find(surface, cursor);
      if (at != std::string::npos) {
        token.start = at;
        token.stop = cursor = at + surface.size();
      }
    }
    tokens.push_back(std::move(token));
  }
  return tokens;
}

bool IsValidUtf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    unsigned char c = text[i];
    std::size_t length = c < 0x80           ? 1
                         : (c >> 5) == 0x6  ? 2
                         : (c >> 4) == 0xE  ? 3
                         : (c >> 3) == 0x1E ? 4
                                            : 0;
    if (length == 0 || i + length > text.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) >> 6) != 0x2) return false;
    }
    if (length == 2 && c < 0xC2) return false;  // overlong
    i += length;
  }
  return true;
}

Result<TokenizerPtr> ParseTokenizer(std::string_view json, std::size_t context_length) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(json.data(), json.size());
  if (doc.HasParseError()) {
    return InvalidArgument("tokenizer.json: malformed JSON at offset {}: {}", doc.GetErrorOffset(),
                           rapidjson::GetParseError_En(doc.GetParseError()));
  }
  if (!doc.IsObject() || !doc.HasMember("model") || !doc["model"].IsObject()) {
    return InvalidArgument("tokenizer.json: no 'model' object");
  }
  const auto& model = doc["model"];
  if (model.HasMember("type") && model["type"].IsString() &&
      std::string_view(model["type"].GetString()) == "HashedNgrams") {
    return ParseNgramTokenizer(model);
  }
  if (!model.HasMember("vocab") || !model["vocab"].IsObject())
    return InvalidArgument("tokenizer.json: model has no 'vocab' object");
  std::unordered_map<std::string, std::int64_t> vocab;
  for (const auto& entry : model["vocab"].GetObject()) {
    if (!entry.value.IsInt64())
      return InvalidArgument("tokenizer.json: vocab id of '{}' is not an integer",
                             entry.name.GetString());
    vocab[std::string(entry.name.GetString(), entry.name.GetStringLength())] =
        entry.value.GetInt64();
  }
  if (doc.HasMember("added_tokens") && doc["added_tokens"].IsArray()) {
    for (const auto& token : doc["added_tokens"].GetArray()) {
      if (token.IsObject() && token.HasMember("content") && token["content"].IsString() &&
          token.HasMember("id") && token["id"].IsInt64()) {
        vocab[token["content"].GetString()] = token["id"].GetInt64();
      }
    }
  }
  const std::string type =
      model.HasMember("type") && model["type"].IsString() ? model["type"].GetString() : "";
  auto string_member = [&](const char* name, const char* fallback) -> std::string {
    return model.HasMember(name) && model[name].IsString() ? model[name].GetString() : fallback;
  };
  if (type == "BPE") {
    if (!model.HasMember("merges") || !model["merges"].IsArray())
      return InvalidArgument("tokenizer.json: BPE model has no 'merges'");
    std::map<std::pair<std::string, std::string>, int> ranks;
    int rank = 0;
    for (const auto& merge : model["merges"].GetArray()) {
      std::string left, right;
      if (merge.IsString()) {  // "a b"
        std::string_view text(merge.GetString(), merge.GetStringLength());
        auto space = text.find(' ');
        if (space == std::string_view::npos)
          return InvalidArgument("tokenizer.json: merge '{}' has no space", text);
        left = text.substr(0, space);
        right = text.substr(space + 1);
      } else if (merge.IsArray() && merge.Size() == 2 && merge[0].IsString() &&
                 merge[1].IsString()) {  // ["a", "b"]
        left = merge[0].GetString();
        right = merge[1].GetString();
      } else {
        return InvalidArgument("tokenizer.json: merge {} is neither \"a b\" nor [\"a\", \"b\"]",
                               rank);
      }
      ranks.emplace(std::make_pair(std::move(left), std::move(right)), rank++);
    }
    const std::string suffix = string_member("end_of_word_suffix", "");
    const bool clip = !suffix.empty();
    std::int64_t unk = IdOf(vocab, string_member("unk_token", ""));
    std::int64_t bos = clip ? IdOf(vocab, "<|startoftext|>") : -1;
    std::int64_t eos = clip ? IdOf(vocab, "<|endoftext|>") : -1;
    std::int64_t pad = 0;
    if (doc.HasMember("padding") && doc["padding"].IsObject() &&
        doc["padding"].HasMember("pad_id") && doc["padding"]["pad_id"].IsInt64()) {
      pad = doc["padding"]["pad_id"].GetInt64();
    }
    return TokenizerPtr(std::make_unique<BpeTokenizer>(
        std::move(vocab), std::move(ranks), suffix, unk, bos, eos, pad, clip ? context_length : 0));
  }
  if (type == "WordPiece") {
    const std::string prefix = string_member("continuing_subword_prefix", "##");
    std::int64_t unk = IdOf(vocab, string_member("unk_token", "[UNK]"));
    if (unk < 0) return InvalidArgument("tokenizer.json: WordPiece vocab lacks its unk_token");
    bool lowercase = true;
    if (doc.HasMember("normalizer") && doc["normalizer"].IsObject() &&
        doc["normalizer"].HasMember("lowercase") && doc["normalizer"]["lowercase"].IsBool()) {
      lowercase = doc["normalizer"]["lowercase"].GetBool();
    }
    const std::int64_t cls = IdOf(vocab, "[CLS]"), sep = IdOf(vocab, "[SEP]");
    return TokenizerPtr(
        std::make_unique<WordPieceTokenizer>(std::move(vocab), prefix, unk, cls, sep, lowercase));
  }
  return InvalidArgument(
      "tokenizer.json: model type '{}' is not supported (BPE, WordPiece and HashedNgrams are)",
      type);
}

Result<TokenizerPtr> LoadTokenizer(const std::filesystem::path& path, std::size_t context_length) {
  BRAID_ASSIGN_OR_RETURN(std::string json, ReadFile(path, std::size_t{64} << 20));
  auto tokenizer = ParseTokenizer(json, context_length);
  if (!tokenizer.ok()) return tokenizer.status().WithContext(path.string());
  return tokenizer;
}

}  // namespace braid
