#include "server/grpc/auth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace amqpgw::grpc_api {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPublisher[] = "pub-0123456789abcdef";
constexpr char kConsumer[] = "con-0123456789abcdef";
constexpr char kAdmin[] = "adm-0123456789abcdef";

std::unique_ptr<Authorizer> Make() {
  auto a = Authorizer::FromText(
      "# tokens\n"
      "\n"
      "pub-0123456789abcdef publish\n"
      "  con-0123456789abcdef\tconsume  \r\n"
      "adm-0123456789abcdef admin\n",
      "tokens.txt");
  EXPECT_TRUE(a.ok()) << a.status();
  return *std::move(a);
}

std::string Bearer(const char* token) { return std::string("Bearer ") + token; }

TEST(AuthTest, ParsesTokensRolesCommentsAndBlankLines) {
  EXPECT_EQ(Make()->size(), 3u);
}

TEST(AuthTest, MissingMalformedOrUnknownTokenIsUnauthenticated) {
  auto a = Make();
  EXPECT_EQ(a->Check(std::nullopt, Rpc::kGetStatus).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(a->Check("Basic abc", Rpc::kGetStatus).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(a->Check("Bearer ", Rpc::kGetStatus).code(),
            absl::StatusCode::kUnauthenticated);
  absl::Status s = a->Check("Bearer wrong-0123456789abcdef", Rpc::kGetStatus);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(s.message(), Not(HasSubstr("wrong-0123456789abcdef")));
  // The scheme is case-insensitive.
  EXPECT_TRUE(a->Check(std::string("bearer ") + kAdmin, Rpc::kGetStatus).ok());
}

TEST(AuthTest, RolesFollowTheTable) {
  auto a = Make();
  EXPECT_TRUE(a->Check(Bearer(kPublisher), Rpc::kPublish).ok());
  EXPECT_TRUE(a->Check(Bearer(kPublisher), Rpc::kPublishBatch).ok());
  EXPECT_TRUE(a->Check(Bearer(kPublisher), Rpc::kDeclareQueue).ok());
  EXPECT_EQ(a->Check(Bearer(kPublisher), Rpc::kStreamMessages).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(a->Check(Bearer(kConsumer), Rpc::kStreamMessages).ok());
  EXPECT_TRUE(a->Check(Bearer(kConsumer), Rpc::kAck).ok());
  EXPECT_EQ(a->Check(Bearer(kConsumer), Rpc::kPublish).code(),
            absl::StatusCode::kPermissionDenied);
  for (Rpc rpc : {Rpc::kDisconnect, Rpc::kDeleteQueue, Rpc::kDeleteExchange,
                  Rpc::kPurgeQueue}) {
    absl::Status s = a->Check(Bearer(kPublisher), rpc);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << RpcName(rpc);
    EXPECT_THAT(s.message(), HasSubstr("admin"));
    EXPECT_EQ(a->Check(Bearer(kConsumer), rpc).code(),
              absl::StatusCode::kPermissionDenied);
    EXPECT_TRUE(a->Check(Bearer(kAdmin), rpc).ok()) << RpcName(rpc);
  }
}

TEST(AuthTest, BadFilesAreRefusedWithoutEchoingTokens) {
  struct Case {
    const char* text;
    const char* expect;
  } cases[] = {
      {"secret-0123456789abcdef\n", "tokens.txt:1: want '<token> <role>'"},
      {"secret-0123456789abcdef root\n", "unknown role 'root'"},
      {"short admin\n", "shorter than 16"},
      {"# only comments\n\n", "no tokens"},
      {"secret-0123456789abcdef admin\nsecret-0123456789abcdef publish\n",
       "tokens.txt:2: repeats the token of line 1"},
  };
  for (const Case& c : cases) {
    auto a = Authorizer::FromText(c.text, "tokens.txt");
    ASSERT_FALSE(a.ok()) << c.text;
    EXPECT_THAT(a.status().message(), HasSubstr(c.expect));
    EXPECT_THAT(a.status().message(), Not(HasSubstr("secret-")));
  }
  EXPECT_FALSE(Authorizer::FromFile("/nonexistent/tokens").ok());
}

}  // namespace
}  // namespace amqpgw::grpc_api
