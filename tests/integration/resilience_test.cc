// Faults between the gateway and RabbitMQ, and proof by counting that no
// confirmed message is lost: cut, stalled and slow links (through a test TCP
// proxy), connections closed by the broker, broker crashes (kill -9), memory
// alarms, and acks sent to the wrong gateway instance.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <future>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/stream_reader.h"
#include "tests/support/tcp_proxy.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

using ::testing::HasSubstr;

bool Ready(TestGateway& g) {
  return GatewayStatus(g).connection().state() == v1::ConnectionInfo::READY;
}

std::string Declare(TestGateway& g, const std::string& prefix) {
  std::string q = UniqueName(prefix);
  v1::DeclareQueueRequest req;
  req.set_name(q);
  v1::DeclareQueueResponse resp;
  EXPECT_TRUE(g.stub().DeclareQueue(Ctx().get(), req, &resp).ok());
  return q;
}

v1::StreamMessagesRequest AutoStream(const std::string& q) {
  v1::StreamMessagesRequest r;
  r.set_queue(q);
  r.set_prefetch(200);
  return r;
}

// Waits until every confirmed message was delivered at least once; reports
// lost and duplicated ones.
void ExpectNothingLost(const std::set<int>& confirmed, StreamReader& reader,
                       const std::string& label) {
  auto all_there = [&] {
    std::map<int, int> got = CountBodies(reader.deliveries());
    for (int n : confirmed) {
      if (got.find(n) == got.end()) return false;
    }
    return true;
  };
  WaitFor(all_there, absl::Seconds(120));
  std::map<int, int> got = CountBodies(reader.deliveries());
  int lost = 0, duplicates = 0;
  for (int n : confirmed) {
    auto it = got.find(n);
    if (it == got.end()) {
      ++lost;
    } else if (it->second > 1) {
      duplicates += it->second - 1;
    }
  }
  std::printf("[%s] confirmed=%zu delivered=%zu lost=%d duplicates=%d\n",
              label.c_str(), confirmed.size(), reader.deliveries().size(), lost,
              duplicates);
  EXPECT_EQ(lost, 0) << label;
  EXPECT_GT(confirmed.size(), 0u);
}

class ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_ = std::make_unique<BrokerNode>(BrokerNode::Shared());
    proxy_ = std::make_unique<TcpProxy>(node_->port());
  }
  std::unique_ptr<TestGateway> Start(
      absl::Duration heartbeat = absl::Seconds(10)) {
    auto g = TestGateway::Start(proxy_->uri(), [&](daemon::Options& o) {
      o.heartbeat = heartbeat;
      o.reconnect_initial_delay = absl::Milliseconds(50);
      o.reconnect_max_delay = absl::Milliseconds(500);
    });
    EXPECT_TRUE(g->WaitReady());
    return g;
  }
  std::unique_ptr<BrokerNode> node_;
  std::unique_ptr<TcpProxy> proxy_;
};

TEST_F(ProxyTest, CutConnectionsRecoverWithoutLoss) {
  auto g = Start();
  std::string q = Declare(*g, "cut");
  auto stream_stub = g->NewStub();
  StreamReader reader(stream_stub.get(), AutoStream(q), absl::Seconds(300));
  ASSERT_TRUE(reader.WaitSubscribed());
  Traffic traffic(g->NewStub(), q, 20);
  for (int round = 0; round < 3; ++round) {
    size_t before = traffic.confirmed().size();
    ASSERT_TRUE(
        WaitFor([&] { return traffic.confirmed().size() >= before + 200; }));
    // Refuse reconnects for a moment, then let them through.
    proxy_->SetRefuse(true);
    proxy_->CutAll();
    ASSERT_TRUE(WaitFor([&] { return !Ready(*g); }));
    proxy_->SetRefuse(false);
    ASSERT_TRUE(g->WaitReady(absl::Seconds(60))) << "round " << round;
  }
  size_t before = traffic.confirmed().size();
  ASSERT_TRUE(
      WaitFor([&] { return traffic.confirmed().size() >= before + 200; }));
  traffic.Stop();
  ExpectNothingLost(traffic.confirmed(), reader, "proxy cut x3");
  EXPECT_TRUE(reader.WaitEvent([](const v1::StreamMessagesResponse& e) {
    return e.has_status() && e.status().kind() == v1::StreamStatus::RESUMED;
  }));
  EXPECT_GE(GatewayStatus(*g).connection().reconnects(), 3u);
}

TEST_F(ProxyTest, StalledLinkIsDetectedByHeartbeats) {
  const absl::Duration heartbeat = absl::Seconds(1);
  auto g = Start(heartbeat);
  std::string q = Declare(*g, "stall");
  v1::PublishRequest pub;
  pub.set_routing_key(q);
  v1::PublishResponse resp;
  // The link stalls while the session is in use (publisher set up).
  ASSERT_TRUE(g->stub().Publish(Ctx().get(), pub, &resp).ok());
  absl::Time stalled_at = absl::Now();
  proxy_->StallAll();
  // The broker neither answers nor closes: only missed heartbeats tell.
  ASSERT_TRUE(WaitFor([&] { return !Ready(*g); }, heartbeat * 10));
  absl::Duration detected = absl::Now() - stalled_at;
  std::printf("stalled link detected after %s (heartbeat %s)\n",
              absl::FormatDuration(detected).c_str(),
              absl::FormatDuration(heartbeat).c_str());
  ASSERT_TRUE(g->WaitReady(absl::Seconds(30)));
  EXPECT_THAT(GatewayStatus(*g).connection().last_error(),
              HasSubstr("heartbeat"));
  // Publishing works again over new connections.
  EXPECT_TRUE(g->stub().Publish(Ctx().get(), pub, &resp).ok());
  proxy_->CutAll();  // release the stalled sockets
}

TEST_F(ProxyTest, StallWhilePublishingLargeMessagesRecovers) {
  // Large messages fill the socket buffers, so the publisher's thread may be
  // blocked in send() when the link stalls: the kernel's TCP_USER_TIMEOUT
  // (two heartbeats) must still break it.
  const absl::Duration heartbeat = absl::Seconds(1);
  auto g = Start(heartbeat);
  std::string q = Declare(*g, "stall-heavy");
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::thread publisher([&] {
    auto stub = g->NewStub();
    while (!stop.load()) {
      v1::PublishBatchRequest req;
      for (int i = 0; i < 16; ++i) {
        auto* m = req.add_messages();
        m->set_routing_key(q);
        m->set_body(std::string(256 << 10, 'x'));
        m->mutable_properties()->set_delivery_mode(v1::TRANSIENT);
      }
      v1::PublishBatchResponse resp;
      if (stub->PublishBatch(Ctx(absl::Seconds(20)).get(), req, &resp).ok()) {
        ok += resp.ok_count();
        failed += resp.results_size() - resp.ok_count();
      } else {
        ++failed;
      }
    }
  });
  ASSERT_TRUE(WaitFor([&] { return ok.load() >= 64; }));
  absl::Time stalled_at = absl::Now();
  proxy_->StallAll();
  ASSERT_TRUE(WaitFor([&] { return !Ready(*g); }, heartbeat * 15));
  std::printf("stall under load detected after %s\n",
              absl::FormatDuration(absl::Now() - stalled_at).c_str());
  ASSERT_TRUE(g->WaitReady(absl::Seconds(30)));
  int before = ok.load();
  EXPECT_TRUE(WaitFor([&] { return ok.load() >= before + 64; }));
  stop.store(true);
  publisher.join();
  proxy_->CutAll();
  v1::PurgeQueueRequest purge;
  purge.set_name(q);
  v1::PurgeQueueResponse purge_resp;
  g->stub().PurgeQueue(Ctx().get(), purge, &purge_resp);
}

TEST_F(ProxyTest, SlowLinkStillDelivers) {
  auto g = Start();
  std::string q = Declare(*g, "slow");
  proxy_->SetDelay(absl::Milliseconds(150));
  auto stream_stub = g->NewStub();
  v1::StreamMessagesRequest sreq = AutoStream(q);
  sreq.set_max_messages(100);
  StreamReader reader(stream_stub.get(), sreq);
  ASSERT_TRUE(reader.WaitSubscribed());
  v1::PublishBatchRequest batch;
  for (int i = 0; i < 100; ++i) {
    auto* m = batch.add_messages();
    m->set_routing_key(q);
    m->set_body(absl::StrCat(i));
  }
  v1::PublishBatchResponse resp;
  ASSERT_TRUE(g->stub().PublishBatch(Ctx().get(), batch, &resp).ok());
  EXPECT_EQ(resp.ok_count(), 100u);
  EXPECT_TRUE(reader.WaitDone().ok());
  EXPECT_EQ(reader.deliveries().size(), 100u);
  proxy_->SetDelay(absl::ZeroDuration());
}

TEST(ResilienceTest, ConnectionsClosedByTheBrokerAreReopened) {
  BrokerNode node = BrokerNode::Shared();
  auto g = TestGateway::Start(node.uri(), [](daemon::Options& o) {
    o.instance_id = UniqueName("closer");
  });
  ASSERT_TRUE(g->WaitReady());
  std::string q = Declare(*g, "closed");
  auto stream_stub = g->NewStub();
  StreamReader reader(stream_stub.get(), AutoStream(q), absl::Seconds(300));
  ASSERT_TRUE(reader.WaitSubscribed());
  Traffic traffic(g->NewStub(), q, 10);
  ASSERT_TRUE(WaitFor([&] { return traffic.confirmed().size() >= 100; }));
  absl::StatusOr<int> closed = CloseConnectionsOf(node, *g);
  ASSERT_TRUE(closed.ok()) << closed.status();
  EXPECT_GE(*closed, 4);  // control, publisher, two consumers
  ASSERT_TRUE(WaitFor([&] {
    return GatewayStatus(*g).connection().last_error().find(
               "closed by the test") != std::string::npos;
  }));
  ASSERT_TRUE(g->WaitReady());
  size_t before = traffic.confirmed().size();
  ASSERT_TRUE(
      WaitFor([&] { return traffic.confirmed().size() >= before + 100; }));
  traffic.Stop();
  ExpectNothingLost(traffic.confirmed(), reader, "close_connection");
}

TEST(ResilienceTest, KillNineLoopLosesNoConfirmedMessage) {
  auto node = BrokerNode::StartPrivate("kill9");
  ASSERT_TRUE(node.ok()) << node.status();
  auto g = TestGateway::Start(node->uri(), [](daemon::Options& o) {
    o.reconnect_initial_delay = absl::Milliseconds(50);
    o.reconnect_max_delay = absl::Milliseconds(500);
  });
  ASSERT_TRUE(g->WaitReady());
  std::string q = Declare(*g, "kill9");
  auto stream_stub = g->NewStub();
  StreamReader reader(stream_stub.get(), AutoStream(q), absl::Seconds(600));
  ASSERT_TRUE(reader.WaitSubscribed());
  Traffic batches(g->NewStub(), q, 20);
  Traffic singles(g->NewStub(), q, 1, /*first=*/10000000);
  for (int round = 0; round < 3; ++round) {
    size_t before = batches.confirmed().size();
    ASSERT_TRUE(
        WaitFor([&] { return batches.confirmed().size() >= before + 300; },
                absl::Seconds(60)));
    ASSERT_TRUE(node->Kill().ok());
    absl::Time killed = absl::Now();
    ASSERT_TRUE(node->Start().ok());
    ASSERT_TRUE(g->WaitReady(absl::Seconds(60)));
    std::printf("kill -9 round %d: READY again %s after the kill\n", round + 1,
                absl::FormatDuration(absl::Now() - killed).c_str());
  }
  size_t before = batches.confirmed().size();
  ASSERT_TRUE(
      WaitFor([&] { return batches.confirmed().size() >= before + 300; }));
  batches.Stop();
  singles.Stop();
  std::set<int> all = batches.confirmed();
  for (int n : singles.confirmed()) all.insert(n);
  ExpectNothingLost(all, reader, "kill -9 x3");
  EXPECT_GE(GatewayStatus(*g).connection().reconnects(), 3u);
  g.reset();
  EXPECT_TRUE(node->Stop().ok());
}

TEST(ResilienceTest, MemoryAlarmBlocksPublishingOnly) {
  auto node = BrokerNode::StartPrivate("alarm");
  ASSERT_TRUE(node.ok()) << node.status();
  auto g = TestGateway::Start(node->uri());
  ASSERT_TRUE(g->WaitReady());
  std::string q = Declare(*g, "alarm");
  v1::PublishRequest pub;
  pub.set_routing_key(q);
  v1::PublishResponse resp;
  ASSERT_TRUE(g->stub().Publish(Ctx().get(), pub, &resp).ok());

  ASSERT_TRUE(node->Ctl({"set_vm_memory_high_watermark", "0.0000001"}).ok());
  // RabbitMQ blocks a connection (and says so) when it next publishes during
  // the alarm; that message may or may not be confirmed before the block.
  {
    auto ctx = Ctx(absl::Seconds(2));
    g->stub().Publish(ctx.get(), pub, &resp);
  }
  ASSERT_TRUE(
      WaitFor([&] { return GatewayStatus(*g).connection().blocked(); }));
  EXPECT_FALSE(GatewayStatus(*g).connection().blocked_reason().empty());
  // While blocked, publishes wait until their deadline, then UNAVAILABLE
  // saying the broker blocks publishers.
  auto ctx = Ctx(absl::Seconds(1));
  ::grpc::Status s = g->stub().Publish(ctx.get(), pub, &resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::UNAVAILABLE)
      << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("blocking publishers"));
  // Other RPCs keep working.
  std::string other = Declare(*g, "alarm-other");
  v1::InspectQueueRequest iq;
  iq.set_name(q);
  v1::InspectQueueResponse iq_resp;
  EXPECT_TRUE(g->stub().InspectQueue(Ctx().get(), iq, &iq_resp).ok());
  EXPECT_GE(iq_resp.message_count(), 1u);

  // A call cancelled while its message waits is not published.
  {
    uint64_t accepted = GatewayStatus(*g).counters().published();
    auto cancelled_ctx = Ctx(absl::Seconds(60));
    auto cancelled = std::async(std::launch::async, [&] {
      v1::PublishResponse r;
      return g->NewStub()->Publish(cancelled_ctx.get(), pub, &r);
    });
    ASSERT_TRUE(WaitFor(
        [&] { return GatewayStatus(*g).counters().published() > accepted; }));
    cancelled_ctx->TryCancel();
    EXPECT_EQ(cancelled.get().error_code(), ::grpc::StatusCode::CANCELLED);
  }

  // A long deadline waits for the alarm to clear.
  auto waiting = std::async(std::launch::async, [&] {
    v1::PublishResponse r;
    return g->NewStub()->Publish(Ctx(absl::Seconds(60)).get(), pub, &r);
  });
  ASSERT_TRUE(node->Ctl({"set_vm_memory_high_watermark", "0.4"}).ok());
  ASSERT_TRUE(
      WaitFor([&] { return !GatewayStatus(*g).connection().blocked(); }));
  ::grpc::Status later = waiting.get();
  EXPECT_TRUE(later.ok()) << later.error_message();
  EXPECT_TRUE(g->stub().Publish(Ctx().get(), pub, &resp).ok());
  // 1 before the alarm, the one that hit the alarm, the one that waited, the
  // one after; the one refused during the block and the cancelled one were
  // never sent.
  EXPECT_TRUE(WaitFor([&] {
    iq_resp.Clear();
    return g->stub().InspectQueue(Ctx().get(), iq, &iq_resp).ok() &&
           iq_resp.message_count() == 4u;
  }));
  g.reset();
  EXPECT_TRUE(node->Stop().ok());
}

TEST(ResilienceTest, AckAtTheWrongInstanceNamesTheRightOne) {
  BrokerNode node = BrokerNode::Shared();
  auto a = TestGateway::Start(
      node.uri(), [](daemon::Options& o) { o.instance_id = "gw-a"; });
  auto b = TestGateway::Start(
      node.uri(), [](daemon::Options& o) { o.instance_id = "gw-b"; });
  ASSERT_TRUE(a->WaitReady() && b->WaitReady());
  std::string q = Declare(*a, "scaleout");
  v1::PublishRequest pub;
  pub.set_routing_key(q);
  v1::PublishResponse pub_resp;
  ASSERT_TRUE(b->stub().Publish(Ctx().get(), pub, &pub_resp).ok());
  v1::StreamMessagesRequest sreq = AutoStream(q);
  sreq.set_ack_mode(v1::StreamMessagesRequest::CLIENT);
  StreamReader reader(&a->stub(), sreq);
  ASSERT_TRUE(reader.WaitDeliveries(1));
  EXPECT_THAT(reader.subscription_id(), ::testing::StartsWith("gw-a/"));
  v1::AckRequest ack;
  ack.set_subscription_id(reader.subscription_id());
  ack.add_delivery_ids(reader.deliveries()[0].delivery_id());
  v1::AckResponse ack_resp;
  ::grpc::Status s = b->stub().Ack(Ctx().get(), ack, &ack_resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("gw-a"));
  EXPECT_TRUE(a->stub().Ack(Ctx().get(), ack, &ack_resp).ok());
  EXPECT_EQ(ack_resp.applied_count(), 1u);
}

}  // namespace
}  // namespace amqpgw::testing
