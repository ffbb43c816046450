#include "core/random_id.h"

#include <fmt/format.h>

#include <random>

namespace braid {

std::uint64_t RandomWord() {
  static thread_local std::mt19937_64 random(std::random_device{}());
  return random();
}

std::string RandomId(std::string_view prefix, int words) {
  std::string id(prefix);
  for (int i = 0; i < words; ++i) fmt::format_to(std::back_inserter(id), "{:016x}", RandomWord());
  return id;
}

std::string RandomUuid() {
  const std::uint64_t high = RandomWord(), low = RandomWord();
  return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", high >> 32, (high >> 16) & 0xffff,
                     high & 0xffff, low >> 48, low & 0xffffffffffff);
}

}  // namespace braid
