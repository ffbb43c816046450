// ServerProcess: a real `braid serve` started on free ports (port 0), with
// its ready line parsed. The destructor sends SIGTERM and reaps it.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <regex>
#include <string>
#include <vector>

namespace braid::testing {

class ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> extra_args = {}) {
    std::vector<std::string> args = {BRAID_BINARY,     "serve", "--host",      "127.0.0.1",
                                     "--http-port",    "0",     "--grpc-port", "0",
                                     "--metrics-port", "0"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    int out[2];
    if (pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      close(out[1]);
      std::vector<char*> argv;
      for (auto& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    stdout_ = fdopen(out[0], "r");
    char line[512];
    if (stdout_ && std::fgets(line, sizeof(line), stdout_)) ready_line_ = line;
    static const std::regex kReady(
        R"(^braid ready http=([^:]+):(\d+) grpc=([^:]+):(\d+) metrics=([^:]+):(\d+)\n$)");
    std::smatch match;
    if (std::regex_match(ready_line_, match, kReady)) {
      http_port_ = std::stoi(match[2]);
      grpc_port_ = std::stoi(match[4]);
      metrics_port_ = std::stoi(match[6]);
    }
  }
  ~ServerProcess() { Stop(); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool ready() const { return http_port_ > 0; }
  const std::string& ready_line() const { return ready_line_; }
  int http_port() const { return http_port_; }
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(http_port_); }
  pid_t pid() const { return pid_; }

  // Sends SIGTERM and waits; returns the exit status (or 128 + signal).
  int Stop() {
    if (pid_ <= 0) return exit_code_;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    if (stdout_) std::fclose(stdout_);
    stdout_ = nullptr;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return exit_code_;
  }
  bool alive() const { return pid_ > 0 && kill(pid_, 0) == 0; }

 private:
  pid_t pid_ = -1;
  FILE* stdout_ = nullptr;
  std::string ready_line_;
  int http_port_ = 0, grpc_port_ = 0, metrics_port_ = 0;
  int exit_code_ = -1;
};

}  // namespace braid::testing
