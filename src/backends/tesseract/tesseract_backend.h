// The OCR backend (`backend: tesseract`): libtesseract with Debian's
// English model. One engine per instance.
//
// Input: one BYTES element holding an encoded image (JPEG, PNG, WebP, BMP).
// Outputs, in config order: text BYTES [1], words BYTES [n], boxes INT32
// [n,4] (left, top, right, bottom in pixels), confidences FP32 [n] (0–100).
// Boxes are in the pixels of the image as sent, whatever preparation did.
// Parameters: language (eng), page_segmentation_mode (3, fully automatic),
// tessdata_dir (the system's), max_pixels (40000000; the server's cap, when
// lower, wins), preprocess (photo: PrepareOcrImage's rescaling, deskew and
// background removal, see preprocess/ocr_image.h; none: the image as
// decoded), fallback_page_segmentation_mode (6, one block of text) and
// fallback_below_confidence (60): when the words' mean confidence per letter
// is below it, a second pass in the fallback mode, and the pass with the
// more confident letters (Σ confidence × letters) wins; 0 turns it off.
#pragma once

#include "model/backend.h"
#include "preprocess/image.h"

namespace braid {

inline constexpr char kTesseractBackend[] = "tesseract";

BackendFactory MakeTesseractBackend(ImageLimits limits = {});

}  // namespace braid
