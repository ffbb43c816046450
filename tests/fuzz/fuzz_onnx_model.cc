// ONNX model files (braid quantize, braid models quantize): parsed, checked
// and, when they pass, rewritten in every mode.
#include "quantize/quantize.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto model =
      braid::quantize::ParseModel(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!model.ok()) return 0;
  (void)braid::quantize::QuantizeDynamic(*model);
  (void)braid::quantize::QuantizeStatic(*model, {{"x", {-1.f, 1.f}}});
  (void)braid::quantize::ConvertToFp16(*model);
  return 0;
}
