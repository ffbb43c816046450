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

}  // namespace

std::string BytesOfSymbols(std::string_view symbols) {
  static const std::unordered_map<std::string, char> kBytes = [] {
    std::unordered_map<std::string, char> bytes;
    for (int b = 0; b < 256; ++b) bytes[ByteSymbols()[b]] = static_cast<char>(b);
    return bytes;
  }();
  std::string out;
  for (const auto& symbol : Characters(symbols)) {
    auto it = kBytes.find(symbol);
    if (it != kBytes.end()) out += it->second;
  }
  return out;
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

// A BPE's merge rules, each pair of symbols with its rank (lower merges first).
using MergeRanks = std::map<std::pair<std::string, std::string>, int>;

class BpeTokenizer : public Tokenizer {
 public:
  BpeTokenizer(std::unordered_map<std::string, std::int64_t> vocab, MergeRanks ranks,
               std::string suffix, std::int64_t unk, std::int64_t bos, std::int64_t eos,
               std::int64_t pad, std::size_t context_length)
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
    return ids.ok() ? Unpadded(*ids) : 0;
  }

  // Padding starts after the end token (which the padding may repeat).
  std::size_t Unpadded(const std::vector<std::int64_t>& ids) const override {
    for (std::size_t i = 1; i < ids.size(); ++i) {
      if (ids[i] == pad_ && ids[i - 1] == eos_) return i;
    }
    return ids.size();
  }

  std::size_t vocab_size() const override { return vocab_.size(); }

 protected:
  std::string TokenString(std::int64_t id) const override {
    return id >= 0 && static_cast<std::size_t>(id) < strings_.size() ? strings_[id] : "";
  }
  bool IsSpecial(std::int64_t id) const override { return id == bos_ || id == eos_ || id == unk_; }
  // The byte symbols back to bytes, without the end-of-word suffix.
  std::string Surface(const std::string& token) const override {
    std::string_view rest = token;
    if (!suffix_.empty() && rest.ends_with(suffix_)) rest.remove_suffix(suffix_.size());
    return BytesOfSymbols(rest);
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
  MergeRanks ranks_;
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

// Adds the merge "a b" as the next rank.
Status AddMerge(std::string_view text, MergeRanks& ranks) {
  auto space = text.find(' ');
  if (space == std::string_view::npos) return InvalidArgument("merge '{}' has no space", text);
  const int rank = static_cast<int>(ranks.size());
  ranks.emplace(
      std::make_pair(std::string(text.substr(0, space)), std::string(text.substr(space + 1))),
      rank);
  return Status::Ok();
}

// A byte-level BPE; with CLIP's conventions (start and end tokens, padded
// to `context_length`) when words end in `suffix`. `pad`: -1 for 0.
TokenizerPtr MakeBpe(std::unordered_map<std::string, std::int64_t> vocab, MergeRanks ranks,
                     std::string suffix, std::string_view unk_token, std::int64_t pad,
                     std::size_t context_length) {
  const bool clip = !suffix.empty();
  const std::int64_t unk = IdOf(vocab, unk_token);
  const std::int64_t bos = clip ? IdOf(vocab, "<|startoftext|>") : -1;
  const std::int64_t eos = clip ? IdOf(vocab, "<|endoftext|>") : -1;
  return std::make_unique<BpeTokenizer>(std::move(vocab), std::move(ranks), std::move(suffix), unk,
                                        bos, eos, std::max<std::int64_t>(pad, 0),
                                        clip ? context_length : 0);
}

// A special token of special_tokens_map.json: a string or {content: ...}.
std::string SpecialToken(const rapidjson::Document& map, const char* name, const char* fallback) {
  if (!map.IsObject() || !map.HasMember(name)) return fallback;
  const auto& value = map[name];
  if (value.IsString()) return value.GetString();
  if (value.IsObject() && value.HasMember("content") && value["content"].IsString())
    return value["content"].GetString();
  return fallback;
}

// vocab.json, merges.txt and, when present, special_tokens_map.json.
Result<TokenizerPtr> LoadBpeFiles(const std::filesystem::path& folder, std::size_t context_length) {
  constexpr std::size_t kMaxBytes = std::size_t{64} << 20;
  BRAID_ASSIGN_OR_RETURN(std::string vocab_text, ReadFile(folder / "vocab.json", kMaxBytes));
  rapidjson::Document vocab_doc;
  vocab_doc.Parse<rapidjson::kParseIterativeFlag>(vocab_text.data(), vocab_text.size());
  if (vocab_doc.HasParseError() || !vocab_doc.IsObject())
    return InvalidArgument("{}: not a JSON object of tokens and ids",
                           (folder / "vocab.json").string());
  std::unordered_map<std::string, std::int64_t> vocab;
  bool end_of_word = false;
  for (const auto& entry : vocab_doc.GetObject()) {
    std::string token(entry.name.GetString(), entry.name.GetStringLength());
    if (!entry.value.IsInt64())
      return InvalidArgument("{}: the id of '{}' is not an integer",
                             (folder / "vocab.json").string(), token);
    end_of_word = end_of_word || token.ends_with("</w>");
    vocab[std::move(token)] = entry.value.GetInt64();
  }
  BRAID_ASSIGN_OR_RETURN(std::string merges_text, ReadFile(folder / "merges.txt", kMaxBytes));
  MergeRanks ranks;
  std::size_t line_number = 0;
  for (std::string_view rest = merges_text; !rest.empty();) {
    const std::size_t end = std::min(rest.find('\n'), rest.size());
    std::string_view line = rest.substr(0, end);
    rest.remove_prefix(std::min(end + 1, rest.size()));
    ++line_number;
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.empty() || (line_number == 1 && line.starts_with("#version"))) continue;
    if (Status status = AddMerge(line, ranks); !status.ok())
      return status.WithContext(
          fmt::format("{}:{}", (folder / "merges.txt").string(), line_number));
  }
  rapidjson::Document special;
  std::error_code error;
  if (std::filesystem::exists(folder / "special_tokens_map.json", error)) {
    BRAID_ASSIGN_OR_RETURN(std::string text,
                           ReadFile(folder / "special_tokens_map.json", std::size_t{1} << 20));
    special.Parse(text.data(), text.size());
  }
  // CLIPTokenizer's defaults: <|endoftext|> stands for unknown and padding.
  const std::string unk = SpecialToken(special, "unk_token", "<|endoftext|>");
  const std::string pad = SpecialToken(special, "pad_token", "<|endoftext|>");
  const std::int64_t pad_id = IdOf(vocab, pad);
  return MakeBpe(std::move(vocab), std::move(ranks), end_of_word ? "</w>" : "", unk, pad_id,
                 context_length);
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
    MergeRanks ranks;
    for (const auto& merge : model["merges"].GetArray()) {
      std::string text;
      if (merge.IsString()) {  // "a b"
        text.assign(merge.GetString(), merge.GetStringLength());
      } else if (merge.IsArray() && merge.Size() == 2 && merge[0].IsString() &&
                 merge[1].IsString()) {  // ["a", "b"]
        text = fmt::format("{} {}", merge[0].GetString(), merge[1].GetString());
      } else {
        return InvalidArgument("tokenizer.json: merge {} is neither \"a b\" nor [\"a\", \"b\"]",
                               ranks.size());
      }
      if (Status status = AddMerge(text, ranks); !status.ok())
        return status.WithContext("tokenizer.json");
    }
    std::int64_t pad = 0;
    if (doc.HasMember("padding") && doc["padding"].IsObject() &&
        doc["padding"].HasMember("pad_id") && doc["padding"]["pad_id"].IsInt64()) {
      pad = doc["padding"]["pad_id"].GetInt64();
    }
    return MakeBpe(std::move(vocab), std::move(ranks), string_member("end_of_word_suffix", ""),
                   string_member("unk_token", ""), pad, context_length);
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

Result<TokenizerPtr> LoadModelTokenizer(const std::filesystem::path& folder,
                                        std::size_t context_length) {
  std::error_code error;
  if (std::filesystem::exists(folder / "tokenizer.json", error))
    return LoadTokenizer(folder / "tokenizer.json", context_length);
  if (std::filesystem::exists(folder / "vocab.json", error) &&
      std::filesystem::exists(folder / "merges.txt", error)) {
    auto tokenizer = LoadBpeFiles(folder, context_length);
    if (!tokenizer.ok()) return tokenizer.status().WithContext(folder.string());
    return tokenizer;
  }
  return NotFound("{} has no tokenizer.json, nor vocab.json with merges.txt", folder.string());
}

}  // namespace braid
