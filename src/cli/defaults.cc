#include <system_error>

#include "cli/commands.h"

namespace braid::cli {

std::filesystem::path ModelRepositoryOrDefault(const std::string& flag) {
  if (!flag.empty()) return flag;
  std::error_code error;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) {
    auto beside = exe.parent_path() / "models";
    if (std::filesystem::is_directory(beside, error)) return beside;
  }
  return BRAID_DEFAULT_MODEL_REPOSITORY;
}

std::filesystem::path WorkflowsOrDefault(const std::string& flag) {
  if (!flag.empty()) return flag;
  std::error_code error;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) {
    auto beside = exe.parent_path() / "workflows";
    if (std::filesystem::is_directory(beside, error)) return beside;
  }
  return BRAID_DEFAULT_WORKFLOWS;
}

}  // namespace braid::cli
