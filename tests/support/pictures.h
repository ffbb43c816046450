// Generated images for the near-duplicate tests: seeded pictures and pages
// of text, and near copies of them (re-encoded, scaled, cropped).
#pragma once

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <string>
#include <vector>

namespace braid::testing {

// A gradient between two seeded colours with three circles on it (RGB).
inline cv::Mat Picture(std::uint32_t seed) {
  std::mt19937 random(seed);
  auto colour = [&] { return cv::Scalar(random() % 256, random() % 256, random() % 256); };
  cv::Mat rgb(360, 480, CV_8UC3);
  const cv::Scalar from = colour(), to = colour();
  for (int y = 0; y < rgb.rows; ++y) rgb.row(y).setTo(from + (to - from) * (double(y) / rgb.rows));
  for (int shape = 0; shape < 3; ++shape) {
    const cv::Point centre(random() % 480, random() % 360);
    cv::circle(rgb, centre, 20 + random() % 80, colour(), cv::FILLED);
  }
  return rgb;
}

// A page of seeded words, black on white, in one layout for every seed:
// the hardest case for telling two images apart.
inline cv::Mat Page(std::uint32_t seed) {
  static const char* kWords[] = {"invoice", "total", "due", "march", "payment", "the",
                                 "order",   "ship",  "to",  "from",  "amount",  "tax"};
  std::mt19937 random(seed);
  cv::Mat rgb(600, 800, CV_8UC3, cv::Scalar(255, 255, 255));
  for (int line = 0; line < 12; ++line) {
    std::string text;
    while (text.size() < 40) text += std::string(kWords[random() % 12]) + " ";
    cv::putText(rgb, text, cv::Point(30, 50 + line * 45), cv::FONT_HERSHEY_SIMPLEX, 0.9,
                cv::Scalar(0, 0, 0), 2);
  }
  return rgb;
}

// `rgb` as JPEG bytes of `quality` (channels taken as they are).
inline std::string Jpeg(const cv::Mat& rgb, int quality = 90) {
  std::vector<unsigned char> bytes;
  cv::imencode(".jpg", rgb, bytes, {cv::IMWRITE_JPEG_QUALITY, quality});
  return std::string(bytes.begin(), bytes.end());
}

// `rgb` with `crop` of each side cut away, scaled by `scale`, through a
// JPEG of `quality`, decoded back.
inline cv::Mat NearCopy(const cv::Mat& rgb, int quality, double scale, double crop) {
  const int dx = static_cast<int>(rgb.cols * crop), dy = static_cast<int>(rgb.rows * crop);
  cv::Mat cropped = rgb(cv::Rect(dx, dy, rgb.cols - 2 * dx, rgb.rows - 2 * dy)), scaled;
  cv::resize(cropped, scaled, cv::Size(), scale, scale, cv::INTER_AREA);
  const std::string jpeg = Jpeg(scaled, quality);
  return cv::imdecode(std::vector<unsigned char>(jpeg.begin(), jpeg.end()), cv::IMREAD_COLOR);
}

}  // namespace braid::testing
