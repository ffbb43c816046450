// Checking a client's key: the token of an "Authorization: Bearer KEY"
// value (the scheme in any case, as HTTP says), and a comparison whose
// time depends only on the length of what the client sent, never on the
// key's contents or length.
#pragma once

#include <string_view>

namespace braid {

// KEY from "Bearer KEY" (scheme case-insensitive, spaces around KEY
// dropped); empty if the value is absent or another scheme.
std::string_view BearerCredential(std::string_view authorization);

// Whether `given` equals `expected` (never true for an empty key).
bool KeyMatches(std::string_view given, std::string_view expected);

}  // namespace braid
