// The tokenizer.json of a byte-level BPE, in Hugging Face's format, for the
// stand-in models this project writes (modelgen's CLIP tokenizer, the
// Whisper-shaped models): ParseTokenizer and the whisper backend read it
// back.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace braid::onnxgen {

struct BpeTokenizerFile {
  std::vector<std::pair<std::string, std::int64_t>> vocab;  // token, id; in this order
  std::vector<std::pair<std::string, std::string>> merges;  // by rank
  std::vector<std::pair<std::int64_t, std::string>> added;  // the special tokens: id, content
  std::string end_of_word_suffix;                           // empty: none ("</w>" for CLIP)
  std::string unk_token;                                    // empty: none
};

std::string TokenizerJson(const BpeTokenizerFile& file);

}  // namespace braid::onnxgen
