// A 3-node RabbitMQ cluster on loopback with a quorum queue: the gateway,
// given all three addresses, survives the loss of the node it is connected
// to, during publish and consume, without losing a confirmed message.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/stream_reader.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

TEST(ClusterTest, NodeLossFailsOverWithoutLosingConfirmedMessages) {
  auto cluster = BrokerNode::StartCluster("cluster", 3);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  std::vector<BrokerNode>& nodes = *cluster;
  std::vector<std::string> uris;
  for (const auto& n : nodes) uris.push_back(n.uri());

  auto g = TestGateway::Start(absl::StrJoin(uris, ","), [](daemon::Options& o) {
    o.heartbeat = absl::Seconds(2);
    o.reconnect_initial_delay = absl::Milliseconds(50);
    o.reconnect_max_delay = absl::Milliseconds(500);
  });
  ASSERT_TRUE(g->WaitReady(absl::Seconds(60)));
  v1::GetStatusResponse st = GatewayStatus(*g);
  EXPECT_EQ(st.connection().brokers_size(), 3);

  std::string q = UniqueName("quorum");
  v1::DeclareQueueRequest dq;
  dq.set_name(q);
  dq.set_type(v1::QUORUM);
  v1::DeclareQueueResponse dq_resp;
  ASSERT_TRUE(g->stub().DeclareQueue(Ctx().get(), dq, &dq_resp).ok());

  auto stream_stub = g->NewStub();
  v1::StreamMessagesRequest sreq;
  sreq.set_queue(q);
  sreq.set_prefetch(200);
  StreamReader reader(stream_stub.get(), sreq, absl::Seconds(600));
  ASSERT_TRUE(reader.WaitSubscribed());
  Traffic traffic(g->NewStub(), q, 20);
  ASSERT_TRUE(WaitFor([&] { return traffic.confirmed().size() >= 500; },
                      absl::Seconds(60)));

  // Stop the node the gateway is on.
  std::string on = GatewayStatus(*g).connection().broker();
  BrokerNode* victim = nullptr;
  for (auto& n : nodes) {
    if (on == absl::StrCat("127.0.0.1:", n.port())) victim = &n;
  }
  ASSERT_NE(victim, nullptr) << on;
  size_t before = traffic.confirmed().size();
  absl::Time stopped = absl::Now();
  ASSERT_TRUE(victim->Stop().ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        v1::GetStatusResponse s = GatewayStatus(*g);
        return s.connection().state() == v1::ConnectionInfo::READY &&
               s.connection().broker() != on;
      },
      absl::Seconds(90)));
  absl::Duration ready_after = absl::Now() - stopped;
  ASSERT_TRUE(
      WaitFor([&] { return traffic.confirmed().size() >= before + 500; },
              absl::Seconds(90)));
  absl::Duration publishing_after = absl::Now() - stopped;
  std::printf(
      "failover from %s to %s: READY after %s, 500 more confirms after %s\n",
      on.c_str(), GatewayStatus(*g).connection().broker().c_str(),
      absl::FormatDuration(ready_after).c_str(),
      absl::FormatDuration(publishing_after).c_str());
  traffic.Stop();

  std::set<int> confirmed = traffic.confirmed();
  auto all_there = [&] {
    std::map<int, int> got = CountBodies(reader.deliveries());
    for (int n : confirmed) {
      if (!got.count(n)) return false;
    }
    return true;
  };
  EXPECT_TRUE(WaitFor(all_there, absl::Seconds(120)));
  std::map<int, int> got = CountBodies(reader.deliveries());
  int lost = 0, duplicates = 0;
  for (int n : confirmed) {
    if (!got.count(n))
      ++lost;
    else
      duplicates += got[n] - 1;
  }
  std::printf("[cluster failover] confirmed=%zu lost=%d duplicates=%d\n",
              confirmed.size(), lost, duplicates);
  EXPECT_EQ(lost, 0);
  // The stream continued through the failover.
  EXPECT_TRUE(reader.WaitEvent([](const v1::StreamMessagesResponse& e) {
    return e.has_status() && e.status().kind() == v1::StreamStatus::RESUMED;
  }));
  EXPECT_FALSE(reader.WaitDone(absl::Milliseconds(1)).ok());  // still open

  reader.Cancel();
  g.reset();
  for (auto& n : nodes) n.Stop().IgnoreError();
}

}  // namespace
}  // namespace amqpgw::testing
