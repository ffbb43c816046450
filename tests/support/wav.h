// WAV files edited the way tools edit them: the same samples, other bytes.
#pragma once

#include <cstdint>
#include <string>

namespace braid::testing {

// `wav` with an INFO chunk (the encoder's name) before its data chunk, and
// its RIFF size updated.
inline std::string WithInfoChunk(std::string wav) {
  const std::string info = std::string("LIST\x12\0\0\0INFOISFT\x06\0\0\0braid\0", 26);
  wav.insert(wav.find("data"), info);
  const auto riff = static_cast<std::uint32_t>(wav.size() - 8);
  for (int i = 0; i < 4; ++i) wav[4 + i] = static_cast<char>((riff >> (8 * i)) & 0xFF);
  return wav;
}

}  // namespace braid::testing
