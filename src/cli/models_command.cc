// `braid models list|validate [DIR]`.
#include <fmt/core.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "backends/backends.h"
#include "cli/commands.h"
#include "model/repository.h"
#include "preprocess/tokenizer.h"

namespace braid::cli {
namespace {

struct ModelsOptions {
  std::string repository;
};

// A model that takes token ids is given text through the tokenizer in its
// version folder (workflows' preprocess.text, /v1/embeddings): NotFound when
// it has none, the parse error when the files are broken.
Status TokenizerProblem(const ModelRepository& repository, const ModelVersionStatus& model) {
  auto loaded = repository.Get(model.name, model.version);
  if (!loaded.ok() || !(*loaded)->config().FindInput("input_ids")) return Status::Ok();
  auto tokenizer =
      LoadModelTokenizer((*loaded)->config().directory / std::to_string(model.version));
  if (tokenizer.ok()) return Status::Ok();
  if (tokenizer.status().code() == StatusCode::kNotFound) {
    return NotFound("{}; text reaches it only as input_ids its clients tokenize",
                    tokenizer.status().message());
  }
  return tokenizer.status();
}

// Prints a line per model under `root` as its config describes it, loading
// nothing. Returns the exit code: 0 unless the folder cannot be read.
int ListModels(const std::filesystem::path& root) {
  BackendRegistry backends;
  RegisterBuiltinBackends(backends);
  ModelRepository repository(root, backends);
  auto configs = repository.Configs();
  if (!configs.ok()) {
    fmt::print(stderr, "braid: {}\n", configs.status().message());
    return 2;
  }
  if (configs->empty()) {
    fmt::print(stderr, "braid: no models in {} (expected <name>/config.yaml)\n", root.string());
    return 0;
  }
  fmt::print("{:<20} {:>8}  {:<12} {}\n", "MODEL", "VERSIONS", "BACKEND",
             "DESCRIPTION, OR WHY IT CANNOT LOAD");
  for (const auto& model : *configs) {
    fmt::print("{:<20} {:>8}  {:<12} {}\n", model.name,
               model.versions.empty() ? "-" : fmt::format("{}", fmt::join(model.versions, ",")),
               model.backend.empty() ? "-" : model.backend,
               model.problem.empty() ? model.description : "cannot load: " + model.problem);
  }
  fmt::print(stderr, "braid: read from the configs; braid models validate {} loads each model\n",
             root.string());
  return 0;
}

// Loads every model under `root` and prints a line per model version.
// Returns the exit code: 0 when every model is READY.
int ValidateModels(const std::filesystem::path& root) {
  BackendRegistry backends;
  RegisterBuiltinBackends(backends);
  ModelRepository repository(root, backends);
  spdlog::info("loading models from {}", root.string());
  if (auto status = repository.LoadAll(); !status.ok()) {
    fmt::print(stderr, "braid: {}\n", status.message());
    return 2;
  }
  auto index = repository.Index();
  if (index.empty()) {
    fmt::print(stderr, "braid: no models in {} (expected <name>/config.yaml)\n", root.string());
    return 1;
  }
  int failures = 0;
  fmt::print("{:<20} {:>7}  {:<12} {:<11} {}\n", "MODEL", "VERSION", "BACKEND", "STATE",
             "DESCRIPTION OR REASON");
  for (const auto& model : index) {
    std::string version = model.version > 0 ? std::to_string(model.version) : "-";
    // A ready model's description says what it is (the stand-ins say so).
    fmt::print("{:<20} {:>7}  {:<12} {:<11} {}\n", model.name, version,
               model.backend.empty() ? "-" : model.backend, ModelStateName(model.state),
               model.state == ModelState::kReady ? model.description : model.reason);
    if (model.state != ModelState::kReady) {
      ++failures;
    } else if (auto problem = TokenizerProblem(repository, model); !problem.ok()) {
      const bool absent = problem.code() == StatusCode::kNotFound;
      fmt::print("{:<20} {:>7}  {}: {}\n", "", "", absent ? "note" : "error", problem.message());
      if (!absent) ++failures;
    }
  }
  if (failures > 0) {
    fmt::print(stderr, "braid: {} of {} models failed validation\n", failures, index.size());
    return 1;
  }
  return 0;
}

}  // namespace

void AddModelsCommand(CLI::App& app, int* exit_code) {
  auto* models = app.add_subcommand("models", "Inspect a model repository");
  models->require_subcommand(1);  // list, validate, quantize (quantize_command.cc)
  auto options = std::make_shared<ModelsOptions>();

  auto* list = models->add_subcommand(
      "list",
      "Show each model in the repository as its config describes it: versions served, backend, "
      "description (loads nothing; validate loads)");
  list->add_option("DIR", options->repository, "Model repository (default: the embedded one)");
  list->callback([options, exit_code] {
    *exit_code = ListModels(ModelRepositoryOrDefault(options->repository));
  });

  auto* validate = models->add_subcommand("validate",
                                          "Check every config and model file in the repository "
                                          "(loads each model); exits 1 if any fails");
  validate->add_option("DIR", options->repository, "Model repository (default: the embedded one)");
  validate->callback([options, exit_code] {
    *exit_code = ValidateModels(ModelRepositoryOrDefault(options->repository));
  });
}

}  // namespace braid::cli
