// Workflow: a multimodal DAG loaded from workflows/<name>.yaml.
//
//   description: ...
//   inputs:  {image: {type: image, optional: true}, text: {type: text}}
//   nodes:
//     - {id: pixels, kind: preprocess.image, from: {image: inputs.image}}
//     - {id: embed, kind: model, model: clip-image, from: {pixel_values: pixels.pixel_values}}
//     - {id: report, kind: template, template: "score {{match.similarity}}"}
//   outputs: {report: report.text}
//
// A reference is "inputs.NAME" or "NODE.OUTPUT"; a trailing "?" makes it
// optional. A node whose required reference is missing (an absent input, a
// skipped node) is skipped, and so are the nodes that need it. `if: NODE`
// runs a node only when that condition node's result is true (`unless:` the
// opposite). Templates reference {{NODE.OUTPUT}} (or {{NODE.OUTPUT?}}),
// which also become edges.
//
// Loading validates everything a run could trip on: unknown keys and kinds,
// references to missing nodes, inputs or model outputs, cycles, type
// mismatches between an input and what the node accepts. Errors name the
// file, the node and the field.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"

namespace braid {

enum class InputType { kText, kImage, kAudio };

// "text", "image" or "audio".
const char* InputTypeName(InputType type);

// How a workflow input is keyed for the node cache.
enum class CacheKeying {
  kExact,       // its bytes
  kNormalized,  // text: made canonical (NFKC, white space) before any node reads it
  kCasefold,    // text: the same, and case folded
  kPerceptual,  // image: what it looks like, so that a near duplicate of an earlier
                // image (re-encoded, resized, slightly cropped) reuses its results
  kPcm,         // audio: its decoded samples, whatever the container and metadata
};

struct WorkflowInput {
  std::string name;
  InputType type = InputType::kText;
  bool optional = false;
  // How the cache keys the input (`cache_key:`); exact (its bytes) unless
  // the workflow says otherwise.
  CacheKeying cache_key = CacheKeying::kExact;
};

// What a node reads: a node's output, a workflow input (`inputs.NAME`), a
// server setting (`config.upstream_chat`) or the run's own values
// (`sys.query`: the chat message text given to a workflow that has no text
// input, as Dify names it).
struct Reference {
  std::string node;    // a node id, or "inputs", "config", "sys"
  std::string output;  // input or output name
  bool optional = false;

  std::string ToString() const { return node + "." + output + (optional ? "?" : ""); }
  // Whether it names a node's output (which the reader depends on).
  bool IsNodeOutput() const { return node != "inputs" && node != "config" && node != "sys"; }
};

struct NodeSpec {
  std::string id;
  std::string kind;  // preprocess.image|audio|text, model, project, condition, similarity, fuse,
                     // template, remote.chat, tts, retrieve
  std::map<std::string, Reference> from;      // node input name → reference
  std::map<std::string, std::string> params;  // model, tokenizer, template, collection, ...
  std::vector<Reference> any_of;              // condition: true when any is present
  std::vector<std::string> run_if;            // condition nodes that must all be true
  std::vector<std::string> run_unless;        // condition nodes that must all be false
  std::vector<std::string> depends_on;        // every node this one waits for
};

// `semantic_cache:` (opt-in): a run whose embedding is close enough to an
// earlier run's is answered with that run's outputs. The embedding is a
// node output (a vector); the nodes it needs run first and the others wait
// for the lookup. Two runs are compared only when everything else they were
// given is the same: the inputs the embedding does not read (by their cache
// keys), the chat query unless the embedding reads it, the upstream chat's
// presence.
struct SemanticCacheSpec {
  Reference embedding;
  float threshold = 0.95F;  // least cosine similarity of a hit, in (0, 1]
  std::size_t capacity = 1024;
  std::chrono::seconds ttl{600};
  std::set<std::string> upstream;      // the embedding's node and every node it needs
  std::vector<std::string> uncovered;  // inputs the embedding does not read
  bool reads_query = false;            // whether the embedding reads sys.query
};

struct Workflow {
  std::string name;
  std::string description;
  std::filesystem::path file;
  std::vector<WorkflowInput> inputs;
  std::vector<NodeSpec> nodes;  // topological order
  std::map<std::string, Reference> outputs;
  std::optional<SemanticCacheSpec> semantic_cache;

  const NodeSpec* FindNode(const std::string& id) const;
  const WorkflowInput* FindInput(const std::string& name) const;
};
using WorkflowPtr = std::shared_ptr<const Workflow>;

// Checks a model reference during validation: the model exists and
// `inputs` are its inputs, every one of them. Returns the model's output
// names, or an error.
using ModelCatalog = std::function<Result<std::vector<std::string>>(
    const std::string& model, const std::vector<std::string>& inputs)>;

// Parses and validates a workflow. `catalog` checks model nodes.
Result<WorkflowPtr> ParseWorkflow(std::string_view yaml, const std::string& name,
                                  const std::filesystem::path& file, const ModelCatalog& catalog);

// A {{reference}} in a template or prompt: where it stands and what it names.
struct Placeholder {
  std::size_t position = 0;
  std::size_t length = 0;
  std::string reference;  // "node.output" or "node.output?"
};
std::vector<Placeholder> FindPlaceholders(const std::string& text);

// "inputs.NAME" or "NODE.OUTPUT", with a trailing "?" when optional.
Result<Reference> ParseReference(const std::string& text);

}  // namespace braid
