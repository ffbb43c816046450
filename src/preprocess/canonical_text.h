// Canonical text: one spelling for texts that differ only in their Unicode
// form, their white space or (optionally) their case, so that they share a
// cache key. A workflow input declared `cache_key: normalized` or
// `cache_key: casefold` is replaced by its canonical form before its nodes
// read it, so what is cached is always what the canonical text computes.
#pragma once

#include <string>
#include <string_view>

namespace braid {

// `text` in Unicode NFKC (with `casefold`, NFKC_Casefold: also case folded
// and without default-ignorable characters such as zero-width spaces), with
// every run of white space made one space and the ends trimmed. Text that is
// not well-formed UTF-8 is returned unchanged (the nodes that read it say
// what is wrong).
std::string CanonicalText(std::string_view text, bool casefold);

}  // namespace braid
