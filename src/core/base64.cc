#include "core/base64.h"

#include <array>

namespace braid {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int, 256> DecodeTable() {
  std::array<int, 256> table{};
  for (auto& v : table) v = -1;
  for (int i = 0; i < 64; ++i) table[static_cast<unsigned char>(kAlphabet[i])] = i;
  table['-'] = 62;  // URL-safe variants are accepted too
  table['_'] = 63;
  return table;
}

}  // namespace

Result<std::string> Base64Decode(std::string_view text) {
  static constexpr auto kTable = DecodeTable();
  std::string out;
  out.reserve(text.size() * 3 / 4);
  unsigned buffer = 0;
  int bits = 0;
  std::size_t padding = 0;
  for (char c : text) {
    if (c == '=') {
      ++padding;
      continue;
    }
    if (c == '\n' || c == '\r' || c == ' ') continue;
    int value = kTable[static_cast<unsigned char>(c)];
    if (value < 0 || padding > 0) return InvalidArgument("invalid base64 data");
    buffer = (buffer << 6) | static_cast<unsigned>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  if (padding > 2) return InvalidArgument("invalid base64 padding");
  return out;
}

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    unsigned n = (static_cast<unsigned char>(bytes[i]) << 16) |
                 (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                 static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i < bytes.size()) {
    unsigned n = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += kAlphabet[n >> 18];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

Result<DataUrl> ParseDataUrl(std::string_view url) {
  if (!url.starts_with("data:")) return InvalidArgument("not a data: URL");
  auto comma = url.find(',');
  if (comma == std::string_view::npos) return InvalidArgument("data: URL without ','");
  std::string_view meta = url.substr(5, comma - 5);
  DataUrl result;
  bool base64 = false;
  if (meta.ends_with(";base64")) {
    base64 = true;
    meta.remove_suffix(7);
  }
  result.media_type = meta.empty() ? "text/plain" : std::string(meta.substr(0, meta.find(';')));
  std::string_view payload = url.substr(comma + 1);
  if (base64) {
    BRAID_ASSIGN_OR_RETURN(result.data, Base64Decode(payload));
  } else {
    result.data = std::string(payload);
  }
  return result;
}

}  // namespace braid
