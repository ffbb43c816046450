// The web playground and dashboard (web/), compiled into the binary by
// cmake/EmbedFiles.cmake so that `braid serve` needs no files beside it.
#pragma once

#include <span>
#include <string_view>

namespace braid {

struct EmbeddedFile {
  std::string_view name;  // path under web/, e.g. "index.html"
  std::string_view data;
};

std::span<const EmbeddedFile> WebAssets();

}  // namespace braid
