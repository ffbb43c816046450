#include "preprocess/fingerprint.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

namespace braid {
namespace {

// The part of `gray` inside a uniform margin: the background of a page, a
// slide or a screenshot, where a crop of a few percent usually falls. The
// margin's grey is the most common one on the image's edge; a row or column
// belongs to the margin while no pixel in it is more than kInk away from
// that grey. An image without such an edge (most of it within kInk of one
// grey), or whose content would be under a quarter of a side, keeps its
// whole frame.
cv::Rect ContentBox(const cv::Mat& gray) {
  constexpr int kInk = 40;
  const cv::Rect whole(0, 0, gray.cols, gray.rows);
  std::array<int, 256> counts{};
  int edge = 0;
  for (int x = 0; x < gray.cols; ++x) {
    ++counts[gray.at<std::uint8_t>(0, x)];
    ++counts[gray.at<std::uint8_t>(gray.rows - 1, x)];
    edge += 2;
  }
  for (int y = 1; y + 1 < gray.rows; ++y) {
    ++counts[gray.at<std::uint8_t>(y, 0)];
    ++counts[gray.at<std::uint8_t>(y, gray.cols - 1)];
    edge += 2;
  }
  const int background =
      static_cast<int>(std::max_element(counts.begin(), counts.end()) - counts.begin());
  int near_background = 0;
  for (int grey = std::max(0, background - kInk / 2); grey <= std::min(255, background + kInk / 2);
       ++grey)
    near_background += counts[grey];
  if (near_background * 10 < edge * 9) return whole;
  auto inked = [&](int y0, int y1, int x0, int x1) {
    for (int y = y0; y < y1; ++y) {
      for (int x = x0; x < x1; ++x) {
        if (std::abs(gray.at<std::uint8_t>(y, x) - background) > kInk) return true;
      }
    }
    return false;
  };
  int top = 0, bottom = gray.rows, left = 0, right = gray.cols;
  while (top < bottom && !inked(top, top + 1, 0, gray.cols)) ++top;
  while (bottom > top && !inked(bottom - 1, bottom, 0, gray.cols)) --bottom;
  while (left < right && !inked(top, bottom, left, left + 1)) ++left;
  while (right > left && !inked(top, bottom, right - 1, right)) --right;
  if ((bottom - top) * 4 < gray.rows || (right - left) * 4 < gray.cols) return whole;
  return cv::Rect(left, top, right - left, bottom - top);
}

}  // namespace

Result<ImageFingerprint> Fingerprint(const cv::Mat& rgb) {
  if (rgb.empty() || rgb.type() != CV_8UC3)
    return InvalidArgument("a fingerprint needs an 8-bit RGB image");
  ImageFingerprint fingerprint;
  cv::Mat gray, small, floats;
  cv::cvtColor(rgb, gray, cv::COLOR_RGB2GRAY);
  const cv::Rect box = ContentBox(gray);
  cv::resize(gray(box), small, cv::Size(32, 32), 0, 0, cv::INTER_AREA);
  small.convertTo(floats, CV_32F, 1.0 / 255);

  cv::Mat frequencies;
  cv::dct(floats, frequencies);
  std::array<float, 64> low;
  for (int y = 0; y < 8; ++y) {
    for (int x = 0; x < 8; ++x) low[y * 8 + x] = frequencies.at<float>(y, x);
  }
  std::array<float, 63> sorted;
  std::copy(low.begin() + 1, low.end(), sorted.begin());
  std::nth_element(sorted.begin(), sorted.begin() + 31, sorted.end());
  const float median = sorted[31];
  for (int i = 1; i < 64; ++i) {
    if (low[i] > median) fingerprint.hash |= std::uint64_t{1} << i;
  }

  std::copy(small.begin<std::uint8_t>(), small.end<std::uint8_t>(), fingerprint.gray.begin());
  cv::Mat colours;
  cv::resize(rgb(box), colours, cv::Size(4, 4), 0, 0, cv::INTER_AREA);
  for (int i = 0; i < 16; ++i) {
    const auto& pixel = colours.at<cv::Vec3b>(i / 4, i % 4);
    for (int c = 0; c < 3; ++c) fingerprint.colour[i * 3 + c] = pixel[c];
  }
  return fingerprint;
}

int HammingDistance(std::uint64_t a, std::uint64_t b) { return std::popcount(a ^ b); }

Likeness Compare(const ImageFingerprint& a, const ImageFingerprint& b) {
  Likeness likeness;
  likeness.hamming = HammingDistance(a.hash, b.hash);
  double sum_a = 0, sum_b = 0, sum_aa = 0, sum_bb = 0, sum_ab = 0;
  for (std::size_t i = 0; i < a.gray.size(); ++i) {
    const double x = a.gray[i], y = b.gray[i];
    sum_a += x;
    sum_b += y;
    sum_aa += x * x;
    sum_bb += y * y;
    sum_ab += x * y;
  }
  const double n = static_cast<double>(a.gray.size());
  const double var_a = sum_aa - sum_a * sum_a / n, var_b = sum_bb - sum_b * sum_b / n;
  // Below about one grey level of spread a thumbnail is flat: two flat ones
  // are alike when their colours are; flat against structured is not.
  const double flat = n;
  if (var_a < flat || var_b < flat) {
    likeness.correlation = var_a < flat && var_b < flat ? 1.0f : 0.0f;
  } else {
    likeness.correlation =
        static_cast<float>((sum_ab - sum_a * sum_b / n) / std::sqrt(var_a * var_b));
  }
  likeness.colour_distance = 0;
  for (std::size_t i = 0; i < a.colour.size(); ++i) {
    likeness.colour_distance =
        std::max(likeness.colour_distance, std::abs(int(a.colour[i]) - int(b.colour[i])));
  }
  likeness.same = likeness.hamming <= kMaxHamming && likeness.correlation >= kMinCorrelation &&
                  likeness.colour_distance <= kMaxColour;
  return likeness;
}

}  // namespace braid
