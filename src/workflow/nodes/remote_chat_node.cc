// remote.chat: the rendered prompt sent to the upstream chat model (an
// OpenAI-compatible API), its tokens streamed as text chunks. The call
// blocks on the network, so it runs on the executor's remote pool.
#include "workflow/executor.h"
#include "workflow/nodes/nodes.h"

namespace braid {
namespace {

class RemoteChatKind : public NodeKind {
 public:
  std::vector<std::string> Parameters() const override { return {"prompt", "system", "model"}; }
  Result<std::vector<std::string>> Outputs(const NodeSpec&, const ModelCatalog&) const override {
    return std::vector<std::string>{"text"};
  }
  Status Check(NodeSpec& node) const override { return TakePlaceholders(node, "prompt"); }
  // Its answer differs from call to call: neither cached nor precomputed.
  NodeCaching caching() const override { return NodeCaching::kNone; }
  bool precomputed() const override { return false; }

  void Run(NodeRun run, NodeDone done) const override {
    WorkflowExecutor& executor = run.executor;
    executor.remote_pool().Submit(
        [run = std::move(run), done = std::move(done)] { done(Chat(run)); });
  }

 private:
  static Result<NamedTensors> Chat(const NodeRun& run) {
    if (!run.executor.upstream())
      return Unavailable("no upstream chat model is configured (braid serve --upstream-chat URL)");
    const auto& params = run.node.params;
    UpstreamChat upstream = *run.executor.upstream();
    if (params.count("model")) upstream.model = params.at("model");
    const std::string system = params.count("system") ? params.at("system") : "";
    BRAID_ASSIGN_OR_RETURN(
        std::string reply,
        StreamChat(
            upstream, system, RenderTemplate(params.at("prompt"), run.inputs),
            [&](const std::string& token) { run.emit_text(token); },
            // A stopped run (a client's stop, the drain's deadline) waits no further.
            [&] { return run.call.cancellation && run.call.cancellation->cancelled(); }));
    BRAID_ASSIGN_OR_RETURN(Tensor out, Tensor::FromStrings({reply}, {1}));
    return NamedTensors{{"text", out}};
  }
};

}  // namespace

void RegisterRemoteChatNode(NodeKindMap& kinds) {
  kinds["remote.chat"] = std::make_unique<RemoteChatKind>();
}

}  // namespace braid
