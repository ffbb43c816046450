// The layout and colour descriptor of a document image (screenshots,
// slides, receipts, scans): what the document space keeps beside the text
// OCR reads.
#pragma once

#include <array>

#include "core/status.h"

namespace cv {
class Mat;
}

namespace braid {

// A document image's look in kLayoutDimensions values of L2 norm 1, for
// telling apart pages whose text reads alike (or that have none): where the
// ink lies on a 4×4 grid (each cell's mean distance from the page colour,
// the most common grey; centred, so a page with ink everywhere or nowhere
// adds nothing) and which colours it has (12 hue bins for saturated pixels,
// 4 grey bins by brightness for the rest; the square roots of the shares, so
// that the dot product of two histograms is their Bhattacharyya
// coefficient), each half of norm 1/√2. Computed on a 64×64 area-averaged
// copy, so a resized or re-encoded copy keeps its descriptor; an image's
// aspect ratio is not part of it. InvalidArgument unless 8-bit RGB.
inline constexpr int kLayoutDimensions = 32;
Result<std::array<float, kLayoutDimensions>> LayoutDescriptor(const cv::Mat& rgb);

}  // namespace braid
