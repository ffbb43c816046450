#include "preprocess/layout.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

namespace braid {

Result<std::array<float, kLayoutDimensions>> LayoutDescriptor(const cv::Mat& rgb) {
  if (rgb.empty() || rgb.type() != CV_8UC3)
    return InvalidArgument("the layout descriptor needs an 8-bit RGB image");
  constexpr int kSide = 64, kGrid = 4, kCell = kSide / kGrid, kHues = 12, kGreys = 4;
  static_assert(kGrid * kGrid + kHues + kGreys == kLayoutDimensions);
  cv::Mat small, gray, hsv;
  cv::resize(rgb, small, cv::Size(kSide, kSide), 0, 0, cv::INTER_AREA);
  cv::cvtColor(small, gray, cv::COLOR_RGB2GRAY);
  cv::cvtColor(small, hsv, cv::COLOR_RGB2HSV);
  std::array<float, kLayoutDimensions> descriptor{};

  // The page colour: the centre of the fullest of 32 grey bins.
  std::array<int, 32> greys{};
  for (int y = 0; y < kSide; ++y) {
    for (int x = 0; x < kSide; ++x) ++greys[gray.at<std::uint8_t>(y, x) / 8];
  }
  const float page = 8.0f * float(std::max_element(greys.begin(), greys.end()) - greys.begin()) + 4;
  float mean = 0;
  for (int cell = 0; cell < kGrid * kGrid; ++cell) {
    const int top = cell / kGrid * kCell, left = cell % kGrid * kCell;
    float ink = 0;
    for (int y = top; y < top + kCell; ++y) {
      for (int x = left; x < left + kCell; ++x) ink += std::abs(gray.at<std::uint8_t>(y, x) - page);
    }
    descriptor[cell] = ink / (255.0f * kCell * kCell);
    mean += descriptor[cell] / (kGrid * kGrid);
  }
  for (int cell = 0; cell < kGrid * kGrid; ++cell) descriptor[cell] -= mean;

  // OpenCV's 8-bit hue runs 0-179; below these a pixel counts as grey.
  constexpr int kMinSaturation = 64, kMinValue = 48;
  float* colours = descriptor.data() + kGrid * kGrid;
  for (int y = 0; y < kSide; ++y) {
    for (int x = 0; x < kSide; ++x) {
      const auto& pixel = hsv.at<cv::Vec3b>(y, x);
      const int bin = pixel[1] >= kMinSaturation && pixel[2] >= kMinValue
                          ? pixel[0] * kHues / 180
                          : kHues + std::min(kGreys - 1, pixel[2] * kGreys / 256);
      colours[bin] += 1.0f / (kSide * kSide);
    }
  }
  for (int bin = 0; bin < kHues + kGreys; ++bin) colours[bin] = std::sqrt(colours[bin]);

  // Each half to norm 1/√2; a half that is all zeros leaves the other whole.
  auto norm = [&](int begin, int end) {
    float sum = 0;
    for (int i = begin; i < end; ++i) sum += descriptor[i] * descriptor[i];
    return std::sqrt(sum);
  };
  const float layout_norm = norm(0, kGrid * kGrid);
  const float colour_norm = norm(kGrid * kGrid, kLayoutDimensions);
  const float half = layout_norm > 1e-6f ? std::sqrt(0.5f) : 1.0f;
  for (int i = 0; i < kGrid * kGrid; ++i)
    descriptor[i] = layout_norm > 1e-6f ? descriptor[i] * half / layout_norm : 0.0f;
  for (int i = kGrid * kGrid; i < kLayoutDimensions; ++i) descriptor[i] *= half / colour_norm;
  return descriptor;
}

}  // namespace braid
