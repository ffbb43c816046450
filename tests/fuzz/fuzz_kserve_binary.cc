// The binary tensor extension: the first 4 bytes (little-endian) are the
// Inference-Header-Content-Length, the rest the body (JSON header, then
// tensor bytes). Lying lengths, binary_data_size and shape × dtype overflows.
#include <cstring>

#include "frontends/kserve/kserve.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  std::uint32_t header_length = 0;
  std::memcpy(&header_length, data, 4);
  auto body =
      std::make_shared<const std::string>(reinterpret_cast<const char*>(data) + 4, size - 4);
  braid::KserveLimits limits;
  limits.max_tensor_bytes = std::size_t{64} << 20;
  (void)braid::ParseInferRequest(body, header_length, limits);
  return 0;
}
