// HTTP/1.1 request parsing by the real server: each input is written as
// raw bytes to a braid HttpServer on loopback (request lines, headers,
// Content-Length and chunked bodies, pipelining, Expect: 100-continue), then
// the write side is closed and the answer read to the end. The server must
// answer or close, never crash, and keep serving.
#include <chrono>
#include <memory>

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
  braid::testing::ExchangeOnce(port, {}, data, size);
  return 0;
}
