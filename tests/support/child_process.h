// An amqpgwd child process with its stderr (and stdout) captured, for tests
// of the binary itself: flags, environment, logs, signals.
#ifndef AMQPGW_TESTS_SUPPORT_CHILD_PROCESS_H_
#define AMQPGW_TESTS_SUPPORT_CHILD_PROCESS_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace amqpgw::testing {

struct Child {
  pid_t pid = -1;
  int err_fd = -1;
  std::string err;

  // Starts AMQPGWD_BINARY with `args`; `env` entries ("NAME=value") are
  // added to the inherited environment.
  static Child Spawn(const std::vector<std::string>& args,
                     const std::vector<std::string>& env = {}) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return Child();
    Child c;
    c.pid = fork();
    if (c.pid == 0) {
      dup2(fds[1], 2);
      dup2(fds[1], 1);
      for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
      std::vector<char*> argv;
      std::string bin = AMQPGWD_BINARY;
      argv.push_back(bin.data());
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
    close(fds[1]);
    c.err_fd = fds[0];
    return c;
  }

  // Reads output until `needle` appears or the deadline passes.
  bool ReadUntil(const std::string& needle, absl::Duration timeout) {
    absl::Time deadline = absl::Now() + timeout;
    while (err.find(needle) == std::string::npos) {
      int ms =
          static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
      if (ms <= 0) return false;
      pollfd p{err_fd, POLLIN, 0};
      if (poll(&p, 1, ms) <= 0) return false;
      char buf[4096];
      ssize_t n = read(err_fd, buf, sizeof(buf));
      if (n <= 0) return err.find(needle) != std::string::npos;
      err.append(buf, n);
    }
    return true;
  }

  // Waits for exit; returns the exit code, or -1 on timeout (then kills).
  int Wait(absl::Duration timeout) {
    absl::Time deadline = absl::Now() + timeout;
    int status = 0;
    while (absl::Now() < deadline) {
      ReadUntil("\x01never", absl::Milliseconds(20));
      if (waitpid(pid, &status, WNOHANG) == pid) {
        ReadUntil("\x01never", absl::Milliseconds(20));  // the rest
        close(err_fd);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    close(err_fd);
    return -1;
  }

  // SIGTERM, then Wait.
  int Stop(absl::Duration timeout = absl::Seconds(30)) {
    kill(pid, SIGTERM);
    return Wait(timeout);
  }
};

}  // namespace amqpgw::testing

#endif  // AMQPGW_TESTS_SUPPORT_CHILD_PROCESS_H_
