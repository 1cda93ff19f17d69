// Seeing the whole broker through the gateway: InspectQueue's details and
// GetStatus's `listing`, from RabbitMQ's management API on the shared node
// (and a node without it). Queues and consumers are made by an independent
// AMQP client (AmqpPeer).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "tests/support/amqp_peer.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

class ListingTest : public SharedGatewayTest {};

TEST_F(ListingTest, StatusSaysListingIsAvailable) {
  v1::GetStatusResponse r;
  // The daemon asks the API once the session is up.
  EXPECT_TRUE(WaitFor([&] {
    r = GatewayStatus(*gateway_);
    return r.listing().state() == v1::ListingStatus::AVAILABLE;
  })) << r.listing().DebugString();
  EXPECT_EQ(r.listing().url(), node_->management_url());
  EXPECT_THAT(r.listing().detail(), HasSubstr("guest"));
  EXPECT_GT(r.listing().checked_at().seconds(), 0);
}

TEST_F(ListingTest, InspectQueueGainsTheManagementApisDetails) {
  const std::string q = UniqueName("inspect-details");
  auto peer = AmqpPeer::Connect(node_->port());
  ASSERT_TRUE(peer.ok()) << peer.status();
  ASSERT_TRUE((*peer)->DeclareQueue(q).ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE((*peer)->Publish("", q, "m").ok());
  auto consumer = AmqpPeer::Connect(node_->port(), "inspect app");
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  ASSERT_TRUE((*consumer)->Consume(q, 2, "holder").ok());

  v1::InspectQueueRequest req;
  req.set_name(q);
  v1::InspectQueueResponse resp;
  // AMQP counts only ready messages; the details count the unacked too
  // (once the broker's statistics have caught up).
  EXPECT_TRUE(WaitFor([&] {
    resp.Clear();
    return stub().InspectQueue(Ctx().get(), req, &resp).ok() &&
           resp.details().unacked() == 2 && resp.details().ready() == 3;
  })) << resp.DebugString();
  EXPECT_EQ(resp.name(), q);
  EXPECT_EQ(resp.message_count(), 3u);
  EXPECT_EQ(resp.consumer_count(), 1u);
  EXPECT_EQ(resp.details_unavailable(), "");
  const v1::QueueInfo& d = resp.details();
  EXPECT_EQ(d.name(), q);
  EXPECT_EQ(d.type(), v1::CLASSIC);
  EXPECT_TRUE(d.durable());
  EXPECT_EQ(d.total(), 5u);
  EXPECT_EQ(d.consumers(), 1u);
  EXPECT_GT(d.memory_bytes(), 0u);

  // NOT_FOUND comes from the broker itself, as before.
  req.set_name(q + "-absent");
  ::grpc::Status s = stub().InspectQueue(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::NOT_FOUND);
  consumer->reset();
  ASSERT_TRUE((*peer)->DeleteQueue(q).ok());
}

// A node without the management plugin: the gateway works, InspectQueue
// answers with the AMQP counts and says why there are no details, and
// GetStatus says how to enable the plugin.
TEST(ListingWithoutPluginTest, EverythingElseWorksAndStatusSaysWhy) {
  auto node = BrokerNode::StartPrivate("nolisting", "", /*management=*/false);
  ASSERT_TRUE(node.ok()) << node.status();
  auto g = TestGateway::Start(node->uri(), [&](daemon::Options& o) {
    o.management_url = node->management_url();
  });
  ASSERT_TRUE(g->WaitReady());
  v1::DeclareQueueRequest dq;
  dq.set_name("q");
  v1::DeclareQueueResponse dq_resp;
  ASSERT_TRUE(g->stub().DeclareQueue(Ctx().get(), dq, &dq_resp).ok());
  v1::PublishRequest pub;
  pub.set_routing_key("q");
  pub.set_body("x");
  v1::PublishResponse pub_resp;
  ASSERT_TRUE(g->stub().Publish(Ctx().get(), pub, &pub_resp).ok());

  v1::InspectQueueRequest req;
  req.set_name("q");
  v1::InspectQueueResponse resp;
  ASSERT_TRUE(g->stub().InspectQueue(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.message_count(), 1u);
  EXPECT_FALSE(resp.has_details());
  EXPECT_THAT(resp.details_unavailable(),
              HasSubstr("rabbitmq-plugins enable rabbitmq_management"));

  v1::GetStatusResponse r;
  EXPECT_TRUE(WaitFor([&] {
    r = GatewayStatus(*g);
    return r.listing().state() == v1::ListingStatus::UNAVAILABLE;
  })) << r.listing().DebugString();
  EXPECT_THAT(r.listing().detail(),
              AllOf(HasSubstr(node->management_url()),
                    HasSubstr("rabbitmq-plugins enable rabbitmq_management"),
                    HasSubstr("--management_url")));
  g.reset();
  EXPECT_TRUE(node->Stop().ok());
}

}  // namespace
}  // namespace amqpgw::testing
