#include "workflow/workflow.h"

#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <regex>
#include <set>

#include "collections/collection.h"

namespace braid {
namespace {

struct KindInfo {
  std::vector<std::string> inputs;   // required node inputs (empty: any)
  std::vector<std::string> outputs;  // empty: decided per node (model)
  std::vector<std::string> params;   // allowed parameters
};

const std::map<std::string, KindInfo>& Kinds() {
  static const std::map<std::string, KindInfo> kinds = {
      {"preprocess.image", {{"image"}, {"pixel_values"}, {"size"}}},
      {"preprocess.audio", {{"audio"}, {"samples", "log_mel"}, {}}},
      {"preprocess.text", {{"text"}, {"input_ids"}, {"tokenizer"}}},
      {"model", {{}, {}, {"model", "priority"}}},
      {"project", {{"image", "text"}, {"image", "text"}, {"model"}}},
      {"condition", {{}, {"result"}, {}}},
      {"similarity", {{"a", "b"}, {"similarity"}, {}}},
      {"fuse", {{}, {"vector"}, {"mode"}}},
      {"template", {{}, {"text"}, {"template"}}},
      {"remote.chat", {{}, {"text"}, {"prompt", "system", "model"}}},
      {"tts", {{"text"}, {"audio"}, {"voice", "model"}}},
      {"retrieve", {{}, {"ids", "scores", "texts"}, {"collection", "top_k"}}},
  };
  return kinds;
}

Result<Reference> ParseReference(const std::string& text) {
  static const std::regex kPattern(R"(^([A-Za-z0-9_\-]+)\.([A-Za-z0-9_\-]+)(\?)?$)");
  std::smatch match;
  if (!std::regex_match(text, match, kPattern)) {
    return InvalidArgument("'{}' is not a reference (inputs.NAME or NODE.OUTPUT, '?' for optional)",
                           text);
  }
  return Reference{match[1], match[2], match[3].matched};
}

// A retrieve node searches `collection` with one query: a vector, a text or
// an image; top_k matches (1-1000).
Status ValidateRetrieve(const NodeSpec& node) {
  if (!node.params.count("collection")) return InvalidArgument("needs 'collection'");
  BRAID_RETURN_IF_ERROR(ValidateCollectionName(node.params.at("collection")));
  if (auto top_k = node.params.find("top_k"); top_k != node.params.end()) {
    static const std::regex kNumber("[0-9]{1,4}");
    if (!std::regex_match(top_k->second, kNumber) || std::stoi(top_k->second) < 1 ||
        std::stoi(top_k->second) > 1000)
      return InvalidArgument("'top_k' must be an integer from 1 to 1000");
  }
  if (node.from.empty()) return InvalidArgument("needs 'from.vector', 'from.text' or 'from.image'");
  for (const auto& [field, ref] : node.from) {
    if (field != "vector" && field != "text" && field != "image")
      return InvalidArgument("takes 'from.vector', 'from.text' or 'from.image', not 'from.{}'",
                             field);
  }
  return Status::Ok();
}

}  // namespace

std::vector<Placeholder> FindPlaceholders(const std::string& text) {
  static const std::regex kPlaceholder(R"(\{\{\s*([^}\s]+)\s*\}\})");
  std::vector<Placeholder> found;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kPlaceholder);
       it != std::sregex_iterator(); ++it) {
    found.push_back({static_cast<std::size_t>(it->position()),
                     static_cast<std::size_t>(it->length()), (*it)[1]});
  }
  return found;
}

const std::vector<std::string>& NodeKinds() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& [name, info] : Kinds()) out.push_back(name);
    return out;
  }();
  return names;
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
      if (key != "description" && key != "inputs" && key != "nodes" && key != "outputs") {
        return InvalidArgument(
            "{}: unknown key '{}' (line {}); expected description, inputs, nodes, outputs", source,
            key, entry.first.Mark().line + 1);
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
      if (node.id == "inputs" || node.id == "config" ||
          std::any_of(nodes.begin(), nodes.end(),
                      [&](const NodeSpec& n) { return n.id == node.id; })) {
        return InvalidArgument("{}: node id '{}' is reserved or used twice", source, node.id);
      }
      auto kind = Kinds().find(node.kind);
      if (kind == Kinds().end()) {
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
        } else if (key == "any_of" && node.kind == "condition") {
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
        } else if (std::find(kind->second.params.begin(), kind->second.params.end(), key) !=
                   kind->second.params.end()) {
          node.params[key] = field.second.as<std::string>();
        } else {
          return InvalidArgument("{}: node '{}' ({}) has unknown field '{}'", source, node.id,
                                 node.kind, key);
        }
      }
      for (const auto& required : kind->second.inputs) {
        if (!node.from.count(required)) {
          return InvalidArgument("{}: node '{}' ({}) needs 'from.{}'", source, node.id, node.kind,
                                 required);
        }
      }
      if (node.kind == "condition" && node.any_of.empty()) {
        return InvalidArgument("{}: condition node '{}' needs 'any_of'", source, node.id);
      }
      if (node.kind == "template" || node.kind == "remote.chat") {
        const std::string param = node.kind == "template" ? "template" : "prompt";
        if (!node.params.count(param)) {
          return InvalidArgument("{}: {} node '{}' needs '{}'", source, node.kind, node.id, param);
        }
        for (const auto& placeholder : FindPlaceholders(node.params[param])) {
          auto reference = ParseReference(placeholder.reference);
          if (!reference.ok()) {
            return reference.status().WithContext(
                fmt::format("{}: node '{}' field '{}'", source, node.id, param));
          }
          node.from[reference->ToString()] = *reference;
        }
      }
      if (node.kind == "retrieve") {
        BRAID_RETURN_IF_ERROR(ValidateRetrieve(node).WithContext(
            fmt::format("{}: retrieve node '{}'", source, node.id)));
      }
      if ((node.kind == "model" || node.kind == "preprocess.text") &&
          !node.params.count(node.kind == "model" ? "model" : "tokenizer")) {
        return InvalidArgument("{}: node '{}' ({}) needs '{}'", source, node.id, node.kind,
                               node.kind == "model" ? "model" : "tokenizer");
      }
      // Outputs this node will produce.
      std::vector<std::string> outputs = kind->second.outputs;
      if (node.kind == "model") {
        std::vector<std::string> model_inputs;
        for (const auto& [input, ref] : node.from) model_inputs.push_back(input);
        auto model_outputs = catalog(node.params["model"], model_inputs);
        if (!model_outputs.ok())
          return model_outputs.status().WithContext(
              fmt::format("{}: node '{}' field 'model'", source, node.id));
        outputs = *model_outputs;
      }
      if (node.kind == "project" || node.kind == "tts") {
        const bool project = node.kind == "project";
        auto model = catalog(node.params.count("model") ? node.params["model"]
                             : project                  ? "align"
                                                        : "tts",
                             project ? std::vector<std::string>{"image_embeds", "text_embeds"}
                                     : std::vector<std::string>{"text", "voice"});
        if (!model.ok())
          return model.status().WithContext(
              fmt::format("{}: node '{}' field 'model'", source, node.id));
      }
      produced[node.id] = outputs;
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
        if (ref.node != "inputs" && ref.node != "config") deps.insert(ref.node);
        // Type check: preprocessing nodes read inputs of their own media
        // type, retrieve nodes a text or an image input by its field name.
        const bool typed =
            node.kind.starts_with("preprocess.") || (node.kind == "retrieve" && field != "vector");
        if (ref.node == "inputs" && typed) {
          const WorkflowInput* input = workflow->FindInput(ref.output);
          const std::string want =
              node.kind == "retrieve" ? field : node.kind.substr(std::string("preprocess.").size());
          const char* have = input->type == InputType::kText    ? "text"
                             : input->type == InputType::kImage ? "image"
                                                                : "audio";
          if (want != have) {
            return InvalidArgument(
                "{}: node '{}' ({}) field 'from.{}' is the {} input '{}'; it needs {}", source,
                node.id, node.kind, field, have, ref.output, want);
          }
        }
      }
      for (const auto& ref : node.any_of) {
        BRAID_RETURN_IF_ERROR(check_reference(&node, "any_of", ref));
        if (ref.node != "inputs" && ref.node != "config") deps.insert(ref.node);
      }
      for (const auto* gates : {&node.run_if, &node.run_unless}) {
        for (const auto& gate : *gates) {
          auto it = std::find_if(nodes.begin(), nodes.end(),
                                 [&](const NodeSpec& n) { return n.id == gate; });
          if (it == nodes.end() || it->kind != "condition") {
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
  } catch (const YAML::Exception& e) {
    return InvalidArgument("{}: {} at line {}", source, e.msg, e.mark.line + 1);
  }
  return WorkflowPtr(std::move(workflow));
}

}  // namespace braid
