#include "tests/support/subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/match.h"
#include "absl/time/clock.h"

extern char** environ;

namespace amqpgw::testing {
namespace {

void CloseFd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

// Reads what is available from *fd into *out; closes it at EOF (or EIO,
// which is how a pseudo-terminal reports that the other side closed).
void Drain(int* fd, std::string* out) {
  char buf[8192];
  for (;;) {
    ssize_t n = read(*fd, buf, sizeof(buf));
    if (n > 0) {
      out->append(buf, n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    CloseFd(fd);
    return;
  }
}

}  // namespace

std::unique_ptr<Subprocess> Subprocess::Start(const Options& options) {
  if (options.argv.empty()) {
    ADD_FAILURE() << "Subprocess: empty argv";
    return nullptr;
  }
  // Everything the child needs is prepared here: after fork() it may only
  // call async-signal-safe functions (the test process has threads).
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    std::string name = entry.substr(0, entry.find('='));
    bool drop = false;
    for (const auto& prefix : options.unset_env_prefixes) {
      drop = drop || absl::StartsWith(name, prefix);
    }
    for (const auto& set : options.env) {
      drop = drop || set.substr(0, set.find('=')) == name;
    }
    if (!drop) env_strings.push_back(entry);
  }
  for (const auto& set : options.env) env_strings.push_back(set);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings = options.argv;
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  // out[0] / err[0]: the parent's end, [1]: the child's; a pipe, or a
  // pseudo-terminal's master and slave.
  int in[2], out[2] = {-1, -1}, err[2] = {-1, -1};
  auto open_output = [](bool terminal, int fds[2]) {
    if (!terminal) {
      if (pipe2(fds, O_CLOEXEC) == 0) return true;
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return false;
    }
    struct termios raw;
    std::memset(&raw, 0, sizeof(raw));
    cfmakeraw(&raw);  // no "\n" -> "\r\n": the test sees the bytes written
    if (openpty(&fds[0], &fds[1], nullptr, &raw, nullptr) != 0) {
      ADD_FAILURE() << "openpty: " << std::strerror(errno);
      return false;
    }
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return true;
  };
  if (pipe2(in, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return nullptr;
  }
  if (!open_output(options.stdout_is_terminal, out) ||
      !open_output(options.stderr_is_terminal, err)) {
    return nullptr;
  }
  const int child_err = err[1];
  const char* cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();

  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(child_err, 2);
    if (cwd != nullptr && chdir(cwd) != 0) _exit(126);
    execvpe(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return nullptr;
  }
  auto p = std::unique_ptr<Subprocess>(new Subprocess());
  p->pid_ = pid;
  p->stdin_fd_ = in[1];
  p->out_fd_ = out[0];
  p->err_fd_ = err[0];
  p->stdin_data_ = options.stdin_data;
  for (int fd : {p->stdin_fd_, p->out_fd_, p->err_fd_}) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  if (p->stdin_data_.empty()) CloseFd(&p->stdin_fd_);
  return p;
}

Subprocess::~Subprocess() {
  if (!exited_ && pid_ > 0) {
    kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);
    Reap(/*block=*/true);
  }
  CloseFd(&stdin_fd_);
  CloseFd(&out_fd_);
  CloseFd(&err_fd_);
}

void Subprocess::Signal(int sig) {
  if (!exited_) kill(pid_, sig);
}

void Subprocess::Pump(int timeout_ms) {
  pollfd fds[3];
  int n = 0;
  if (stdin_fd_ >= 0) fds[n++] = {stdin_fd_, POLLOUT, 0};
  if (out_fd_ >= 0) fds[n++] = {out_fd_, POLLIN, 0};
  if (err_fd_ >= 0) fds[n++] = {err_fd_, POLLIN, 0};
  if (n == 0) return;
  if (poll(fds, n, timeout_ms) <= 0) return;
  for (int i = 0; i < n; ++i) {
    if (fds[i].revents == 0) continue;
    if (fds[i].fd == stdin_fd_) {
      ssize_t w = write(stdin_fd_, stdin_data_.data() + stdin_written_,
                        stdin_data_.size() - stdin_written_);
      if (w > 0) stdin_written_ += w;
      if ((w < 0 && errno != EAGAIN && errno != EINTR) ||
          stdin_written_ == stdin_data_.size()) {
        CloseFd(&stdin_fd_);
      }
    } else if (fds[i].fd == out_fd_) {
      Drain(&out_fd_, &out_);
    } else if (fds[i].fd == err_fd_) {
      Drain(&err_fd_, &err_);
    }
  }
}

bool Subprocess::Reap(bool block) {
  if (exited_) return true;
  if (waitpid(pid_, &status_, block ? 0 : WNOHANG) == pid_) exited_ = true;
  return exited_;
}

bool Subprocess::WaitOutput(
    const std::function<bool(const std::string&, const std::string&)>&
        condition,
    absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (!condition(out_, err_)) {
    if (absl::Now() >= deadline) return false;
    if (Reap(false)) {
      // Whatever it wrote before exiting is already in the pipes.
      if (out_fd_ >= 0) Drain(&out_fd_, &out_);
      if (err_fd_ >= 0) Drain(&err_fd_, &err_);
      return condition(out_, err_);
    }
    Pump(20);
  }
  return true;
}

ProcessResult Subprocess::Wait(absl::Duration timeout) {
  ProcessResult r;
  absl::Time deadline = absl::Now() + timeout;
  while (!Reap(false) && absl::Now() < deadline) Pump(20);
  if (!exited_) {
    r.timed_out = true;
    kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);
    Reap(true);
  }
  if (out_fd_ >= 0) Drain(&out_fd_, &out_);
  if (err_fd_ >= 0) Drain(&err_fd_, &err_);
  CloseFd(&stdin_fd_);
  if (!r.timed_out) {
    r.exit_code =
        WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
  }
  r.out = out_;
  r.err = err_;
  return r;
}

ProcessResult RunProcess(const Subprocess::Options& options,
                         absl::Duration timeout) {
  std::unique_ptr<Subprocess> p = Subprocess::Start(options);
  if (p == nullptr) return ProcessResult();
  return p->Wait(timeout);
}

}  // namespace amqpgw::testing
