#include "align/wordnet.h"

#include <fstream>
#include <sstream>
#include <unordered_map>

#include "core/hash.h"

namespace braid::align {
namespace {

constexpr const char* kDataFiles[] = {"data.noun", "data.verb", "data.adj", "data.adv"};

// The sense-key digit of a synset type (n v a r s).
char SenseTypeDigit(char type) {
  switch (type) {
    case 'n':
      return '1';
    case 'v':
      return '2';
    case 'a':
      return '3';
    case 'r':
      return '4';
    default:
      return '5';
  }
}

// Satellite adjectives live in data.adj beside the heads; one id space.
char FilePos(char type) { return type == 's' ? 'a' : type; }

std::string Lower(std::string text) {
  for (char& c : text) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return text;
}

// "hot_dog" → "hot dog"; "long(a)" → "long".
std::string LemmaText(std::string word) {
  if (auto paren = word.find('('); paren != std::string::npos) word.resize(paren);
  for (char& c : word) {
    if (c == '_') c = ' ';
  }
  return word;
}

std::string Trim(std::string_view text) {
  const auto begin = text.find_first_not_of(" ;");
  if (begin == std::string_view::npos) return "";
  const auto end = text.find_last_not_of(" ;");
  return std::string(text.substr(begin, end - begin + 1));
}

// The definition and the quoted examples of a gloss.
void SplitGloss(std::string_view gloss, Synset* synset) {
  const auto quote = gloss.find('"');
  synset->definition = Trim(gloss.substr(0, quote));
  for (auto open = quote; open != std::string_view::npos;) {
    const auto close = gloss.find('"', open + 1);
    if (close == std::string_view::npos) break;
    if (std::string example = Trim(gloss.substr(open + 1, close - open - 1)); !example.empty())
      synset->examples.push_back(std::move(example));
    open = gloss.find('"', close + 1);
  }
}

// Sense keys' "lemma%type:lexfile:lexid" → synset index.
using SenseIndex = std::unordered_map<std::string, std::size_t>;

Status ReadDataFile(const std::filesystem::path& path, std::vector<Synset>* synsets,
                    SenseIndex* senses) {
  std::ifstream in(path);
  if (!in) {
    return NotFound("{} is missing (Debian's wordnet-base installs WordNet 3.0 there)",
                    path.string());
  }
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty() || line[0] == ' ') continue;  // the licence header
    const auto bar = line.find(" | ");
    if (bar == std::string::npos) {
      return InvalidArgument("{}:{}: no gloss separator", path.string(), number);
    }
    std::istringstream fields(line.substr(0, bar));
    std::string offset, lexfile, type, count_hex;
    if (!(fields >> offset >> lexfile >> type >> count_hex) || type.size() != 1) {
      return InvalidArgument("{}:{}: malformed synset header", path.string(), number);
    }
    Synset synset;
    synset.id = std::string(1, FilePos(type[0])) + offset;
    const int words = static_cast<int>(std::strtol(count_hex.c_str(), nullptr, 16));
    for (int w = 0; w < words; ++w) {
      std::string word, lexid;
      if (!(fields >> word >> lexid)) {
        return InvalidArgument("{}:{}: fewer words than its count", path.string(), number);
      }
      std::string lemma = LemmaText(word);
      std::string key = Lower(word.substr(0, word.find('('))) + "%" + SenseTypeDigit(type[0]) +
                        ":" + lexfile + ":" + (lexid.size() == 1 ? "0" : "") + lexid;
      senses->emplace(std::move(key), synsets->size());
      synset.lemmas.push_back(std::move(lemma));
    }
    int pointers = 0;
    if (!(fields >> pointers)) {
      return InvalidArgument("{}:{}: no pointer count", path.string(), number);
    }
    for (int p = 0; p < pointers; ++p) {
      std::string symbol, target, pos, source_target;
      if (!(fields >> symbol >> target >> pos >> source_target) || pos.empty()) {
        return InvalidArgument("{}:{}: fewer pointers than its count", path.string(), number);
      }
      if (symbol == "@" || symbol == "@i" || symbol == "&")
        synset.hypernyms.push_back(std::string(1, FilePos(pos[0])) + target);
    }
    SplitGloss(std::string_view(line).substr(bar + 3), &synset);
    synsets->push_back(std::move(synset));
  }
  return Status::Ok();
}

// Adds cntlist.rev's tag counts ("dog%1:05:00:: 1 42") to their synsets.
void ReadTagCounts(const std::filesystem::path& path, const SenseIndex& senses,
                   std::vector<Synset>* synsets) {
  std::ifstream in(path);
  std::string key;
  int sense = 0, count = 0;
  while (in >> key >> sense >> count) {
    // The key up to its third colon: lemma%type:lexfile:lexid.
    std::size_t colon = 0;
    for (int k = 0; k < 3 && colon != std::string::npos; ++k) colon = key.find(':', colon + 1);
    auto it = senses.find(key.substr(0, colon));
    if (it != senses.end()) (*synsets)[it->second].uses += count;
  }
}

}  // namespace

Result<std::vector<Synset>> ReadWordNet(const std::filesystem::path& dir) {
  std::vector<Synset> synsets;
  SenseIndex senses;
  for (const char* file : kDataFiles) {
    BRAID_RETURN_IF_ERROR(ReadDataFile(dir / file, &synsets, &senses));
  }
  ReadTagCounts(dir / "cntlist.rev", senses, &synsets);
  return synsets;
}

bool HeldOut(const Synset& synset, int every) {
  return HashBytes(std::as_bytes(std::span(synset.id.data(), synset.id.size()))).low %
             static_cast<std::uint64_t>(every) ==
         0;
}

std::vector<TextPair> TrainingPairs(const std::vector<Synset>& synsets, int held_out_every) {
  std::unordered_map<std::string_view, const Synset*> by_id;
  for (const auto& synset : synsets) by_id.emplace(synset.id, &synset);
  constexpr std::size_t kMaxLemmas = 4;
  std::vector<TextPair> pairs;
  for (const auto& synset : synsets) {
    if (HeldOut(synset, held_out_every) || synset.lemmas.empty()) continue;
    const std::size_t lemmas = std::min(synset.lemmas.size(), kMaxLemmas);
    const int copies = synset.uses > 0 ? 2 : 1;
    for (int copy = 0; copy < copies; ++copy) {
      for (std::size_t l = 0; l < lemmas; ++l) {
        if (!synset.definition.empty()) pairs.push_back({synset.lemmas[l], synset.definition});
        if (l + 1 < lemmas) pairs.push_back({synset.lemmas[l], synset.lemmas[l + 1]});
      }
      for (const auto& hypernym_id : synset.hypernyms) {
        auto it = by_id.find(hypernym_id);
        if (it == by_id.end() || HeldOut(*it->second, held_out_every) || it->second->lemmas.empty())
          continue;
        pairs.push_back({synset.lemmas[0], it->second->lemmas[0]});
      }
      for (const auto& example : synset.examples) pairs.push_back({example, synset.lemmas[0]});
    }
  }
  return pairs;
}

HeldOutSets HeldOutQueries(const std::vector<Synset>& synsets, int held_out_every) {
  HeldOutSets sets;
  for (const auto& synset : synsets) {
    if (!HeldOut(synset, held_out_every) || synset.lemmas.empty()) continue;
    if (!synset.definition.empty()) {
      sets.definitions.push_back(synset.definition);
      sets.lemmas.push_back(synset.lemmas[0]);
    }
    if (synset.lemmas.size() >= 2) {
      sets.synonyms_a.push_back(synset.lemmas[0]);
      sets.synonyms_b.push_back(synset.lemmas[1]);
    }
  }
  return sets;
}

Result<std::vector<TextPair>> ReadTextPairs(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return NotFound("{} is missing", path.string());
  std::vector<TextPair> pairs;
  for (std::string line; std::getline(in, line);) {
    const auto tab = line.find('\t');
    if (line.empty() || line[0] == '#' || tab == std::string::npos) continue;
    pairs.push_back({line.substr(0, tab), line.substr(tab + 1)});
  }
  return pairs;
}

}  // namespace braid::align
