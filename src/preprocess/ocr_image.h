// Preparing a photographed page for Tesseract.
//
// Tesseract reads printed text best when it is dark on a flat light page,
// horizontal, and a few tens of pixels high; its page layout analysis finds
// no lines at all in small text, on uneven light or tilted by a few degrees.
// PrepareOcrImage brings a gray image there: it measures the text height and
// the skew on a rough binarisation, rescales, divides out the background
// (uneven light, paper texture), stretches the contrast, rotates the lines
// level, and whitens the page: Otsu's cut, which after the division works
// everywhere on the page, sets the page to white while the ink keeps its
// greys, which Tesseract's LSTM reads (measured by bench/ocr: well ahead of
// Sauvola's local thresholds, which thicken blurred strokes and keep paper
// texture as ink).
// Every step is bounded, so a 1×1 image, a blank page or a 40-megapixel one
// comes back without a crash and within OcrImageOptions::max_pixels.
#pragma once

#include <cstdint>
#include <opencv2/core.hpp>

#include "core/status.h"

namespace braid {

struct OcrImageOptions {
  // The text height (EstimateTextHeight: in running text close to the
  // x-height) the text is scaled to. Tesseract reads best at x-heights
  // of 20–30 pixels and more; bench/ocr measured 32 ahead of 24.
  double text_height = 32;
  // Text already within this factor of text_height is left at its size.
  double scale_tolerance = 1.25;
  // The largest upscale: below 1/max_upscale of text_height there is too
  // little left to read, and the image would only grow.
  double max_upscale = 4;
  // The prepared image's pixel cap; the scale shrinks to stay below it.
  std::int64_t max_pixels = 16'000'000;
  // The largest skew searched for, either way, in degrees.
  double max_skew_degrees = 10;
};

// A prepared image and how its pixels map back to the original.
struct OcrImage {
  cv::Mat image;            // 8-bit, one channel: dark text on a white page
  double scale = 1;         // prepared pixels per original pixel
  double skew = 0;          // degrees the original was rotated back (counter-clockwise positive)
  bool inverted = false;    // the original had light text on a dark ground
  double deblur_sigma = 0;  // the blur (prepared pixels) deconvolved; 0: the page was sharp
  cv::Size original_size;
  cv::Matx23d to_original = cv::Matx23d(1, 0, 0, 0, 1, 0);  // prepared → original coordinates

  // The smallest axis-aligned box of the original holding the prepared
  // image's box [left, right) × [top, bottom), clipped to the original.
  cv::Rect BoxInOriginal(const cv::Rect& prepared) const;
};

// The median height in pixels of the letter-sized ink blobs of `gray`
// (8-bit, one channel; dark or light text), found by a rough binarisation
// against the local background; 0 when there are none.
double EstimateTextHeight(const cv::Mat& gray);

// The angle in degrees of the text lines in `gray` (counter-clockwise
// positive, as cv::getRotationMatrix2D turns: lines rising to the right),
// the one within ±max_degrees whose projection profile of the ink is the
// sharpest; 0 when there is no ink.
double EstimateSkew(const cv::Mat& gray, double max_degrees = 10);

// `gray` (8-bit, one channel) scaled, deskewed, its background divided out
// and its page whitened for Tesseract; light text on a dark ground comes
// back dark on light. The result has at most max(max_pixels, the rotated
// original's pixels): the cap bounds upscaling, it never shrinks text. InvalidArgument for an empty
// image or another type. An image without text-like ink keeps its size and angle.
Result<OcrImage> PrepareOcrImage(const cv::Mat& gray, const OcrImageOptions& options = {});

}  // namespace braid
