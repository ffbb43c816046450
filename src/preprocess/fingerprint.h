// Perceptual fingerprints of images, for finding near-duplicates: the same
// picture re-encoded, resized, slightly cropped or stripped of its
// metadata. A fingerprint is a 64-bit DCT hash (pHash) to find candidates
// by Hamming distance, and two small thumbnails to verify one: a 32×32 grey
// copy and a 4×4 colour copy (1,137 bytes in all).
#pragma once

#include <array>
#include <cstdint>

#include "core/status.h"

namespace cv {
class Mat;
}

namespace braid {

struct ImageFingerprint {
  // The signs of the 8×8 lowest DCT frequencies of a 32×32 grey copy
  // against their median (the DC term left out: bit 0 is always 0).
  std::uint64_t hash = 0;
  std::array<std::uint8_t, 32 * 32> gray{};
  std::array<std::uint8_t, 4 * 4 * 3> colour{};  // RGB
};

// InvalidArgument unless `rgb` is a non-empty 8-bit RGB image. A uniform
// margin (a page's, a slide's or a screenshot's background) is cut off
// first, so that a crop of a few percent does not move what is inside it.
// Decode images for it at a short side of kFingerprintShortSide or more
// (DecodeImage's min_short_side): smaller copies blur pages of text too far
// to tell their near copies from other pages.
Result<ImageFingerprint> Fingerprint(const cv::Mat& rgb);
inline constexpr int kFingerprintShortSide = 128;

int HammingDistance(std::uint64_t a, std::uint64_t b);

// How alike two fingerprints are and whether that makes them the same
// picture: hashes within kMaxHamming bits, grey thumbnails correlated at
// least kMinCorrelation (Pearson's; two flat thumbnails count as
// correlated), and no colour cell's channel further apart than kMaxColour
// (of 255).
// Tuned to miss rather than mistake: a distinct image must never pass.
struct Likeness {
  int hamming = 64;
  float correlation = 0;
  int colour_distance = 255;
  bool same = false;
};
inline constexpr int kMaxHamming = 12;
inline constexpr float kMinCorrelation = 0.93f;
inline constexpr int kMaxColour = 20;
Likeness Compare(const ImageFingerprint& a, const ImageFingerprint& b);

}  // namespace braid
