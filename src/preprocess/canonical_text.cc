#include "preprocess/canonical_text.h"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/ustring.h>

namespace braid {
namespace {

bool WellFormedUtf8(std::string_view text) {
  UErrorCode status = U_ZERO_ERROR;
  int32_t length = 0;
  u_strFromUTF8(nullptr, 0, &length, text.data(), static_cast<int32_t>(text.size()), &status);
  return status == U_BUFFER_OVERFLOW_ERROR || U_SUCCESS(status);
}

}  // namespace

std::string CanonicalText(std::string_view text, bool casefold) {
  if (text.size() > static_cast<std::size_t>(INT32_MAX) || !WellFormedUtf8(text))
    return std::string(text);
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* form = casefold ? icu::Normalizer2::getNFKCCasefoldInstance(status)
                                          : icu::Normalizer2::getNFKCInstance(status);
  if (U_FAILURE(status)) return std::string(text);
  const icu::UnicodeString normal =
      form->normalize(icu::UnicodeString::fromUTF8(
                          icu::StringPiece(text.data(), static_cast<int32_t>(text.size()))),
                      status);
  if (U_FAILURE(status)) return std::string(text);
  icu::UnicodeString spaced;
  bool pending_space = false;
  for (int32_t i = 0; i < normal.length();) {
    const UChar32 c = normal.char32At(i);
    i += U16_LENGTH(c);
    if (u_isUWhiteSpace(c)) {
      pending_space = !spaced.isEmpty();
      continue;
    }
    if (pending_space) spaced.append(UChar32{' '});
    pending_space = false;
    spaced.append(c);
  }
  std::string out;
  spaced.toUTF8String(out);
  return out;
}

}  // namespace braid
