// HttpServer's drain, in process, over a raw socket: a request whose bytes
// reach an idle keep-alive connection as the drain begins is read and
// answered with Connection: close, not reset or dropped. The network thread
// is held while the bytes arrive and the drain begins, so that the drain
// meets the connection with the request unread, whatever the machine's
// speed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <future>
#include <string>

#include "frontends/http/http_server.h"
#include "support/loopback.h"

namespace braid {
namespace {

using ::testing::HasSubstr;

void SendAll(int fd, const std::string& bytes) {
  ASSERT_EQ(send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
}

// Reads until the peer ends the connection or `enough` says the bytes so far
// are a whole answer; what came, and the error that ended it (0 for none).
std::pair<std::string, int> Receive(int fd, bool (*enough)(const std::string&)) {
  std::string got;
  char chunk[4096];
  while (!enough(got)) {
    const ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n < 0) return {got, errno};
    if (n == 0) break;
    got.append(chunk, static_cast<std::size_t>(n));
  }
  return {got, 0};
}

bool WholeAnswer(const std::string& got) {
  const auto end = got.find("\r\n\r\n");
  const auto length = got.find("Content-Length: ");
  if (end == std::string::npos || length == std::string::npos) return false;
  return got.size() >= end + 4 + std::stoul(got.substr(length + 16));
}

bool Never(const std::string&) { return false; }

TEST(HttpDrainTest, ARequestArrivingAsTheDrainBeginsIsAnsweredNotReset) {
  HttpServerOptions options;
  options.threads = 1;
  HttpServer server(options, [](HttpRequest& request, HttpResponderPtr responder) {
    HttpResponse answer;
    answer.body = "{\"path\":\"" + request.path + "\"}";
    responder->Send(std::move(answer));
  });
  auto port = server.Listen("127.0.0.1", 0);
  ASSERT_TRUE(port.ok()) << port.status().message();
  server.Start();
  const int fd = testing::ConnectLoopback(*port);
  ASSERT_GE(fd, 0);
  SendAll(fd, "GET /first HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(Receive(fd, WholeAnswer).first, HasSubstr("{\"path\":\"/first\"}"));

  // The connection is idle, its read pending. Held, the network thread
  // cannot take the next request before the drain has begun.
  std::promise<void> held, release;
  boost::asio::post(server.network_context(), [&] {
    held.set_value();
    release.get_future().wait();
  });
  held.get_future().wait();
  SendAll(fd, "GET /second HTTP/1.1\r\nHost: x\r\n\r\n");
  server.Drain(std::chrono::steady_clock::now());
  release.set_value();

  const auto [answer, error] = Receive(fd, Never);
  EXPECT_EQ(error, 0) << "the connection was reset";
  EXPECT_THAT(answer, HasSubstr("HTTP/1.1 200"));
  EXPECT_THAT(answer, HasSubstr("Connection: close"));
  EXPECT_THAT(answer, HasSubstr("{\"path\":\"/second\"}"));
  EXPECT_TRUE(server.Drain(std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  close(fd);
  server.Stop();
}

}  // namespace
}  // namespace braid
