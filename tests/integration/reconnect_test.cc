// The session survives a broker restart by itself: health follows, calls made
// during the outage wait for it, and Publish works again afterwards.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "tests/support/amqp_peer.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

TEST(ReconnectTest, BrokerRestartIsSurvived) {
  auto node = BrokerNode::StartPrivate("restart");
  ASSERT_TRUE(node.ok()) << node.status();
  auto g = TestGateway::Start(node->uri());
  ASSERT_TRUE(g->WaitReady());
  ASSERT_TRUE(WaitFor([&] { return g->Health() == "SERVING"; }));

  std::string q = UniqueName("survivor");
  v1::DeclareQueueRequest dq;
  dq.set_name(q);
  v1::DeclareQueueResponse dq_resp;
  ASSERT_TRUE(g->stub().DeclareQueue(Ctx().get(), dq, &dq_resp).ok());
  v1::PublishRequest pub;
  pub.set_routing_key(q);
  pub.set_body("before");
  v1::PublishResponse pub_resp;
  ASSERT_TRUE(g->stub().Publish(Ctx().get(), pub, &pub_resp).ok());

  ASSERT_TRUE(node->Stop().ok());
  EXPECT_TRUE(WaitFor([&] {
    return GatewayStatus(*g).connection().state() ==
           v1::ConnectionInfo::RECONNECTING;
  }));
  EXPECT_TRUE(WaitFor([&] { return g->Health() == "NOT_SERVING"; }));

  // A short deadline while the broker is away: UNAVAILABLE.
  auto short_ctx = Ctx(absl::Milliseconds(300));
  ::grpc::Status s = g->stub().Publish(short_ctx.get(), pub, &pub_resp);
  EXPECT_TRUE(s.error_code() == ::grpc::StatusCode::UNAVAILABLE ||
              s.error_code() == ::grpc::StatusCode::DEADLINE_EXCEEDED)
      << s.error_message();

  // A long deadline: the call waits for the broker and succeeds.
  auto waiting = std::async(std::launch::async, [&] {
    v1::PublishRequest req = pub;
    req.set_body("during");
    v1::PublishResponse resp;
    return g->NewStub()->Publish(Ctx(absl::Seconds(60)).get(), req, &resp);
  });

  ASSERT_TRUE(node->Start().ok());
  ASSERT_TRUE(g->WaitReady(absl::Seconds(60)));
  EXPECT_TRUE(WaitFor([&] { return g->Health() == "SERVING"; }));
  ::grpc::Status during = waiting.get();
  EXPECT_TRUE(during.ok()) << during.error_message();

  pub.set_body("after");
  EXPECT_TRUE(g->stub().Publish(Ctx().get(), pub, &pub_resp).ok());
  v1::GetStatusResponse st = GatewayStatus(*g);
  EXPECT_GE(st.connection().reconnects(), 1u);
  EXPECT_GE(st.counters().reconnects(), 1u);

  // Persistent messages on the durable queue survived the restart.
  auto peer = AmqpPeer::Connect(node->port());
  ASSERT_TRUE(peer.ok());
  auto count = (*peer)->MessageCount(q);
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 3u);

  g.reset();
  EXPECT_TRUE(node->Stop().ok());
}

}  // namespace
}  // namespace amqpgw::testing
