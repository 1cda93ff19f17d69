// A child process for tests that drive real binaries (amqpgw, python3, node,
// buf): stdin fed from a string, stdout and stderr captured separately (or
// either on a pseudo-terminal), exit code, signals, and waiting on output
// with a deadline. Safe to use from a multi-threaded test: the child only
// calls async-signal-safe functions before exec.
#ifndef AMQPGW_TESTS_SUPPORT_SUBPROCESS_H_
#define AMQPGW_TESTS_SUPPORT_SUBPROCESS_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace amqpgw::testing {

struct ProcessResult {
  // The exit status; 128 + signal when killed by one; -1 when it did not
  // exit in time (it is then killed).
  int exit_code = -1;
  bool timed_out = false;
  std::string out;
  std::string err;
};

// Owns one child process and the parent's ends of its pipes. Used by one
// thread. The destructor kills the child's process group if still running.
class Subprocess {
 public:
  struct Options {
    // argv[0] is looked up in PATH when it has no '/'.
    std::vector<std::string> argv;
    // "NAME=value" entries added to (or replacing in) the environment.
    std::vector<std::string> env;
    // Variables whose name starts with one of these are removed first
    // (e.g. "AMQPGW_", so a developer's settings never leak into a test).
    std::vector<std::string> unset_env_prefixes;
    // Written to the child's stdin, which is then closed.
    std::string stdin_data;
    std::string cwd;
    // stderr (stdout) is a pseudo-terminal (isatty() is true), output
    // unmodified.
    bool stderr_is_terminal = false;
    bool stdout_is_terminal = false;
  };

  // nullptr (and a gtest failure) when the process cannot be started.
  static std::unique_ptr<Subprocess> Start(const Options& options);
  ~Subprocess();

  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // Captures output until `condition(out, err)` holds or `timeout` passes.
  bool WaitOutput(const std::function<bool(const std::string& out,
                                           const std::string& err)>& condition,
                  absl::Duration timeout);
  // Waits for the exit (killing the child after `timeout`).
  ProcessResult Wait(absl::Duration timeout);

  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

 private:
  Subprocess() = default;
  // One poll() round of at most `timeout_ms`.
  void Pump(int timeout_ms);
  bool Reap(bool block);

  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  size_t stdin_written_ = 0;
  std::string stdin_data_;
  std::string out_;
  std::string err_;
  bool exited_ = false;
  int status_ = 0;
};

// Starts, feeds, captures and waits: the usual one-shot run.
ProcessResult RunProcess(const Subprocess::Options& options,
                         absl::Duration timeout = absl::Seconds(120));

}  // namespace amqpgw::testing

#endif  // AMQPGW_TESTS_SUPPORT_SUBPROCESS_H_
