// Node kinds: the one place that says what each kind of workflow node
// needs (inputs, parameters, the outputs it produces, what the parser
// checks) and does (how it runs, how its results are cached). The parser
// and the executor look kinds up here; neither names a kind. One file per
// family under workflow/nodes/.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "core/tensor.h"
#include "scheduler/request.h"
#include "workflow/workflow.h"

namespace braid {

class WorkflowExecutor;
using NamedTensors = std::map<std::string, Tensor>;

// How one model call of a workflow node is run.
struct ModelCall {
  int priority = 0;
  TimePoint deadline = TimePoint::max();
  std::shared_ptr<CancellationToken> cancellation;
  // False when the executor caches the node's result itself: the model's
  // own result cache would only hold the same result a second time, under
  // a second key (another hash, another entry, another Redis round trip).
  bool use_cache = true;
};

// How a node's results meet the result cache.
enum class NodeCaching {
  kNone,     // differs from run to run (remote.chat, retrieve): not even keyed
  kKeyOnly,  // keyed, so that the nodes after it can be, but not worth storing
  kModel,    // stored when its model's response_cache says so, under the model's version
  kStored,   // stored for a while (decoded and preprocessed media)
};

// One node to run, with what the executor lends it.
struct NodeRun {
  const NodeSpec& node;
  NamedTensors inputs;
  // Priority, deadline and cancellation of the run, for model calls.
  ModelCall call;
  WorkflowExecutor& executor;
  // Emits a text_chunk event of this node (templates, remote.chat tokens).
  std::function<void(std::string text)> emit_text;
};
using NodeDone = std::function<void(Result<NamedTensors>)>;

class NodeKind {
 public:
  virtual ~NodeKind() = default;

  // What the parser checks first: the inputs a node must be given (empty:
  // any), the parameters it may have, and the outputs it produces.
  virtual std::vector<std::string> RequiredInputs() const { return {}; }
  virtual std::vector<std::string> Parameters() const { return {}; }
  // The outputs of `node`; kinds backed by a model ask `catalog`, which
  // also says whether the model takes these inputs.
  virtual Result<std::vector<std::string>> Outputs(const NodeSpec& node,
                                                   const ModelCatalog& catalog) const = 0;
  // Kind-specific rules, once the common ones passed. May add to
  // node.from (references written inside a template).
  virtual Status Check(NodeSpec& node) const { return Status::Ok(); }
  // The media type that input field `field` must be, when it is a
  // workflow input; nullopt: any.
  virtual std::optional<InputType> InputTypeOf(std::string_view field) const {
    return std::nullopt;
  }
  // True for a condition: it takes `any_of`, and other nodes may name it in
  // `if` and `unless`.
  virtual bool gates_nodes() const { return false; }

  virtual NodeCaching caching() const { return NodeCaching::kKeyOnly; }
  // The model a kModel node calls (its version is part of the key).
  virtual std::string Model(const NodeSpec& node) const { return {}; }
  // False: a predictive precompute skips it (its result is not cached, or
  // it presents results rather than computing them).
  virtual bool precomputed() const { return true; }
  // True when its computation waits in a model's priority queues, so a
  // more urgent run must not wait for a less urgent one computing it.
  virtual bool queued_by_priority() const { return false; }

  // Computes `run.node`; `done` gets its outputs, once, on any thread.
  virtual void Run(NodeRun run, NodeDone done) const = 0;
};

// A kind computed on the executor's CPU pool by a function of its inputs.
class CpuNodeKind : public NodeKind {
 public:
  void Run(NodeRun run, NodeDone done) const final;

 protected:
  virtual Result<NamedTensors> Compute(NodeRun& run) const = 0;
};

// The kind named `name`, or null.
const NodeKind* FindNodeKind(std::string_view name);
// Every kind's name, sorted.
const std::vector<std::string>& NodeKinds();

}  // namespace braid
