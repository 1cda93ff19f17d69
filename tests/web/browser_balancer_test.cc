// The browser view through HAProxy in front of three gateways that forward
// Acks (GatewayRig: amqpgwd processes, docker/haproxy.cfg), on the shared
// RabbitMQ node. This driver starts the rig and fills a queue, runs
// tests/web/balancer.mjs (Debian's headless chromium via playwright-core:
// list, open, consume with client acks, some Acks on the gateway holding the
// stream and some forwarded by another one, stop), then counts: every
// message seen once by the browser, the acked ones gone, the others back in
// the queue once each (nothing lost, no duplicates), and each gateway's
// share of the Acks (from its /metrics).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/support/amqp_peer.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/gateway_rig.h"
#include "tests/support/subprocess.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

// The value of the script's "key=..." output line.
std::string Line(const std::string& out, const std::string& key) {
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    if (absl::ConsumePrefix(&line, key + "=")) return std::string(line);
  }
  return "";
}

std::vector<std::string> List(const std::string& csv) {
  if (csv.empty()) return {};
  return absl::StrSplit(csv, ',');
}

TEST(BrowserBalancerTest, ClientAcksThroughHaproxyReachTheHoldingGateway) {
  const std::string node_binary = Env("AMQPGW_NODE");
  const std::string script = Env("AMQPGW_WEB_TESTS") + "/balancer.mjs";
  ASSERT_FALSE(node_binary.empty()) << "AMQPGW_NODE is not set (ctest sets it)";
  constexpr int kMessages = 20;
  constexpr int kAckOnHolder = 8;
  constexpr int kAckTotal = 15;  // 7 forwarded; 5 left unacked

  BrokerNode node = BrokerNode::Shared();
  ASSERT_FALSE(node.management_url().empty());
  auto rig =
      GatewayRig::StartThree(node.uri(),
                             {"--shutdown_grace=2s", "--reconnect_max_delay=1s",
                              "--management_url=" + node.management_url()},
                             /*forward_acks=*/true);
  ASSERT_TRUE(rig.ok()) << rig.status();
  GatewayRig& r = **rig;
  auto stub = r.NewStub();

  const std::string q = UniqueName("lb-web");
  v1::DeclareQueueRequest dq;
  dq.set_name(q);
  v1::DeclareQueueResponse dq_resp;
  ASSERT_TRUE(stub->DeclareQueue(Ctx().get(), dq, &dq_resp).ok());
  std::set<std::string> published;
  for (int i = 1; i <= kMessages; ++i) {
    v1::PublishRequest p;
    p.set_routing_key(q);
    p.set_body(absl::StrCat("lb-web-", i));
    v1::PublishResponse resp;
    ::grpc::Status s = stub->Publish(Ctx().get(), p, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    published.insert(p.body());
  }

  std::vector<std::string> names;
  for (int i = 0; i < r.size(); ++i) names.push_back(absl::StrCat("gw", i + 1));
  Subprocess::Options run;
  run.argv = {node_binary, script};
  run.env = {absl::StrCat("AMQPGW_LB_URL=http://127.0.0.1:",
                          r.haproxy().http_port(), "/"),
             "AMQPGW_LB_QUEUE=" + q,
             absl::StrCat("AMQPGW_LB_COUNT=", kMessages),
             "AMQPGW_LB_GATEWAYS=" + absl::StrJoin(names, ","),
             absl::StrCat("AMQPGW_LB_ACK_HOLDER=", kAckOnHolder),
             absl::StrCat("AMQPGW_LB_ACK_TOTAL=", kAckTotal)};
  auto browser = Subprocess::Start(run);
  ASSERT_NE(browser, nullptr);
  ProcessResult result = browser->Wait(absl::Minutes(5));
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;

  // Which gateway held the stream, and which one forwarded.
  const int holder = r.GatewayOf(Line(result.out, "holder"));
  const int via = r.GatewayOf(Line(result.out, "via"));
  ASSERT_GE(holder, 0) << result.out;
  ASSERT_GE(via, 0) << result.out;
  ASSERT_NE(holder, via);

  // The browser saw every message once; it acked kAckTotal of them.
  std::vector<std::string> seen = List(Line(result.out, "seen"));
  std::vector<std::string> acked = List(Line(result.out, "acked"));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), published);
  EXPECT_EQ(seen.size(), published.size()) << "a message shown twice";
  std::set<std::string> acked_set(acked.begin(), acked.end());
  EXPECT_EQ(acked.size(), static_cast<size_t>(kAckTotal));
  EXPECT_EQ(acked_set.size(), acked.size());

  // Left in the queue: exactly the messages not acked, once each.
  auto peer = AmqpPeer::Connect(node.port());
  ASSERT_TRUE(peer.ok()) << peer.status();
  ASSERT_TRUE(WaitFor([&] {
    auto n = (*peer)->MessageCount(q);
    return n.ok() && *n == static_cast<uint32_t>(kMessages - kAckTotal);
  }));
  std::map<std::string, int> left;
  while (true) {
    auto got = (*peer)->Get(q);
    ASSERT_TRUE(got.ok()) << got.status();
    if (!got->has_value()) break;
    ++left[(*got)->body];
  }
  int duplicates = 0, lost = 0, acked_and_left = 0;
  for (const auto& [body, n] : left) {
    duplicates += n - 1;
    acked_and_left += acked_set.count(body);
  }
  for (const std::string& body : published) {
    lost += acked_set.count(body) == 0 && left.count(body) == 0;
  }
  std::printf("acked=%zu left=%zu duplicates=%d lost=%d holder=%s via=%s\n",
              acked.size(), left.size(), duplicates, lost,
              r.gateway(holder).instance_id().c_str(),
              r.gateway(via).instance_id().c_str());
  EXPECT_EQ(left.size(), static_cast<size_t>(kMessages - kAckTotal));
  EXPECT_EQ(duplicates, 0);
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(acked_and_left, 0);

  // The Acks sent while the cookie named `via` reached it, and it forwarded
  // them: the holder answered all of them (its own and the forwarded).
  const std::string ack_ok =
      "amqpgw_rpc_handled_total{service=\"amqpgw.v1.Gateway\",method=\"Ack\","
      "code=\"OK\"}";
  EXPECT_EQ(r.gateway(via).Metric(ack_ok), kAckTotal - kAckOnHolder);
  EXPECT_EQ(r.gateway(holder).Metric(ack_ok), kAckTotal);
  for (int i = 0; i < r.size(); ++i) {
    if (i != holder && i != via) {
      EXPECT_LE(r.gateway(i).Metric(ack_ok), 0) << "no Ack reached gw" << i + 1;
    }
  }
}

}  // namespace
}  // namespace amqpgw::testing
