// `braid align synth|train|eval`: the cross-modal alignment heads, trained
// and measured in-process.
//
// train writes the heads as the served `align` model: by default as a new
// version folder in the model repository's align/ (so a restart, or
// POST /v2/repository/models/align/load, serves it), or to --output.
#include <fmt/core.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include "align/metrics.h"
#include "align/onnx_model.h"
#include "align/pairs.h"
#include "align/synthetic.h"
#include "align/trainer.h"
#include "cli/commands.h"
#include "core/file_util.h"
#include "model/config.h"
#include "model/repository.h"

namespace braid::cli {
namespace {

using align::CrossModalMetrics;
using align::EmbeddingPairs;
using align::RetrievalMetrics;
using JsonWriter = rapidjson::PrettyWriter<rapidjson::StringBuffer>;

// Where the pairs come from: --pairs PREFIX, or --images and --texts.
struct PairOptions {
  std::string prefix;
  std::string images;
  std::string texts;

  void Add(CLI::App* command) {
    command->add_option("--pairs", prefix,
                        "Pairs PREFIX: reads PREFIX.image.npy and PREFIX.text.npy (FP32 [N, D], "
                        "row i of each a pair)");
    command->add_option("--images", images, "Image embeddings .npy (FP32 [N, D])");
    command->add_option("--texts", texts, "Text embeddings .npy (FP32 [N, D])");
  }
  Result<align::PairFiles> Files() const {
    if (!prefix.empty() && images.empty() && texts.empty()) {
      return align::PairFilesFromPrefix(prefix);
    }
    if (prefix.empty() && !images.empty() && !texts.empty()) {
      return align::PairFiles{images, texts};
    }
    return InvalidArgument("give the pairs as --pairs PREFIX, or as --images FILE --texts FILE");
  }
  Result<EmbeddingPairs> Load(std::int64_t expected_dim) const {
    BRAID_ASSIGN_OR_RETURN(auto files, Files());
    return align::LoadPairs(files, expected_dim);
  }
};

int Fail(const std::string& command, const Status& status) {
  fmt::print(stderr, "braid align {}: {}\n", command, status.message());
  return 2;
}

void WriteMetrics(JsonWriter& json, const RetrievalMetrics& metrics) {
  json.StartObject();
  json.Key("recall_at_1");
  json.Double(metrics.recall_at_1);
  json.Key("recall_at_5");
  json.Double(metrics.recall_at_5);
  json.Key("recall_at_10");
  json.Double(metrics.recall_at_10);
  json.Key("map_at_10");
  json.Double(metrics.map_at_10);
  json.EndObject();
}

void WriteMetrics(JsonWriter& json, const CrossModalMetrics& metrics) {
  json.StartObject();
  json.Key("text_to_image");
  WriteMetrics(json, metrics.text_to_image);
  json.Key("image_to_text");
  WriteMetrics(json, metrics.image_to_text);
  json.EndObject();
}

void WritePairs(JsonWriter& json, const align::PairFiles& files, const EmbeddingPairs& pairs) {
  json.StartObject();
  json.Key("images");
  json.String(files.images.string().c_str());
  json.Key("texts");
  json.String(files.texts.string().c_str());
  json.Key("count");
  json.Int64(pairs.count());
  json.Key("dim");
  json.Int64(pairs.dim());
  json.EndObject();
}

// One row of a metrics table: both directions.
void PrintRow(const std::string& label, const std::string& extra, const CrossModalMetrics& m) {
  auto cells = [](const RetrievalMetrics& r) {
    return fmt::format("{:6.3f} {:6.3f} {:6.3f} {:6.3f}", r.recall_at_1, r.recall_at_5,
                       r.recall_at_10, r.map_at_10);
  };
  fmt::print("{:<28}{:<18} {}   {}\n", label, extra, cells(m.text_to_image),
             cells(m.image_to_text));
}

void PrintHeader(const std::string& extra) {
  fmt::print("{:<28}{:<18} {:<27}   {}\n", "", "", "text -> image", "image -> text");
  fmt::print("{:<28}{:<18} {:>6} {:>6} {:>6} {:>6}   {:>6} {:>6} {:>6} {:>6}\n", "path", extra,
             "R@1", "R@5", "R@10", "mAP@10", "R@1", "R@5", "R@10", "mAP@10");
}

CrossModalMetrics Chance(std::int64_t count) {
  return {align::ChanceMetrics(count), align::ChanceMetrics(count)};
}

// --- synth ---

// synth measures the raw and oracle paths among at most this many pairs:
// ranking is quadratic in the count, and a training set needs no report.
constexpr std::int64_t kSynthGallery = 5000;

struct SynthOptions {
  align::SyntheticOptions synthetic;
  std::string out;
  bool json = false;
};

int RunSynth(const SynthOptions& options) {
  auto generated = align::GenerateSyntheticPairs(options.synthetic);
  if (!generated.ok()) return Fail("synth", generated.status());
  const auto files = align::PairFilesFromPrefix(options.out);
  if (const auto folder = std::filesystem::path(options.out).parent_path(); !folder.empty()) {
    std::error_code error;
    std::filesystem::create_directories(folder, error);
    if (error) {
      return Fail("synth", InvalidArgument("{}: cannot create the folder: {}", folder.string(),
                                           error.message()));
    }
  }
  if (auto status = align::SavePairs(generated->pairs, files); !status.ok()) {
    return Fail("synth", status);
  }
  const auto& s = options.synthetic;
  const std::int64_t gallery = std::min(s.count, kSynthGallery);
  auto first = [gallery](const EmbeddingPairs& pairs) {
    return EmbeddingPairs{pairs.images.topRows(gallery), pairs.texts.topRows(gallery)};
  };
  const auto raw = align::EvaluateCrossModal(first(generated->pairs));
  const auto oracle = align::EvaluateCrossModal(first(generated->oracle));
  if (options.json) {
    rapidjson::StringBuffer buffer;
    JsonWriter json(buffer);
    json.StartObject();
    json.Key("pairs");
    WritePairs(json, files, generated->pairs);
    json.Key("latent_dim");
    json.Int64(s.latent_dim);
    json.Key("nuisance_dim");
    json.Int64(s.nuisance_dim);
    json.Key("noise");
    json.Double(s.noise);
    json.Key("seed");
    json.Uint(s.seed);
    json.Key("world_seed");
    json.Uint(s.world_seed);
    json.Key("gallery");
    json.Int64(gallery);
    json.Key("raw");
    WriteMetrics(json, raw);
    json.Key("oracle");
    WriteMetrics(json, oracle);
    json.Key("chance");
    WriteMetrics(json, Chance(gallery));
    json.EndObject();
    fmt::print("{}\n", buffer.GetString());
    return 0;
  }
  fmt::print(
      "wrote {} and {}: {} pairs, {}-d (shared latent {}-d, nuisance {}-d per modality, noise "
      "{}, world seed {}, seed {})\n",
      files.images.string(), files.texts.string(), s.count, s.dim, s.latent_dim, s.nuisance_dim,
      s.noise, s.world_seed, s.seed);
  if (gallery == s.count) {
    fmt::print("retrieval among all {} pairs:\n", s.count);
  } else {
    fmt::print("retrieval among the first {} pairs:\n", gallery);
  }
  PrintHeader("dims");
  PrintRow("raw cosine", std::to_string(s.dim), raw);
  PrintRow("oracle (true maps)", std::to_string(s.latent_dim), oracle);
  PrintRow("chance", "", Chance(gallery));
  return 0;
}

// --- train ---

struct TrainCommandOptions {
  PairOptions pairs;
  align::TrainOptions train;
  double holdout = 0.2;
  std::string repository;
  std::string output;
  std::string report;
};

// Where trained heads go in a model repository: the next version folder of
// its align model, whose config fixes the heads' input and output widths.
struct RepositoryTarget {
  std::filesystem::path model_dir;
  std::int64_t version = 0;
  std::int64_t input_dim = 0;
  std::int64_t output_dim = 0;
};

Result<RepositoryTarget> FindRepositoryTarget(const std::filesystem::path& repository) {
  const auto model_dir = repository / "align";
  std::error_code error;
  if (!std::filesystem::is_regular_file(model_dir / "config.yaml", error)) {
    return NotFound("no align model in {} (expected {})", repository.string(),
                    (model_dir / "config.yaml").string());
  }
  BRAID_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(model_dir));
  auto dims = [&](const std::vector<TensorSpec>& specs, const std::string& a,
                  const std::string& b) -> std::int64_t {
    if (specs.size() != 2 || specs[0].name != a || specs[1].name != b ||
        specs[0].dims.size() != 1 || specs[0].dims != specs[1].dims || specs[0].dims[0] < 1) {
      return 0;
    }
    return specs[0].dims[0];
  };
  RepositoryTarget target;
  target.model_dir = model_dir;
  target.input_dim = dims(config.inputs, "image_embeds", "text_embeds");
  target.output_dim = dims(config.outputs, "image_aligned", "text_aligned");
  if (target.input_dim == 0 || target.output_dim == 0) {
    return InvalidArgument(
        "{}: the align model must take image_embeds and text_embeds [D] and give image_aligned "
        "and text_aligned [K]",
        config.config_path().string());
  }
  const auto versions = ListVersions(model_dir);
  target.version = versions.empty() ? 1 : versions.back() + 1;
  return target;
}

// Writes the model into a hidden folder first and renames it into place, so
// that a load never sees a version folder without its model file.
Result<std::filesystem::path> WriteVersion(const align::AlignHeads& heads,
                                           const RepositoryTarget& target) {
  const auto staging = target.model_dir / fmt::format(".align-train-{}", target.version);
  const auto final_dir = target.model_dir / std::to_string(target.version);
  std::error_code error;
  std::filesystem::remove_all(staging, error);
  std::filesystem::create_directories(staging, error);
  if (error) return Internal("cannot create {}: {}", staging.string(), error.message());
  BRAID_RETURN_IF_ERROR(align::ExportAlignModel(heads, staging / "model.onnx"));
  std::filesystem::rename(staging, final_dir, error);
  if (error) {
    return Internal("cannot rename {} to {}: {}", staging.string(), final_dir.string(),
                    error.message());
  }
  return final_dir / "model.onnx";
}

std::string Recall10(const CrossModalMetrics& m) {
  return fmt::format("text->image {:.3f} image->text {:.3f}", m.text_to_image.recall_at_10,
                     m.image_to_text.recall_at_10);
}

std::string TrainReport(const TrainCommandOptions& options, const align::PairFiles& files,
                        const EmbeddingPairs& pairs, const EmbeddingPairs& validation,
                        const align::TrainResult& result, const CrossModalMetrics& raw,
                        const CrossModalMetrics& untrained, const CrossModalMetrics& trained,
                        const std::filesystem::path& model) {
  rapidjson::StringBuffer buffer;
  JsonWriter json(buffer);
  const auto& train = options.train;
  json.StartObject();
  json.Key("pairs");
  WritePairs(json, files, pairs);
  json.Key("training_pairs");
  json.Int64(pairs.count() - validation.count());
  json.Key("validation_pairs");
  json.Int64(validation.count());
  json.Key("input_dim");
  json.Int64(result.heads.input_dim());
  json.Key("output_dim");
  json.Int64(result.heads.output_dim());
  json.Key("options");
  json.StartObject();
  json.Key("epochs");
  json.Int(train.epochs);
  json.Key("batch_size");
  json.Int64(train.batch_size);
  json.Key("learning_rate");
  json.Double(train.learning_rate);
  json.Key("temperature");
  json.Double(train.temperature);
  json.Key("learn_temperature");
  json.Bool(train.learn_temperature);
  json.Key("holdout");
  json.Double(options.holdout);
  json.Key("seed");
  json.Uint(train.seed);
  json.EndObject();
  json.Key("epochs");
  json.StartArray();
  for (const auto& epoch : result.epochs) {
    json.StartObject();
    json.Key("epoch");
    json.Int(epoch.epoch);
    json.Key("loss");
    json.Double(epoch.loss);
    json.Key("temperature");
    json.Double(epoch.temperature);
    json.Key("elapsed_s");
    json.Double(epoch.elapsed_s);
    json.Key("validation");
    WriteMetrics(json, epoch.validation);
    json.EndObject();
  }
  json.EndArray();
  json.Key("final_loss");
  json.Double(result.epochs.back().loss);
  json.Key("temperature");
  json.Double(result.heads.temperature());
  json.Key("training_seconds");
  json.Double(result.seconds);
  json.Key("validation");
  json.StartObject();
  json.Key("raw");
  WriteMetrics(json, raw);
  json.Key("untrained");
  WriteMetrics(json, untrained);
  json.Key("trained");
  WriteMetrics(json, trained);
  json.Key("chance");
  WriteMetrics(json, Chance(validation.count()));
  json.EndObject();
  json.Key("model");
  json.String(model.string().c_str());
  json.EndObject();
  return buffer.GetString();
}

int RunTrain(const TrainCommandOptions& options) {
  align::TrainOptions train = options.train;
  std::optional<RepositoryTarget> target;
  if (options.output.empty()) {
    auto found = FindRepositoryTarget(ModelRepositoryOrDefault(options.repository));
    if (!found.ok()) return Fail("train", found.status());
    target = *found;
    train.output_dim = target->output_dim;
  } else if (!options.repository.empty()) {
    return Fail("train", InvalidArgument("give --model-repository or --output, not both"));
  }
  auto files = options.pairs.Files();
  if (!files.ok()) return Fail("train", files.status());
  auto pairs = align::LoadPairs(*files, target ? target->input_dim : 0);
  if (!pairs.ok()) return Fail("train", pairs.status());
  if (pairs->count() < 3) {
    return Fail("train", InvalidArgument("training needs at least 3 pairs (2 to train on, 1 to "
                                         "validate), not {}",
                                         pairs->count()));
  }
  auto [training, validation] = align::SplitPairs(*pairs, options.holdout, train.seed);
  fmt::print(
      "training {}->{} heads on {} pairs, validating on {} held out; batch {}, {} epochs, "
      "lr {}, temperature {}{}\n",
      pairs->dim(), train.output_dim, training.count(), validation.count(),
      std::min(train.batch_size, training.count()), train.epochs, train.learning_rate,
      train.temperature, train.learn_temperature ? " (learned)" : "");
  std::fflush(stdout);
  auto result =
      align::TrainAlignHeads(training, validation, train, [&](const align::EpochProgress& epoch) {
        fmt::print("epoch {:>3}/{}  loss {:.4f}  val recall@10 {}  temperature {:.4f}  {:.1f} s\n",
                   epoch.epoch, train.epochs, epoch.loss, Recall10(epoch.validation),
                   epoch.temperature, epoch.elapsed_s);
        std::fflush(stdout);
      });
  if (!result.ok()) return Fail("train", result.status());

  std::filesystem::path model = options.output;
  if (target) {
    auto written = WriteVersion(result->heads, *target);
    if (!written.ok()) return Fail("train", written.status());
    model = *written;
  } else if (auto status = align::ExportAlignModel(result->heads, model); !status.ok()) {
    return Fail("train", status);
  }
  const auto raw = align::EvaluateCrossModal(validation);
  const auto untrained = align::EvaluateCrossModal(result->initial.Project(validation));
  const auto trained = align::EvaluateCrossModal(result->heads.Project(validation));
  fmt::print("validation ({} pairs):\n", validation.count());
  PrintHeader("dims");
  PrintRow("raw cosine", std::to_string(pairs->dim()), raw);
  PrintRow("untrained heads", std::to_string(train.output_dim), untrained);
  PrintRow("trained heads", std::to_string(train.output_dim), trained);
  PrintRow("chance", "", Chance(validation.count()));
  fmt::print("trained in {:.1f} s; wrote {}\n", result->seconds, model.string());
  if (target) {
    fmt::print(
        "it is version {} of align: restart braid serve, or POST "
        "/v2/repository/models/align/load, to serve it\n",
        target->version);
  }
  if (!options.report.empty()) {
    auto status = WriteFile(options.report, TrainReport(options, *files, *pairs, validation,
                                                        *result, raw, untrained, trained, model));
    if (!status.ok()) return Fail("train", status);
  }
  return 0;
}

// --- eval ---

struct EvalOptions {
  PairOptions pairs;
  std::string repository;
  std::string model;
  bool json = false;
};

// What one retrieval path costs. FLOPs count a multiply-add as 2.
struct PathCost {
  std::int64_t dims = 0;        // of the vectors compared
  std::int64_t parameters = 0;  // both heads
  // Turning one embedding into a search vector: L2 normalisation (3 FLOPs
  // per dim) for raw; x W + b then normalisation for aligned.
  std::int64_t flops_per_embedding = 0;
  std::int64_t flops_per_comparison = 0;  // a dot product against one stored item
  std::int64_t bytes_per_item = 0;        // FP32 storage of one stored item
  std::int64_t FlopsPerQuery(std::int64_t gallery) const {
    return flops_per_embedding + gallery * flops_per_comparison;
  }
};

PathCost RawCost(std::int64_t dim) { return {dim, 0, 3 * dim, 2 * dim, 4 * dim}; }

PathCost AlignedCost(std::int64_t in, std::int64_t out) {
  return {out, 2 * (in * out + out), 2 * in * out + out + 3 * out, 2 * out, 4 * out};
}

void WritePath(JsonWriter& json, const std::string& name, const PathCost& cost,
               std::int64_t gallery, const CrossModalMetrics& metrics) {
  json.StartObject();
  json.Key("name");
  json.String(name.c_str());
  json.Key("dims");
  json.Int64(cost.dims);
  json.Key("parameters");
  json.Int64(cost.parameters);
  json.Key("flops_per_embedding");
  json.Int64(cost.flops_per_embedding);
  json.Key("flops_per_comparison");
  json.Int64(cost.flops_per_comparison);
  json.Key("flops_per_query");
  json.Int64(cost.FlopsPerQuery(gallery));
  json.Key("bytes_per_item");
  json.Int64(cost.bytes_per_item);
  json.Key("text_to_image");
  WriteMetrics(json, metrics.text_to_image);
  json.Key("image_to_text");
  WriteMetrics(json, metrics.image_to_text);
  json.EndObject();
}

Result<std::filesystem::path> NewestAlignModel(const std::filesystem::path& repository) {
  const auto versions = ListVersions(repository / "align");
  if (versions.empty()) {
    return NotFound("no align model in {} (give --model PATH.onnx)", repository.string());
  }
  return repository / "align" / std::to_string(versions.back()) / "model.onnx";
}

int RunEval(const EvalOptions& options) {
  auto files = options.pairs.Files();
  if (!files.ok()) return Fail("eval", files.status());
  auto pairs = align::LoadPairs(*files, 0);
  if (!pairs.ok()) return Fail("eval", pairs.status());
  std::filesystem::path model = options.model;
  if (model.empty()) {
    auto newest = NewestAlignModel(ModelRepositoryOrDefault(options.repository));
    if (!newest.ok()) return Fail("eval", newest.status());
    model = *newest;
  }
  auto aligned = align::RunAlignModel(model, *pairs);
  if (!aligned.ok()) return Fail("eval", aligned.status());
  const auto raw_metrics = align::EvaluateCrossModal(*pairs);
  const auto aligned_metrics = align::EvaluateCrossModal(*aligned);
  const PathCost raw = RawCost(pairs->dim());
  const PathCost heads = AlignedCost(pairs->dim(), aligned->dim());
  const std::int64_t gallery = pairs->count();

  if (options.json) {
    rapidjson::StringBuffer buffer;
    JsonWriter json(buffer);
    json.StartObject();
    json.Key("pairs");
    WritePairs(json, *files, *pairs);
    json.Key("model");
    json.String(model.string().c_str());
    json.Key("paths");
    json.StartArray();
    WritePath(json, "raw", raw, gallery, raw_metrics);
    WritePath(json, "aligned", heads, gallery, aligned_metrics);
    json.EndArray();
    json.Key("chance");
    WriteMetrics(json, Chance(gallery));
    json.EndObject();
    fmt::print("{}\n", buffer.GetString());
    return 0;
  }
  fmt::print("{} pairs ({}-d), each query ranks all {}; aligned through {}\n", gallery,
             pairs->dim(), gallery, model.string());
  PrintHeader("dims  params");
  PrintRow("raw cosine", fmt::format("{:<5} {}", raw.dims, raw.parameters), raw_metrics);
  PrintRow("aligned heads", fmt::format("{:<5} {}", heads.dims, heads.parameters), aligned_metrics);
  PrintRow("chance", "", Chance(gallery));
  fmt::print("\ncost (FLOPs; a multiply-add is 2)   {:>14} {:>14}\n", "raw", "aligned");
  auto line = [](const std::string& label, std::int64_t a, std::int64_t b) {
    fmt::print("{:<36}{:>14} {:>14}\n", label, a, b);
  };
  line("per embedding (project, normalise)", raw.flops_per_embedding, heads.flops_per_embedding);
  line("per comparison (one stored item)", raw.flops_per_comparison, heads.flops_per_comparison);
  line(fmt::format("per query over {} items", gallery), raw.FlopsPerQuery(gallery),
       heads.FlopsPerQuery(gallery));
  line("bytes stored per item (FP32)", raw.bytes_per_item, heads.bytes_per_item);
  line("parameters", raw.parameters, heads.parameters);
  return 0;
}

}  // namespace

void AddAlignCommand(CLI::App& app, int* exit_code) {
  auto* align = app.add_subcommand(
      "align", "Train and evaluate the cross-modal alignment heads (512-d CLIP -> 128-d)");
  align->require_subcommand(1);

  auto synth_options = std::make_shared<SynthOptions>();
  auto* synth = align->add_subcommand(
      "synth",
      "Write synthetic image/text embedding pairs that share a known latent structure, and print "
      "the recall an oracle (the true maps) reaches on them");
  auto& s = synth_options->synthetic;
  synth->add_option("--count", s.count, "Pairs to draw")->capture_default_str();
  synth->add_option("--out", synth_options->out, "Writes OUT.image.npy and OUT.text.npy")
      ->required();
  synth->add_option("--dim", s.dim, "Embedding width")->capture_default_str();
  synth->add_option("--latent-dim", s.latent_dim, "Width of the latent the pairs share")
      ->capture_default_str();
  synth
      ->add_option("--nuisance-dim", s.nuisance_dim,
                   "Directions per modality that carry nothing about the pairing")
      ->capture_default_str();
  synth->add_option("--noise", s.noise, "Noise std per coordinate")->capture_default_str();
  synth->add_option("--seed", s.seed, "Seed of the pairs drawn")->capture_default_str();
  synth
      ->add_option("--world-seed", s.world_seed,
                   "Seed of the two synthetic encoders (keep it to draw more pairs of the same "
                   "world, e.g. a test set)")
      ->capture_default_str();
  synth->add_flag("--json", synth_options->json, "Print the summary as JSON");
  synth->callback([synth_options, exit_code] { *exit_code = RunSynth(*synth_options); });

  auto train_options = std::make_shared<TrainCommandOptions>();
  auto* train = align->add_subcommand(
      "train",
      "Train the two linear heads with the symmetric InfoNCE loss (mini-batch Adam) and write "
      "them as the align ONNX model");
  train_options->pairs.Add(train);
  auto& t = train_options->train;
  train->add_option("--epochs", t.epochs)->capture_default_str()->check(CLI::Range(1, 100000));
  train->add_option("--batch-size", t.batch_size)->capture_default_str();
  train->add_option("--lr", t.learning_rate, "Adam's learning rate (cosine decay to 0)")
      ->capture_default_str();
  train->add_option("--temperature", t.temperature, "Softmax temperature (0.01 to 1)")
      ->capture_default_str();
  train->add_flag("--learn-temperature", t.learn_temperature,
                  "Learn the temperature, starting from --temperature");
  train->add_option("--seed", t.seed, "Seed of the initial weights, batches and split")
      ->capture_default_str();
  train->add_option("--holdout", train_options->holdout, "Share of pairs held out for validation")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.9));
  train->add_option("-m,--model-repository", train_options->repository,
                    "Write the model as the next version of DIR/align (default: the embedded "
                    "repository)");
  train->add_option("-o,--output", train_options->output,
                    "Write the model to this .onnx file instead");
  train->add_option("--report", train_options->report, "Write a JSON report here");
  train->callback([train_options, exit_code] { *exit_code = RunTrain(*train_options); });

  auto eval_options = std::make_shared<EvalOptions>();
  auto* eval = align->add_subcommand(
      "eval",
      "Recall@1/5/10 and mAP@10 both ways, raw cosine against the align model, with the cost of "
      "each path");
  eval_options->pairs.Add(eval);
  eval->add_option("--model", eval_options->model,
                   "Align ONNX model (default: the newest version in the repository)");
  eval->add_option("-m,--model-repository", eval_options->repository,
                   "Model repository (default: the embedded one)");
  eval->add_flag("--json", eval_options->json, "Print the results as JSON");
  eval->callback([eval_options, exit_code] { *exit_code = RunEval(*eval_options); });
}

}  // namespace braid::cli
