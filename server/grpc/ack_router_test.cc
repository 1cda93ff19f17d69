#include "server/grpc/ack_router.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace amqpgw::grpc_api {
namespace {

using ::testing::HasSubstr;

AckRouter MakeRouter(const std::string& address,
                     const std::string& secret = "a-secret-of-16-chars") {
  AckRouter::Options o;
  o.instance_id = "gw-" + address;
  o.advertise_address = address;
  o.secret = secret;
  o.credentials = ::grpc::InsecureChannelCredentials();
  return AckRouter(std::move(o));
}

TEST(AckRouterTest, SealedIdsRouteToTheirMaker) {
  AckRouter a = MakeRouter("10.0.0.1:50051");
  AckRouter b = MakeRouter("10.0.0.2:50051");
  std::string id = a.Seal("gw1/00ff");
  EXPECT_EQ(id.rfind("gw1/00ff~10.0.0.1:50051~", 0), 0u) << id;
  // The maker keeps it; another instance forwards it there.
  auto at_a = a.Resolve(id, "");
  ASSERT_TRUE(at_a.ok()) << at_a.status();
  EXPECT_EQ(at_a->holder_address, "");
  auto at_b = b.Resolve(id, "");
  ASSERT_TRUE(at_b.ok()) << at_b.status();
  EXPECT_EQ(at_b->holder_address, "10.0.0.1:50051");
  // Ids without a route are the session's to answer.
  auto plain = b.Resolve("gw1/00ff", "");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->holder_address, "");
}

TEST(AckRouterTest, ChangedRoutesAndOtherSecretsAreRefused) {
  AckRouter a = MakeRouter("10.0.0.1:50051");
  AckRouter b = MakeRouter("10.0.0.2:50051");
  AckRouter stranger = MakeRouter("10.0.0.3:50051", "another-secret-16c");
  std::string id = a.Seal("gw1/00ff");
  std::string moved = id;
  moved.replace(moved.find("10.0.0.1"), 8, "10.0.0.9");
  std::string other_random = id;
  other_random[5] = '1';
  for (const std::string& bad :
       {moved, other_random, stranger.Seal("gw1/00ff"), id + "~x",
        std::string("gw1/00ff~10.0.0.1:50051")}) {
    auto r = b.Resolve(bad, "");
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(AckRouterTest, AForwardedAckIsNotForwardedAgain) {
  AckRouter a = MakeRouter("10.0.0.1:50051");
  AckRouter b = MakeRouter("10.0.0.2:50051");
  auto r = b.Resolve(a.Seal("gw1/00ff"), "gw-elsewhere");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(r.status().message(),
              HasSubstr("is --advertise_address the address"));
  // The holder itself answers a forwarded Ack.
  EXPECT_TRUE(a.Resolve(a.Seal("gw1/00ff"), "gw-elsewhere").ok());
}

}  // namespace
}  // namespace amqpgw::grpc_api
