#include "workflow/workflow.h"

#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <optional>
#include <regex>
#include <set>

#include "workflow/node_kind.h"

namespace braid {

Result<Reference> ParseReference(const std::string& text) {
  static const std::regex kPattern(R"(^([A-Za-z0-9_\-]+)\.([A-Za-z0-9_\-]+)(\?)?$)");
  std::smatch match;
  if (!std::regex_match(text, match, kPattern)) {
    return InvalidArgument("'{}' is not a reference (inputs.NAME or NODE.OUTPUT, '?' for optional)",
                           text);
  }
  return Reference{match[1], match[2], match[3].matched};
}

std::vector<Placeholder> FindPlaceholders(const std::string& text) {
  // {{ NAME }}: NAME has no space and no '}'. A scan rather than a regex:
  // templates are rendered on every run of their node.
  auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  std::vector<Placeholder> found;
  std::size_t at = text.find("{{");
  while (at != std::string::npos) {
    std::size_t i = at + 2;
    while (i < text.size() && space(text[i])) ++i;
    const std::size_t name = i;
    while (i < text.size() && text[i] != '}' && !space(text[i])) ++i;
    const std::size_t name_end = i;
    while (i < text.size() && space(text[i])) ++i;
    if (name_end > name && text.compare(i, 2, "}}") == 0) {
      found.push_back({at, i + 2 - at, text.substr(name, name_end - name)});
      at = text.find("{{", i + 2);
    } else {
      at = text.find("{{", at + 1);
    }
  }
  return found;
}

const char* InputTypeName(InputType type) {
  switch (type) {
    case InputType::kText:
      return "text";
    case InputType::kImage:
      return "image";
    case InputType::kAudio:
      return "audio";
  }
  return "text";
}

const NodeSpec* Workflow::FindNode(const std::string& id) const {
  for (const auto& node : nodes) {
    if (node.id == id) return &node;
  }
  return nullptr;
}

const WorkflowInput* Workflow::FindInput(const std::string& name) const {
  for (const auto& input : inputs) {
    if (input.name == name) return &input;
  }
  return nullptr;
}

namespace {

// The most runs a workflow's semantic cache may remember.
constexpr std::size_t kMaxSemanticCapacity = 1 << 20;

// `semantic_cache: {embedding: NODE.OUTPUT, threshold?, capacity?, ttl_s?}`
// of a workflow whose nodes are parsed. `check_reference` validates the
// embedding's reference.
template <typename CheckReference>
Result<SemanticCacheSpec> ParseSemanticCache(const Workflow& workflow, const YAML::Node& yaml,
                                             const std::string& source,
                                             const CheckReference& check_reference) {
  if (!yaml.IsMap() || !yaml["embedding"]) {
    return InvalidArgument(
        "{}: semantic_cache must be a map with 'embedding' (a node output) and optionally "
        "'threshold', 'capacity', 'ttl_s'",
        source);
  }
  SemanticCacheSpec spec;
  for (const auto& field : yaml) {
    const std::string key = field.first.as<std::string>();
    if (key == "embedding") {
      auto reference = ParseReference(field.second.as<std::string>());
      if (!reference.ok())
        return reference.status().WithContext(fmt::format("{}: semantic_cache.embedding", source));
      spec.embedding = *reference;
    } else if (key == "threshold") {
      spec.threshold = field.second.as<float>();
    } else if (key == "capacity") {
      spec.capacity = field.second.as<std::size_t>();
    } else if (key == "ttl_s") {
      spec.ttl = std::chrono::seconds(field.second.as<std::int64_t>());
    } else {
      return InvalidArgument(
          "{}: semantic_cache has unknown field '{}'; expected embedding, threshold, capacity, "
          "ttl_s",
          source, key);
    }
  }
  if (!spec.embedding.IsNodeOutput() || spec.embedding.optional) {
    return InvalidArgument("{}: semantic_cache.embedding must name a node output, not '{}'", source,
                           spec.embedding.ToString());
  }
  BRAID_RETURN_IF_ERROR(check_reference(nullptr, "semantic_cache.embedding", spec.embedding));
  if (!(spec.threshold > 0 && spec.threshold <= 1)) {
    return InvalidArgument("{}: semantic_cache.threshold is {}; it must be in (0, 1]", source,
                           spec.threshold);
  }
  if (spec.capacity < 1 || spec.capacity > kMaxSemanticCapacity) {
    return InvalidArgument("{}: semantic_cache.capacity is {}; it must be 1 to {}", source,
                           spec.capacity, kMaxSemanticCapacity);
  }
  if (spec.ttl.count() < 1)
    return InvalidArgument("{}: semantic_cache.ttl_s must be at least 1", source);
  // What the embedding needs: its node and theirs, back to the inputs.
  std::vector<std::string> pending = {spec.embedding.node};
  std::set<std::string> read;
  while (!pending.empty()) {
    const std::string id = pending.back();
    pending.pop_back();
    if (!spec.upstream.insert(id).second) continue;
    const NodeSpec* node = workflow.FindNode(id);
    for (const auto& dependency : node->depends_on) pending.push_back(dependency);
    std::vector<Reference> refs = node->any_of;
    for (const auto& [field, ref] : node->from) refs.push_back(ref);
    for (const auto& ref : refs) {
      if (ref.node == "inputs") read.insert(ref.output);
      if (ref.node == "sys") spec.reads_query = true;
    }
  }
  for (const auto& input : workflow.inputs) {
    if (!read.count(input.name)) spec.uncovered.push_back(input.name);
  }
  return spec;
}

}  // namespace

Result<WorkflowPtr> ParseWorkflow(std::string_view yaml, const std::string& name,
                                  const std::filesystem::path& file, const ModelCatalog& catalog) {
  const std::string source = file.string();
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return InvalidArgument("{}: malformed YAML at line {}: {}", source, e.mark.line + 1, e.msg);
  }
  if (!root.IsMap()) return InvalidArgument("{}: a workflow must be a mapping", source);
  auto workflow = std::make_shared<Workflow>();
  workflow->name = name;
  workflow->file = file;
  // node id → its output names, for validating references.
  std::map<std::string, std::vector<std::string>> produced;
  try {
    for (const auto& entry : root) {
      const std::string key = entry.first.as<std::string>();
      if (key != "description" && key != "inputs" && key != "nodes" && key != "outputs" &&
          key != "semantic_cache") {
        return InvalidArgument(
            "{}: unknown key '{}' (line {}); expected description, inputs, nodes, outputs, "
            "semantic_cache",
            source, key, entry.first.Mark().line + 1);
      }
    }
    if (root["description"]) workflow->description = root["description"].as<std::string>();
    if (const YAML::Node inputs = root["inputs"]) {
      if (!inputs.IsMap())
        return InvalidArgument("{}: 'inputs' must map names to {{type, optional}}", source);
      for (const auto& entry : inputs) {
        WorkflowInput input;
        input.name = entry.first.as<std::string>();
        const YAML::Node spec = entry.second;
        std::string type = spec.IsScalar() ? spec.as<std::string>()
                           : spec["type"]  ? spec["type"].as<std::string>()
                                           : "";
        if (type == "text") {
          input.type = InputType::kText;
        } else if (type == "image") {
          input.type = InputType::kImage;
        } else if (type == "audio") {
          input.type = InputType::kAudio;
        } else {
          return InvalidArgument("{}: input '{}' has type '{}'; expected text, image or audio",
                                 source, input.name, type);
        }
        if (spec.IsMap() && spec["optional"]) input.optional = spec["optional"].as<bool>();
        if (spec.IsMap() && spec["cache_key"]) {
          const std::string key = spec["cache_key"].as<std::string>();
          static const std::map<std::string, std::pair<CacheKeying, std::optional<InputType>>>
              kKeyings = {{"exact", {CacheKeying::kExact, std::nullopt}},
                          {"normalized", {CacheKeying::kNormalized, InputType::kText}},
                          {"casefold", {CacheKeying::kCasefold, InputType::kText}},
                          {"perceptual", {CacheKeying::kPerceptual, InputType::kImage}},
                          {"pcm", {CacheKeying::kPcm, InputType::kAudio}}};
          auto keying = kKeyings.find(key);
          if (keying == kKeyings.end()) {
            return InvalidArgument(
                "{}: input '{}' has cache_key '{}'; expected exact, normalized, casefold, "
                "perceptual or pcm",
                source, input.name, key);
          }
          const auto [how, needs] = keying->second;
          if (needs && *needs != input.type) {
            return InvalidArgument("{}: input '{}': a {} cache_key is for {} inputs", source,
                                   input.name, key, InputTypeName(*needs));
          }
          input.cache_key = how;
        }
        workflow->inputs.push_back(std::move(input));
      }
    }
    if (!root["nodes"] || !root["nodes"].IsSequence() || root["nodes"].size() == 0) {
      return InvalidArgument("{}: 'nodes' must be a non-empty list", source);
    }
    std::vector<NodeSpec> nodes;
    for (const auto& item : root["nodes"]) {
      if (!item.IsMap() || !item["id"] || !item["kind"]) {
        return InvalidArgument("{}: every node needs an 'id' and a 'kind' (line {})", source,
                               item.Mark().line + 1);
      }
      NodeSpec node;
      node.id = item["id"].as<std::string>();
      node.kind = item["kind"].as<std::string>();
      if (node.id == "inputs" || node.id == "config" || node.id == "sys" ||
          std::any_of(nodes.begin(), nodes.end(),
                      [&](const NodeSpec& n) { return n.id == node.id; })) {
        return InvalidArgument("{}: node id '{}' is reserved or used twice", source, node.id);
      }
      const NodeKind* kind = FindNodeKind(node.kind);
      if (kind == nullptr) {
        return InvalidArgument("{}: node '{}' has unknown kind '{}' (known: {})", source, node.id,
                               node.kind, fmt::join(NodeKinds(), ", "));
      }
      for (const auto& field : item) {
        const std::string key = field.first.as<std::string>();
        if (key == "id" || key == "kind") continue;
        if (key == "from") {
          if (!field.second.IsMap())
            return InvalidArgument("{}: node '{}': 'from' must map inputs to references", source,
                                   node.id);
          for (const auto& ref : field.second) {
            auto reference = ParseReference(ref.second.as<std::string>());
            if (!reference.ok())
              return reference.status().WithContext(
                  fmt::format("{}: node '{}' field 'from'", source, node.id));
            node.from[ref.first.as<std::string>()] = *reference;
          }
        } else if (key == "any_of" && kind->gates_nodes()) {
          for (const auto& ref : field.second) {
            auto reference = ParseReference(ref.as<std::string>());
            if (!reference.ok())
              return reference.status().WithContext(
                  fmt::format("{}: node '{}' field 'any_of'", source, node.id));
            reference->optional = true;
            node.any_of.push_back(*reference);
          }
        } else if (key == "if" || key == "unless") {
          auto& gates = key == "if" ? node.run_if : node.run_unless;
          if (field.second.IsSequence()) {
            for (const auto& gate : field.second) gates.push_back(gate.as<std::string>());
          } else {
            gates.push_back(field.second.as<std::string>());
          }
        } else if (const auto params = kind->Parameters();
                   std::find(params.begin(), params.end(), key) != params.end()) {
          node.params[key] = field.second.as<std::string>();
        } else {
          return InvalidArgument("{}: node '{}' ({}) has unknown field '{}'", source, node.id,
                                 node.kind, key);
        }
      }
      for (const auto& required : kind->RequiredInputs()) {
        if (!node.from.count(required)) {
          return InvalidArgument("{}: node '{}' ({}) needs 'from.{}'", source, node.id, node.kind,
                                 required);
        }
      }
      const std::string where = fmt::format("{}: node '{}' ({})", source, node.id, node.kind);
      BRAID_RETURN_IF_ERROR(kind->Check(node).WithContext(where));
      // Outputs this node will produce (a model's, from the catalog).
      auto outputs = kind->Outputs(node, catalog);
      if (!outputs.ok()) {
        return outputs.status().WithContext(
            fmt::format("{}: node '{}' field 'model'", source, node.id));
      }
      produced[node.id] = *outputs;
      nodes.push_back(std::move(node));
    }

    auto check_reference = [&](const NodeSpec* node, const std::string& field,
                               const Reference& ref) -> Status {
      const std::string where = node ? fmt::format("node '{}' field '{}'", node->id, field)
                                     : fmt::format("output '{}'", field);
      if (ref.node == "config") {
        if (ref.output != "upstream_chat") {
          return InvalidArgument("{}: {} refers to '{}'; config offers only upstream_chat", source,
                                 where, ref.ToString());
        }
        return Status::Ok();
      }
      if (ref.node == "sys") {
        if (ref.output != "query") {
          return InvalidArgument("{}: {} refers to '{}'; sys offers only query", source, where,
                                 ref.ToString());
        }
        return Status::Ok();
      }
      if (ref.node == "inputs") {
        if (!workflow->FindInput(ref.output))
          return InvalidArgument("{}: {} refers to missing input '{}'", source, where, ref.output);
        return Status::Ok();
      }
      auto it = produced.find(ref.node);
      if (it == produced.end())
        return InvalidArgument("{}: {} refers to missing node '{}'", source, where, ref.node);
      if (std::find(it->second.begin(), it->second.end(), ref.output) == it->second.end()) {
        return InvalidArgument(
            "{}: {} refers to '{}', which node '{}' does not produce (it has: {})", source, where,
            ref.ToString(), ref.node, fmt::join(it->second, ", "));
      }
      return Status::Ok();
    };
    for (auto& node : nodes) {
      std::set<std::string> deps;
      for (const auto& [field, ref] : node.from) {
        BRAID_RETURN_IF_ERROR(check_reference(&node, field, ref));
        if (ref.IsNodeOutput()) deps.insert(ref.node);
        // Type check: a node that reads a medium must be given a workflow
        // input of that medium.
        const std::optional<InputType> wanted = FindNodeKind(node.kind)->InputTypeOf(field);
        if (ref.node == "inputs" && wanted) {
          const WorkflowInput* input = workflow->FindInput(ref.output);
          const char* have = InputTypeName(input->type);
          const char* want = InputTypeName(*wanted);
          if (input->type != *wanted) {
            return InvalidArgument(
                "{}: node '{}' ({}) field 'from.{}' is the {} input '{}'; it needs {}", source,
                node.id, node.kind, field, have, ref.output, want);
          }
        }
      }
      for (const auto& ref : node.any_of) {
        BRAID_RETURN_IF_ERROR(check_reference(&node, "any_of", ref));
        if (ref.IsNodeOutput()) deps.insert(ref.node);
      }
      for (const auto* gates : {&node.run_if, &node.run_unless}) {
        for (const auto& gate : *gates) {
          auto it = std::find_if(nodes.begin(), nodes.end(),
                                 [&](const NodeSpec& n) { return n.id == gate; });
          if (it == nodes.end() || !FindNodeKind(it->kind)->gates_nodes()) {
            return InvalidArgument("{}: node '{}' field '{}' must name a condition node, not '{}'",
                                   source, node.id, gates == &node.run_if ? "if" : "unless", gate);
          }
          deps.insert(gate);
        }
      }
      node.depends_on.assign(deps.begin(), deps.end());
    }
    if (const YAML::Node outputs = root["outputs"]) {
      for (const auto& entry : outputs) {
        auto reference = ParseReference(entry.second.as<std::string>());
        if (!reference.ok())
          return reference.status().WithContext(
              fmt::format("{}: output '{}'", source, entry.first.as<std::string>()));
        BRAID_RETURN_IF_ERROR(check_reference(nullptr, entry.first.as<std::string>(), *reference));
        workflow->outputs[entry.first.as<std::string>()] = *reference;
      }
    }
    // Topological order (Kahn); what is left over sits on a cycle.
    std::vector<NodeSpec> ordered;
    std::set<std::string> placed;
    while (ordered.size() < nodes.size()) {
      bool progressed = false;
      for (auto& node : nodes) {
        if (placed.count(node.id)) continue;
        if (std::all_of(node.depends_on.begin(), node.depends_on.end(),
                        [&](const std::string& d) { return placed.count(d) > 0; })) {
          placed.insert(node.id);
          ordered.push_back(node);
          progressed = true;
        }
      }
      if (!progressed) {
        std::vector<std::string> stuck;
        for (const auto& node : nodes) {
          if (!placed.count(node.id)) stuck.push_back(node.id);
        }
        return InvalidArgument("{}: the nodes {} form a cycle", source, fmt::join(stuck, ", "));
      }
    }
    workflow->nodes = std::move(ordered);
    if (const YAML::Node semantic = root["semantic_cache"]) {
      auto spec = ParseSemanticCache(*workflow, semantic, source, check_reference);
      if (!spec.ok()) return spec.status();
      workflow->semantic_cache = std::move(spec).value();
    }
  } catch (const YAML::Exception& e) {
    return InvalidArgument("{}: {} at line {}", source, e.msg, e.mark.line + 1);
  }
  return WorkflowPtr(std::move(workflow));
}

}  // namespace braid
