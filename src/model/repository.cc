#include "model/repository.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <chrono>

#include "core/edit_distance.h"

namespace braid {

std::string_view ModelStateName(ModelState state) {
  switch (state) {
    case ModelState::kReady:
      return "READY";
    case ModelState::kLoading:
      return "LOADING";
    case ModelState::kUnavailable:
      return "UNAVAILABLE";
  }
  return "UNKNOWN";
}

Result<std::int64_t> ParseModelVersion(std::string_view text) {
  if (text.empty()) return std::int64_t{0};
  std::int64_t version = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), version);
  if (error != std::errc() || end != text.data() + text.size() || version < 1) {
    return InvalidArgument("'{}' is not a model version (a positive integer)", text);
  }
  return version;
}

std::vector<std::int64_t> ListVersions(const std::filesystem::path& model_dir) {
  std::vector<std::int64_t> versions;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(model_dir, error)) {
    if (!entry.is_directory(error)) continue;
    const std::string name = entry.path().filename().string();
    std::int64_t version = 0;
    auto [end, parse_error] = std::from_chars(name.data(), name.data() + name.size(), version);
    if (parse_error == std::errc() && end == name.data() + name.size() && version > 0) {
      versions.push_back(version);
    }
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

ModelRepository::ModelRepository(std::filesystem::path root, const BackendRegistry& backends)
    : root_(std::move(root)), backends_(backends) {}

Result<std::vector<std::string>> ModelRepository::Scan() const {
  std::error_code error;
  if (!std::filesystem::is_directory(root_, error)) {
    return NotFound("model repository {} is not a readable folder", root_.string());
  }
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(root_, error)) {
    if (entry.is_directory(error) && std::filesystem::exists(entry.path() / "config.yaml", error)) {
      names.push_back(entry.path().filename().string());
    }
  }
  if (error)
    return InvalidArgument("cannot list model repository {}: {}", root_.string(), error.message());
  std::sort(names.begin(), names.end());
  return names;
}

Status ModelRepository::LoadAll(const LoadedSink& loaded) {
  BRAID_ASSIGN_OR_RETURN(auto names, Scan());
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto start = std::chrono::steady_clock::now();
    // Failures are recorded in the entry; the other models still load.
    const Status status = Load(names[i]);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (loaded) loaded(names[i], status, i + 1, names.size(), seconds);
  }
  return Status::Ok();
}

Result<std::vector<std::int64_t>> ModelRepository::ChosenVersions(const ModelConfig& config) const {
  if (backends_.Find(config.backend) == nullptr) {
    return InvalidArgument("{}: 'backend' names '{}', which this build does not have (it has: {})",
                           config.config_path().string(), config.backend,
                           fmt::join(backends_.Names(), ", "));
  }
  std::vector<std::int64_t> available = ListVersions(config.directory);
  std::vector<std::int64_t> chosen;
  if (!config.version_policy.specific.empty()) {
    for (auto version : config.version_policy.specific) {
      if (std::find(available.begin(), available.end(), version) == available.end()) {
        return NotFound("{}: version_policy.specific names version {}, but {} has no folder {}",
                        config.config_path().string(), version, config.directory.string(), version);
      }
      chosen.push_back(version);
    }
  } else {
    auto keep = std::min<std::size_t>(available.size(), config.version_policy.latest);
    chosen.assign(available.end() - static_cast<std::ptrdiff_t>(keep), available.end());
  }
  if (chosen.empty()) {
    return NotFound("{} has no version folder (expected {}/1/...)", config.directory.string(),
                    config.directory.string());
  }
  return chosen;
}

Result<std::map<std::int64_t, ModelPtr>> ModelRepository::LoadVersions(
    const ModelConfig& config) const {
  BRAID_ASSIGN_OR_RETURN(auto chosen, ChosenVersions(config));
  const BackendFactory* factory = backends_.Find(config.backend);
  std::map<std::int64_t, ModelPtr> versions;
  for (auto version : chosen) {
    auto version_dir = config.directory / std::to_string(version);
    auto instances = (*factory)(config, version_dir);
    if (!instances.ok()) return instances.status();
    versions[version] = std::make_shared<Model>(config, version, std::move(instances).value());
  }
  return versions;
}

Status ModelRepository::Load(const std::string& name) {
  if (!IsValidModelName(name)) return InvalidArgument("'{}' is not a valid model name", name);
  {
    std::lock_guard lock(mutex_);
    Entry& entry = entries_[name];
    if (entry.state == ModelState::kLoading) {
      return MakeStatus(StatusCode::kFailedPrecondition, "model '{}' is already loading", name);
    }
    entry.state = ModelState::kLoading;
    entry.reason.clear();
  }

  // Load outside the lock: sessions can take seconds to create and warm up.
  std::string backend, description;
  Result<std::map<std::int64_t, ModelPtr>> loaded = NotFound("model '{}' not found", name);
  const auto directory = root_ / name;
  std::error_code error;
  if (!std::filesystem::exists(directory / "config.yaml", error)) {
    loaded = NotFound("no model '{}' in the repository (no {}/config.yaml)", name, name);
  } else if (auto config = LoadModelConfig(directory); !config.ok()) {
    loaded = config.status();
  } else {
    backend = config->backend;
    description = config->description;
    loaded = LoadVersions(*config);
  }

  std::lock_guard lock(mutex_);
  Entry& entry = entries_[name];
  entry.backend = backend;
  entry.description = description;
  if (!loaded.ok()) {
    entry.reason = loaded.status().message();
    entry.state = entry.versions.empty() ? ModelState::kUnavailable : ModelState::kReady;
    if (loaded.status().code() == StatusCode::kNotFound && entry.versions.empty() &&
        !std::filesystem::exists(directory, error)) {
      entries_.erase(name);
    }
    return loaded.status();
  }
  entry.versions = std::move(loaded).value();
  entry.state = ModelState::kReady;
  return Status::Ok();
}

Result<std::vector<ModelConfigSummary>> ModelRepository::Configs() const {
  BRAID_ASSIGN_OR_RETURN(auto names, Scan());
  std::vector<ModelConfigSummary> configs;
  for (const auto& name : names) {
    ModelConfigSummary summary{name, {}, "", "", ""};
    auto config = LoadModelConfig(root_ / name);
    if (!config.ok()) {
      summary.problem = config.status().message();
    } else {
      summary.backend = config->backend;
      summary.description = config->description;
      auto versions = ChosenVersions(*config);
      if (versions.ok()) {
        summary.versions = std::move(versions).value();
      } else {
        summary.problem = versions.status().message();
      }
    }
    configs.push_back(std::move(summary));
  }
  return configs;
}

Status ModelRepository::UnknownModel(std::string_view name) const {
  constexpr std::size_t kNamesShown = 20;
  std::vector<std::string_view> names;
  for (const auto& [known, entry] : entries_) names.push_back(known);
  const std::size_t shown = std::min(names.size(), kNamesShown);
  return NotFound("unknown model '{}'; {}the models are: {}{}", name, DidYouMean(name, names),
                  names.empty()
                      ? "none"
                      : fmt::format("{}", fmt::join(names.begin(), names.begin() + shown, ", ")),
                  names.size() > shown ? fmt::format(" and {} more", names.size() - shown) : "");
}

Status ModelRepository::Unload(const std::string& name) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return UnknownModel(name);
  if (it->second.state == ModelState::kLoading) {
    return MakeStatus(StatusCode::kFailedPrecondition,
                      "model '{}' is loading; unload it afterwards", name);
  }
  it->second.versions.clear();
  it->second.state = ModelState::kUnavailable;
  it->second.reason = "unloaded";
  return Status::Ok();
}

Result<ModelPtr> ModelRepository::Get(std::string_view name, std::int64_t version) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return UnknownModel(name);
  const Entry& entry = it->second;
  if (entry.versions.empty()) {
    return Unavailable("model '{}' is {}: {}", name, ModelStateName(entry.state),
                       entry.reason.empty() ? "not loaded" : entry.reason);
  }
  if (version == 0) return entry.versions.rbegin()->second;
  auto found = entry.versions.find(version);
  if (found == entry.versions.end())
    return NotFound("model '{}' has no version {} loaded", name, version);
  return found->second;
}

bool ModelRepository::Knows(std::string_view name) const {
  std::lock_guard lock(mutex_);
  return entries_.find(name) != entries_.end();
}

std::vector<ModelVersionStatus> ModelRepository::Index() const {
  std::lock_guard lock(mutex_);
  std::vector<ModelVersionStatus> index;
  for (const auto& [name, entry] : entries_) {
    if (entry.versions.empty()) {
      index.push_back({name, 0, entry.backend, entry.state, entry.reason, entry.description});
      continue;
    }
    for (const auto& [version, model] : entry.versions) {
      index.push_back({name, version, entry.backend, entry.state, entry.reason, entry.description});
    }
  }
  return index;
}

}  // namespace braid
