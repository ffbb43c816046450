// .npy files (braid infer --input, braid bench --input).
#include "core/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)braid::ParseNpy(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
