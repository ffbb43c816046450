// The built-in node kinds, by family; node_kind.cc registers them all.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "workflow/node_kind.h"

namespace braid {

using NodeKindMap = std::map<std::string, std::unique_ptr<NodeKind>, std::less<>>;

void RegisterModelNodes(NodeKindMap& kinds);       // model, project, tts
void RegisterPreprocessNodes(NodeKindMap& kinds);  // preprocess.image, .audio, .text
void RegisterComputeNodes(NodeKindMap& kinds);     // condition, similarity, fuse, template
void RegisterRetrieveNode(NodeKindMap& kinds);     // retrieve
void RegisterRemoteChatNode(NodeKindMap& kinds);   // remote.chat

// Takes the {{references}} in parameter `param` (required) as the node's
// inputs: a template's or a prompt's.
Status TakePlaceholders(NodeSpec& node, const std::string& param);
// `text` with each {{reference}} replaced by its value in `values`
// (RenderTensor); absent ones become empty.
std::string RenderTemplate(const std::string& text, const NamedTensors& values);

}  // namespace braid
