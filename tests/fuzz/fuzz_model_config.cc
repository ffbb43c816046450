// Model config YAML through the strict parser.
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)braid::ParseModelConfig(std::string_view(reinterpret_cast<const char*>(data), size),
                                "fuzzed", "/nonexistent/fuzzed", "config.yaml");
  return 0;
}
