// The generated test fixtures (tests/fixtures/generate.sh) as requests use
// them.
#pragma once

#include <fstream>
#include <iterator>
#include <string>

#include "core/base64.h"

namespace braid::testing {

// The first image of images.tsv as a data URL.
inline std::string FixtureImageDataUrl() {
  std::ifstream manifest(std::string(BRAID_TEST_FIXTURES) + "/images.tsv");
  std::string line;
  std::getline(manifest, line);
  std::ifstream image(std::string(BRAID_TEST_FIXTURES) + "/" + line.substr(0, line.find('\t')),
                      std::ios::binary);
  return "data:image/png;base64," +
         Base64Encode(std::string(std::istreambuf_iterator<char>(image), {}));
}

}  // namespace braid::testing
