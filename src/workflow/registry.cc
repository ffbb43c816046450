#include "workflow/registry.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "core/edit_distance.h"
#include "core/file_util.h"

namespace braid {

Status WorkflowRegistry::Load(const std::filesystem::path& directory, const ModelCatalog& catalog,
                              std::string_view only) {
  std::error_code error;
  if (!std::filesystem::is_directory(directory, error)) {
    return NotFound("workflow folder {} does not exist", directory.string());
  }
  for (const auto& file : std::filesystem::directory_iterator(directory, error)) {
    if (file.path().extension() != ".yaml" && file.path().extension() != ".yml") continue;
    const std::string name = file.path().stem().string();
    WorkflowEntry entry{name, nullptr, ""};
    if (!only.empty() && name != only) {
      entry.reason = "not loaded by this command";
      entries_[name] = std::move(entry);
      continue;
    }
    auto text = ReadFile(file.path(), 1 << 20);
    auto workflow = text.ok() ? ParseWorkflow(*text, name, file.path(), catalog)
                              : Result<WorkflowPtr>(text.status());
    if (workflow.ok()) {
      entry.workflow = *workflow;
    } else {
      entry.reason = workflow.status().message();
      spdlog::warn("workflow {} is unavailable: {}", name, entry.reason);
    }
    entries_[name] = std::move(entry);
  }
  return Status::Ok();
}

Result<WorkflowPtr> WorkflowRegistry::Get(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    std::vector<std::string_view> names;
    for (const auto& [known, entry] : entries_) names.push_back(known);
    return NotFound("unknown workflow '{}'; {}the workflows are: {}", name, DidYouMean(name, names),
                    Names());
  }
  if (!it->second.workflow)
    return Unavailable("workflow '{}' is unavailable: {}", name, it->second.reason);
  return it->second.workflow;
}

std::string WorkflowRegistry::Names() const {
  std::vector<std::string_view> names;
  for (const auto& [name, entry] : entries_) names.push_back(name);
  return names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace braid
