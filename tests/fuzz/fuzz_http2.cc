// HTTP/2 framing and HPACK by the real server: each input is written, after
// the client preface and an empty SETTINGS frame, as raw frames to a braid
// HttpServer on loopback (h2c with prior knowledge), then the write side is
// closed and the answer read to the end. The server must answer, reset or
// send GOAWAY, never crash, and keep serving.
#include <string_view>

#include "fuzz/fuzz_socket.h"

namespace {

// The client preface (RFC 9113 §3.4) and a SETTINGS frame with no settings.
constexpr std::string_view kPreface{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0", 33};

}  // namespace

namespace {
std::uint16_t port = 0;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  port = braid::testing::StartHttpServerUnderTest();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  braid::testing::ExchangeOnce(port, kPreface, data, size);
  return 0;
}
