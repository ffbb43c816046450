// What the fuzz targets that drive a real HTTP server on loopback share: the
// server under test, and the socket side (one connection per input, the
// bytes written, the write side closed and the answer read to the end).
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "frontends/http/http_server.h"
#include "support/loopback.h"

namespace braid::testing {

// Starts, once, a braid HttpServer on loopback with small limits: /stream
// is answered with one streamed chunk, anything else with the size of the
// body read. Returns its port.
inline std::uint16_t StartHttpServerUnderTest() {
  static std::unique_ptr<HttpServer> server;
  HttpServerOptions options;
  options.max_body_bytes = 1 << 20;
  options.request_timeout = std::chrono::seconds(2);
  options.idle_timeout = std::chrono::seconds(2);
  server =
      std::make_unique<HttpServer>(options, [](HttpRequest& request, HttpResponderPtr responder) {
        if (request.path == "/stream") {
          responder->StartStream(200, "text/event-stream");
          responder->WriteChunk("data: " + std::to_string(request.body->size()) + "\n\n");
          responder->EndStream();
          return;
        }
        responder->Send(
            {200, "application/json", "{\"bytes\":" + std::to_string(request.body->size()) + "}"});
      });
  auto bound = server->Listen("127.0.0.1", 0);
  if (!bound.ok()) std::abort();
  server->Start();
  return *bound;
}

// Writes `prefix`, then `data`, to a new connection to `port`, closes its
// write side and reads until the server closes (or 5 s pass quietly).
inline void ExchangeOnce(std::uint16_t port, std::string_view prefix, const std::uint8_t* data,
                         std::size_t size) {
  // A refused connect is retried for a while (the harness shares the
  // machine's sockets with the server it drives); a server that stops
  // accepting for good still ends the run.
  int fd = ConnectLoopback(port);
  for (int attempt = 0; fd < 0 && attempt < 200; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    fd = ConnectLoopback(port);
  }
  if (fd < 0) {
    std::perror("fuzz: connect to the server under test");
    std::abort();
  }
  const auto send_all = [fd](const void* bytes, std::size_t length) {
    for (std::size_t sent = 0; sent < length;) {
      const ssize_t n =
          send(fd, static_cast<const char*>(bytes) + sent, length - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;  // the server may close early on bad input
      sent += static_cast<std::size_t>(n);
    }
    return true;
  };
  if (send_all(prefix.data(), prefix.size())) send_all(data, size);
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
}

}  // namespace braid::testing
