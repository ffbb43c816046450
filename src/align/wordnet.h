// WordNet 3.0 as Debian's wordnet-base installs it (/usr/share/wordnet):
// the synsets of the four data files, and the text pairs braid's text
// embedder learns from.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/status.h"

namespace braid::align {

inline constexpr char kDebianWordNet[] = "/usr/share/wordnet";

struct Synset {
  std::string id;                   // part of speech and offset: "n02084071"
  std::vector<std::string> lemmas;  // "hot dog" (underscores as spaces, markers like "(a)" cut)
  std::string definition;           // the gloss before its examples
  std::vector<std::string> examples;
  std::vector<std::string> hypernyms;  // ids (hypernyms, instance hypernyms, similar adjectives)
  int uses = 0;  // how often its senses were tagged in WordNet's corpus (cntlist.rev)
};

// The synsets of data.noun, data.verb, data.adj and data.adv in `dir`, with
// their tag counts when cntlist.rev is there. NotFound when a data file is
// missing (install wordnet-base), InvalidArgument for a malformed line.
Result<std::vector<Synset>> ReadWordNet(const std::filesystem::path& dir);

// Whether `synset` belongs to the held-out split (about one in `every`,
// chosen by a hash of its id, so the split does not depend on the order of
// the files).
bool HeldOut(const Synset& synset, int every = 10);

struct TextPair {
  std::string first, second;
};

// Positive pairs from the synsets not held out: each lemma with its
// definition, synonyms with each other, a lemma with its hypernym's lemma
// and each example with its synset's first lemma. A synset whose senses are
// in common use (tagged at least once) gives its pairs twice, so everyday
// words weigh more than rare ones. Pairs that touch a held-out synset are
// left out.
std::vector<TextPair> TrainingPairs(const std::vector<Synset>& synsets, int held_out_every = 10);

// What the held-out synsets ask, row i of one side against row i of the
// other: a definition and its synset's first lemma; a lemma and its first
// synonym (synsets with two lemmas or more).
struct HeldOutSets {
  std::vector<std::string> definitions, lemmas;
  std::vector<std::string> synonyms_a, synonyms_b;
};
HeldOutSets HeldOutQueries(const std::vector<Synset>& synsets, int held_out_every = 10);

// query<TAB>document lines, '#' starting a comment line (the format of
// bench/embeddings/everyday_pairs.tsv). NotFound when the file is missing.
Result<std::vector<TextPair>> ReadTextPairs(const std::filesystem::path& path);

}  // namespace braid::align
