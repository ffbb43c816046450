// Image decoding with its caps (header probe, pixel limit, then OpenCV),
// as the preprocess.image node and OCR use it.
#include "preprocess/image.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  braid::ImageLimits limits;
  limits.max_pixels = 4 << 20;
  auto bytes = std::span(reinterpret_cast<const std::byte*>(data), size);
  auto rgb = braid::DecodeImage(bytes, limits, false, 224);
  if (rgb.ok()) {
    std::vector<float> pixels(3 * 224 * 224);
    (void)braid::ClipPreprocess(*rgb, pixels.data());
  }
  (void)braid::DecodeImage(bytes, limits, true, 0);
  return 0;
}
