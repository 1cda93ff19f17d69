#include "server/base/host_port.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace amqpgw {
namespace {

using ::testing::HasSubstr;

TEST(HostPortTest, ParsesNamesIpv4AndBracketedIpv6) {
  struct Case {
    const char* text;
    const char* host;
    int port;
    const char* printed;
    bool loopback;
  } cases[] = {
      {"127.0.0.1:50051", "127.0.0.1", 50051, "127.0.0.1:50051", true},
      {"localhost:0", "localhost", 0, "localhost:0", true},
      {"[::1]:8080", "::1", 8080, "[::1]:8080", true},
      {"[::]:8080", "::", 8080, "[::]:8080", false},
      {"0.0.0.0:1", "0.0.0.0", 1, "0.0.0.0:1", false},
      {"gw.example:65535", "gw.example", 65535, "gw.example:65535", false},
      {":9090", "", 9090, ":9090", false},
  };
  for (const Case& c : cases) {
    absl::StatusOr<HostPort> hp = ParseHostPort(c.text);
    ASSERT_TRUE(hp.ok()) << c.text << ": " << hp.status();
    EXPECT_EQ(hp->host, c.host) << c.text;
    EXPECT_EQ(hp->port, c.port) << c.text;
    EXPECT_EQ(hp->ToString(), c.printed) << c.text;
    EXPECT_EQ(hp->IsLoopback(), c.loopback) << c.text;
  }
  EXPECT_EQ(ParseHostPort(":80")->BindHost(), "0.0.0.0");
}

TEST(HostPortTest, RefusesWhatIsNotAnAddress) {
  for (const char* bad :
       {"", "50051", "host:", "host:-1", "host:65536", "host:+80", "host:8x",
        "host:0x50", "::1:8080", "[::1", "[::1]8080", "[::1]:", "a b:80",
        "user@host:80", "host/x:80", "host:123456"}) {
    absl::StatusOr<HostPort> hp = ParseHostPort(bad);
    EXPECT_EQ(hp.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(hp.status().message(), HasSubstr("want host:port")) << bad;
  }
  // Long input is cut in the error.
  std::string long_text(500, 'x');
  EXPECT_LT(ParseHostPort(long_text).status().message().size(), 200u);
}

TEST(HostPortTest, SplitsUriAuthorities) {
  std::string host;
  std::optional<absl::string_view> port;
  ASSERT_TRUE(SplitHostPort("broker.example", &host, &port).ok());
  EXPECT_EQ(host, "broker.example");
  EXPECT_FALSE(port.has_value());
  ASSERT_TRUE(SplitHostPort("[fe80::1]:5671", &host, &port).ok());
  EXPECT_EQ(host, "fe80::1");
  EXPECT_EQ(port, "5671");
  ASSERT_TRUE(SplitHostPort("[fe80::1]", &host, &port).ok());
  EXPECT_FALSE(port.has_value());
  EXPECT_FALSE(SplitHostPort("[fe80::1", &host, &port).ok());
  EXPECT_FALSE(SplitHostPort("[fe80::1]x", &host, &port).ok());
  EXPECT_EQ(ParsePort("5672", 1), 5672);
  EXPECT_EQ(ParsePort("0", 1), std::nullopt);
  EXPECT_EQ(ParsePort("0"), 0);
}

}  // namespace
}  // namespace amqpgw
