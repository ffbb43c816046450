// KServe v2 JSON inference requests: ParseInferRequest on the whole body.
#include "frontends/kserve/kserve.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto body = std::make_shared<const std::string>(reinterpret_cast<const char*>(data), size);
  (void)braid::ParseInferRequest(body, std::nullopt);
  return 0;
}
