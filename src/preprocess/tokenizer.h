// Text tokenizers loaded from a Hugging Face `tokenizer.json`, or from the
// `vocab.json` and `merges.txt` a BPE export ships instead.
//
// Three models are supported (the third is braid's own, ngram_tokenizer.h):
//  - BPE over bytes (CLIP, GPT-2 family). With CLIP's conventions when the
//    vocabulary has an end-of-word suffix ("</w>"): whitespace collapsed,
//    lower-cased, CLIP's pre-tokenisation pattern, <|startoftext|> and
//    <|endoftext|> around the tokens, padded or truncated to the context
//    length (77).
//  - WordPiece (BERT family): BERT's normalisation (lower-case, accents of
//    Latin letters stripped, control characters dropped), split on
//    whitespace and punctuation, greedy longest match with "##"
//    continuations, [CLS] … [SEP].
//  - HashedNgrams: hashed word and character n-gram features, braid's text
//    embedder's.
// Non-ASCII text: letters outside ASCII count as letters for
// pre-tokenisation and are kept as bytes; Unicode case folding applies to
// ASCII only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace braid {

struct Token {
  std::int64_t id = 0;
  std::string text;  // the vocabulary's string for it
  bool special = false;
  // Byte offsets of the text it covers in the input; none for special
  // tokens and where normalisation changed the text beyond finding.
  std::optional<std::size_t> start, stop;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // The tokens Encode() gives before padding, with their strings and
  // offsets (for TEI's /tokenize).
  virtual Result<std::vector<Token>> Tokenize(std::string_view text) const;

  // Token ids of `text` with the model's special tokens; for CLIP-style BPE
  // padded/truncated to context_length(). InvalidArgument for text that is
  // not valid UTF-8.
  virtual Result<std::vector<std::int64_t>> Encode(std::string_view text) const = 0;

  // Tokens an Encode() fills before padding (for usage counts).
  virtual std::size_t CountTokens(std::string_view text) const = 0;

  // How many of `ids`, an Encode() result, are tokens rather than padding:
  // the ones an attention mask marks 1.
  virtual std::size_t Unpadded(const std::vector<std::int64_t>& ids) const { return ids.size(); }

  virtual std::size_t vocab_size() const = 0;

 protected:
  // The vocabulary string of `id`, whether it is a special token, and the
  // (lower-case) text a non-special token string stands for.
  virtual std::string TokenString(std::int64_t id) const = 0;
  virtual bool IsSpecial(std::int64_t id) const = 0;
  virtual std::string Surface(const std::string& token) const = 0;
};
using TokenizerPtr = std::unique_ptr<Tokenizer>;

// Parses the contents of a tokenizer.json. `context_length` applies to
// CLIP-style BPE (0: no padding or truncation).
Result<TokenizerPtr> ParseTokenizer(std::string_view json, std::size_t context_length = 77);
Result<TokenizerPtr> LoadTokenizer(const std::filesystem::path& path,
                                   std::size_t context_length = 77);

// The tokenizer a model folder ships: its tokenizer.json, else its
// vocab.json and merges.txt (a byte-level BPE, with CLIP's conventions when
// the vocabulary has "</w>" forms; special_tokens_map.json, when present,
// names the unknown and padding tokens, which default to CLIP's
// <|endoftext|>). NotFound when the folder has neither.
Result<TokenizerPtr> LoadModelTokenizer(const std::filesystem::path& folder,
                                        std::size_t context_length = 77);

// GPT-2's reversible map from bytes to printable code points (UTF-8):
// printable Latin-1 bytes map to themselves, the others to 256 upwards.
const std::vector<std::string>& ByteSymbols();

// The bytes a string of those symbols stands for (symbols outside the map
// are dropped): the inverse of ByteSymbols, for detokenising.
std::string BytesOfSymbols(std::string_view symbols);

// True when `text` is well-formed UTF-8.
bool IsValidUtf8(std::string_view text);

}  // namespace braid
