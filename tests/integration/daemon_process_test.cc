// The amqpgwd binary as a process: flag errors, environment twins, and a
// clean exit on SIGTERM.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/support/broker_node.h"

namespace amqpgw::testing {
namespace {

using ::testing::HasSubstr;

// A child amqpgwd with its stderr captured.
struct Child {
  pid_t pid = -1;
  int err_fd = -1;
  std::string err;

  static Child Spawn(const std::vector<std::string>& args,
                     const std::vector<std::string>& env = {}) {
    int fds[2];
    EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
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
      int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
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
        close(err_fd);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    close(err_fd);
    return -1;
  }
};

TEST(DaemonProcessTest, BadFlagValuesAreRefusedNamingTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  } cases[] = {
      {{"--broker=http://x"}, "--broker"},
      {{"--listen=nohostport"}, "--listen"},
      {{"--heartbeat=-5s"}, "--heartbeat"},
      {{"--confirm_window=0"}, "--confirm_window"},
      {{"--max_message_bytes=0"}, "--max_message_bytes"},
      {{"--log_level=loud"}, "--log_level"},
      {{"--http_listen=nohostport"}, "--http_listen"},
      {{"--cors_origins=https://ok.example,ftp://x"}, "--cors_origins"},
      {{"--cors_origins=https://app.example/path"}, "--cors_origins"},
      {{"--web_root=/nonexistent/folder"}, "--web_root"},
      {{"--http_max_connections=1"}, "--http_max_connections"},
  };
  for (const Case& c : cases) {
    Child child = Child::Spawn(c.args);
    int code = child.Wait(absl::Seconds(10));
    EXPECT_EQ(code, 2) << child.err;
    EXPECT_THAT(child.err, HasSubstr(c.expect));
  }
  Child unparsable = Child::Spawn({"--heartbeat=soon"});
  EXPECT_NE(unparsable.Wait(absl::Seconds(10)), 0);
  EXPECT_THAT(unparsable.err, HasSubstr("heartbeat"));
}

TEST(DaemonProcessTest, EnvironmentTwinIsReadAndChecked) {
  Child child = Child::Spawn({}, {"AMQPGW_CONFIRM_WINDOW=-1"});
  EXPECT_EQ(child.Wait(absl::Seconds(10)), 2);
  EXPECT_THAT(child.err, HasSubstr("--confirm_window"));
}

TEST(DaemonProcessTest, SigtermShutsDownCleanly) {
  BrokerNode node = BrokerNode::Shared();
  Child child = Child::Spawn({"--listen=127.0.0.1:0",
                              "--http_listen=127.0.0.1:0",
                              "--shutdown_grace=2s"},
                             {"AMQPGW_BROKER=" + node.uri()});
  ASSERT_TRUE(child.ReadUntil("session: READY", absl::Seconds(30))) << child.err;
  // The password never appears in the logs.
  EXPECT_THAT(child.err, ::testing::Not(HasSubstr("guest:guest")));
  kill(child.pid, SIGTERM);
  EXPECT_EQ(child.Wait(absl::Seconds(30)), 0) << child.err;
  EXPECT_THAT(child.err, HasSubstr("stopped"));
}

}  // namespace
}  // namespace amqpgw::testing
