// HTTP/2 framing and HPACK by the real server: each input is written, after
// the client preface and an empty SETTINGS frame, as raw frames to a braid
// HttpServer on loopback (h2c with prior knowledge), then the write side is
// closed and the answer read to the end. The server must answer, reset or
// send GOAWAY, never crash, and keep serving.
#include <chrono>
#include <memory>
#include <string_view>

#include "frontends/http/http_server.h"
#include "fuzz/fuzz_socket.h"

namespace {

std::unique_ptr<braid::HttpServer> server;
std::uint16_t port = 0;

void Handle(braid::HttpRequest& request, braid::HttpResponderPtr responder) {
  if (request.path == "/stream") {
    responder->StartStream(200, "text/event-stream");
    responder->WriteChunk("data: " + std::to_string(request.body->size()) + "\n\n");
    responder->EndStream();
    return;
  }
  responder->Send(
      {200, "application/json", "{\"bytes\":" + std::to_string(request.body->size()) + "}"});
}

// The client preface (RFC 9113 §3.4) and a SETTINGS frame with no settings.
constexpr std::string_view kPreface{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0", 33};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  braid::HttpServerOptions options;
  options.max_body_bytes = 1 << 20;
  options.request_timeout = std::chrono::seconds(2);
  options.idle_timeout = std::chrono::seconds(2);
  server = std::make_unique<braid::HttpServer>(options, Handle);
  auto bound = server->Listen("127.0.0.1", 0);
  if (!bound.ok()) std::abort();
  port = *bound;
  server->Start();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  braid::testing::ExchangeOnce(port, kPreface, data, size);
  return 0;
}
