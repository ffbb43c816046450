#include "core/credentials.h"

#include <cctype>

namespace braid {

std::string_view BearerCredential(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size()) return {};
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return {};
  }
  std::string_view token = authorization.substr(kScheme.size());
  if (token.front() != ' ' && token.front() != '\t') return {};
  while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
  return token;
}

bool KeyMatches(std::string_view given, std::string_view expected) {
  if (expected.empty() || given.empty()) return false;
  // Every byte of `given` is compared with the key repeated: the time
  // follows the client's length, and a wrong length still fails.
  unsigned difference = given.size() != expected.size() ? 1U : 0U;
  for (std::size_t i = 0; i < given.size(); ++i) {
    difference |= static_cast<unsigned char>(given[i]) ^
                  static_cast<unsigned char>(expected[i % expected.size()]);
  }
  return difference == 0;
}

}  // namespace braid
