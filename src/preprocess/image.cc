#include "preprocess/image.h"

#include <cmath>
#include <cstring>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace braid {
namespace {

std::uint32_t BigEndian32(const unsigned char* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
         p[3];
}
std::uint32_t LittleEndian32(const unsigned char* p) {
  return std::uint32_t(p[0]) | (std::uint32_t(p[1]) << 8) | (std::uint32_t(p[2]) << 16) |
         (std::uint32_t(p[3]) << 24);
}

Result<ImageInfo> ProbeJpeg(const unsigned char* p, std::size_t n) {
  std::size_t i = 2;
  while (i + 9 < n) {
    if (p[i] != 0xFF) return InvalidArgument("corrupt JPEG: no marker at byte {}", i);
    unsigned char marker = p[i + 1];
    if (marker == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {
      i += 2;
      continue;
    }
    std::size_t length = (std::size_t(p[i + 2]) << 8) | p[i + 3];
    if (length < 2) return InvalidArgument("corrupt JPEG: segment length {}", length);
    bool frame =
        marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (frame) {
      // libjpeg decodes a truncated file into a partly grey image with only a
      // warning; the end-of-image marker tells a whole file from a cut one.
      const std::size_t tail = n > 64 ? n - 64 : 0;
      bool ends = false;
      for (std::size_t k = n - 1; k > tail && !ends; --k) ends = p[k - 1] == 0xFF && p[k] == 0xD9;
      if (!ends) return InvalidArgument("truncated JPEG: no end-of-image marker");
      std::int64_t height = (std::int64_t(p[i + 5]) << 8) | p[i + 6];
      std::int64_t width = (std::int64_t(p[i + 7]) << 8) | p[i + 8];
      return ImageInfo{"jpeg", width, height};
    }
    i += 2 + length;
  }
  return InvalidArgument("truncated JPEG: no frame header");
}

}  // namespace

Result<ImageInfo> ProbeImage(std::span<const std::byte> bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const std::size_t n = bytes.size();
  if (n == 0) return InvalidArgument("the image is empty (0 bytes)");
  if (n >= 24 && std::memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) {
    if (std::memcmp(p + 12, "IHDR", 4) != 0) return InvalidArgument("corrupt PNG: no IHDR chunk");
    return ImageInfo{"png", BigEndian32(p + 16), BigEndian32(p + 20)};
  }
  if (n >= 4 && p[0] == 0xFF && p[1] == 0xD8) return ProbeJpeg(p, n);
  if (n >= 26 && p[0] == 'B' && p[1] == 'M') {
    auto width = static_cast<std::int32_t>(LittleEndian32(p + 18));
    auto height = static_cast<std::int32_t>(LittleEndian32(p + 22));
    return ImageInfo{"bmp", std::abs(std::int64_t(width)), std::abs(std::int64_t(height))};
  }
  if (n >= 30 && std::memcmp(p, "RIFF", 4) == 0 && std::memcmp(p + 8, "WEBP", 4) == 0) {
    if (std::memcmp(p + 12, "VP8 ", 4) == 0) {
      return ImageInfo{"webp", (p[26] | (p[27] << 8)) & 0x3FFF, (p[28] | (p[29] << 8)) & 0x3FFF};
    }
    if (std::memcmp(p + 12, "VP8L", 4) == 0) {
      std::uint32_t bits = LittleEndian32(p + 21);
      return ImageInfo{"webp", std::int64_t(bits & 0x3FFF) + 1,
                       std::int64_t((bits >> 14) & 0x3FFF) + 1};
    }
    if (std::memcmp(p + 12, "VP8X", 4) == 0) {
      std::int64_t width = (p[24] | (p[25] << 8) | (p[26] << 16)) + 1;
      std::int64_t height = (p[27] | (p[28] << 8) | (p[29] << 16)) + 1;
      return ImageInfo{"webp", width, height};
    }
    return InvalidArgument("corrupt WebP: unknown chunk");
  }
  return InvalidArgument("unsupported image format (JPEG, PNG, WebP and BMP are)");
}

Result<cv::Mat> DecodeImage(std::span<const std::byte> bytes, const ImageLimits& limits, bool gray,
                            int min_short_side) {
  BRAID_ASSIGN_OR_RETURN(ImageInfo info, ProbeImage(bytes));
  if (info.width <= 0 || info.height <= 0) {
    return InvalidArgument("{} header declares {}x{} pixels", info.format, info.width, info.height);
  }
  // Divided, not multiplied: two 32-bit dimensions overflow a 64-bit
  // product (found by fuzz_image).
  if (info.width > limits.max_pixels / info.height) {
    return Status(StatusCode::kTooLarge,
                  fmt::format("{} image of {}x{} pixels is over the {} pixel limit", info.format,
                              info.width, info.height, limits.max_pixels));
  }
  cv::Mat decoded;
  try {
    cv::Mat raw(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<std::byte*>(bytes.data()));
    int flags = gray ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR;
    if (info.format == "jpeg" && min_short_side > 0) {
      const std::int64_t short_side = std::min(info.width, info.height);
      for (int factor : {8, 4, 2}) {
        if (short_side / factor >= min_short_side) {
          const int reduced_gray[] = {cv::IMREAD_REDUCED_GRAYSCALE_2,
                                      cv::IMREAD_REDUCED_GRAYSCALE_4,
                                      cv::IMREAD_REDUCED_GRAYSCALE_8};
          const int reduced_color[] = {cv::IMREAD_REDUCED_COLOR_2, cv::IMREAD_REDUCED_COLOR_4,
                                       cv::IMREAD_REDUCED_COLOR_8};
          const int index = factor == 2 ? 0 : factor == 4 ? 1 : 2;
          flags = gray ? reduced_gray[index] : reduced_color[index];
          break;
        }
      }
    }
    decoded = cv::imdecode(raw, flags);
  } catch (const cv::Exception& e) {
    return InvalidArgument("cannot decode {} image: {}", info.format, e.what());
  }
  if (decoded.empty())
    return InvalidArgument("cannot decode {} image: corrupt or truncated data", info.format);
  if (!gray) cv::cvtColor(decoded, decoded, cv::COLOR_BGR2RGB);
  return decoded;
}

Status ClipPreprocess(const cv::Mat& rgb, float* out, int size) {
  if (rgb.empty() || rgb.type() != CV_8UC3)
    return InvalidArgument("CLIP preprocessing needs an 8-bit RGB image");
  const int short_side = std::min(rgb.cols, rgb.rows);
  const double scale = double(size) / short_side;
  // Torchvision's Resize(size): the short side becomes `size`, the long side
  // int(size * long / short).
  const int width =
      rgb.cols <= rgb.rows ? size : static_cast<int>(double(size) * rgb.cols / rgb.rows);
  const int height =
      rgb.rows < rgb.cols ? size : static_cast<int>(double(size) * rgb.rows / rgb.cols);
  cv::Mat source = rgb;
  if (scale < 0.5) {
    cv::Mat shrunk;
    cv::resize(rgb, shrunk, cv::Size(width * 2, height * 2), 0, 0, cv::INTER_AREA);
    source = shrunk;
  }
  // Bicubic in float (no rounding back to 8 bits between the steps).
  cv::Mat floats;
  source.convertTo(floats, CV_32FC3);
  cv::Mat resized;
  if (floats.cols == width && floats.rows == height) {
    resized = floats;
  } else {
    cv::resize(floats, resized, cv::Size(width, height), 0, 0, cv::INTER_CUBIC);
  }
  const int top = static_cast<int>(std::lround((height - size) / 2.0));
  const int left = static_cast<int>(std::lround((width - size) / 2.0));
  const std::size_t plane = std::size_t(size) * size;
  float scale_c[3], shift_c[3];
  for (int c = 0; c < 3; ++c) {
    scale_c[c] = 1.0f / (255.0f * kClipStd[c]);
    shift_c[c] = -kClipMean[c] / kClipStd[c];
  }
  for (int y = 0; y < size; ++y) {
    const float* row = resized.ptr<float>(top + y) + 3 * left;
    for (int x = 0; x < size; ++x) {
      for (int c = 0; c < 3; ++c)
        out[c * plane + std::size_t(y) * size + x] = row[3 * x + c] * scale_c[c] + shift_c[c];
    }
  }
  return Status::Ok();
}

}  // namespace braid
