#pragma once

#include <string>

namespace braid::modelgen {

// Writes the clip-text stand-in's tokenizer.json to `path`; false on I/O failure.
bool WriteClipTokenizer(const std::string& path);

}  // namespace braid::modelgen
