// textembed: trains braid's own text embedder on WordNet 3.0 and writes it
// as a served model folder (model.onnx and tokenizer.json). The build runs
// it once to fill the embedded default repository's `text-embed`.
//
//   textembed --out DIR [--cache DIR] [--wordnet /usr/share/wordnet] [--epochs N] ...
//
// With --cache, a model trained before from the same WordNet files, options
// and training revision (kTextEmbedRevision) is copied from there instead of
// trained again: the build reruns this tool whenever a library it links
// changes, and training takes minutes.
//
// One synset in ten is held out of training (align/wordnet.h); after
// training it prints how well the model finds, among the held-out synsets,
// the lemma of a definition and the synonym of a lemma.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <filesystem>

#include "align/metrics.h"
#include "align/onnx_model.h"
#include "align/text_trainer.h"
#include "align/wordnet.h"
#include "core/file_util.h"
#include "core/hash.h"

namespace braid::align {
namespace {

void PrintRetrieval(const std::string& what, std::size_t count, const RetrievalMetrics& m) {
  const RetrievalMetrics chance = ChanceMetrics(static_cast<std::int64_t>(count));
  fmt::print(
      "  {} ({} held-out queries): recall@1 {:.3f}, recall@10 {:.3f}, MRR {:.3f} "
      "(chance: MRR {:.4f})\n",
      what, count, m.recall_at_1, m.recall_at_10, m.mrr, chance.mrr);
}

constexpr const char* kModelFiles[] = {"model.onnx", "tokenizer.json"};

// The cache entry's name: a hash of everything the weights depend on.
std::string CacheKey(const std::filesystem::path& wordnet, const NgramSpec& spec,
                     const TextTrainOptions& options) {
  Hasher hasher;
  hasher.Add(std::int64_t{kTextEmbedRevision});
  for (const char* file : {"data.noun", "data.verb", "data.adj", "data.adv", "cntlist.rev"}) {
    auto bytes = ReadFile(wordnet / file);
    hasher.Add(bytes.ok() ? *bytes : std::string());
  }
  hasher.Add(NgramTokenizerJson(spec))
      .Add(std::int64_t{options.epochs})
      .Add(options.batch_size)
      .Add(options.dim)
      .Add(std::int64_t{options.seed})
      .Add(fmt::format("{} {}", options.learning_rate, options.temperature));
  return hasher.Finish().ToHex();
}

// Copies every model file from `from` to `to`; false when one is missing.
bool CopyModel(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::error_code error;
  std::filesystem::create_directories(to, error);
  for (const char* file : kModelFiles) {
    std::filesystem::copy_file(from / file, to / file,
                               std::filesystem::copy_options::overwrite_existing, error);
    if (error) return false;
  }
  return true;
}

}  // namespace
}  // namespace braid::align

int main(int argc, char** argv) {
  using namespace braid;
  using namespace braid::align;
  CLI::App app{"textembed: trains braid's text embedder on WordNet and writes the model folder"};
  std::string wordnet = kDebianWordNet;
  std::string out;
  NgramSpec spec;
  TextTrainOptions options;
  app.add_option("--out", out, "Folder to write model.onnx and tokenizer.json to")->required();
  app.add_option("--wordnet", wordnet, "WordNet 3.0 dict folder (Debian's wordnet-base)")
      ->capture_default_str();
  app.add_option("--epochs", options.epochs, "Passes over the pairs")->capture_default_str();
  app.add_option("--dim", options.dim, "Embedding width")->capture_default_str();
  app.add_option("--batch", options.batch_size, "Pairs per step")->capture_default_str();
  app.add_option("--learning-rate", options.learning_rate, "Adam's initial step size")
      ->capture_default_str();
  app.add_option("--temperature", options.temperature, "InfoNCE temperature")
      ->capture_default_str();
  app.add_option("--seed", options.seed, "Initial weights and batch order")->capture_default_str();
  app.add_option("--word-buckets", spec.word_buckets, "Hash buckets for words")
      ->capture_default_str();
  app.add_option("--ngram-buckets", spec.ngram_buckets, "Hash buckets for character n-grams")
      ->capture_default_str();
  app.add_option("--min-n", spec.min_n, "Shortest character n-gram")->capture_default_str();
  app.add_option("--max-n", spec.max_n, "Longest character n-gram")->capture_default_str();
  app.add_option("--max-features", spec.max_features, "Features a text keeps (the input width)")
      ->capture_default_str();
  std::string cache;
  app.add_option("--cache", cache, "Folder of models trained before, reused when nothing changed");
  std::string eval_pairs;
  app.add_option("--eval-pairs", eval_pairs,
                 "Also print query → document retrieval on these query<TAB>document pairs "
                 "(bench/embeddings/everyday_pairs.tsv); they are never trained on");
  CLI11_PARSE(app, argc, argv);

  std::filesystem::path entry;
  if (!cache.empty()) {
    entry = std::filesystem::path(cache) / CacheKey(wordnet, spec, options);
    if (CopyModel(entry, out)) {
      fmt::print("textembed: reused the model trained before ({})\n", entry.string());
      return 0;
    }
  }

  auto synsets = ReadWordNet(wordnet);
  if (!synsets.ok()) {
    fmt::print(stderr, "textembed: {}\n", synsets.status().message());
    return 1;
  }
  const std::vector<TextPair> pairs = TrainingPairs(*synsets);
  fmt::print("textembed: {} synsets, {} training pairs, {} feature rows × {} dims\n",
             synsets->size(), pairs.size(), spec.rows(), options.dim);
  auto encoder = TrainTextEncoder(pairs, spec, options, [&](const TextEpoch& epoch) {
    fmt::print("  epoch {}/{}: loss {:.3f} ({:.0f} s)\n", epoch.epoch, options.epochs, epoch.loss,
               epoch.elapsed_s);
    std::fflush(stdout);
  });
  if (!encoder.ok()) {
    fmt::print(stderr, "textembed: {}\n", encoder.status().message());
    return 1;
  }
  const HeldOutSets held_out = HeldOutQueries(*synsets);
  PrintRetrieval(
      "definition → lemma", held_out.definitions.size(),
      EvaluateRetrieval(encoder->Encode(held_out.definitions), encoder->Encode(held_out.lemmas)));
  PrintRetrieval("lemma → synonym", held_out.synonyms_a.size(),
                 EvaluateRetrieval(encoder->Encode(held_out.synonyms_a),
                                   encoder->Encode(held_out.synonyms_b)));
  if (!eval_pairs.empty()) {
    auto pairs = ReadTextPairs(eval_pairs);
    if (!pairs.ok()) {
      fmt::print(stderr, "textembed: {}\n", pairs.status().message());
      return 1;
    }
    std::vector<std::string> queries, documents;
    for (auto& pair : *pairs) {
      queries.push_back(std::move(pair.first));
      documents.push_back(std::move(pair.second));
    }
    PrintRetrieval("query → document, " + eval_pairs, queries.size(),
                   EvaluateRetrieval(encoder->Encode(queries), encoder->Encode(documents)));
  }
  if (Status s = ExportTextEmbedModel(*encoder, out); !s.ok()) {
    fmt::print(stderr, "textembed: {}\n", s.message());
    return 1;
  }
  fmt::print("textembed: wrote {}/model.onnx and tokenizer.json\n", out);
  // Into the cache by a rename, so that an interrupted copy is never reused.
  if (!entry.empty()) {
    const auto partial = entry.string() + ".partial";
    std::error_code error;
    std::filesystem::remove_all(partial, error);
    bool kept = CopyModel(out, partial);
    if (kept) {
      std::filesystem::rename(partial, entry, error);
      kept = !error;
    }
    if (!kept) fmt::print(stderr, "textembed: could not keep a copy in {}\n", entry.string());
  }
  return 0;
}
