#include "preprocess/image.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <opencv2/imgcodecs.hpp>
#include <random>

namespace braid {
namespace {

using ::testing::HasSubstr;

cv::Mat RandomImage(int width, int height, std::uint32_t seed) {
  cv::Mat image(height, width, CV_8UC3);
  std::mt19937 random(seed);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width * 3; ++x) image.ptr<unsigned char>(y)[x] = random() % 256;
  }
  return image;
}

std::vector<std::byte> Encode(const cv::Mat& bgr, const std::string& extension) {
  std::vector<unsigned char> buffer;
  EXPECT_TRUE(cv::imencode(extension, bgr, buffer));
  std::vector<std::byte> bytes(buffer.size());
  std::memcpy(bytes.data(), buffer.data(), buffer.size());
  return bytes;
}

TEST(ImageTest, ProbesEveryFormatFromItsHeader) {
  cv::Mat image = RandomImage(37, 23, 1);
  for (const std::string extension : {".png", ".jpg", ".bmp", ".webp"}) {
    auto info = ProbeImage(Encode(image, extension));
    ASSERT_TRUE(info.ok()) << extension << ": " << info.status().ToString();
    EXPECT_EQ(info->width, 37) << extension;
    EXPECT_EQ(info->height, 23) << extension;
  }
}

TEST(ImageTest, DecodesToRgb) {
  cv::Mat bgr(4, 4, CV_8UC3, cv::Scalar(10, 20, 200));  // B, G, R
  auto rgb = DecodeImage(Encode(bgr, ".png"));
  ASSERT_TRUE(rgb.ok());
  EXPECT_EQ(rgb->at<cv::Vec3b>(0, 0)[0], 200);
  EXPECT_EQ(rgb->at<cv::Vec3b>(0, 0)[2], 10);
  auto gray = DecodeImage(Encode(bgr, ".png"), {}, true);
  ASSERT_TRUE(gray.ok());
  EXPECT_EQ(gray->channels(), 1);
}

TEST(ImageTest, RefusesBombsBeforeDecoding) {
  // A PNG whose IHDR claims 100000 x 100000 pixels and has no real data.
  static const char kBomb[] =
      "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\x01\x86\xa0\0\x01\x86\xa0\x08\x02\0\0\0";
  std::string png(kBomb, sizeof(kBomb) - 1);
  auto bytes = std::as_bytes(std::span(png.data(), png.size()));
  auto result = DecodeImage(bytes);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kTooLarge);
  EXPECT_THAT(result.status().message(), HasSubstr("100000x100000"));
  ImageLimits small;
  small.max_pixels = 100;
  EXPECT_EQ(DecodeImage(Encode(RandomImage(20, 20, 2), ".png"), small).status().code(),
            StatusCode::kTooLarge);
}

TEST(ImageTest, CorruptInputIsInvalidArgument) {
  auto jpeg = Encode(RandomImage(64, 64, 3), ".jpg");
  auto png = Encode(RandomImage(64, 64, 3), ".png");
  EXPECT_THAT(DecodeImage({}).status().message(), HasSubstr("empty"));
  EXPECT_THAT(DecodeImage(std::span(jpeg).first(jpeg.size() / 2)).status().message(),
              HasSubstr("truncated JPEG"));
  EXPECT_EQ(DecodeImage(std::span(png).first(png.size() / 2)).status().code(),
            StatusCode::kInvalidArgument);
  std::string gif = "GIF89a....";
  EXPECT_THAT(DecodeImage(std::as_bytes(std::span(gif.data(), gif.size()))).status().message(),
              HasSubstr("unsupported"));
}

// Reference bicubic resampling written from the kernel's definition
// (Keys, a = -0.75; pixel centres at +0.5; edges replicated), in double.
double Cubic(double x) {
  constexpr double a = -0.75;
  x = std::abs(x);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

double Sample(const cv::Mat& rgb, int out_x, int out_y, int channel, int width, int height) {
  const double sx = (out_x + 0.5) * rgb.cols / width - 0.5;
  const double sy = (out_y + 0.5) * rgb.rows / height - 0.5;
  const int x0 = static_cast<int>(std::floor(sx)), y0 = static_cast<int>(std::floor(sy));
  double value = 0;
  for (int j = -1; j <= 2; ++j) {
    for (int i = -1; i <= 2; ++i) {
      int x = std::clamp(x0 + i, 0, rgb.cols - 1), y = std::clamp(y0 + j, 0, rgb.rows - 1);
      value += Cubic(sx - (x0 + i)) * Cubic(sy - (y0 + j)) * rgb.at<cv::Vec3b>(y, x)[channel];
    }
  }
  return value;
}

// Straightforward CLIP preprocessing: resize short side, centre crop,
// scale, normalise, CHW.
std::vector<double> Reference(const cv::Mat& rgb, int size) {
  const int width =
      rgb.cols <= rgb.rows ? size : static_cast<int>(double(size) * rgb.cols / rgb.rows);
  const int height =
      rgb.rows < rgb.cols ? size : static_cast<int>(double(size) * rgb.rows / rgb.cols);
  const int top = static_cast<int>(std::lround((height - size) / 2.0));
  const int left = static_cast<int>(std::lround((width - size) / 2.0));
  std::vector<double> out(3 * size * size);
  for (int c = 0; c < 3; ++c) {
    for (int y = 0; y < size; ++y) {
      for (int x = 0; x < size; ++x) {
        double v = (width == rgb.cols && height == rgb.rows)
                       ? rgb.at<cv::Vec3b>(top + y, left + x)[c]
                       : Sample(rgb, left + x, top + y, c, width, height);
        out[(c * size + y) * size + x] = (v / 255.0 - kClipMean[c]) / kClipStd[c];
      }
    }
  }
  return out;
}

void ExpectMatchesReference(const cv::Mat& rgb, int size) {
  std::vector<float> got(3 * size * size);
  ASSERT_TRUE(ClipPreprocess(rgb, got.data(), size).ok());
  auto want = Reference(rgb, size);
  double worst = 0;
  for (std::size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
  EXPECT_LE(worst, 1e-4) << rgb.cols << "x" << rgb.rows << " -> " << size;
}

TEST(ClipPreprocessTest, NoResizeIsExactNormalisationInChw) {
  ExpectMatchesReference(RandomImage(32, 32, 4), 32);
}
TEST(ClipPreprocessTest, CentreCropOfAWideImage) {
  ExpectMatchesReference(RandomImage(48, 32, 5), 32);
}
TEST(ClipPreprocessTest, BicubicDownscaleTallImage) {
  ExpectMatchesReference(RandomImage(45, 60, 6), 32);
}
TEST(ClipPreprocessTest, BicubicUpscale) { ExpectMatchesReference(RandomImage(20, 26, 7), 32); }

TEST(ClipPreprocessTest, LargeDownscaleStaysCloseToTheImageMean) {
  // Past 2x the area pre-shrink applies: a flat image stays flat and exact.
  cv::Mat flat(1080, 1920, CV_8UC3, cv::Scalar(128, 64, 32));
  std::vector<float> out(3 * 224 * 224);
  ASSERT_TRUE(ClipPreprocess(flat, out.data()).ok());
  for (int c = 0; c < 3; ++c) {
    const double expected = ((c == 0   ? 128
                              : c == 1 ? 64
                                       : 32) /
                                 255.0 -
                             kClipMean[c]) /
                            kClipStd[c];
    EXPECT_NEAR(out[c * 224 * 224 + 1000], expected, 1e-4);
  }
}

}  // namespace
}  // namespace braid
