#include "workflow/node_kind.h"

#include "workflow/executor.h"
#include "workflow/nodes/nodes.h"

namespace braid {
namespace {

const NodeKindMap& Registry() {
  static const NodeKindMap kinds = [] {
    NodeKindMap built;
    RegisterModelNodes(built);
    RegisterPreprocessNodes(built);
    RegisterComputeNodes(built);
    RegisterRetrieveNode(built);
    RegisterRemoteChatNode(built);
    return built;
  }();
  return kinds;
}

}  // namespace

void CpuNodeKind::Run(NodeRun run, NodeDone done) const {
  ThreadPool& pool = run.executor.pool();
  pool.Submit(
      [this, run = std::move(run), done = std::move(done)]() mutable { done(Compute(run)); });
}

const NodeKind* FindNodeKind(std::string_view name) {
  auto kind = Registry().find(name);
  return kind == Registry().end() ? nullptr : kind->second.get();
}

const std::vector<std::string>& NodeKinds() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& [name, kind] : Registry()) out.push_back(name);
    return out;
  }();
  return names;
}

}  // namespace braid
