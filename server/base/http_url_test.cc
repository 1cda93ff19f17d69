#include "server/base/http_url.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace amqpgw {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(HttpUrlTest, SplitsSchemeHostPortAndPath) {
  absl::StatusOr<HttpUrl> u = ParseHttpUrl("http://127.0.0.1:15672/");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_FALSE(u->https);
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 15672);
  EXPECT_EQ(u->path, "/");
  EXPECT_EQ(u->SchemeHostPort(), "http://127.0.0.1:15672");

  u = ParseHttpUrl(" https://broker.example/rabbitmq ");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_TRUE(u->https);
  EXPECT_EQ(u->host, "broker.example");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->path, "/rabbitmq");
  EXPECT_EQ(u->SchemeHostPort(), "https://broker.example");

  u = ParseHttpUrl("http://[::1]:8080");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->path, "");
  EXPECT_EQ(u->SchemeHostPort(), "http://[::1]:8080");
  EXPECT_EQ(ParseHttpUrl("http://h")->port, 80);
}

TEST(HttpUrlTest, RefusesWhatItCannotCallAndNeverEchoesTheUrl) {
  struct Case {
    const char* url;
    const char* says;
  } cases[] = {
      {"ftp://h:21/", "want an http:// or https:// URL"},
      {"127.0.0.1:15672", "want an http:// or https:// URL"},
      {"http:///api", "no host"},
      {"http://:80/", "no host"},
      {"http://user:secret@h:15672/", "credentials"},
      {"http://h:0/", "port must be 1..65535"},
      {"http://h:65536/", "port must be 1..65535"},
      {"http://h:8x/", "port must be 1..65535"},
      {"http://h:/", "port must be 1..65535"},
      {"http://[::1:80/", "[IPv6] host is malformed"},
      {"http://[::1]x/", "[IPv6] host is malformed"},
      {"http://h/api?secret=1", "query"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<HttpUrl> u = ParseHttpUrl(c.url);
    ASSERT_FALSE(u.ok()) << c.url;
    EXPECT_EQ(u.status().code(), absl::StatusCode::kInvalidArgument) << c.url;
    EXPECT_THAT(u.status().message(), HasSubstr(c.says)) << c.url;
    EXPECT_THAT(u.status().message(), Not(HasSubstr("secret"))) << c.url;
  }
}

}  // namespace
}  // namespace amqpgw
