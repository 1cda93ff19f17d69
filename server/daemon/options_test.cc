#include "server/daemon/options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace amqpgw::daemon {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(OptionsTest, DefaultsAreValid) {
  Options o;
  EXPECT_TRUE(ValidateOptions(o).ok());
  auto s = ToSessionOptions(o);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->brokers.size(), 1u);
  EXPECT_EQ(s->brokers[0].HostPort(), "127.0.0.1:5672");
  EXPECT_THAT(s->instance_id, ::testing::EndsWith(":50051"));
  EXPECT_EQ(s->confirm_window, 1024u);
}

TEST(OptionsTest, EachBadValueNamesItsFlag) {
  struct Case {
    std::function<void(Options&)> set;
    std::string flag;
  } cases[] = {
      {[](Options& o) { o.listen = "50051"; }, "--listen"},
      {[](Options& o) { o.listen = "h:70000"; }, "--listen"},
      {[](Options& o) { o.broker = "redis://x"; }, "--broker"},
      {[](Options& o) { o.broker = ""; }, "--broker"},
      {[](Options& o) { o.heartbeat = absl::Seconds(-1); }, "--heartbeat"},
      {[](Options& o) { o.connect_timeout = absl::ZeroDuration(); },
       "--connect_timeout"},
      {[](Options& o) { o.reconnect_max_delay = absl::Milliseconds(1); },
       "--reconnect_max_delay"},
      {[](Options& o) { o.max_message_bytes = 0; }, "--max_message_bytes"},
      {[](Options& o) { o.max_request_bytes = 10; }, "--max_request_bytes"},
      {[](Options& o) { o.confirm_window = 0; }, "--confirm_window"},
      {[](Options& o) { o.publish_timeout = absl::ZeroDuration(); },
       "--publish_timeout"},
      {[](Options& o) { o.publisher_connections = 0; },
       "--publisher_connections"},
      {[](Options& o) { o.consumer_connections = 1000; },
       "--consumer_connections"},
      {[](Options& o) { o.consumer_read_pause = absl::Seconds(1); },
       "--consumer_read_pause"},
      {[](Options& o) { o.consumer_read_pause = absl::Microseconds(-1); },
       "--consumer_read_pause"},
      {[](Options& o) { o.instance_id = "a/b"; }, "--instance_id"},
      {[](Options& o) { o.log_level = "chatty"; }, "--log_level"},
  };
  for (const Case& c : cases) {
    Options o;
    c.set(o);
    absl::Status s = ValidateOptions(o);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.flag;
    EXPECT_THAT(std::string(s.message()), StartsWith(c.flag + ":"));
    EXPECT_FALSE(ToSessionOptions(o).ok());
  }
}

TEST(OptionsTest, BrokerListAndTuning) {
  Options o;
  o.broker = "amqp://u:secret@a:1/,amqps://b/";
  o.heartbeat = absl::Seconds(3);
  o.consumer_connections = 4;
  o.consumer_read_pause = absl::Milliseconds(2);
  o.instance_id = "gw-1";
  auto s = ToSessionOptions(o);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->brokers.size(), 2u);
  EXPECT_TRUE(s->brokers[1].tls);
  EXPECT_EQ(s->open.heartbeat, absl::Seconds(3));
  EXPECT_EQ(s->consumer_connections, 4);
  EXPECT_EQ(s->consumer_read_pause, absl::Milliseconds(2));
  EXPECT_EQ(s->instance_id, "gw-1");
  // A bad URI's error never echoes the password.
  o.broker = "amqp://u:secret@a:bad/";
  EXPECT_THAT(std::string(ValidateOptions(o).message()),
              ::testing::Not(HasSubstr("secret")));
}

}  // namespace
}  // namespace amqpgw::daemon
