#include "server/management/errors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace amqpgw::management {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

RequestContext Context(std::string object = "") {
  RequestContext c;
  c.url = "http://127.0.0.1:15672/";
  c.user = "watcher";
  c.vhost = "/";
  c.object = std::move(object);
  return c;
}

TEST(ErrorsTest, NothingListeningSaysHowToEnableThePlugin) {
  absl::Status s = TransportErrorToStatus(TransportError::kConnect,
                                          "connection refused", Context());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr("http://127.0.0.1:15672/"),
                    HasSubstr("rabbitmq-plugins enable rabbitmq_management"),
                    HasSubstr("--management_url")));
}

TEST(ErrorsTest, TransportTroubleIsUnavailable) {
  for (TransportError e : {TransportError::kTimeout, TransportError::kTls,
                           TransportError::kOther}) {
    absl::Status s = TransportErrorToStatus(e, "detail", Context());
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    EXPECT_THAT(s.message(), HasSubstr("http://127.0.0.1:15672/")) << s;
    EXPECT_THAT(s.message(), HasSubstr("detail")) << s;
  }
  EXPECT_THAT(
      TransportErrorToStatus(TransportError::kTls, "x", Context()).message(),
      HasSubstr("--broker_tls_ca"));
}

TEST(ErrorsTest, RefusalsNameTheUserAndWhatItLacks) {
  absl::Status s = HttpErrorToStatus(
      401, R"({"error":"not_authorised","reason":"Not management user"})",
      Context());
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr("'watcher'"), HasSubstr("'monitoring' tag"),
                    HasSubstr("rabbitmqctl set_user_tags watcher monitoring"),
                    HasSubstr("--management_user")));

  s = HttpErrorToStatus(
      401, R"({"error":"not_authorized","reason":"Login failed"})", Context());
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("'watcher'"),
                                 HasSubstr("--management_password_file")));

  s = HttpErrorToStatus(401,
                        R"({"error":"not_authorised","reason":"User not )"
                        R"(authorised to access virtual host"})",
                        Context());
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr("vhost '/'"),
                    HasSubstr("set_permissions -p / watcher '' '' ''")));

  s = HttpErrorToStatus(403, "", Context());
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("HTTP 403"));
}

TEST(ErrorsTest, NotFoundNamesTheObjectOrTheVhost) {
  const char* body = R"({"error":"Object Not Found","reason":"Not Found"})";
  absl::Status s = HttpErrorToStatus(404, body, Context("queue 'orders'"));
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "queue 'orders' not found in vhost '/'");
  s = HttpErrorToStatus(404, body, Context());
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "vhost '/' not found");
}

TEST(ErrorsTest, OtherStatuses) {
  absl::Status s = HttpErrorToStatus(
      400,
      R"({"error":"invalid_pagination_parameters","reason":"Invalid pagination parameters: page number 1, page size 1000"})",
      Context());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("page size 1000"));

  s = HttpErrorToStatus(503, "<html>busy</html>", Context());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("HTTP 503"));

  s = HttpErrorToStatus(302, "", Context());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnknown);
  EXPECT_THAT(s.message(), HasSubstr("HTTP 302"));
}

TEST(ErrorsTest, BrokerTextIsCut) {
  std::string reason(5000, 'r');
  absl::Status s = HttpErrorToStatus(
      500, R"({"error":"x","reason":")" + reason + R"("})", Context());
  EXPECT_LT(s.message().size(), 400u);
  EXPECT_THAT(s.message(), HasSubstr("..."));
  s = TransportErrorToStatus(TransportError::kOther, std::string(5000, 'd'),
                             Context());
  EXPECT_LT(s.message().size(), 400u);
}

TEST(ErrorsTest, UnexpectedAnswerPointsAtTheUrl) {
  absl::Status s =
      UnexpectedAnswer(absl::InternalError("the body is not JSON"), Context());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr("http://127.0.0.1:15672/"), HasSubstr("not JSON"),
                    HasSubstr("--management_url")));
}

}  // namespace
}  // namespace amqpgw::management
