// RETRY, retry_policy and dead_letter against a real RabbitMQ node, on
// classic and quorum queues: delays between deliveries, delivery_attempt,
// the dead-letter target's headers, and nothing lost when a gateway process
// is SIGKILLed between republishing and acking.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/support/amqp_peer.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/gateway_rig.h"
#include "tests/support/stream_reader.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

// A correctness bound (clock granularity), not a speed goal.
constexpr absl::Duration kTolerance = absl::Milliseconds(10);

v1::FieldValue Text(const std::string& s) {
  v1::FieldValue v;
  v.set_string_value(s);
  return v;
}

class RetryTest : public SharedGatewayTest,
                  public ::testing::WithParamInterface<std::string> {
 protected:
  bool quorum() const { return GetParam() == "quorum"; }

  std::string NewQueue(const std::string& prefix) {
    std::string q = UniqueName(absl::StrCat(prefix, "-", GetParam()));
    v1::DeclareQueueRequest req;
    req.set_name(q);
    if (quorum()) (*req.mutable_arguments())["x-queue-type"] = Text("quorum");
    v1::DeclareQueueResponse resp;
    ::grpc::Status s = stub().DeclareQueue(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    created_.push_back(q);
    return q;
  }

  void Publish(const std::string& q, const std::string& body,
               v1::Gateway::Stub* via = nullptr) {
    v1::PublishRequest req;
    req.set_routing_key(q);
    req.set_body(body);
    req.mutable_properties()->set_message_id(absl::StrCat("id-", body));
    (*req.mutable_properties()->mutable_headers())["app"] = Text("kept");
    v1::PublishResponse resp;
    ::grpc::Status s = (via ? via : &stub())->Publish(Ctx().get(), req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  // The messages ready in `q` (a passive declare).
  int64_t Ready(const std::string& q) {
    v1::InspectQueueRequest req;
    req.set_name(q);
    v1::InspectQueueResponse resp;
    ::grpc::Status s = stub().InspectQueue(Ctx().get(), req, &resp);
    if (!s.ok()) return -1;
    return resp.message_count();
  }

  ::grpc::Status Ack(v1::Gateway::Stub& via, const std::string& sub,
                     uint64_t id, v1::AckRequest::Action action,
                     absl::Duration delay = absl::ZeroDuration(),
                     const std::string& error = "") {
    v1::AckRequest req;
    req.set_subscription_id(sub);
    req.add_delivery_ids(id);
    req.set_action(action);
    if (action == v1::AckRequest::RETRY && delay > absl::ZeroDuration()) {
      req.mutable_retry_delay()->set_seconds(absl::ToInt64Seconds(delay));
      req.mutable_retry_delay()->set_nanos(static_cast<int32_t>(
          absl::ToInt64Nanoseconds(delay % absl::Seconds(1))));
    }
    req.set_error(error);
    v1::AckResponse resp;
    ::grpc::Status s = via.Ack(Ctx().get(), req, &resp);
    if (s.ok() && resp.applied_count() != 1) {
      return ::grpc::Status(::grpc::StatusCode::INTERNAL,
                            absl::StrCat("applied ", resp.applied_count()));
    }
    return s;
  }

  static v1::StreamMessagesRequest Client(const std::string& q,
                                          uint32_t prefetch = 10) {
    v1::StreamMessagesRequest r;
    r.set_queue(q);
    r.set_ack_mode(v1::StreamMessagesRequest::CLIENT);
    r.set_prefetch(prefetch);
    return r;
  }

  // Every body in `q`, taken with basic.get (and acked).
  static std::multiset<std::string> Drain(AmqpPeer& peer,
                                          const std::string& q) {
    std::multiset<std::string> out;
    for (;;) {
      absl::StatusOr<std::optional<PeerMessage>> m = peer.Get(q);
      if (!m.ok() || !m->has_value()) return out;
      out.insert((*m)->body);
    }
  }

  void TearDown() override {
    absl::StatusOr<std::unique_ptr<AmqpPeer>> peer =
        AmqpPeer::Connect(node_->port());
    if (!peer.ok()) return;
    for (const std::string& q : created_) (*peer)->DeleteQueue(q).IgnoreError();
  }

  std::vector<std::string> created_;
};

int64_t IntHeader(const v1::Delivery& d, const std::string& key) {
  auto it = d.properties().headers().find(key);
  if (it == d.properties().headers().end()) return -1;
  return it->second.int_value();
}

TEST_P(RetryTest, ThreeRetriesArriveFourTimesWithTheDelayBetween) {
  const std::string q = NewQueue("retry-four");
  const absl::Duration delay = absl::Milliseconds(200);
  created_.push_back(absl::StrCat("amqpgw.retry.", q, ".200"));
  Publish(q, "m");
  StreamReader stream(&stub(), Client(q));
  ASSERT_TRUE(stream.WaitSubscribed());
  const std::string sub = stream.subscription_id();
  std::vector<absl::Time> arrived;
  for (size_t n = 1; n <= 4; ++n) {
    ASSERT_TRUE(stream.WaitDeliveries(n, absl::Seconds(30))) << n;
    arrived.push_back(absl::Now());
    v1::Delivery d = stream.deliveries()[n - 1];
    EXPECT_EQ(d.body(), "m");
    EXPECT_EQ(d.delivery_attempt(), n);
    // Every property and header kept; the attempt count travels along.
    EXPECT_EQ(d.properties().message_id(), "id-m");
    EXPECT_EQ(d.properties().headers().at("app").string_value(), "kept");
    if (n > 1) {
      EXPECT_EQ(IntHeader(d, "x-amqpgw-attempt"), int64_t(n - 1));
    }
    ::grpc::Status s =
        n < 4 ? Ack(stub(), sub, d.delivery_id(), v1::AckRequest::RETRY, delay)
              : Ack(stub(), sub, d.delivery_id(), v1::AckRequest::ACK);
    ASSERT_TRUE(s.ok()) << n << ": " << s.error_message();
  }
  for (size_t i = 1; i < arrived.size(); ++i) {
    EXPECT_GE(arrived[i] - arrived[i - 1], delay - kTolerance)
        << "between deliveries " << i << " and " << i + 1;
  }
  // Nothing more comes, and nothing is left anywhere.
  stream.Cancel();
  stream.WaitDone();
  EXPECT_EQ(stream.deliveries().size(), 4u);
  EXPECT_TRUE(WaitFor([&] { return Ready(q) == 0; }, absl::Seconds(10)));
  EXPECT_EQ(Ready(absl::StrCat("amqpgw.retry.", q, ".200")), 0);
}

TEST_P(RetryTest, RequeueThenRetryKeepsCountingAndInvalidDelaysAreRefused) {
  const std::string q = NewQueue("retry-count");
  created_.push_back(absl::StrCat("amqpgw.retry.", q, ".100"));
  Publish(q, "m");
  StreamReader stream(&stub(), Client(q));
  ASSERT_TRUE(stream.WaitSubscribed());
  const std::string sub = stream.subscription_id();
  ASSERT_TRUE(stream.WaitDeliveries(1));
  uint64_t first = stream.deliveries()[0].delivery_id();
  // Refused before anything reaches the broker: the delivery stays.
  ::grpc::Status s =
      Ack(stub(), sub, first, v1::AckRequest::RETRY, absl::Hours(25));
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(s.error_message(), "retry_delay: "))
      << s.error_message();
  s = Ack(stub(), sub, first, v1::AckRequest::RETRY);  // no delay, no policy
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  // The broker's immediate requeue counts too.
  ASSERT_TRUE(Ack(stub(), sub, first, v1::AckRequest::REQUEUE).ok());
  ASSERT_TRUE(stream.WaitDeliveries(2));
  v1::Delivery second = stream.deliveries()[1];
  EXPECT_EQ(second.delivery_attempt(), 2u);
  ASSERT_TRUE(Ack(stub(), sub, second.delivery_id(), v1::AckRequest::RETRY,
                  absl::Milliseconds(100))
                  .ok());
  ASSERT_TRUE(stream.WaitDeliveries(3));
  v1::Delivery third = stream.deliveries()[2];
  EXPECT_EQ(third.delivery_attempt(), 3u);
  ASSERT_TRUE(Ack(stub(), sub, third.delivery_id(), v1::AckRequest::ACK).ok());
}

TEST_P(RetryTest, MaxAttemptsSendsTheMessageToTheDeadLetterTarget) {
  const std::string q = NewQueue("retry-max");
  const std::string dead = NewQueue("retry-dead");
  created_.push_back(absl::StrCat("amqpgw.retry.", q, ".100"));
  created_.push_back(absl::StrCat("amqpgw.retry.", q, ".200"));
  Publish(q, "poison");
  v1::StreamMessagesRequest req = Client(q);
  req.mutable_retry_policy()->set_max_attempts(3);
  req.mutable_retry_policy()->mutable_initial_backoff()->set_nanos(100000000);
  req.mutable_dead_letter()->set_exchange("");
  req.mutable_dead_letter()->set_routing_key(dead);
  StreamReader stream(&stub(), req);
  ASSERT_TRUE(stream.WaitSubscribed());
  const std::string sub = stream.subscription_id();
  std::vector<absl::Time> arrived;
  for (size_t n = 1; n <= 3; ++n) {
    ASSERT_TRUE(stream.WaitDeliveries(n, absl::Seconds(30))) << n;
    arrived.push_back(absl::Now());
    v1::Delivery d = stream.deliveries()[n - 1];
    EXPECT_EQ(d.delivery_attempt(), n);
    // REQUEUE follows the policy: 100 ms, then 200 ms.
    ::grpc::Status s =
        Ack(stub(), sub, d.delivery_id(), v1::AckRequest::REQUEUE,
            absl::ZeroDuration(), absl::StrCat("failed ", n));
    ASSERT_TRUE(s.ok()) << n << ": " << s.error_message();
  }
  EXPECT_GE(arrived[1] - arrived[0], absl::Milliseconds(100) - kTolerance);
  EXPECT_GE(arrived[2] - arrived[1], absl::Milliseconds(200) - kTolerance);
  // The third Ack answered once the dead letter was confirmed.
  absl::StatusOr<std::unique_ptr<AmqpPeer>> peer =
      AmqpPeer::Connect(node_->port());
  ASSERT_TRUE(peer.ok()) << peer.status();
  absl::StatusOr<std::optional<PeerMessage>> m = (*peer)->Get(dead);
  ASSERT_TRUE(m.ok() && m->has_value());
  EXPECT_EQ((*m)->body, "poison");
  EXPECT_EQ((*m)->headers["x-amqpgw-reason"], "S:max_attempts");
  EXPECT_EQ((*m)->headers["x-amqpgw-queue"], absl::StrCat("S:", q));
  EXPECT_EQ((*m)->headers["x-amqpgw-attempt"], "l:3");
  EXPECT_EQ((*m)->headers["x-amqpgw-error"], "S:failed 3");
  EXPECT_EQ((*m)->headers["app"], "S:kept");
  // Gone from the source: closing the stream gives nothing back.
  stream.Cancel();
  stream.WaitDone();
  EXPECT_EQ(stream.deliveries().size(), 3u);
  EXPECT_EQ(Ready(q), 0);
  EXPECT_EQ(Ready(dead), 0);  // the one there was taken above
}

TEST_P(RetryTest, AGatewayKilledWhileRetryingLosesNothing) {
  constexpr int kMessages = 400;
  const std::string q = NewQueue("retry-kill");
  const std::string delay_queue = absl::StrCat("amqpgw.retry.", q, ".60000");
  created_.push_back(delay_queue);
  for (int i = 0; i < kMessages; ++i) Publish(q, absl::StrCat(i));

  absl::StatusOr<std::unique_ptr<GatewayProcess>> g = GatewayProcess::Start(
      UniqueName("gw-retry"), node_->uri(), {}, AMQPGW_TEST_TMP_DIR);
  ASSERT_TRUE(g.ok()) << g.status();
  auto channel = ::grpc::CreateChannel((*g)->grpc_address(),
                                       ::grpc::InsecureChannelCredentials());
  auto gw = v1::Gateway::NewStub(channel);
  std::set<std::string> delivered_and_acked;  // plain ACKs (none here)
  int retried_ok = 0;  // RETRYs answered OK: their copies were confirmed
  {
    StreamReader stream(gw.get(), Client(q, /*prefetch=*/300));
    ASSERT_TRUE(stream.WaitSubscribed(absl::Seconds(60)));
    const std::string sub = stream.subscription_id();
    // 20 one by one, each answered (copy confirmed, original acked).
    for (int n = 1; n <= 20; ++n) {
      ASSERT_TRUE(stream.WaitDeliveries(n));
      ASSERT_TRUE(Ack(*gw, sub, stream.deliveries()[n - 1].delivery_id(),
                      v1::AckRequest::RETRY, absl::Seconds(60))
                      .ok());
    }
    // Then 280 at once, and the gateway dies while they are on their way
    // (some copies confirmed and their originals not yet acked, most
    // likely).
    ASSERT_TRUE(stream.WaitDeliveries(300));
    std::vector<v1::Delivery> ds = stream.deliveries();
    struct Call {
      ::grpc::ClientContext ctx;
      v1::AckRequest req;
      v1::AckResponse resp;
    };
    std::vector<std::unique_ptr<Call>> calls;
    std::atomic<int> answered{0};
    std::atomic<int> ok{0};
    for (int n = 20; n < 300; ++n) {
      auto c = std::make_unique<Call>();
      c->ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
      c->req.set_subscription_id(sub);
      c->req.add_delivery_ids(ds[n].delivery_id());
      c->req.set_action(v1::AckRequest::RETRY);
      c->req.mutable_retry_delay()->set_seconds(60);
      gw->async()->Ack(&c->ctx, &c->req, &c->resp,
                       [&answered, &ok](::grpc::Status s) {
                         if (s.ok()) ok.fetch_add(1);
                         answered.fetch_add(1);
                       });
      calls.push_back(std::move(c));
    }
    ASSERT_TRUE(
        WaitFor([&] { return answered.load() >= 1; }, absl::Seconds(30)));
    int before = answered.load();
    (*g)->Kill();
    ASSERT_TRUE(
        WaitFor([&] { return answered.load() == 280; }, absl::Seconds(60)));
    retried_ok = 20 + ok.load();
    std::printf("killed with %d of 280 RETRY calls answered, %d OK in all\n",
                before, ok.load());
    stream.Cancel();
    stream.WaitDone();
  }
  // The broker noticed the dead connection and took the originals back.
  absl::StatusOr<std::unique_ptr<AmqpPeer>> peer =
      AmqpPeer::Connect(node_->port());
  ASSERT_TRUE(peer.ok()) << peer.status();
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::StatusOr<uint32_t> c = (*peer)->ConsumerCount(q);
        return c.ok() && *c == 0;
      },
      absl::Seconds(30)));
  std::multiset<std::string> in_source = Drain(**peer, q);
  std::multiset<std::string> in_delay = Drain(**peer, delay_queue);
  EXPECT_GE(in_delay.size(), static_cast<size_t>(retried_ok));
  std::set<std::string> all(in_source.begin(), in_source.end());
  all.insert(in_delay.begin(), in_delay.end());
  all.insert(delivered_and_acked.begin(), delivered_and_acked.end());
  int missing = 0;
  for (int i = 0; i < kMessages; ++i) {
    if (all.count(absl::StrCat(i)) == 0) ++missing;
  }
  size_t both = 0;  // copied, original not acked: the crash's duplicates
  for (const std::string& b : in_delay) both += in_source.count(b);
  std::printf("source %zu + delay %zu (distinct %zu, in both %zu) of %d\n",
              in_source.size(), in_delay.size(), all.size(), both, kMessages);
  EXPECT_EQ(missing, 0);
  EXPECT_GE(in_source.size() + in_delay.size(), size_t{kMessages});
}

TEST_P(RetryTest, SubscribeRetriesInStreamAndDeadLettersAtMaxAttempts) {
  const std::string q = NewQueue("retry-sub");
  const std::string dead = NewQueue("retry-sub-dead");
  created_.push_back(absl::StrCat("amqpgw.retry.", q, ".200"));
  Publish(q, "m");
  auto ctx = Ctx(absl::Seconds(60));
  auto stream = stub().Subscribe(ctx.get());
  v1::SubscribeRequest start;
  start.mutable_start()->set_queue(q);
  start.mutable_start()->mutable_retry_policy()->set_max_attempts(4);
  start.mutable_start()->mutable_dead_letter()->set_routing_key(dead);
  ASSERT_TRUE(stream->Write(start));
  std::vector<absl::Time> arrived;
  std::vector<v1::SubscribeAckResult> results;
  v1::SubscribeResponse ev;
  while (results.size() < 4 && stream->Read(&ev)) {
    if (ev.has_ack()) results.push_back(ev.ack());
    for (const v1::Delivery& d : ev.batch().deliveries()) {
      arrived.push_back(absl::Now());
      EXPECT_EQ(d.delivery_attempt(), arrived.size());
      EXPECT_EQ(d.body(), "m");
      // RETRY 200 ms three times; the fourth delivery is the last attempt,
      // so its RETRY dead-letters it.
      v1::SubscribeRequest ack;
      ack.mutable_ack()->add_delivery_ids(d.delivery_id());
      ack.mutable_ack()->set_action(v1::AckRequest::RETRY);
      ack.mutable_ack()->mutable_retry_delay()->set_nanos(200000000);
      ack.mutable_ack()->set_error("still failing");
      ASSERT_TRUE(stream->Write(ack));
    }
  }
  ASSERT_EQ(results.size(), 4u);
  for (const v1::SubscribeAckResult& r : results) {
    EXPECT_EQ(r.action(), v1::AckRequest::RETRY);
    EXPECT_EQ(r.applied_ids_size(), 1);
    EXPECT_EQ(r.failed_ids_size(), 0) << r.error();
  }
  ASSERT_EQ(arrived.size(), 4u);
  for (size_t i = 1; i < arrived.size(); ++i) {
    EXPECT_GE(arrived[i] - arrived[i - 1],
              absl::Milliseconds(200) - kTolerance);
  }
  absl::StatusOr<std::unique_ptr<AmqpPeer>> peer =
      AmqpPeer::Connect(node_->port());
  ASSERT_TRUE(peer.ok()) << peer.status();
  absl::StatusOr<std::optional<PeerMessage>> m = (*peer)->Get(dead);
  ASSERT_TRUE(m.ok() && m->has_value());
  EXPECT_EQ((*m)->headers["x-amqpgw-attempt"], "l:4");
  EXPECT_EQ((*m)->headers["x-amqpgw-error"], "S:still failing");
  stream->WritesDone();
  bool summary = false;
  while (stream->Read(&ev)) {
    if (!ev.has_summary()) continue;
    summary = true;
    EXPECT_EQ(ev.summary().delivered(), 4u);
    EXPECT_EQ(ev.summary().requeued(), 3u);
    EXPECT_EQ(ev.summary().rejected(), 1u);
  }
  EXPECT_TRUE(summary);
  ::grpc::Status st = stream->Finish();
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(Ready(q), 0);
}

// RabbitMQ's consumer_timeout (small on a node of the test's own): without
// a retry policy the stream ends FAILED_PRECONDITION naming the delivery;
// with one it subscribes again (status RECONNECTING, RESUMED) and the
// message comes again.
TEST(ConsumerTimeoutTest, EndsNamingTheDeliveryOrResubscribesWithAPolicy) {
  absl::StatusOr<BrokerNode> node = BrokerNode::StartPrivate(
      "ctimeout", "consumer_timeout = 2000\n", /*management=*/false);
  ASSERT_TRUE(node.ok()) << node.status();
  // The node is the test's own: stopped however the test ends.
  struct StopNode {
    BrokerNode* node;
    ~StopNode() { node->Stop().IgnoreError(); }
  } stop_node{&*node};
  auto g = TestGateway::Start(node->uri());
  ASSERT_TRUE(g->WaitReady());
  const std::string q = UniqueName("ctimeout");
  v1::DeclareQueueRequest dq;
  dq.set_name(q);
  v1::DeclareQueueResponse dq_resp;
  ASSERT_TRUE(g->stub().DeclareQueue(Ctx().get(), dq, &dq_resp).ok());
  v1::PublishRequest pub;
  pub.set_routing_key(q);
  pub.set_body("slow");
  v1::PublishResponse pub_resp;
  ASSERT_TRUE(g->stub().Publish(Ctx().get(), pub, &pub_resp).ok());

  v1::StreamMessagesRequest req;
  req.set_queue(q);
  req.set_ack_mode(v1::StreamMessagesRequest::CLIENT);
  {
    StreamReader stream(&g->stub(), req, absl::Seconds(300));
    ASSERT_TRUE(stream.WaitDeliveries(1));
    // Never acked: the broker closes the channel (it checks periodically).
    ::grpc::Status s = stream.WaitDone(absl::Seconds(200));
    EXPECT_EQ(s.error_code(), ::grpc::StatusCode::FAILED_PRECONDITION)
        << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), "delivery 1 of queue"))
        << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), "consumer_timeout"));
  }
  req.mutable_retry_policy()->set_max_attempts(10);
  StreamReader stream(&g->stub(), req, absl::Seconds(300));
  ASSERT_TRUE(stream.WaitDeliveries(1));
  ASSERT_TRUE(stream.WaitEvent(
      [](const v1::StreamMessagesResponse& e) {
        return e.has_status() &&
               e.status().kind() == v1::StreamStatus::RECONNECTING &&
               absl::StrContains(e.status().message(), "consumer_timeout");
      },
      absl::Seconds(200)));
  ASSERT_TRUE(stream.WaitDeliveries(2, absl::Seconds(30)));
  std::vector<v1::Delivery> ds = stream.deliveries();
  EXPECT_EQ(ds[1].body(), "slow");
  EXPECT_EQ(ds[1].delivery_attempt(), 2u);
  v1::AckRequest ack;
  ack.set_subscription_id(stream.subscription_id());
  ack.add_delivery_ids(ds[1].delivery_id());
  v1::AckResponse ack_resp;
  ASSERT_TRUE(g->stub().Ack(Ctx().get(), ack, &ack_resp).ok());
  EXPECT_EQ(ack_resp.applied_count(), 1u);
}

INSTANTIATE_TEST_SUITE_P(QueueTypes, RetryTest,
                         ::testing::Values("classic", "quorum"));

}  // namespace
}  // namespace amqpgw::testing
