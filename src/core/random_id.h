// Random identifiers for what braid hands out: workflow runs, uploaded
// files, completions, rerank answers, collection items, the result cache's
// replica id. One generator per thread, seeded from the OS, so ids are
// unpredictable across restarts and need no lock.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace braid {

// 64 random bits.
std::uint64_t RandomWord();

// `prefix` followed by 16 × `words` lowercase hex digits (64 random bits
// per word).
std::string RandomId(std::string_view prefix = {}, int words = 1);
// A UUID-shaped id, 8-4-4-4-12 lowercase hex digits (Dify's file ids).
std::string RandomUuid();

}  // namespace braid
