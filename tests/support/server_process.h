// ServerProcess: a real `braid serve` started on free ports (port 0), with
// its ready line parsed. The destructor sends SIGTERM and reaps it.
#pragma once

#include <algorithm>
#include <regex>
#include <string>
#include <vector>

#include "support/child_process.h"

namespace braid::testing {

class ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> extra_args = {})
      : process_(Args(std::move(extra_args))) {
    static const std::regex kReady(
        R"(^braid ready http=([^:]+):(\d+) grpc=([^:]+):(\d+) metrics=([^:]+):(\d+)(?: agent=([^:]+):(\d+))?\n$)");
    std::smatch match;
    if (std::regex_match(process_.first_line(), match, kReady)) {
      http_port_ = std::stoi(match[2]);
      grpc_port_ = std::stoi(match[4]);
      metrics_port_ = std::stoi(match[6]);
      if (match[8].matched) agent_port_ = std::stoi(match[8]);
    }
  }

  bool ready() const { return http_port_ > 0; }
  const std::string& ready_line() const { return process_.first_line(); }
  int http_port() const { return http_port_; }
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  int agent_port() const { return agent_port_; }  // with --agent-port
  std::string url() const { return "http://127.0.0.1:" + std::to_string(http_port_); }
  pid_t pid() const { return process_.pid(); }

  // Sends SIGTERM and waits; returns the exit status (or 128 + signal).
  int Stop() { return process_.Stop(); }
  bool alive() const { return process_.alive(); }

 private:
  // The ports are free ones (0) unless `extra` names them.
  static std::vector<std::string> Args(std::vector<std::string> extra) {
    std::vector<std::string> args = {BRAID_BINARY, "serve", "--host", "127.0.0.1"};
    for (const char* port : {"--http-port", "--grpc-port", "--metrics-port"}) {
      if (std::find(extra.begin(), extra.end(), port) == extra.end()) {
        args.push_back(port);
        args.push_back("0");
      }
    }
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  ChildProcess process_;
  int http_port_ = 0, grpc_port_ = 0, metrics_port_ = 0, agent_port_ = 0;
};

}  // namespace braid::testing
