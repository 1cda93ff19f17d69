// The amqpgwd binary as a process: flag errors, environment twins, and a
// clean exit on SIGTERM.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/support/broker_node.h"
#include "tests/support/child_process.h"

namespace amqpgw::testing {
namespace {

using ::testing::HasSubstr;

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
  Child child =
      Child::Spawn({"--listen=127.0.0.1:0", "--http_listen=127.0.0.1:0",
                    "--shutdown_grace=2s"},
                   {"AMQPGW_BROKER=" + node.uri()});
  ASSERT_TRUE(child.ReadUntil("session: READY", absl::Seconds(30)))
      << child.err;
  // The password never appears in the logs.
  EXPECT_THAT(child.err, ::testing::Not(HasSubstr("guest:guest")));
  kill(child.pid, SIGTERM);
  EXPECT_EQ(child.Wait(absl::Seconds(30)), 0) << child.err;
  EXPECT_THAT(child.err, HasSubstr("stopped"));
}

}  // namespace
}  // namespace amqpgw::testing
