#include "server/grpc/auth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "absl/strings/str_cat.h"
#include "amqpgw/v1/gateway.pb.h"

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

// The Gateway RPC `name` from gateway.proto (fails the test when absent).
const Rpc& R(const char* name) {
  const Rpc* rpc = FindGatewayRpc(name);
  EXPECT_NE(rpc, nullptr) << name;
  static const Rpc kNone;
  return rpc != nullptr ? *rpc : kNone;
}

TEST(AuthTest, ParsesTokensRolesCommentsAndBlankLines) {
  EXPECT_EQ(Make()->size(), 3u);
}

TEST(AuthTest, MissingMalformedOrUnknownTokenIsUnauthenticated) {
  auto a = Make();
  EXPECT_EQ(a->Check(std::nullopt, R("GetStatus")).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(a->Check("Basic abc", R("GetStatus")).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(a->Check("Bearer ", R("GetStatus")).code(),
            absl::StatusCode::kUnauthenticated);
  absl::Status s = a->Check("Bearer wrong-0123456789abcdef", R("GetStatus"));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(s.message(), Not(HasSubstr("wrong-0123456789abcdef")));
  // The scheme is case-insensitive.
  EXPECT_TRUE(a->Check(std::string("bearer ") + kAdmin, R("GetStatus")).ok());
}

TEST(AuthTest, RolesFollowTheTable) {
  auto a = Make();
  EXPECT_TRUE(a->Check(Bearer(kPublisher), R("Publish")).ok());
  EXPECT_TRUE(a->Check(Bearer(kPublisher), R("PublishBatch")).ok());
  EXPECT_TRUE(a->Check(Bearer(kPublisher), R("DeclareQueue")).ok());
  EXPECT_EQ(a->Check(Bearer(kPublisher), R("StreamMessages")).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(a->Check(Bearer(kConsumer), R("StreamMessages")).ok());
  EXPECT_TRUE(a->Check(Bearer(kConsumer), R("Ack")).ok());
  EXPECT_EQ(a->Check(Bearer(kConsumer), R("Publish")).code(),
            absl::StatusCode::kPermissionDenied);
  for (const char* name :
       {"Disconnect", "DeleteQueue", "DeleteExchange", "PurgeQueue"}) {
    const Rpc& rpc = R(name);
    absl::Status s = a->Check(Bearer(kPublisher), rpc);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << name;
    EXPECT_THAT(s.message(), HasSubstr("admin"));
    EXPECT_EQ(a->Check(Bearer(kConsumer), rpc).code(),
              absl::StatusCode::kPermissionDenied);
    EXPECT_TRUE(a->Check(Bearer(kAdmin), rpc).ok()) << name;
  }
}

// The role table lives in gateway.proto, one `option (amqpgw.v1.role)` per
// RPC: every RPC has one, and these are the roles the README documents.
TEST(AuthTest, EveryRpcDeclaresItsRoleInTheProto) {
  std::map<std::string, std::string> roles;
  for (const Rpc& rpc : GatewayRpcs()) {
    const google::protobuf::MethodDescriptor* m =
        google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(
            absl::StrCat("amqpgw.v1.Gateway.", rpc.name));
    ASSERT_NE(m, nullptr) << rpc.name;
    EXPECT_NE(m->options().GetExtension(v1::role), v1::ROLE_UNSPECIFIED)
        << rpc.name << " has no (amqpgw.v1.role) option";
    EXPECT_EQ(rpc.full_name, absl::StrCat("/amqpgw.v1.Gateway/", rpc.name));
    roles[rpc.name] = RoleName(rpc.role);
  }
  EXPECT_EQ(roles, (std::map<std::string, std::string>{
                       {"Connect", "any"},
                       {"Disconnect", "admin"},
                       {"GetStatus", "any"},
                       {"DeclareQueue", "any"},
                       {"InspectQueue", "any"},
                       {"DeleteQueue", "admin"},
                       {"PurgeQueue", "admin"},
                       {"DeclareExchange", "any"},
                       {"DeleteExchange", "admin"},
                       {"BindQueue", "any"},
                       {"UnbindQueue", "any"},
                       {"Publish", "publish"},
                       {"PublishBatch", "publish"},
                       {"PublishStream", "publish"},
                       {"StreamMessages", "consume"},
                       {"GetMessages", "consume"},
                       {"Ack", "consume"},
                       {"ListQueues", "consume"},
                       {"ListExchanges", "consume"},
                       {"ListBindings", "consume"},
                       {"ListConsumers", "consume"},
                       {"Subscribe", "consume"},
                   }));
  EXPECT_EQ(FindGatewayRpc("NoSuchRpc"), nullptr);
}

TEST(AuthTest, TokenRolesAreTheFileWordsOfTheProtoRoles) {
  EXPECT_EQ(ParseTokenRole("publish"), v1::ROLE_PUBLISH);
  EXPECT_EQ(ParseTokenRole("consume"), v1::ROLE_CONSUME);
  EXPECT_EQ(ParseTokenRole("admin"), v1::ROLE_ADMIN);
  for (const char* no : {"any", "unspecified", "ADMIN", "Admin", "", "root"}) {
    EXPECT_EQ(ParseTokenRole(no), std::nullopt) << no;
  }
  EXPECT_TRUE(RoleAllows(v1::ROLE_ADMIN, v1::ROLE_CONSUME));
  EXPECT_TRUE(RoleAllows(v1::ROLE_PUBLISH, v1::ROLE_ANY));
  EXPECT_FALSE(RoleAllows(v1::ROLE_PUBLISH, v1::ROLE_CONSUME));
  EXPECT_FALSE(RoleAllows(v1::ROLE_CONSUME, v1::ROLE_ADMIN));
}

TEST(AuthTest, RefusalsAreCountedByReason) {
  auto a = Make();
  const Rpc& publish = R("Publish");
  const char* kPeer = "ipv4:127.0.0.1:1";
  EXPECT_FALSE(a->Check(std::nullopt, publish, kPeer).ok());
  EXPECT_FALSE(a->Check("Basic x", publish, kPeer).ok());
  EXPECT_FALSE(a->Check("Bearer wrong-0123456789abcdef", publish, kPeer).ok());
  EXPECT_FALSE(a->Check("Bearer wrong-0123456789abcdef", publish, kPeer).ok());
  EXPECT_FALSE(a->Check(Bearer(kConsumer), publish, kPeer).ok());
  EXPECT_TRUE(a->Check(Bearer(kPublisher), publish, kPeer).ok());
  EXPECT_EQ(a->failures(AuthFailure::kMissingToken), 1u);
  EXPECT_EQ(a->failures(AuthFailure::kMalformed), 1u);
  EXPECT_EQ(a->failures(AuthFailure::kUnknownToken), 2u);
  EXPECT_EQ(a->failures(AuthFailure::kRoleDenied), 1u);
  metrics::TextWriter w;
  a->Collect(w);
  std::string text = w.Take();
  EXPECT_THAT(text, HasSubstr("# TYPE amqpgw_auth_failures_total counter"));
  EXPECT_THAT(
      text,
      HasSubstr("amqpgw_auth_failures_total{reason=\"unknown_token\"} 2"));
  EXPECT_THAT(
      text, HasSubstr("amqpgw_auth_failures_total{reason=\"role_denied\"} 1"));
  EXPECT_THAT(text, Not(HasSubstr("wrong-")));
}

TEST(AuthTest, TheRefusalLogIsRateLimited) {
  RateLimiter limiter(/*burst=*/3, /*per_second=*/1);
  absl::Time t = absl::FromUnixSeconds(1000);
  uint64_t held = 0;
  int allowed = 0;
  for (int i = 0; i < 100; ++i) allowed += limiter.Allow(t, &held);
  EXPECT_EQ(allowed, 3);  // the burst, then nothing within the same instant
  // Half a second later: still nothing; 1.1 s later: one, reporting the 98
  // held back.
  EXPECT_FALSE(limiter.Allow(t + absl::Milliseconds(500), &held));
  EXPECT_TRUE(limiter.Allow(t + absl::Milliseconds(1100), &held));
  EXPECT_EQ(held, 98u);
  EXPECT_FALSE(limiter.Allow(t + absl::Milliseconds(1200), &held));
  // Idle for a minute: the burst is back, not more.
  allowed = 0;
  for (int i = 0; i < 10; ++i) {
    allowed += limiter.Allow(t + absl::Seconds(60), &held);
  }
  EXPECT_EQ(allowed, 3);
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
