// HTTP/1.1 request parsing by the real server: each input is written as
// raw bytes to a braid HttpServer on loopback (request lines, headers,
// Content-Length and chunked bodies, pipelining, Expect: 100-continue), then
// the write side is closed and the answer read to the end. The server must
// answer or close, never crash, and keep serving.

#include "fuzz/fuzz_socket.h"

namespace {
std::uint16_t port = 0;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  port = braid::testing::StartHttpServerUnderTest();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  braid::testing::ExchangeOnce(port, {}, data, size);
  return 0;
}
