// Several amqpgwd processes behind a real HAProxy with docker/haproxy.cfg
// (tests/support/gateway_rig.h): what the balancer must do for them, and a
// smoke run of three gateways on the 3-node RabbitMQ cluster with quorum
// queues through a gateway's SIGKILL and a broker node's stop.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/metrics/rpc_metrics.h"
#include "tests/support/amqp_peer.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/gateway_rig.h"
#include "tests/support/load.h"
#include "tests/support/stream_reader.h"
#include "tests/support/tcp_proxy.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

using ::testing::AnyOf;
using ::testing::Eq;

// Quick failure detection, so that the tests wait seconds, not minutes.
const std::vector<std::string> kFastFlags = {
    "--heartbeat=2s", "--reconnect_initial_delay=50ms",
    "--reconnect_max_delay=500ms", "--shutdown_grace=2s"};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Join(const std::map<std::string, int>& m) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : m) parts.push_back(absl::StrCat(k, "=", v));
  return absl::StrJoin(parts, " ");
}

// HAProxy's health check is grpc.health.v1 (SERVING only while the broker
// session is READY), calls are balanced per request over one client
// connection, and a client that vanishes without a word (no RST_STREAM)
// ends its stream on the gateway (option abortonclose).
TEST(BalancerTest, HealthChecksRoundRobinAndVanishedClients) {
  BrokerNode node = BrokerNode::Shared();
  auto rig = GatewayRig::Start(
      {{node.uri(), node.uri(), "amqp://guest:guest@127.0.0.1:1/"},
       kFastFlags});
  ASSERT_TRUE(rig.ok()) << rig.status();
  GatewayRig& r = **rig;
  // gw3 has no broker: NOT_SERVING, so HAProxy keeps it DOWN.
  ASSERT_TRUE(WaitFor(
      [&] {
        return r.Status(0) == "UP" && r.Status(1) == "UP" &&
               r.Status(2) == "DOWN";
      },
      absl::Seconds(60), absl::Milliseconds(100)))
      << r.Status(0) << " " << r.Status(1) << " " << r.Status(2);

  // One channel, one HTTP/2 connection to HAProxy: calls alternate between
  // the two gateways that are UP, none reaches gw3.
  auto stub = r.NewStub();
  std::map<std::string, int> served;
  for (int i = 0; i < 10; ++i) {
    v1::GetStatusResponse st;
    ::grpc::Status s = stub->GetStatus(Ctx().get(), {}, &st);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ++served[st.instance_id()];
  }
  EXPECT_EQ(served, (std::map<std::string, int>{{"gw1", 5}, {"gw2", 5}}))
      << Join(served);

  // A client behind a TCP proxy opens a stream; cutting the proxy closes
  // its connection to HAProxy without a RST_STREAM.
  std::string q = UniqueName("lb-vanish");
  v1::DeclareQueueRequest dq;
  dq.set_name(q);
  dq.set_durable(false);
  dq.set_auto_delete(false);
  v1::DeclareQueueResponse dq_resp;
  ASSERT_TRUE(stub->DeclareQueue(Ctx().get(), dq, &dq_resp).ok());
  TcpProxy proxy(r.haproxy().grpc_port());
  ::grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto proxied = v1::Gateway::NewStub(
      ::grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", proxy.port()),
                                  ::grpc::InsecureChannelCredentials(), args));
  v1::StreamMessagesRequest sreq;
  sreq.set_queue(q);
  sreq.set_prefetch(10);
  StreamReader reader(proxied.get(), sreq, absl::Seconds(120));
  ASSERT_TRUE(reader.WaitSubscribed());
  int holder = r.GatewayOf(reader.subscription_id());
  ASSERT_THAT(holder, AnyOf(Eq(0), Eq(1))) << reader.subscription_id();
  GatewayProcess& g = r.gateway(holder);
  ASSERT_TRUE(WaitFor([&] { return g.Metric("amqpgw_streams_active") == 1; },
                      absl::Seconds(10)));
  proxy.CutAll();
  EXPECT_TRUE(WaitFor([&] { return g.Metric("amqpgw_streams_active") == 0; },
                      absl::Seconds(30)))
      << "the stream stayed open on " << g.instance_id()
      << " after its client vanished";
  EXPECT_FALSE(reader.WaitDone(absl::Seconds(30)).ok());
  v1::DeleteQueueRequest del;
  del.set_name(q);
  v1::DeleteQueueResponse del_resp;
  EXPECT_TRUE(stub->DeleteQueue(Ctx().get(), del, &del_resp).ok());
}

// Acks sent through the balancer land on any instance; those that do not
// hold the stream forward them to the one that does (--advertise_address,
// --peer_secret_file). Counts: every delivery acked once with applied 1,
// the queue empty and nothing unacked at the end; a route changed by the
// caller is refused without a connection; a holder that is gone is named.
TEST(BalancerTest, AcksReachTheInstanceHoldingTheStream) {
  BrokerNode node = BrokerNode::Shared();
  auto rig =
      GatewayRig::StartThree(node.uri(), kFastFlags, /*forward_acks=*/true);
  ASSERT_TRUE(rig.ok()) << rig.status();
  GatewayRig& r = **rig;
  auto stub = r.NewStub();

  std::string q = UniqueName("lb-acks");
  v1::DeclareQueueRequest dq;
  dq.set_name(q);
  v1::DeclareQueueResponse dq_resp;
  ASSERT_TRUE(stub->DeclareQueue(Ctx().get(), dq, &dq_resp).ok());
  const int kMessages = 30;
  for (int i = 0; i < kMessages; ++i) {
    v1::PublishRequest p;
    p.set_routing_key(q);
    p.set_body(absl::StrCat(i));
    v1::PublishResponse resp;
    ::grpc::Status s = stub->Publish(Ctx().get(), p, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  v1::StreamMessagesRequest sreq;
  sreq.set_queue(q);
  sreq.set_prefetch(kMessages);
  sreq.set_ack_mode(v1::StreamMessagesRequest::CLIENT);
  StreamReader reader(stub.get(), sreq, absl::Seconds(120));
  ASSERT_TRUE(reader.WaitSubscribed());
  const std::string id = reader.subscription_id();
  const int holder = r.GatewayOf(id);
  ASSERT_GE(holder, 0) << id;
  ASSERT_TRUE(reader.WaitDeliveries(kMessages));
  std::vector<v1::Delivery> deliveries = reader.deliveries();

  // Each Ack on a call of its own: through HAProxy (round robin over the
  // three), and straight to each instance that does not hold the stream.
  int applied = 0;
  std::vector<std::string> errors;
  std::vector<std::unique_ptr<v1::Gateway::Stub>> direct;
  for (int i = 0; i < r.size(); ++i) {
    direct.push_back(v1::Gateway::NewStub(::grpc::CreateChannel(
        r.gateway(i).grpc_address(), ::grpc::InsecureChannelCredentials())));
  }
  for (int i = 0; i < kMessages; ++i) {
    v1::Gateway::Stub* via = stub.get();
    if (i % 3 == 1) via = direct[(holder + 1) % r.size()].get();
    if (i % 3 == 2) via = direct[(holder + 2) % r.size()].get();
    v1::AckRequest ack;
    ack.set_subscription_id(id);
    ack.add_delivery_ids(deliveries[i].delivery_id());
    v1::AckResponse resp;
    ::grpc::Status s = via->Ack(Ctx().get(), ack, &resp);
    if (s.ok()) {
      applied += static_cast<int>(resp.applied_count());
    } else {
      errors.push_back(s.error_message());
    }
  }
  EXPECT_EQ(applied, kMessages);
  EXPECT_THAT(errors, ::testing::IsEmpty());
  // An Ack answered OK was written to the holder's channel; AMQP has no
  // answer to it. The broker applies it soon after: wait until the broker
  // itself holds none of the queue's messages (ready or unacked). Only then
  // does the kill below show that nothing acked comes back (killed with an
  // ack still unread by the broker, that message would come again:
  // docs/failure-behaviour.md).
  absl::StatusOr<QueueCounts> held;
  EXPECT_TRUE(WaitFor(
      [&] {
        held = node.Counts(q);
        return held.ok() && held->ready == 0 && held->unacked == 0;
      },
      absl::Seconds(60), absl::Milliseconds(200)))
      << "the broker still holds messages of " << q << ": "
      << (held.ok()
              ? absl::StrCat(held->ready, " ready, ", held->unacked, " unacked")
              : held.status().ToString());
  v1::InspectQueueRequest iq;
  iq.set_name(q);
  v1::InspectQueueResponse iq_resp;
  ASSERT_TRUE(stub->InspectQueue(Ctx().get(), iq, &iq_resp).ok());
  EXPECT_EQ(iq_resp.message_count(), 0u);
  // Acked twice: stale, answered by the holder through another instance.
  {
    v1::AckRequest ack;
    ack.set_subscription_id(id);
    ack.add_delivery_ids(deliveries[0].delivery_id());
    v1::AckResponse resp;
    ::grpc::Status s =
        direct[(holder + 1) % r.size()]->Ack(Ctx().get(), ack, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.applied_count(), 0u);
    EXPECT_EQ(resp.stale_ids_size(), 1);
  }

  // A route the caller changed (the holder's address swapped for another):
  // refused, INVALID_ARGUMENT, without calling anyone.
  std::vector<std::string> parts = absl::StrSplit(id, '~');
  ASSERT_EQ(parts.size(), 3u) << id;
  EXPECT_EQ(parts[1], r.gateway(holder).grpc_address());
  for (const std::string& forged :
       {absl::StrCat(parts[0], "~127.0.0.1:1~", parts[2]),
        absl::StrCat(parts[0], "~", parts[1], "~", std::string(32, '0'))}) {
    v1::AckRequest ack;
    ack.set_subscription_id(forged);
    ack.add_delivery_ids(1);
    v1::AckResponse resp;
    ::grpc::Status s =
        direct[(holder + 1) % r.size()]->Ack(Ctx().get(), ack, &resp);
    EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT) << forged;
    EXPECT_THAT(s.error_message(), ::testing::HasSubstr("--peer_secret_file"));
  }

  // The holder gone: another instance says which one did not answer.
  r.KillGateway(holder);
  {
    v1::AckRequest ack;
    ack.set_subscription_id(id);
    ack.add_delivery_ids(deliveries[1].delivery_id());
    v1::AckResponse resp;
    ::grpc::Status s =
        direct[(holder + 1) % r.size()]->Ack(Ctx().get(), ack, &resp);
    EXPECT_EQ(s.error_code(), ::grpc::StatusCode::UNAVAILABLE);
    EXPECT_THAT(s.error_message(),
                ::testing::HasSubstr(r.gateway(holder).grpc_address()));
  }
  // Nothing was redelivered: every message had been acked before the kill.
  ASSERT_TRUE(direct[(holder + 1) % r.size()]
                  ->InspectQueue(Ctx().get(), iq, &iq_resp)
                  .ok());
  EXPECT_EQ(iq_resp.message_count(), 0u);
}

// A rolling restart through HAProxy: a Subscribe consumer acks everything
// it gets while the gateway holding its stream is stopped with SIGTERM, twice.
// Each stopped gateway says DRAINING, applies the acks of what it had
// delivered, and ends the stream UNAVAILABLE; the consumer opens a new
// stream, which HAProxy sends to a gateway still up. Counts: every message
// is acked exactly once and none is seen twice (nothing acked is
// redelivered, nothing is lost), the queue ends empty, and each stopped
// gateway exits 0.
TEST(BalancerTest, ARollingRestartLosesNothing) {
  BrokerNode node = BrokerNode::Shared();
  // The grace must outlast the drain (the consumer acking what it holds, slow
  // under sanitizers): a drain cut short by the grace requeues what the
  // consumer had seen, and the next gateway delivers it again.
  std::vector<std::string> flags = kFastFlags;
  flags.push_back("--shutdown_grace=30s");
  auto rig = GatewayRig::StartThree(node.uri(), flags);
  ASSERT_TRUE(rig.ok()) << rig.status();
  GatewayRig& r = **rig;
  auto stub = r.NewStub();
  std::string q = UniqueName("lb-rolling");
  v1::DeclareQueueRequest dq;
  dq.set_name(q);
  v1::DeclareQueueResponse dq_resp;
  ASSERT_TRUE(stub->DeclareQueue(Ctx().get(), dq, &dq_resp).ok());
  const int kMessages = 600;
  for (int i = 0; i < kMessages; i += 100) {
    v1::PublishBatchRequest batch;
    for (int j = i; j < i + 100; ++j) {
      v1::PublishRequest* m = batch.add_messages();
      m->set_routing_key(q);
      m->set_body(absl::StrCat(j));
    }
    v1::PublishBatchResponse resp;
    ::grpc::Status s = stub->PublishBatch(Ctx().get(), batch, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  std::map<std::string, int> seen;
  int acked = 0;
  int drains = 0;
  int streams = 0;
  std::vector<int> stopped;
  std::vector<std::thread> stoppers;
  std::vector<int> exit_codes(r.size(), -2);
  std::vector<std::string> ends;
  const absl::Time until = absl::Now() + absl::Seconds(120);
  while (acked < kMessages && absl::Now() < until && streams < 200) {
    ++streams;
    ::grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    auto rw = stub->Subscribe(&ctx);
    v1::SubscribeRequest start;
    start.mutable_start()->set_queue(q);
    start.mutable_start()->set_prefetch(20);
    if (!rw->Write(start)) {
      ends.push_back(rw->Finish().error_message());
      continue;
    }
    int holder = -1;
    int acked_here = 0;
    v1::SubscribeResponse ev;
    while (rw->Read(&ev)) {
      if (ev.has_subscribed()) {
        holder = r.GatewayOf(ev.subscribed().subscription_id());
      } else if (ev.has_batch()) {
        v1::SubscribeRequest ack;
        for (const v1::Delivery& d : ev.batch().deliveries()) {
          ++seen[d.body()];
          ack.mutable_ack()->add_delivery_ids(d.delivery_id());
        }
        rw->Write(ack);
      } else if (ev.has_ack()) {
        acked += ev.ack().applied_ids_size();
        acked_here += ev.ack().applied_ids_size();
        // Stop the holder (SIGTERM) once the stream has done some work;
        // two of the three gateways, one at a time.
        if (acked_here >= 100 && holder >= 0 && stopped.size() < 2 &&
            std::find(stopped.begin(), stopped.end(), holder) ==
                stopped.end()) {
          stopped.push_back(holder);
          stoppers.emplace_back([&r, &exit_codes, holder] {
            exit_codes[holder] = r.gateway(holder).Stop(absl::Seconds(60));
          });
        }
      } else if (ev.has_status() &&
                 ev.status().kind() == v1::StreamStatus::DRAINING) {
        ++drains;
      }
    }
    ::grpc::Status end = rw->Finish();
    ends.push_back(absl::StrCat(end.error_code(), " ", end.error_message()));
  }
  for (std::thread& t : stoppers) t.join();

  int duplicates = 0;
  for (const auto& [body, n] : seen) duplicates += n - 1;
  EXPECT_EQ(acked, kMessages) << absl::StrJoin(ends, "\n");
  EXPECT_EQ(static_cast<int>(seen.size()), kMessages);
  EXPECT_EQ(duplicates, 0);
  EXPECT_EQ(stopped.size(), 2u);
  EXPECT_GE(drains, 2) << absl::StrJoin(ends, "\n");
  for (int g : stopped) EXPECT_EQ(exit_codes[g], 0) << "gateway " << g;
  v1::InspectQueueRequest iq;
  iq.set_name(q);
  v1::InspectQueueResponse iq_resp;
  ASSERT_TRUE(stub->InspectQueue(Ctx().get(), iq, &iq_resp).ok());
  EXPECT_EQ(iq_resp.message_count(), 0u);
}

// Publishes `count` messages (bodies first..first+count-1, each its own
// sequence; first > 0, since sequence 0 means "unset") over PublishStreams
// through HAProxy until each is answered OK: a stream that ends (a gateway
// draining: UNAVAILABLE) is opened again and what it left unanswered is sent
// again on the new one.
class StreamPublisher {
 public:
  StreamPublisher(GatewayRig& rig, std::string queue, uint64_t first,
                  uint64_t count)
      : stub_(rig.NewStub()), queue_(std::move(queue)) {
    for (uint64_t n = first; n < first + count; ++n) pending_.insert(n);
  }
  void Run(absl::Time until) {
    while (!pending_.empty() && absl::Now() < until && ends_.size() < 50) {
      ::grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
      auto stream = stub_->PublishStream(&ctx);
      std::vector<uint64_t> to_send(pending_.begin(), pending_.end());
      std::thread writer([&] {
        for (size_t i = 0; i < to_send.size(); ++i) {
          v1::PublishStreamRequest req;
          req.set_sequence(to_send[i]);
          req.mutable_message()->set_routing_key(queue_);
          req.mutable_message()->set_body(absl::StrCat(to_send[i]));
          if (i == 0) req.set_max_in_flight(32);
          if (!stream->Write(req)) return;
        }
        stream->WritesDone();
      });
      v1::PublishStreamResponse resp;
      while (stream->Read(&resp)) {
        if (resp.result().code() == 0) {
          pending_.erase(resp.sequence());
          confirmed_.fetch_add(1);
        } else {
          ++failed_;
        }
      }
      writer.join();
      ends_.push_back(stream->Finish());
    }
  }
  int confirmed() const { return confirmed_.load(); }
  // After Run.
  size_t pending() const { return pending_.size(); }
  int failed() const { return failed_; }
  const std::vector<::grpc::Status>& ends() const { return ends_; }

 private:
  std::unique_ptr<v1::Gateway::Stub> stub_;
  const std::string queue_;
  std::set<uint64_t> pending_;  // Run's thread only
  std::atomic<int> confirmed_{0};
  int failed_ = 0;
  std::vector<::grpc::Status> ends_;
};

// PublishStreams through HAProxy while the gateway holding one of them is
// stopped with SIGTERM: its stream answers what it read and ends
// UNAVAILABLE "open the stream again"; the publisher opens a new stream
// (HAProxy sends it to a gateway still up) and sends what went unanswered.
// Counts: every message confirmed, each in the queue exactly once (nothing
// unanswered was published, nothing lost), at least one stream drained, no
// stream ended other than OK or UNAVAILABLE (a stream refused by the
// closing port is counted apart), and the stopped gateway exits 0.
TEST(BalancerTest, PublishStreamsSurviveAGatewayStop) {
  BrokerNode node = BrokerNode::Shared();
  auto rig = GatewayRig::StartThree(node.uri(), kFastFlags);
  ASSERT_TRUE(rig.ok()) << rig.status();
  GatewayRig& r = **rig;
  auto stub = r.NewStub();
  std::string q = UniqueName("lb-pubstream");
  v1::DeclareQueueRequest dq;
  dq.set_name(q);
  v1::DeclareQueueResponse dq_resp;
  ASSERT_TRUE(stub->DeclareQueue(Ctx().get(), dq, &dq_resp).ok());

  // Three streams opened one after the other: round robin puts one on
  // each gateway.
  constexpr int kPublishers = 3;
  constexpr uint64_t kEach = 4000;
  std::vector<std::unique_ptr<StreamPublisher>> publishers;
  std::vector<std::thread> threads;
  const absl::Time until = absl::Now() + absl::Seconds(120);
  for (int i = 0; i < kPublishers; ++i) {
    publishers.push_back(
        std::make_unique<StreamPublisher>(r, q, 1 + i * kEach, kEach));
  }
  for (auto& p : publishers) {
    threads.emplace_back([&p, until] { p->Run(until); });
  }
  auto total = [&] {
    int n = 0;
    for (auto& p : publishers) n += p->confirmed();
    return n;
  };
  ASSERT_TRUE(WaitFor([&] { return total() >= 1000; }, absl::Seconds(60)));
  const int exit_code = r.gateway(0).Stop(absl::Seconds(60));
  for (auto& t : threads) t.join();
  EXPECT_EQ(exit_code, 0) << r.gateway(0).process().Log();

  int drained = 0, refused = 0, other = 0, failed = 0;
  size_t pending = 0;
  std::vector<std::string> others;
  for (auto& p : publishers) {
    pending += p->pending();
    failed += p->failed();
    for (const ::grpc::Status& s : p->ends()) {
      if (s.ok()) continue;
      if (s.error_code() == ::grpc::StatusCode::UNAVAILABLE &&
          absl::StrContains(s.error_message(), "open the stream again")) {
        ++drained;
      } else if (s.error_code() == ::grpc::StatusCode::UNAVAILABLE) {
        // Opened as the stopped gateway closed its port (HAProxy's 502 or
        // 503). Had that gateway read and published anything of it, the
        // duplicates below would count it.
        ++refused;
      } else {
        ++other;
        others.push_back(absl::StrCat(s.error_code(), " ", s.error_message()));
      }
    }
  }
  auto peer = AmqpPeer::Connect(node.port());
  ASSERT_TRUE(peer.ok()) << peer.status();
  std::map<std::string, int> bodies;
  while (true) {
    auto got = (*peer)->Get(q);
    ASSERT_TRUE(got.ok()) << got.status();
    if (!got->has_value()) break;
    ++bodies[(*got)->body];
  }
  int lost = 0, duplicates = 0;
  for (uint64_t n = 1; n <= kPublishers * kEach; ++n) {
    auto it = bodies.find(absl::StrCat(n));
    if (it == bodies.end()) {
      ++lost;
    } else {
      duplicates += it->second - 1;
    }
  }
  std::printf(
      "confirmed=%d queued=%zu lost=%d duplicates=%d drained=%d refused=%d "
      "other=%d failed=%d pending=%zu\n",
      total(), bodies.size(), lost, duplicates, drained, refused, other, failed,
      pending);
  EXPECT_EQ(pending, 0u);
  EXPECT_EQ(total(), static_cast<int>(kPublishers * kEach));
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(duplicates, 0);
  EXPECT_EQ(bodies.size(), kPublishers * kEach);
  EXPECT_GE(drained, 1);
  EXPECT_EQ(other, 0) << absl::StrJoin(others, "; ");
  EXPECT_EQ(failed, 0);
}

// Three gateways behind HAProxy on the 3-node cluster, configured as
// docker/compose.cluster.yaml configures it (docker/cluster/definitions.json
// loaded at boot: the gateways' user, quorum queues by default). Publishers
// (unary Publish with confirms), StreamMessages consumers with CLIENT acks
// (each Ack a unary call through the balancer, so most land on an instance
// that forwards them to the holder) and Subscribe consumers (in-stream acks)
// go through the balancer; one gateway is SIGKILLed and one broker node
// stopped mid-run. Every confirmed message must be acked (duplicates are
// counted, not failed; an Ack that failed UNAVAILABLE is sent again, and
// "stale" to the second attempt counts as acked unless the message comes
// again: the first attempt may have been applied through the killed
// gateway, its answer lost), no message whose ack was answered OK is
// delivered again; the only errors allowed are those of calls that were on the
// killed gateway, and they are bounded by what it held.
TEST(BalancerTest, ClusterSurvivesAGatewayKillAndANodeStop) {
  const std::string definitions =
      absl::StrCat(AMQPGW_SOURCE_DIR, "/docker/cluster/definitions.json");
  auto cluster = BrokerNode::StartCluster(
      "lb", 3, absl::StrCat("load_definitions = ", definitions));
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  std::vector<BrokerNode>& nodes = *cluster;
  // The nodes stop however the test ends (after the gateways, declared
  // later, are gone).
  struct StopNodes {
    std::vector<BrokerNode>& nodes;
    ~StopNodes() {
      for (auto& n : nodes) n.Stop().IgnoreError();
    }
  } stop_nodes{nodes};

  // The user and password the compose gateways use (docker/cluster/).
  std::string userinfo;
  for (absl::string_view line :
       absl::StrSplit(ReadFile(absl::StrCat(AMQPGW_SOURCE_DIR,
                                            "/docker/cluster/broker-1.uri")),
                      '\n')) {
    if (absl::ConsumePrefix(&line, "amqp://") && userinfo.empty()) {
      userinfo = std::string(line.substr(0, line.find('@')));
    }
  }
  ASSERT_FALSE(userinfo.empty());
  // Gateway i starts on node i and fails over to the others, in turn.
  std::vector<std::string> brokers;
  for (int i = 0; i < 3; ++i) {
    std::vector<std::string> uris;
    for (int k = 0; k < 3; ++k) {
      uris.push_back(absl::StrCat(
          "amqp://", userinfo, "@127.0.0.1:", nodes[(i + k) % 3].port(), "/"));
    }
    brokers.push_back(absl::StrJoin(uris, ","));
  }
  GatewayRig::Options options{brokers, kFastFlags};
  options.forward_acks = true;  // as compose.cluster.yaml runs them
  auto rig_or = GatewayRig::StartAllUp(options, absl::Seconds(90));
  ASSERT_TRUE(rig_or.ok()) << rig_or.status();
  GatewayRig& rig = **rig_or;

  // No type given: the vhost's default (definitions.json) makes it quorum.
  auto stub = rig.NewStub();
  std::string q = UniqueName("lb-smoke");
  v1::DeclareQueueRequest dq;
  dq.set_name(q);
  v1::DeclareQueueResponse dq_resp;
  ::grpc::Status declared = stub->DeclareQueue(Ctx().get(), dq, &dq_resp);
  ASSERT_TRUE(declared.ok()) << declared.error_message();
  auto types = nodes[0].Ctl({"list_queues", "-q", "name", "type"});
  ASSERT_TRUE(types.ok()) << types.status();
  EXPECT_THAT(*types, ::testing::HasSubstr(absl::StrCat(q, "\tquorum")));

  // Consumers first, so that each gateway holds streams.
  const int kConsumers = 2;  // of each kind
  v1::StreamMessagesRequest sreq;
  sreq.set_queue(q);
  sreq.set_prefetch(50);
  sreq.set_ack_mode(v1::StreamMessagesRequest::CLIENT);
  ConsumerPool streamers([&] { return rig.NewStub(); }, sreq, kConsumers);
  ConsumerPool subscribers([&] { return rig.NewStub(); }, sreq, kConsumers,
                           ConsumerPool::Mode::kSubscribe);
  ConsumerPool* pools[] = {&streamers, &subscribers};
  auto instances = [&] {
    std::vector<std::string> all;
    for (ConsumerPool* p : pools) {
      for (std::string& in : p->Instances()) all.push_back(std::move(in));
    }
    return all;
  };
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const std::string& in : instances()) {
          if (in.empty()) return false;
        }
        return true;
      },
      absl::Seconds(60)));
  // The victim: the gateway holding the most streams.
  std::map<int, int> streams_on;
  for (const std::string& in : instances()) ++streams_on[rig.GatewayOf(in)];
  int victim = streams_on.begin()->first;
  for (const auto& [g, n] : streams_on) {
    if (n > streams_on[victim]) victim = g;
  }
  ASSERT_GE(victim, 0);
  const std::string victim_id = rig.gateway(victim).instance_id();
  const int victim_streams = streams_on[victim];
  // The node stopped later: where another gateway starts (it fails over),
  // and not the queue's leader. A leader's stop is RabbitMQ's own fault
  // domain: acks (settles) on their way to it may be lost and those
  // messages delivered again (rabbitmq-server#4305), whoever acked them.
  auto leaders = nodes[0].Ctl({"list_queues", "-q", "name", "leader"});
  ASSERT_TRUE(leaders.ok()) << leaders.status();
  int leader = -1;
  for (absl::string_view line : absl::StrSplit(*leaders, '\n')) {
    if (!absl::StartsWith(line, absl::StrCat(q, "\t"))) continue;
    for (int i = 0; i < 3; ++i) {
      if (absl::EndsWith(line, nodes[i].node_name())) leader = i;
    }
  }
  ASSERT_GE(leader, 0) << *leaders;
  int stopped_node = (victim + 1) % 3;
  if (stopped_node == leader) stopped_node = (victim + 2) % 3;

  // Three phases of kPhase confirmed messages each, whatever the speed:
  // before the kill, between HAProxy's noticing it and the node's stop,
  // and after the stop.
  const int kPhase = 1000 / kLoadDivisor;
  const int kPublishers = 4;
  PublisherPool publishers([&] { return rig.NewStub(); },
                           {q, kPublishers, 1 << 30, absl::Seconds(60)});
  auto confirmed_reach = [&](size_t n) {
    return WaitFor([&] { return publishers.confirmed_count() >= n; },
                   absl::Seconds(180));
  };
  ASSERT_TRUE(confirmed_reach(kPhase));
  rig.KillGateway(victim);
  absl::Time killed = absl::Now();
  size_t confirmed_at_kill = publishers.confirmed_count();
  EXPECT_TRUE(rig.WaitStatus(victim, "DOWN", absl::Seconds(30)));
  absl::Duration down_after = absl::Now() - killed;

  ASSERT_TRUE(confirmed_reach(publishers.confirmed_count() + kPhase));
  size_t confirmed_at_stop = publishers.confirmed_count();
  const absl::Duration stopped_after = absl::Now() - killed;
  ASSERT_TRUE(nodes[stopped_node].Stop().ok());
  const absl::Duration stop_took = absl::Now() - killed - stopped_after;
  ASSERT_TRUE(confirmed_reach(confirmed_at_stop + kPhase));
  publishers.Stop();  // calls in flight finish first
  std::set<int> confirmed = publishers.Confirmed();
  // Confirmed messages that no consumer has acked (yet).
  auto never_acked = [&] {
    std::set<int> acked = streamers.Acked();
    acked.merge(subscribers.Acked());
    std::vector<int> missing;
    for (int n : confirmed) {
      if (acked.count(n) == 0) missing.push_back(n);
    }
    return missing;
  };
  auto lost = [&] { return static_cast<int>(never_acked().size()); };
  if (!WaitFor([&] { return lost() == 0; }, absl::Seconds(180))) {
    // Where they are: ready in the queue, unacked on some consumer's
    // channel, or nowhere.
    auto where =
        nodes[leader].Ctl({"list_queues", "-q", "name", "messages_ready",
                           "messages_unacknowledged", "consumers"});
    ADD_FAILURE() << lost() << " confirmed messages never acked; the queue: "
                  << (where.ok() ? *where : where.status().ToString());
  }
  // Every consumer has a stream again, none on the killed gateway.
  EXPECT_TRUE(WaitFor(
      [&] {
        for (const std::string& in : instances()) {
          if (in.empty() || in == victim_id) return false;
        }
        return true;
      },
      absl::Seconds(60)));
  std::map<int, int> got;
  std::vector<ConsumerPool::End> ends;
  std::map<std::string, int> status_events;
  std::set<std::string> reconnected;  // instances that lost the stopped node
  int subscribed = 0, stale_acks = 0, acked_then_copied = 0, ack_retries = 0,
      acks_answer_lost = 0;
  std::vector<std::string> ack_error_samples;
  std::map<std::string, int> acked_then_redelivered;  // by instance
  std::map<std::string, int> ack_errors;
  for (ConsumerPool* p : pools) {
    p->Stop();
    for (const auto& [n, times] : p->Counts()) got[n] += times;
    for (ConsumerPool::End& e : p->Ends()) ends.push_back(std::move(e));
    for (const auto& [k, n] : p->StatusEvents()) status_events[k] += n;
    for (const std::string& in : p->ReconnectedInstances()) {
      reconnected.insert(in);
    }
    for (const auto& [c, n] : p->AckErrors()) {
      ack_errors[metrics::RpcMetrics::CodeName(c)] += n;
    }
    subscribed += p->subscribed();
    for (const auto& [in, n] : p->AckedThenRedelivered()) {
      acked_then_redelivered[in] += n;
    }
    stale_acks += p->stale_acks();
    acked_then_copied += p->acked_then_copied();
    ack_retries += p->ack_retries();
    acks_answer_lost += p->acks_answer_lost();
    for (std::string& e : p->AckErrorSamples()) {
      ack_error_samples.push_back(std::move(e));
    }
  }
  // Of the confirmed messages never acked: those delivered (held by a
  // consumer whose acks failed) and those never delivered at all.
  int lost_delivered = 0, lost_undelivered = 0;
  std::vector<std::string> lost_samples;
  for (int n : never_acked()) {
    ++(got.count(n) != 0 ? lost_delivered : lost_undelivered);
    if (lost_samples.size() < 10) {
      lost_samples.push_back(absl::StrCat(
          n, " (delivered ", got.count(n) != 0 ? got[n] : 0,
          " times; confirmed ",
          absl::FormatDuration(absl::Trunc(publishers.ConfirmedAt(n) - killed,
                                           absl::Milliseconds(1))),
          " after the kill)"));
    }
  }
  int duplicates = 0, unconfirmed_delivered = 0;
  for (const auto& [n, times] : got) {
    if (confirmed.count(n)) {
      duplicates += times - 1;
    } else {
      ++unconfirmed_delivered;
    }
  }
  std::map<::grpc::StatusCode, int> errors = publishers.Errors();
  int publish_errors = 0, publish_unavailable = 0;
  for (const auto& [code, n] : errors) {
    publish_errors += n;
    if (code == ::grpc::StatusCode::UNAVAILABLE) publish_unavailable += n;
  }
  // Streams that ended before `subscribed` were sent by HAProxy to the
  // killed gateway before its health check failed (UNAVAILABLE, and the
  // consumer opens another): counted apart from the streams of a gateway.
  std::map<std::string, int> victim_ends, innocent_ends, unsubscribed_ends;
  for (const ConsumerPool::End& e : ends) {
    std::string key = absl::StrCat(metrics::RpcMetrics::CodeName(e.code), ":",
                                   e.message.substr(0, 60));
    if (e.instance.empty()) {
      unsubscribed_ends[metrics::RpcMetrics::CodeName(e.code)]++;
    } else {
      (e.instance == victim_id ? victim_ends : innocent_ends)[key]++;
    }
  }
  int victim_end_count = 0;
  for (const auto& [k, n] : victim_ends) victim_end_count += n;
  std::printf(
      "[balancer smoke] published=%d confirmed=%zu (%zu at the kill of %s, "
      "DOWN in HAProxy after %s; %zu at the stop of node %d %s after the "
      "kill, which took %s; leader %d) "
      "lost=%d (delivered %d, never delivered %d) "
      "duplicates=%d "
      "unconfirmed_but_delivered=%d publish_errors=%d (UNAVAILABLE %d) "
      "streams_on_victim=%d victim_stream_ends={%s} innocent_stream_ends={%s} "
      "unsubscribed_ends={%s} status_events={%s} streams_subscribed=%d "
      "acked_then_redelivered={%s} acked_then_copied=%d stale_acks=%d "
      "ack_retries=%d acks_answer_lost=%d ack_errors={%s}\n",
      publishers.attempted(), confirmed.size(), confirmed_at_kill,
      victim_id.c_str(),
      absl::FormatDuration(absl::Trunc(down_after, absl::Milliseconds(100)))
          .c_str(),
      confirmed_at_stop, stopped_node,
      absl::FormatDuration(absl::Trunc(stopped_after, absl::Milliseconds(1)))
          .c_str(),
      absl::FormatDuration(absl::Trunc(stop_took, absl::Milliseconds(1)))
          .c_str(),
      leader, lost(), lost_delivered, lost_undelivered, duplicates,
      unconfirmed_delivered, publish_errors, publish_unavailable,
      victim_streams, Join(victim_ends).c_str(), Join(innocent_ends).c_str(),
      Join(unsubscribed_ends).c_str(), Join(status_events).c_str(), subscribed,
      Join(acked_then_redelivered).c_str(), acked_then_copied, stale_acks,
      ack_retries, acks_answer_lost, Join(ack_errors).c_str());
  for (const std::string& e : publishers.ErrorSamples()) {
    std::printf("  publish error: %s\n", e.c_str());
  }
  for (const std::string& e : lost_samples) {
    std::printf("  never acked: %s\n", e.c_str());
  }
  for (const std::string& e : ack_error_samples) {
    std::printf("  ack error: %s\n", e.c_str());
  }

  EXPECT_EQ(lost(), 0);
  // An ack answered OK (applied, directly or forwarded) is undone only on
  // the killed gateway, or on one whose broker connection went with the
  // stopped node (its streams told RECONNECTING): an AMQP ack has no answer
  // from the broker, and a basic.ack still in the socket when the process
  // dies or the connection drops may never reach it (at-least-once: the
  // message comes again, it is not lost).
  for (const auto& [in, n] : acked_then_redelivered) {
    EXPECT_TRUE(in == victim_id || reconnected.count(in) > 0)
        << n << " acks answered OK by " << in
        << " were undone; it neither died nor lost its broker connection";
  }
  for (const auto& [code, n] : unsubscribed_ends) {
    EXPECT_EQ(code, "UNAVAILABLE") << n;
  }
  // Calls in flight on the killed gateway fail UNAVAILABLE: at most one per
  // publisher thread (each has one call in flight). Nothing else fails.
  EXPECT_EQ(publish_errors, publish_unavailable) << Join([&] {
    std::map<std::string, int> m;
    for (const auto& [c, n] : errors) m[metrics::RpcMetrics::CodeName(c)] = n;
    return m;
  }());
  EXPECT_LE(publish_unavailable, kPublishers);
  // Streams end only on the killed gateway, each at most once; the others
  // go on through the node's stop (RECONNECTING, RESUMED).
  EXPECT_TRUE(innocent_ends.empty()) << Join(innocent_ends);
  EXPECT_LE(victim_end_count, victim_streams);
}

}  // namespace
}  // namespace amqpgw::testing
