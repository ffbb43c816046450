// Writes the tokenizer.json of the bundled clip-text stand-in: a byte-level
// BPE with CLIP's conventions (</w> end-of-word suffix, <|startoftext|> =
// 49406, <|endoftext|> = 49407 in a 49408-entry id space), its merges
// trained on a small built-in English corpus. Deterministic.
#include "tools/modelgen/tokenizer_gen.h"

#include <cctype>
#include <fstream>
#include <map>
#include <sstream>

#include "onnxgen/tokenizer_json.h"
#include "preprocess/tokenizer.h"

namespace braid::modelgen {
namespace {

constexpr int kMerges = 1500;
constexpr std::int64_t kStartOfText = 49406;
constexpr std::int64_t kEndOfText = 49407;

constexpr char kCorpus[] =
    "a photo of a cat sitting on a sofa a photo of a dog running in the park the quick brown fox "
    "jumps over "
    "the lazy dog please describe what you see in this picture what is written on the sign read "
    "the text in "
    "the image transcribe the voice note summarise the meeting the customer asked about the "
    "invoice number "
    "and the total amount due the order will arrive tomorrow morning thank you for your help call "
    "me back "
    "later the weather is nice today open the door the meeting starts at ten a red car parked next "
    "to a "
    "white building a man riding a bicycle on the street a woman holding an umbrella in the rain "
    "children "
    "playing football on the grass a bowl of fruit on a wooden table a plate of food with rice and "
    "chicken "
    "a screenshot of a web page with a login form an invoice with a table of items and prices a "
    "receipt "
    "from a coffee shop a chart showing sales by month a map of the city centre a diagram of the "
    "system "
    "how can i help you today where is my package when does the store open is this product in "
    "stock can "
    "you recommend a restaurant near the station what time is it in london translate this sentence "
    "into "
    "french write a short report about the picture and the audio recording the speaker says that "
    "the "
    "project is on schedule and the next release is planned for the end of the month";

}  // namespace

bool WriteClipTokenizer(const std::string& path) {
  const auto& bytes = ByteSymbols();
  // Word frequencies; each word a sequence of byte symbols with </w> on the last.
  std::map<std::vector<std::string>, int> words;
  std::istringstream corpus(kCorpus);
  for (std::string word; corpus >> word;) {
    std::vector<std::string> symbols;
    for (unsigned char c : word) symbols.push_back(bytes[c]);
    symbols.back() += "</w>";
    ++words[symbols];
  }
  std::vector<std::pair<std::string, std::string>> merges;
  for (int step = 0; step < kMerges; ++step) {
    std::map<std::pair<std::string, std::string>, int> pairs;
    for (const auto& [symbols, count] : words) {
      for (std::size_t i = 0; i + 1 < symbols.size(); ++i)
        pairs[{symbols[i], symbols[i + 1]}] += count;
    }
    if (pairs.empty()) break;
    auto best = pairs.begin();  // ties: the lexicographically first pair, for determinism
    for (auto it = pairs.begin(); it != pairs.end(); ++it) {
      if (it->second > best->second) best = it;
    }
    if (best->second < 2) break;
    const auto [left, right] = best->first;
    merges.push_back(best->first);
    std::map<std::vector<std::string>, int> merged_words;
    for (const auto& [symbols, count] : words) {
      std::vector<std::string> out;
      for (std::size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
          out.push_back(left + right);
          ++i;
        } else {
          out.push_back(symbols[i]);
        }
      }
      merged_words[out] += count;
    }
    words = std::move(merged_words);
  }

  onnxgen::BpeTokenizerFile file;
  file.added = {{kStartOfText, "<|startoftext|>"}, {kEndOfText, "<|endoftext|>"}};
  file.end_of_word_suffix = "</w>";
  file.unk_token = "<|endoftext|>";
  std::int64_t id = 0;
  for (const auto& symbol : bytes) file.vocab.emplace_back(symbol, id++);
  for (const auto& symbol : bytes) file.vocab.emplace_back(symbol + "</w>", id++);
  for (const auto& [left, right] : merges) file.vocab.emplace_back(left + right, id++);
  file.vocab.emplace_back("<|startoftext|>", kStartOfText);
  file.vocab.emplace_back("<|endoftext|>", kEndOfText);
  file.merges = std::move(merges);
  std::ofstream out(path, std::ios::trunc);
  out << onnxgen::TokenizerJson(file);
  return static_cast<bool>(out);
}

}  // namespace braid::modelgen
