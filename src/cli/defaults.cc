#include <system_error>

#include "cli/commands.h"

namespace braid::cli {

namespace {

// `flag` when given, else `folder` beside the braid binary when it exists
// (where the build writes it), else `built_in`.
std::filesystem::path FlagOrBesideBinary(const std::string& flag, const char* folder,
                                         const char* built_in) {
  if (!flag.empty()) return flag;
  std::error_code error;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) {
    auto beside = exe.parent_path() / folder;
    if (std::filesystem::is_directory(beside, error)) return beside;
  }
  return built_in;
}

}  // namespace

std::filesystem::path ModelRepositoryOrDefault(const std::string& flag) {
  return FlagOrBesideBinary(flag, "models", BRAID_DEFAULT_MODEL_REPOSITORY);
}

std::filesystem::path WorkflowsOrDefault(const std::string& flag) {
  return FlagOrBesideBinary(flag, "workflows", BRAID_DEFAULT_WORKFLOWS);
}

}  // namespace braid::cli
