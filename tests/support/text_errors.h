// Comparing recognised text with what was written: the normalisation and
// edit distance the recognition tests, the OCR tests and bench/ocr share.
#pragma once

#include <cctype>
#include <string>
#include <string_view>

#include "core/edit_distance.h"

namespace braid::testing {

// Lower-case letters and digits; each run of white space or hyphens one
// space; other punctuation dropped.
inline std::string NormaliseRecognised(std::string_view text) {
  std::string out;
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte)) {
      out += static_cast<char>(std::tolower(byte));
    } else if ((std::isspace(byte) || c == '-') && !out.empty() && out.back() != ' ') {
      out += ' ';
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

using braid::EditDistance;

}  // namespace braid::testing
