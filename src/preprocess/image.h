// Image decoding and CLIP preprocessing.
//
// DecodeImage reads the format's header first and refuses images whose
// declared size exceeds the pixel cap before a single pixel is decoded, so a
// small file claiming 100000×100000 pixels costs nothing. JPEG EXIF
// orientation is applied (OpenCV does this on decode).
#pragma once

#include <cstdint>
#include <opencv2/core.hpp>
#include <span>
#include <string_view>

#include "core/status.h"

namespace braid {

struct ImageLimits {
  std::int64_t max_pixels = 40'000'000;
};

struct ImageInfo {
  std::string_view format;  // "png", "jpeg", "webp", "bmp"
  std::int64_t width = 0;
  std::int64_t height = 0;
};

// The format and declared size from the header alone; InvalidArgument for
// an unknown format or a truncated header.
Result<ImageInfo> ProbeImage(std::span<const std::byte> bytes);

// Decodes to 8-bit RGB (3 channels), or to 8-bit gray with `gray`.
// With `min_short_side` > 0 a JPEG is decoded at 1/2, 1/4 or 1/8 scale in
// the DCT domain (libjpeg's scaled decoding, itself an antialiasing
// downscale) when the result's shorter side stays at least that long: a
// 1920×1080 photo headed for CLIP decodes at 480×270, several times faster.
// InvalidArgument for corrupt data, TooLarge past the pixel cap.
Result<cv::Mat> DecodeImage(std::span<const std::byte> bytes, const ImageLimits& limits = {},
                            bool gray = false, int min_short_side = 0);

// CLIP's preprocessing: resize the shorter side to `size` with bicubic
// interpolation (OpenCV's kernel, a = −0.75, pixel centres at +0.5, edges
// replicated; computed in float; when downscaling by more than 2× an area
// pre-shrink to twice the target comes first, approximating PIL's
// antialiased bicubic),
// centre crop size×size, scale to [0,1], normalise with CLIP's mean and std,
// and write NCHW float32 to `out` (3·size·size floats), e.g. straight into a
// batch buffer.
Status ClipPreprocess(const cv::Mat& rgb, float* out, int size = 224);

inline constexpr float kClipMean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
inline constexpr float kClipStd[3] = {0.26862954f, 0.26130258f, 0.27577711f};

}  // namespace braid
