#include "server/amqp/broker_address.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace amqpgw::amqp {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(BrokerAddressTest, ParsesAFullUri) {
  auto a = ParseBrokerUri("amqp://user:p%40ss@rabbit.example:5673/prod%2Fv1");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(a->tls);
  EXPECT_EQ(a->user, "user");
  EXPECT_EQ(a->password, "p@ss");
  EXPECT_EQ(a->host, "rabbit.example");
  EXPECT_EQ(a->port, 5673);
  EXPECT_EQ(a->vhost, "prod/v1");
  EXPECT_EQ(a->HostPort(), "rabbit.example:5673");
}

TEST(BrokerAddressTest, Defaults) {
  auto a = ParseBrokerUri("amqp://localhost");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->port, 5672);
  EXPECT_EQ(a->vhost, "/");
  EXPECT_EQ(a->user, "guest");
  EXPECT_EQ(a->password, "guest");
  auto b = ParseBrokerUri("amqp://localhost/");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->vhost, "/");
  auto s = ParseBrokerUri("amqps://h");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->tls);
  EXPECT_EQ(s->port, 5671);
}

TEST(BrokerAddressTest, Ipv6) {
  auto a = ParseBrokerUri("amqp://u:p@[::1]:5000/");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 5000);
  EXPECT_EQ(a->HostPort(), "[::1]:5000");
}

TEST(BrokerAddressTest, RedactedNeverShowsThePassword) {
  auto a = ParseBrokerUri("amqp://admin:s3cret@h:1/v");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->Redacted(), "amqp://admin@h:1/v");
  EXPECT_THAT(a->Redacted(), Not(HasSubstr("s3cret")));
}

TEST(BrokerAddressTest, RejectsBadUrisWithoutEchoingThem) {
  for (const char* bad :
       {"http://h", "amqp://", "amqp://h:0", "amqp://h:99999", "amqp://h:x",
        "amqp://u:secret@h/%zz", "amqp://h?heartbeat=5", "amqp://[::1"}) {
    auto a = ParseBrokerUri(bad);
    EXPECT_FALSE(a.ok()) << bad;
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(a.status().message(), Not(HasSubstr("secret")));
  }
}

TEST(BrokerAddressTest, ParsesAList) {
  auto l = ParseBrokerList("amqp://a:1/, amqp://b:2/ ,amqp://c:3/");
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->size(), 3u);
  EXPECT_EQ((*l)[2].HostPort(), "c:3");
  auto bad = ParseBrokerList("amqp://a/,nope");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("broker #2"));
  EXPECT_FALSE(ParseBrokerList(" , ").ok());
}

}  // namespace
}  // namespace amqpgw::amqp
