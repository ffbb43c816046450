#include "preprocess/ocr_image.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <opencv2/imgproc.hpp>
#include <vector>

namespace braid {
namespace {

// The rough analysis runs on at most this many pixels (a downscaled copy of
// a larger image): enough for 9-pixel text on a 12-megapixel photo to stay
// 5 pixels high.
constexpr double kAnalysisPixels = 4'000'000;
// Below this side there is nothing to measure.
constexpr int kMinSide = 8;
// The share of the darkest pixels the contrast stretch turns black.
constexpr double kDarkShare = 0.005;
// Blobs of ink smaller than this share of a letter's square, and farther
// than a quarter of a letter from any larger blob, are specks of the page.
constexpr double kSpeckArea = 0.1;
// A page is blurred when the Gaussian sigma of its edges (BlurSigma) is
// above this share of the prepared text height: 2.4 pixels at 32. bench/ocr
// measured sharp renders at most 1.5, the slightly blurred small-faint-
// gradient and photo styles (sigma 0.5–0.8 before scaling) 1.6–2.2, and the
// blurred style (1.6–2.2 before scaling) 2.5–3.7.
constexpr double kBlurredShare = 0.075;
// Richardson–Lucy iterations for a blurred page (bench/ocr: 30 ahead of 15
// and 60), and the largest page it runs on, each iteration costing two
// Gaussian blurs of the whole page.
constexpr int kDeblurIterations = 30;
constexpr double kDeblurPixels = 4'000'000;
// A blur wider than a quarter of the text height has left nothing to
// recover, and deconvolving it would cost seconds (each iteration blurs the
// page twice with a kernel of about 8 sigma).
constexpr double kDeblurLimitShare = 0.25;
// A page is cluttered (paper texture, blotches read as ink) when at least
// this many groups of ink are not word-shaped; a group is word-shaped when
// it is at least kWordAspect times as wide as it is high.
constexpr int kClutterGroups = 6;
constexpr double kWordAspect = 2;

int OddSize(double size) { return std::max(3, static_cast<int>(std::lround(size)) | 1); }

// `gray` scaled by `factor` (area averaging down, cubic up).
cv::Mat Resized(const cv::Mat& gray, double factor) {
  cv::Mat out;
  const cv::Size size(std::max(1, static_cast<int>(std::lround(gray.cols * factor))),
                      std::max(1, static_cast<int>(std::lround(gray.rows * factor))));
  cv::resize(gray, out, size, 0, 0, factor < 1 ? cv::INTER_AREA : cv::INTER_CUBIC);
  return out;
}

// The page without its ink: a median over `window` pixels, taken on a copy
// shrunk so that the window is about 15 pixels (the light varies slowly, and
// a median over hundreds of pixels would be slow), scaled back up.
cv::Mat Background(const cv::Mat& gray, double window) {
  const double shrink = std::min(1.0, 15.0 / window);
  cv::Mat small = shrink < 1 ? Resized(gray, shrink) : gray;
  cv::Mat background;
  cv::medianBlur(small, background,
                 OddSize(std::min<double>(window * shrink, std::min(small.cols, small.rows) | 1)));
  if (shrink < 1) cv::resize(background, background, gray.size(), 0, 0, cv::INTER_LINEAR);
  return background;
}

// Whether the text is lighter than its ground: the ink is the minority, so
// the differences from the local background have their long tail on its side.
bool LightInk(const cv::Mat& gray) {
  cv::Mat smooth, difference;
  cv::blur(gray, smooth, cv::Size(OddSize(gray.cols / 8.0), OddSize(gray.rows / 8.0)));
  cv::subtract(gray, smooth, difference, cv::noArray(), CV_32F);
  double third_moment = 0;
  for (int y = 0; y < difference.rows; ++y) {
    const auto* row = difference.ptr<float>(y);
    for (int x = 0; x < difference.cols; ++x) third_moment += double(row[x]) * row[x] * row[x];
  }
  return third_moment > 0;
}

// What the rough binarisation finds in a dark-on-light image.
struct Analysis {
  double text_height = 0;  // at the image's own scale; 0: no text-like ink
  double skew = 0;
};

// Ink pixels: darker than the local background by well above its noise.
// The blobs kept are letter-like: at least 3 pixels high, lower than a
// third of the image, and neither hairlines nor solid slabs.
Analysis Analyse(const cv::Mat& dark_on_light, double max_skew) {
  Analysis analysis;
  if (std::min(dark_on_light.cols, dark_on_light.rows) < kMinSide) return analysis;
  const double shrink =
      std::min(1.0, std::sqrt(kAnalysisPixels / static_cast<double>(dark_on_light.total())));
  const cv::Mat gray = shrink < 1 ? Resized(dark_on_light, shrink) : dark_on_light;
  const cv::Mat background =
      Background(gray, std::clamp(std::min(gray.cols, gray.rows) / 4.0, 15.0, 101.0));
  cv::Mat darker;
  cv::subtract(background, gray, darker);  // saturates at 0 where lighter
  // The noise: the median absolute difference, as a standard deviation.
  std::array<int, 256> histogram{};
  for (int y = 0; y < darker.rows; ++y) {
    const auto* row = darker.ptr<std::uint8_t>(y);
    for (int x = 0; x < darker.cols; ++x) ++histogram[row[x]];
  }
  const auto half = static_cast<std::int64_t>(darker.total() / 2);
  std::int64_t seen = 0;
  int median = 0;
  while (median < 255 && (seen += histogram[median]) <= half) ++median;
  // The ink's depth: how much darker than the page its darkest 0.2 % is.
  // Half of it keeps letters apart that blur or antialiasing would join.
  const auto tail = static_cast<std::int64_t>(darker.total() / 500);
  seen = 0;
  int depth = 255;
  while (depth > 0 && (seen += histogram[depth]) <= tail) --depth;
  const double threshold = std::max({8.0, 3 * 1.4826 * median + 4, 0.3 * depth});
  cv::Mat ink = darker > threshold;

  cv::Mat labels, stats, centroids;
  const int count = cv::connectedComponentsWithStats(ink, labels, stats, centroids, 8, CV_32S);
  std::vector<char> keep(count, 0);
  std::vector<std::pair<int, int>> height_area;
  for (int label = 1; label < count; ++label) {
    const int width = stats.at<int>(label, cv::CC_STAT_WIDTH);
    const int height = stats.at<int>(label, cv::CC_STAT_HEIGHT);
    const int area = stats.at<int>(label, cv::CC_STAT_AREA);
    const double fill = static_cast<double>(area) / (double(width) * height);
    if (height < 3 || height > gray.rows / 3 || width > 30 * height || fill < 0.1 || fill > 0.9)
      continue;
    keep[label] = 1;
    height_area.emplace_back(height, area);
  }
  if (height_area.empty()) return analysis;
  // The height of the blob holding the median ink pixel: specks of noise
  // are many but hold little ink.
  std::sort(height_area.begin(), height_area.end());
  std::int64_t total = 0;
  for (const auto& [height, area] : height_area) total += area;
  std::int64_t running = 0;
  for (const auto& [height, area] : height_area) {
    running += area;
    if (2 * running >= total) {
      analysis.text_height = height / shrink;
      break;
    }
  }

  // Skew: the angle whose projection of the kept ink onto the lines' normal
  // is the most concentrated (sum of squared row counts), coarse then fine.
  std::vector<cv::Point2f> points;
  for (int y = 0; y < labels.rows; ++y) {
    const auto* row = labels.ptr<int>(y);
    for (int x = 0; x < labels.cols; ++x) {
      if (keep[row[x]]) points.emplace_back(static_cast<float>(x), static_cast<float>(y));
    }
  }
  if (points.size() < 50) return analysis;
  const std::size_t stride = std::max<std::size_t>(1, points.size() / 40'000);
  const double reach = std::hypot(gray.cols, gray.rows);
  std::vector<int> bins(static_cast<std::size_t>(2 * reach) + 2);
  auto sharpness = [&](double degrees) {
    const double radians = degrees * CV_PI / 180;
    const double sine = std::sin(radians), cosine = std::cos(radians);
    std::fill(bins.begin(), bins.end(), 0);
    for (std::size_t i = 0; i < points.size(); i += stride) {
      ++bins[static_cast<std::size_t>(points[i].x * sine + points[i].y * cosine + reach)];
    }
    double score = 0;
    for (int n : bins) score += double(n) * n;
    return score;
  };
  auto search = [&](double from, double to, double step) {
    double best = from, best_score = -1;
    for (double degrees = from; degrees <= to + 1e-9; degrees += step) {
      const double score = sharpness(degrees);
      if (score > best_score) best_score = score, best = degrees;
    }
    return best;
  };
  const double coarse = search(-max_skew, max_skew, 0.5);
  analysis.skew = search(coarse - 0.5, coarse + 0.5, 0.05);
  return analysis;
}

// The value below which `share` of `values` (float, mostly within [0, 1])
// lie, to 1/1024.
double Percentile(const cv::Mat& values, double share) {
  std::vector<std::int64_t> histogram(1025);
  for (int y = 0; y < values.rows; ++y) {
    const auto* row = values.ptr<float>(y);
    for (int x = 0; x < values.cols; ++x) {
      ++histogram[static_cast<std::size_t>(std::clamp(row[x], 0.0f, 1.0f) * 1024)];
    }
  }
  const auto wanted = static_cast<std::int64_t>(share * static_cast<double>(values.total()));
  std::int64_t seen = 0;
  for (std::size_t bin = 0; bin < histogram.size(); ++bin) {
    seen += histogram[bin];
    if (seen > wanted) return bin / 1024.0;
  }
  return 1;
}

// Clears from `ink` (255: ink) the blobs smaller than `small` pixels that
// lie farther than `reach` from any larger one: specks of paper texture and
// noise, but not the dots of i and j or punctuation beside letters.
void Despeckle(cv::Mat& ink, double small, int reach) {
  cv::Mat labels, stats, centroids;
  const int count = cv::connectedComponentsWithStats(ink, labels, stats, centroids, 8, CV_32S);
  std::vector<char> speck(count, 0), near_letter(count, 0);
  for (int label = 1; label < count; ++label) {
    speck[label] = stats.at<int>(label, cv::CC_STAT_AREA) < small;
  }
  cv::Mat letters(ink.size(), CV_8U);
  for (int y = 0; y < labels.rows; ++y) {
    const auto* label = labels.ptr<int>(y);
    auto* out = letters.ptr<std::uint8_t>(y);
    for (int x = 0; x < labels.cols; ++x) out[x] = label[x] > 0 && !speck[label[x]] ? 255 : 0;
  }
  cv::dilate(letters, letters,
             cv::getStructuringElement(cv::MORPH_RECT, cv::Size(2 * reach + 1, 2 * reach + 1)));
  for (int y = 0; y < labels.rows; ++y) {
    const auto* label = labels.ptr<int>(y);
    const auto* near = letters.ptr<std::uint8_t>(y);
    for (int x = 0; x < labels.cols; ++x) {
      if (near[x]) near_letter[label[x]] = 1;
    }
  }
  for (int y = 0; y < labels.rows; ++y) {
    const auto* label = labels.ptr<int>(y);
    auto* out = ink.ptr<std::uint8_t>(y);
    for (int x = 0; x < labels.cols; ++x) {
      if (speck[label[x]] && !near_letter[label[x]]) out[x] = 0;
    }
  }
}

// On a cluttered page, clears from `ink` (255: ink) what is not in a line
// of text: the ink smeared along the lines by a letter's width joins the
// letters of a word and the words of a line into groups, and the groups not
// word-shaped (the blotches and fibres of paper that the background division
// leaves letter-sized) are cleared. A page with fewer of them keeps all its
// ink, so that a lone letter or digit is not lost.
void KeepTextLines(cv::Mat& ink, double letter) {
  cv::Mat smeared, labels, stats, centroids;
  cv::dilate(ink, smeared, cv::getStructuringElement(cv::MORPH_RECT, cv::Size(OddSize(letter), 1)));
  const int count = cv::connectedComponentsWithStats(smeared, labels, stats, centroids, 8, CV_32S);
  std::vector<char> stray(count, 0);
  int strays = 0;
  for (int label = 1; label < count; ++label) {
    const double width = stats.at<int>(label, cv::CC_STAT_WIDTH) - (OddSize(letter) - 1);
    stray[label] = width < kWordAspect * stats.at<int>(label, cv::CC_STAT_HEIGHT);
    strays += stray[label];
  }
  if (strays < kClutterGroups) return;
  for (int y = 0; y < labels.rows; ++y) {
    const auto* label = labels.ptr<int>(y);
    auto* out = ink.ptr<std::uint8_t>(y);
    for (int x = 0; x < labels.cols; ++x) {
      if (stray[label[x]]) out[x] = 0;
    }
  }
}

// The Gaussian sigma, in pixels, of the edges of `ink` (float, the page 0,
// the ink up to 1): a step of depth d blurred by sigma is at its steepest
// d / (sigma √(2π)); taken over the deepest ink and the steepest slopes.
double BlurSigma(const cv::Mat& ink) {
  cv::Mat dx, dy, slope;
  cv::Sobel(ink, dx, CV_32F, 1, 0, 3, 1.0 / 8);
  cv::Sobel(ink, dy, CV_32F, 0, 1, 3, 1.0 / 8);
  cv::magnitude(dx, dy, slope);
  const double depth = Percentile(ink, 1 - kDarkShare);
  const double steepest = std::max(1e-3, Percentile(slope, 1 - kDarkShare));
  return depth / (steepest * std::sqrt(2 * CV_PI));
}

// Richardson–Lucy deconvolution of `ink` (float, non-negative, the page 0)
// by a Gaussian of `sigma` pixels. The small floor keeps the ratios of the
// empty page finite.
cv::Mat Deblurred(const cv::Mat& ink, double sigma, int iterations) {
  constexpr double kFloor = 0.01;
  const cv::Mat observed = ink + kFloor;
  cv::Mat estimate = observed.clone(), blurred, correction;
  for (int i = 0; i < iterations; ++i) {
    cv::GaussianBlur(estimate, blurred, cv::Size(), sigma);
    cv::divide(observed, blurred, correction);
    cv::GaussianBlur(correction, correction, cv::Size(), sigma);
    estimate = estimate.mul(correction);
  }
  return estimate - kFloor;
}

// Analyse() on `gray` (8-bit, one channel) with light ink made dark; nothing
// for an image of another type.
Analysis AnalyseAnyInk(const cv::Mat& gray, double max_skew) {
  if (gray.empty() || gray.type() != CV_8UC1) return {};
  return Analyse(LightInk(gray) ? cv::Mat(255 - gray) : gray, max_skew);
}

}  // namespace

cv::Rect OcrImage::BoxInOriginal(const cv::Rect& prepared) const {
  double left = 1e300, top = 1e300, right = -1e300, bottom = -1e300;
  for (const cv::Point2d corner :
       {cv::Point2d(prepared.x, prepared.y), cv::Point2d(prepared.x + prepared.width, prepared.y),
        cv::Point2d(prepared.x, prepared.y + prepared.height),
        cv::Point2d(prepared.x + prepared.width, prepared.y + prepared.height)}) {
    const cv::Vec3d point(corner.x, corner.y, 1);
    const double x = to_original.row(0).dot(point.t()), y = to_original.row(1).dot(point.t());
    left = std::min(left, x), right = std::max(right, x);
    top = std::min(top, y), bottom = std::max(bottom, y);
  }
  auto clip = [](double value, int limit) {
    return static_cast<int>(std::clamp(value, 0.0, static_cast<double>(limit)));
  };
  const int x0 = clip(std::floor(left), original_size.width);
  const int y0 = clip(std::floor(top), original_size.height);
  const int x1 = clip(std::ceil(right), original_size.width);
  const int y1 = clip(std::ceil(bottom), original_size.height);
  return cv::Rect(x0, y0, x1 - x0, y1 - y0);
}

double EstimateTextHeight(const cv::Mat& gray) { return AnalyseAnyInk(gray, 0).text_height; }

double EstimateSkew(const cv::Mat& gray, double max_degrees) {
  return AnalyseAnyInk(gray, max_degrees).skew;
}

Result<OcrImage> PrepareOcrImage(const cv::Mat& gray, const OcrImageOptions& options) {
  if (gray.empty() || gray.type() != CV_8UC1) {
    return InvalidArgument("OCR preparation takes a non-empty 8-bit gray image");
  }
  OcrImage out;
  out.original_size = gray.size();
  cv::Mat page = gray;
  if (std::min(gray.cols, gray.rows) >= kMinSide && LightInk(gray)) {
    page = 255 - gray;
    out.inverted = true;
  }
  const Analysis analysis = Analyse(page, options.max_skew_degrees);
  if (analysis.text_height == 0) {
    out.image = page.clone();
    return out;
  }

  double scale = options.text_height / analysis.text_height;
  if (scale <= options.scale_tolerance && scale >= 1 / options.scale_tolerance) scale = 1;
  scale = std::min(scale, options.max_upscale);
  const double skew = std::abs(analysis.skew) >= 0.5 ? analysis.skew : 0;
  // The rotated page's bounding box, at scale 1.
  const double radians = skew * CV_PI / 180;
  const double rotated_width =
      std::abs(page.cols * std::cos(radians)) + std::abs(page.rows * std::sin(radians));
  const double rotated_height =
      std::abs(page.cols * std::sin(radians)) + std::abs(page.rows * std::cos(radians));
  if (scale > 1) {
    const double room =
        std::sqrt(static_cast<double>(options.max_pixels) / (rotated_width * rotated_height));
    scale = std::max(1.0, std::min(scale, room));
  }

  const cv::Mat scaled = scale == 1 ? page : Resized(page, scale);
  // Contrast: the page divided by its background (uneven light and paper
  // texture gone, the page at 1), stretched so that the darkest ink is black.
  const double letter = analysis.text_height * scale;
  cv::Mat ratio, background;
  scaled.convertTo(ratio, CV_32F);
  Background(scaled, 2 * letter).convertTo(background, CV_32F, 1, 1);
  cv::divide(ratio, background, ratio);
  // A blurred page (out of focus, shaken) is sharpened by deconvolving its
  // ink with the blur its edges show.
  if (static_cast<double>(ratio.total()) <= kDeblurPixels) {
    const cv::Mat ink = cv::max(1 - ratio, 0);
    const double sigma = BlurSigma(ink);
    if (sigma > kBlurredShare * letter && sigma <= kDeblurLimitShare * letter) {
      ratio = 1 - Deblurred(ink, sigma, kDeblurIterations);
      out.deblur_sigma = sigma;
    }
  }
  const double darkest = Percentile(ratio, kDarkShare);
  const double range = std::max(1e-3, 1 - darkest);
  cv::Mat prepared;
  ratio.convertTo(prepared, CV_8U, 255 / range, -255 * darkest / range);

  // Original → prepared, as a 3×3 matrix.
  cv::Matx33d forward(double(scaled.cols) / page.cols, 0, 0, 0, double(scaled.rows) / page.rows, 0,
                      0, 0, 1);
  if (skew != 0) {
    const cv::Point2f centre(prepared.cols / 2.0f, prepared.rows / 2.0f);
    cv::Mat rotation = cv::getRotationMatrix2D(centre, -skew, 1.0);
    const cv::Size size(static_cast<int>(std::ceil(rotated_width * scale)),
                        static_cast<int>(std::ceil(rotated_height * scale)));
    rotation.at<double>(0, 2) += size.width / 2.0 - centre.x;
    rotation.at<double>(1, 2) += size.height / 2.0 - centre.y;
    // The page is white now, so what the turn brings in is white too.
    cv::warpAffine(prepared, prepared, rotation, size, cv::INTER_CUBIC, cv::BORDER_CONSTANT,
                   cv::Scalar(255));
    const cv::Matx33d turn(rotation.at<double>(0, 0), rotation.at<double>(0, 1),
                           rotation.at<double>(0, 2), rotation.at<double>(1, 0),
                           rotation.at<double>(1, 1), rotation.at<double>(1, 2), 0, 0, 1);
    forward = turn * forward;
  }
  const cv::Matx33d backward = forward.inv();
  out.to_original = cv::Matx23d(backward(0, 0), backward(0, 1), backward(0, 2), backward(1, 0),
                                backward(1, 1), backward(1, 2));
  out.scale = scale;
  out.skew = skew;
  // Binarisation of the page only: Otsu's cut between page and ink, the
  // page white, the ink keeping its greys for Tesseract's LSTM (which reads
  // the grey image), specks and, on a cluttered page, what is off the lines
  // of text cleared.
  cv::Mat ink;
  cv::threshold(prepared, ink, 0, 255, cv::THRESH_BINARY_INV | cv::THRESH_OTSU);
  Despeckle(ink, kSpeckArea * letter * letter, std::max(1, static_cast<int>(letter / 4)));
  KeepTextLines(ink, letter);
  prepared.setTo(255, ink == 0);
  out.image = prepared;
  return out;
}

}  // namespace braid
