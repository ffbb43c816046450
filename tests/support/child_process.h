// ChildProcess: a program started with fork/exec whose stdout the test
// reads through a pipe (a `braid serve` or `braid router` and its ready
// line). The destructor sends SIGTERM and reaps it.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

namespace braid::testing {

class ChildProcess {
 public:
  // Starts `args` (args[0] is the program's path) and reads its first line.
  explicit ChildProcess(std::vector<std::string> args) {
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
    if (stdout_ && std::fgets(line, sizeof(line), stdout_)) first_line_ = line;
  }
  ~ChildProcess() { Stop(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  const std::string& first_line() const { return first_line_; }
  pid_t pid() const { return pid_; }
  bool alive() const { return pid_ > 0 && kill(pid_, 0) == 0; }

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

 private:
  pid_t pid_ = -1;
  FILE* stdout_ = nullptr;
  std::string first_line_;
  int exit_code_ = -1;
};

}  // namespace braid::testing
