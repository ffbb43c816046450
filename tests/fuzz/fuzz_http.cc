// HTTP/1.1 request parsing by the real server: each input is written as
// raw bytes to a braid HttpServer on loopback (request lines, headers,
// Content-Length and chunked bodies, pipelining, Expect: 100-continue), then
// the write side is closed and the answer read to the end. The server must
// answer or close, never crash, and keep serving.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include "frontends/http/http_server.h"
#include "support/loopback.h"

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
  // A refused connect is retried for a while (the harness shares the
  // machine's sockets with the server it drives); a server that stops
  // accepting for good still ends the run.
  int fd = braid::testing::ConnectLoopback(port);
  for (int attempt = 0; fd < 0 && attempt < 200; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    fd = braid::testing::ConnectLoopback(port);
  }
  if (fd < 0) {
    std::perror("fuzz_http: connect to the server under test");
    std::abort();
  }
  for (std::size_t sent = 0; sent < size;) {
    const ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close early on a bad request
    sent += static_cast<std::size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  char buffer[4096];
  pollfd poll_fd{fd, POLLIN, 0};
  while (poll(&poll_fd, 1, 5000) > 0) {
    if (recv(fd, buffer, sizeof(buffer), 0) <= 0) break;
  }
  // Close with a reset: hundreds of connections a second would otherwise
  // fill the ephemeral ports with TIME_WAIT and make connect() fail.
  const linger reset{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
  close(fd);
  return 0;
}
