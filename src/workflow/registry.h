// WorkflowRegistry: the workflows of one folder (<dir>/<name>.yaml). A bad
// workflow is kept as unavailable with its reason and never stops the others.
// Read-only after Load; thread-safe to read.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "workflow/workflow.h"

namespace braid {

struct WorkflowEntry {
  std::string name;
  WorkflowPtr workflow;  // null when unavailable
  std::string reason;    // why it is unavailable
};

class WorkflowRegistry {
 public:
  // Loads every *.yaml under `directory`; an unreadable folder is an error.
  // With `only`, just that workflow is parsed (so the catalog is asked
  // about its models alone); the others are known by name, unavailable.
  Status Load(const std::filesystem::path& directory, const ModelCatalog& catalog,
              std::string_view only = {});

  const std::map<std::string, WorkflowEntry>& entries() const { return entries_; }
  // The workflow, NotFound for an unknown name (saying which there are),
  // Unavailable for a bad one.
  Result<WorkflowPtr> Get(const std::string& name) const;
  // The workflows' names, comma-separated ("none" when there are none).
  std::string Names() const;

 private:
  std::map<std::string, WorkflowEntry> entries_;
};

}  // namespace braid
