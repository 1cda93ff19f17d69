// Connect, Disconnect, GetStatus and health against a real RabbitMQ node.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/stream_reader.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

using ::testing::HasSubstr;

v1::ConnectionInfo Status(TestGateway& g) {
  v1::GetStatusResponse r;
  EXPECT_TRUE(g.stub().GetStatus(Ctx().get(), v1::GetStatusRequest(), &r).ok());
  return r.connection();
}

TEST(SessionTest, DisconnectRefusesCallsUntilConnect) {
  BrokerNode node = BrokerNode::Shared();
  auto g = TestGateway::Start(node.uri());
  ASSERT_TRUE(g->WaitReady());
  EXPECT_TRUE(WaitFor([&] { return g->Health() == "SERVING"; }));
  v1::ConnectionInfo info = Status(*g);
  EXPECT_EQ(info.server_product(), "RabbitMQ");
  EXPECT_FALSE(info.server_version().empty());
  EXPECT_EQ(info.broker(), absl::StrCat("127.0.0.1:", node.port()));
  EXPECT_EQ(info.heartbeat().seconds(), 10);
  EXPECT_GT(info.connected_since().seconds(), 0);

  // A stream open at Disconnect ends with UNAVAILABLE.
  std::string q = UniqueName("session");
  v1::DeclareQueueRequest dq;
  dq.set_name(q);
  v1::DeclareQueueResponse dq_resp;
  ASSERT_TRUE(g->stub().DeclareQueue(Ctx().get(), dq, &dq_resp).ok());
  auto stream_stub = g->NewStub();
  v1::StreamMessagesRequest sreq;
  sreq.set_queue(q);
  auto sctx = Ctx();
  auto reader = stream_stub->StreamMessages(sctx.get(), sreq);
  v1::StreamMessagesResponse ev;
  ASSERT_TRUE(reader->Read(&ev));
  ASSERT_TRUE(ev.has_subscribed());

  v1::DisconnectResponse disc;
  ASSERT_TRUE(
      g->stub().Disconnect(Ctx().get(), v1::DisconnectRequest(), &disc).ok());
  EXPECT_EQ(disc.connection().state(), v1::ConnectionInfo::DISCONNECTED);
  while (reader->Read(&ev)) {
  }
  ::grpc::Status end = reader->Finish();
  EXPECT_EQ(end.error_code(), ::grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Status(*g).state(), v1::ConnectionInfo::DISCONNECTED);
  EXPECT_EQ(g->Health(), "NOT_SERVING");

  v1::PublishRequest pub;
  pub.set_routing_key(q);
  v1::PublishResponse pub_resp;
  ::grpc::Status s = g->stub().Publish(Ctx().get(), pub, &pub_resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("call Connect"));
  s = g->stub().DeclareQueue(Ctx().get(), dq, &dq_resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::FAILED_PRECONDITION);
  auto sctx2 = Ctx();
  auto reader2 = stream_stub->StreamMessages(sctx2.get(), sreq);
  EXPECT_FALSE(reader2->Read(&ev));
  EXPECT_EQ(reader2->Finish().error_code(),
            ::grpc::StatusCode::FAILED_PRECONDITION);

  // Disconnect is idempotent.
  ASSERT_TRUE(
      g->stub().Disconnect(Ctx().get(), v1::DisconnectRequest(), &disc).ok());

  v1::ConnectResponse conn;
  ASSERT_TRUE(g->stub().Connect(Ctx().get(), v1::ConnectRequest(), &conn).ok());
  EXPECT_EQ(conn.connection().state(), v1::ConnectionInfo::READY);
  EXPECT_TRUE(g->stub().Publish(Ctx().get(), pub, &pub_resp).ok());
  EXPECT_TRUE(WaitFor([&] { return g->Health() == "SERVING"; }));
}

TEST(SessionTest, ConnectOnDemand) {
  BrokerNode node = BrokerNode::Shared();
  auto g = TestGateway::Start(
      node.uri(), [](daemon::Options& o) { o.connect_on_start = false; });
  EXPECT_EQ(Status(*g).state(), v1::ConnectionInfo::DISCONNECTED);
  EXPECT_EQ(g->Health(), "NOT_SERVING");
  v1::ConnectRequest req;
  req.mutable_wait()->set_seconds(20);
  v1::ConnectResponse resp;
  ASSERT_TRUE(g->stub().Connect(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.connection().state(), v1::ConnectionInfo::READY);
}

TEST(SessionTest, ConnectToUnreachableBrokerAnswersWithTheStateAtItsDeadline) {
  auto g = TestGateway::Start("amqp://guest:guest@127.0.0.1:1/");
  v1::ConnectRequest req;
  req.mutable_wait()->set_nanos(300 * 1000 * 1000);
  v1::ConnectResponse resp;
  ASSERT_TRUE(g->stub().Connect(Ctx().get(), req, &resp).ok());
  EXPECT_NE(resp.connection().state(), v1::ConnectionInfo::READY);
  EXPECT_TRUE(WaitFor([&] { return !Status(*g).last_error().empty(); }));
  EXPECT_THAT(Status(*g).last_error(), HasSubstr("127.0.0.1:1"));
  EXPECT_EQ(g->Health(), "NOT_SERVING");

  // Calls wait for the broker until their deadline, then UNAVAILABLE.
  v1::PublishRequest pub;
  pub.set_routing_key("q");
  v1::PublishResponse pub_resp;
  auto ctx = Ctx(absl::Seconds(30));
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(500)));
  ::grpc::Status s = g->stub().Publish(ctx.get(), pub, &pub_resp);
  EXPECT_TRUE(s.error_code() == ::grpc::StatusCode::UNAVAILABLE ||
              s.error_code() == ::grpc::StatusCode::DEADLINE_EXCEEDED)
      << s.error_code() << " " << s.error_message();
}

TEST(SessionTest, MemoryForWaitingMessagesIsBounded) {
  // The broker is unreachable: messages wait, up to --max_pending_bytes.
  auto g = TestGateway::Start("amqp://guest:guest@127.0.0.1:1/",
                              [](daemon::Options& o) {
                                o.max_message_bytes = 2 << 20;
                                o.max_request_bytes = 3 << 20;
                                o.max_pending_bytes = 3 << 20;
                              });
  v1::PublishRequest pub;
  pub.set_routing_key("q");
  pub.set_body(std::string(2 << 20, 'x'));
  auto first = std::thread([&] {
    v1::PublishResponse resp;
    auto ctx = Ctx(absl::Seconds(3));
    ::grpc::Status s = g->NewStub()->Publish(ctx.get(), pub, &resp);
    EXPECT_EQ(s.error_code(), ::grpc::StatusCode::UNAVAILABLE);
  });
  ASSERT_TRUE(WaitFor([&] {
    v1::GetStatusResponse r;
    return g->stub().GetStatus(Ctx().get(), v1::GetStatusRequest(), &r).ok() &&
           r.counters().published() == 1;
  }));
  v1::PublishResponse resp;
  ::grpc::Status s = g->stub().Publish(Ctx().get(), pub, &resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("--max_pending_bytes"));
  first.join();
  // Once the first one is answered, there is room again (until its deadline).
  auto ctx = Ctx(absl::Milliseconds(500));
  s = g->stub().Publish(ctx.get(), pub, &resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::UNAVAILABLE);
}

TEST(SessionTest, WrongCredentialsAreReported) {
  BrokerNode node = BrokerNode::Shared();
  auto g = TestGateway::Start(
      absl::StrCat("amqp://guest:wrong@127.0.0.1:", node.port(), "/"));
  EXPECT_TRUE(WaitFor([&] {
    return Status(*g).last_error().find("ACCESS_REFUSED") != std::string::npos;
  }));
  // Never the password.
  EXPECT_THAT(Status(*g).last_error(), ::testing::Not(HasSubstr("wrong")));
}

double Seconds(const google::protobuf::Duration& d) {
  return static_cast<double>(d.seconds()) + d.nanos() / 1e9;
}

// GetStatus's own rates: zero at rest, moving with a load, and never more
// than the counters allow over their window.
TEST(SessionTest, StatusRatesFollowTheLoad) {
  BrokerNode node = BrokerNode::Shared();
  auto g = TestGateway::Start(node.uri());
  ASSERT_TRUE(g->WaitReady());
  v1::GetStatusResponse r = GatewayStatus(*g);
  EXPECT_EQ(r.rates_10s().published(), 0);
  EXPECT_EQ(r.rates_1m().acked(), 0);
  EXPECT_LE(Seconds(r.rates_1m().window()), 61.5);

  std::string q = UniqueName("rates");
  v1::DeclareQueueRequest dq;
  dq.set_name(q);
  dq.set_durable(false);
  v1::DeclareQueueResponse dq_resp;
  ASSERT_TRUE(g->stub().DeclareQueue(Ctx().get(), dq, &dq_resp).ok());
  v1::StreamMessagesRequest sreq;
  sreq.set_queue(q);
  StreamReader reader(g->NewStub().get(), sreq);
  ASSERT_TRUE(reader.WaitSubscribed());
  Traffic traffic(g->NewStub(), q);
  // Rates of all four counters show the load within a few samples.
  EXPECT_TRUE(WaitFor([&] {
    r = GatewayStatus(*g);
    const v1::MessageRates& m = r.rates_10s();
    return m.published() > 0 && m.confirmed() > 0 && m.delivered() > 0 &&
           m.acked() > 0;
  })) << r.rates_10s().DebugString();
  traffic.Stop();
  r = GatewayStatus(*g);
  for (const v1::MessageRates& m : {r.rates_10s(), r.rates_1m()}) {
    const double window = Seconds(m.window());
    EXPECT_GT(window, 0);
    // What a rate claims over its window was really counted.
    EXPECT_LE(m.published() * window, r.counters().published() + 1.0);
    EXPECT_LE(m.acked() * window, r.counters().acked() + 1.0);
    EXPECT_GE(m.published() * window, 1.0);
  }
  EXPECT_LE(Seconds(r.rates_10s().window()), 11.5);
  EXPECT_LE(Seconds(r.rates_10s().window()), Seconds(r.rates_1m().window()));
}

}  // namespace
}  // namespace amqpgw::testing
