// Topology RPCs against a real RabbitMQ node: success paths, broker errors
// mapped to status codes, and channels that recover after an error.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "tests/support/amqp_peer.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"

namespace amqpgw::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class TopologyTest : public SharedGatewayTest {
 protected:
  ::grpc::Status Declare(const std::string& name, bool durable = true,
                         v1::DeclareQueueResponse* out = nullptr) {
    v1::DeclareQueueRequest req;
    req.set_name(name);
    req.set_durable(durable);
    v1::DeclareQueueResponse resp;
    return stub().DeclareQueue(Ctx().get(), req, out ? out : &resp);
  }

  ::grpc::Status Publish(const std::string& exchange, const std::string& rk,
                         const std::string& body) {
    v1::PublishRequest req;
    req.set_exchange(exchange);
    req.set_routing_key(rk);
    req.set_body(body);
    v1::PublishResponse resp;
    return stub().Publish(Ctx().get(), req, &resp);
  }
};

TEST_F(TopologyTest, DeclareQueueIsDurableByDefault) {
  std::string q = UniqueName("durable");
  v1::DeclareQueueRequest req;
  req.set_name(q);
  v1::DeclareQueueResponse resp;
  ASSERT_TRUE(stub().DeclareQueue(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.name(), q);
  EXPECT_EQ(resp.message_count(), 0u);
  auto listed = node_->Ctl(
      {"list_queues", "-q", "--no-table-headers", "name", "durable"});
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_THAT(*listed, HasSubstr(q + "\ttrue"));
}

TEST_F(TopologyTest, DeclareQueueWithEmptyNameGetsBrokerName) {
  v1::DeclareQueueRequest req;
  req.set_durable(false);
  req.set_auto_delete(true);
  v1::DeclareQueueResponse resp;
  ASSERT_TRUE(stub().DeclareQueue(Ctx().get(), req, &resp).ok());
  EXPECT_THAT(resp.name(), StartsWith("amq.gen-"));
}

TEST_F(TopologyTest, QuorumQueueType) {
  std::string q = UniqueName("quorum");
  v1::DeclareQueueRequest req;
  req.set_name(q);
  req.set_type(v1::QUORUM);
  v1::DeclareQueueResponse resp;
  ASSERT_TRUE(stub().DeclareQueue(Ctx().get(), req, &resp).ok());
  auto listed =
      node_->Ctl({"list_queues", "-q", "--no-table-headers", "name", "type"});
  ASSERT_TRUE(listed.ok());
  EXPECT_THAT(*listed, HasSubstr(q + "\tquorum"));
}

TEST_F(TopologyTest, MismatchedRedeclareIsFailedPreconditionAndNextCallWorks) {
  std::string q = UniqueName("mismatch");
  ASSERT_TRUE(Declare(q, true).ok());
  ::grpc::Status s = Declare(q, false);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("PRECONDITION_FAILED"));
  EXPECT_THAT(s.error_message(), HasSubstr(q));
  // The channel the broker closed is replaced: the next call succeeds.
  EXPECT_TRUE(Declare(q, true).ok());
}

TEST_F(TopologyTest, InspectQueueCountsAndNotFound) {
  std::string q = UniqueName("inspect");
  ASSERT_TRUE(Declare(q).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Publish("", q, "m").ok());
  v1::InspectQueueRequest req;
  req.set_name(q);
  v1::InspectQueueResponse resp;
  ASSERT_TRUE(stub().InspectQueue(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.message_count(), 3u);
  EXPECT_EQ(resp.consumer_count(), 0u);

  req.set_name(UniqueName("absent"));
  ::grpc::Status s = stub().InspectQueue(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr(req.name()));
}

TEST_F(TopologyTest, PurgeAndDelete) {
  std::string q = UniqueName("purge");
  ASSERT_TRUE(Declare(q).ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Publish("", q, "m").ok());

  v1::DeleteQueueRequest del;
  del.set_name(q);
  del.set_if_empty(true);
  v1::DeleteQueueResponse del_resp;
  ::grpc::Status s = stub().DeleteQueue(Ctx().get(), del, &del_resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::FAILED_PRECONDITION);

  v1::PurgeQueueRequest purge;
  purge.set_name(q);
  v1::PurgeQueueResponse purge_resp;
  ASSERT_TRUE(stub().PurgeQueue(Ctx().get(), purge, &purge_resp).ok());
  EXPECT_EQ(purge_resp.message_count(), 5u);

  ASSERT_TRUE(Publish("", q, "m").ok());
  del.set_if_empty(false);
  ASSERT_TRUE(stub().DeleteQueue(Ctx().get(), del, &del_resp).ok());
  EXPECT_EQ(del_resp.message_count(), 1u);

  purge.set_name(q);
  s = stub().PurgeQueue(Ctx().get(), purge, &purge_resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::NOT_FOUND);
}

TEST_F(TopologyTest, ExchangesAndBindingsRoute) {
  std::string ex = UniqueName("ex");
  std::string q = UniqueName("bound");
  v1::DeclareExchangeRequest dx;
  dx.set_name(ex);
  dx.set_type(v1::TOPIC);
  v1::DeclareExchangeResponse dx_resp;
  ASSERT_TRUE(stub().DeclareExchange(Ctx().get(), dx, &dx_resp).ok());
  ASSERT_TRUE(Declare(q).ok());

  // Redeclaring with another type is refused.
  dx.set_type(v1::FANOUT);
  ::grpc::Status s = stub().DeclareExchange(Ctx().get(), dx, &dx_resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::FAILED_PRECONDITION);

  // Nothing bound yet: the gateway reports the message unroutable.
  s = Publish(ex, "orders.eu", "m");
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("NO_ROUTE"));

  v1::BindQueueRequest bind;
  bind.set_queue(q);
  bind.set_exchange(ex);
  bind.set_routing_key("orders.*");
  v1::BindQueueResponse bind_resp;
  ASSERT_TRUE(stub().BindQueue(Ctx().get(), bind, &bind_resp).ok());
  ASSERT_TRUE(Publish(ex, "orders.eu", "m").ok());

  v1::UnbindQueueRequest unbind;
  unbind.set_queue(q);
  unbind.set_exchange(ex);
  unbind.set_routing_key("orders.*");
  v1::UnbindQueueResponse unbind_resp;
  ASSERT_TRUE(stub().UnbindQueue(Ctx().get(), unbind, &unbind_resp).ok());
  s = Publish(ex, "orders.eu", "m");
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::FAILED_PRECONDITION);

  v1::InspectQueueRequest iq;
  iq.set_name(q);
  v1::InspectQueueResponse iq_resp;
  ASSERT_TRUE(stub().InspectQueue(Ctx().get(), iq, &iq_resp).ok());
  EXPECT_EQ(iq_resp.message_count(), 1u);

  // Binding to an exchange that does not exist.
  bind.set_exchange(UniqueName("noex"));
  s = stub().BindQueue(Ctx().get(), bind, &bind_resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::NOT_FOUND);

  v1::DeleteExchangeRequest del;
  del.set_name(ex);
  v1::DeleteExchangeResponse del_resp;
  ASSERT_TRUE(stub().DeleteExchange(Ctx().get(), del, &del_resp).ok());
  s = Publish(ex, "orders.eu", "m");
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::NOT_FOUND);
}

TEST_F(TopologyTest, ReservedExchangeNameIsPermissionDenied) {
  v1::DeclareExchangeRequest dx;
  dx.set_name("amq.mine");
  v1::DeclareExchangeResponse resp;
  ::grpc::Status s = stub().DeclareExchange(Ctx().get(), dx, &resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("ACCESS_REFUSED"));
}

TEST_F(TopologyTest, BadNamesAreInvalidArgument) {
  v1::DeclareQueueRequest req;
  req.set_name(std::string(256, 'q'));
  v1::DeclareQueueResponse resp;
  ::grpc::Status s = stub().DeclareQueue(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("name"));
  EXPECT_THAT(s.error_message(), HasSubstr("255"));

  req.set_name("ok");
  req.set_type(static_cast<v1::QueueType>(42));
  s = stub().DeclareQueue(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("type"));

  v1::BindQueueRequest bind;
  bind.set_queue("q");
  v1::BindQueueResponse bind_resp;
  s = stub().BindQueue(Ctx().get(), bind, &bind_resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("exchange"));

  // Arguments nested deeper than 16 levels.
  v1::DeclareQueueRequest deep;
  deep.set_name(UniqueName("deep"));
  v1::FieldValue* v = &(*deep.mutable_arguments())["x"];
  for (int i = 0; i < 20; ++i) {
    v = &(*v->mutable_table_value()->mutable_fields())["n"];
  }
  v->set_int_value(1);
  s = stub().DeclareQueue(Ctx().get(), deep, &resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("arguments"));
  EXPECT_THAT(s.error_message(), HasSubstr("16"));
}

TEST_F(TopologyTest, QueueArgumentsReachTheBroker) {
  std::string q = UniqueName("ttl");
  v1::DeclareQueueRequest req;
  req.set_name(q);
  (*req.mutable_arguments())["x-max-length"].set_int_value(2);
  v1::DeclareQueueResponse resp;
  ASSERT_TRUE(stub().DeclareQueue(Ctx().get(), req, &resp).ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Publish("", q, "m").ok());
  v1::InspectQueueRequest iq;
  iq.set_name(q);
  v1::InspectQueueResponse iq_resp;
  ASSERT_TRUE(stub().InspectQueue(Ctx().get(), iq, &iq_resp).ok());
  EXPECT_EQ(iq_resp.message_count(), 2u);  // x-max-length dropped the oldest
}

// The broker answers delete-ok whether or not the entity existed; the
// gateway checks first and says which in `existed`.
TEST_F(TopologyTest, DeletesSayWhetherTheQueueOrExchangeExisted) {
  const std::string q = UniqueName("del");
  v1::DeleteQueueRequest dq;
  dq.set_name(q);
  v1::DeleteQueueResponse dq_resp;
  ASSERT_TRUE(stub().DeleteQueue(Ctx().get(), dq, &dq_resp).ok());
  ASSERT_TRUE(dq_resp.has_existed());
  EXPECT_FALSE(dq_resp.existed());
  EXPECT_EQ(dq_resp.message_count(), 0u);
  // The check did not create it.
  v1::InspectQueueRequest iq;
  iq.set_name(q);
  v1::InspectQueueResponse iq_resp;
  EXPECT_EQ(stub().InspectQueue(Ctx().get(), iq, &iq_resp).error_code(),
            ::grpc::StatusCode::NOT_FOUND);

  v1::DeclareQueueRequest decl;
  decl.set_name(q);
  v1::DeclareQueueResponse decl_resp;
  ASSERT_TRUE(stub().DeclareQueue(Ctx().get(), decl, &decl_resp).ok());
  ASSERT_TRUE(Publish("", q, "m").ok());
  ASSERT_TRUE(stub().DeleteQueue(Ctx().get(), dq, &dq_resp).ok());
  EXPECT_TRUE(dq_resp.existed());
  EXPECT_EQ(dq_resp.message_count(), 1u);
  EXPECT_EQ(stub().InspectQueue(Ctx().get(), iq, &iq_resp).error_code(),
            ::grpc::StatusCode::NOT_FOUND);

  const std::string ex = UniqueName("delx");
  v1::DeleteExchangeRequest dx;
  dx.set_name(ex);
  v1::DeleteExchangeResponse dx_resp;
  ASSERT_TRUE(stub().DeleteExchange(Ctx().get(), dx, &dx_resp).ok());
  ASSERT_TRUE(dx_resp.has_existed());
  EXPECT_FALSE(dx_resp.existed());
  v1::DeclareExchangeRequest dex;
  dex.set_name(ex);
  dex.set_type(v1::FANOUT);
  v1::DeclareExchangeResponse dex_resp;
  ASSERT_TRUE(stub().DeclareExchange(Ctx().get(), dex, &dex_resp).ok());
  ASSERT_TRUE(stub().DeleteExchange(Ctx().get(), dx, &dx_resp).ok());
  EXPECT_TRUE(dx_resp.existed());
  // Gone: publishing to it is NOT_FOUND.
  EXPECT_EQ(Publish(ex, "k", "m").error_code(), ::grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace amqpgw::testing
