// ModelRepository: the models under one folder, their versions and states.
//
// Layout: <root>/<name>/config.yaml and <root>/<name>/<version>/<file>, with
// numeric version folders. The config's version_policy picks which versions
// are served (the newest one by default).
//
// Thread-safe. Load/Unload block while a model loads; Get never blocks on a
// load. A model that fails to load is recorded as UNAVAILABLE with the reason
// and never stops the others.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model/backend.h"
#include "model/model.h"

namespace braid {

enum class ModelState { kReady, kLoading, kUnavailable };
std::string_view ModelStateName(ModelState state);

struct ModelVersionStatus {
  std::string name;
  std::int64_t version = 0;  // 0 when no version could be chosen
  std::string backend;
  ModelState state = ModelState::kUnavailable;
  std::string reason;       // why it is unavailable; empty otherwise
  std::string description;  // the config's, for people
};

// What a model's config says, read without loading it.
struct ModelConfigSummary {
  std::string name;
  std::vector<std::int64_t> versions;  // those its version policy serves
  std::string backend;
  std::string description;
  std::string problem;  // why it cannot load (config, backend, folders); empty otherwise
};

class ModelRepository {
 public:
  // `backends` must outlive the repository.
  ModelRepository(std::filesystem::path root, const BackendRegistry& backends);

  const std::filesystem::path& root() const { return root_; }

  // Names of the folders under the root that hold a config.yaml, sorted.
  Result<std::vector<std::string>> Scan() const;

  // Loads every model Scan() finds. Failures are recorded, not returned;
  // only an unreadable root is an error. `loaded` hears each model's outcome
  // as it comes: its name, position (from 1) of how many, and seconds taken.
  using LoadedSink = std::function<void(const std::string& name, const Status& status,
                                        std::size_t position, std::size_t count, double seconds)>;
  Status LoadAll(const LoadedSink& loaded = {});

  // Loads `name`, or reloads it if it is loaded: the new versions replace the
  // old ones only once all of them are ready, so a reload never interrupts
  // serving. On failure the old versions (if any) keep serving and the error
  // is recorded as the model's reason.
  Status Load(const std::string& name);

  // Stops serving `name`. Requests already holding a ModelPtr finish.
  Status Unload(const std::string& name);

  // Version `version` of `name` (0: the newest ready one). NotFound for an
  // unknown model or version, Unavailable for one that is not ready.
  Result<ModelPtr> Get(std::string_view name, std::int64_t version = 0) const;

  // Whether the repository knows a model `name`, whatever its state.
  bool Knows(std::string_view name) const;

  // Every model known to the repository: loaded, loading or failed.
  std::vector<ModelVersionStatus> Index() const;

  // Every model Scan() finds as its config describes it; loads nothing, so
  // a problem in a model's files shows only when it loads.
  Result<std::vector<ModelConfigSummary>> Configs() const;

 private:
  struct Entry {
    std::string backend;
    std::string description;
    ModelState state = ModelState::kUnavailable;
    std::string reason;
    std::map<std::int64_t, ModelPtr> versions;  // the ones being served
  };

  // NotFound naming `name` and the models there are; mutex_ held.
  Status UnknownModel(std::string_view name) const;
  // The versions `config` selects, in this build's backend: an error names
  // the missing backend or folder.
  Result<std::vector<std::int64_t>> ChosenVersions(const ModelConfig& config) const;
  // Loads the versions `config` selects; an error names the version folder.
  Result<std::map<std::int64_t, ModelPtr>> LoadVersions(const ModelConfig& config) const;

  const std::filesystem::path root_;
  const BackendRegistry& backends_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry, std::less<>> entries_;  // guarded by mutex_
};

// A version as requests name it: "" → 0 (the newest), "3" → 3;
// InvalidArgument for anything but a positive integer.
Result<std::int64_t> ParseModelVersion(std::string_view text);

// The numeric version folders under `model_dir`, ascending.
std::vector<std::int64_t> ListVersions(const std::filesystem::path& model_dir);

}  // namespace braid
