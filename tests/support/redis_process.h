// RedisProcess: a real redis-server (Debian's) on a free loopback port, with
// no persistence. Kill() ends it as a crash would; Start() brings it back on
// the same port; Pause() makes it hang.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "support/loopback.h"

namespace braid::testing {

class RedisProcess {
 public:
  RedisProcess() : port_(FreeLoopbackPort()) { Start(); }
  ~RedisProcess() { Kill(); }
  RedisProcess(const RedisProcess&) = delete;
  RedisProcess& operator=(const RedisProcess&) = delete;

  // Starts redis-server and waits (up to 10 s) until it accepts connections.
  bool Start() {
    if (pid_ > 0) return true;
    const std::string port = std::to_string(port_);
    pid_ = fork();
    if (pid_ == 0) {
      execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--loglevel", "warning", nullptr);
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (Accepts()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  // SIGKILL, as a crash: no shutdown handshake with clients.
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGCONT);
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // SIGSTOP / SIGCONT: a Redis that hangs (connections stay open, nothing answers).
  void Pause() { kill(pid_, SIGSTOP); }
  void Resume() { kill(pid_, SIGCONT); }

  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

 private:
  bool Accepts() const {
    const int fd = ConnectLoopback(port_);
    if (fd >= 0) close(fd);
    return fd >= 0;
  }

  int port_;
  pid_t pid_ = -1;
};

}  // namespace braid::testing
