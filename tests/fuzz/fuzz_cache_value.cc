// Values read back from the shared Redis tier (another process wrote them,
// or something else did).
#include "cache/value_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto value = braid::DecodeCacheValue(std::string_view(reinterpret_cast<const char*>(data), size));
  if (value.ok()) (void)braid::EncodeCacheValue(value->tensors, value->expires_at_ms);
  return 0;
}
