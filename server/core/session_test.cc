#include "server/core/session.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/amqp/testing/fake_connection.h"
#include "server/core/testing/worker_testing.h"

namespace amqpgw::core {
namespace {

using testing::FakeAddress;
using testing::FakeBroker;
using testing::FakePeer;
using testing::kWaitTimeout;
using testing::Mailbox;
using testing::OwnCopy;
using testing::Sent;

class NullSink : public SubscriptionSink {
 public:
  void OnSubscribed(const std::string&, const std::string&) override {
    events.Put("subscribed");
  }
  void OnDelivery(StreamDelivery) override {}
  void OnPaused(const std::string&) override { events.Put("paused"); }
  void OnResumed() override { events.Put("resumed"); }
  void OnEnd(const absl::Status& status) override {
    events.Put(absl::StrCat("end: ", absl::StatusCodeToString(status.code())));
  }
  Mailbox<std::string> events;
};

class SessionTest : public ::testing::Test {
 protected:
  SessionOptions Options() {
    SessionOptions o;
    o.brokers = {FakeAddress(1), FakeAddress(2)};
    o.connection_factory = broker_.factory();
    o.backoff.initial = absl::Milliseconds(1);
    o.backoff.max = absl::Milliseconds(20);
    o.instance_id = "gw1";
    o.publisher_connections = 2;
    o.consumer_connections = 2;
    o.drain_timeout = kWaitTimeout;
    return o;
  }
  void Start(SessionOptions o) {
    session_ = std::make_unique<Session>(std::move(o));
    session_->SetStateListener(
        [this](SessionState s) { states_.Put(SessionStateName(s)); });
    session_->Start();
  }
  void SetUp() override {
    // Publishes are confirmed at once unless a test says otherwise.
    FakePeer::Options po;
    po.auto_confirm = true;
    broker_.set_peer_options(po);
  }
  void TearDown() override {
    if (session_ != nullptr) session_->Stop();
  }

  // Waits for READY (after any states before it).
  bool WaitReady() {
    for (;;) {
      std::optional<std::string> s = states_.Take();
      if (!s.has_value()) return false;
      if (*s == "READY") return true;
    }
  }

  // Its results go to done_.
  absl::Status Publish(std::vector<amqp::OutgoingMessage> messages) {
    auto batch = std::make_shared<PublishBatch>(
        std::move(messages), absl::Now() + absl::Hours(1),
        [this](PublishBatch& b) {
          std::vector<absl::Status> r;
          for (size_t i = 0; i < b.size(); ++i) {
            r.push_back(OwnCopy(b.result(i).status));
          }
          done_.Put(std::move(r));
        });
    return session_->Publish(std::move(batch));
  }
  static amqp::OutgoingMessage Message(std::string body) {
    amqp::OutgoingMessage m;
    m.routing_key = "q";
    m.body = std::move(body);
    return m;
  }

  FakeBroker broker_;
  // Outlive the session (TearDown stops it; its callbacks use them).
  Mailbox<std::string> states_;
  Mailbox<std::vector<absl::Status>> done_;
  NullSink sink_;
  std::unique_ptr<Session> session_;
};

TEST_F(SessionTest, IsReadyWhenEveryConnectionIs) {
  // Every open waits: the session is not READY before all are done.
  broker_.BlockOpens("node1:5672");
  Start(Options());
  EXPECT_EQ(states_.Take(), "CONNECTING");
  ASSERT_TRUE(broker_.WaitForBlocked(5));  // control, 2 publishers, 2 consumers
  EXPECT_EQ(session_->Info().state, SessionState::kConnecting);
  broker_.Unblock("node1:5672");
  EXPECT_EQ(states_.Take(), "READY");
  for (const char* name :
       {"control", "publisher-0", "publisher-1", "consumer-0", "consumer-1"}) {
    std::shared_ptr<FakePeer> p = broker_.WaitForPeer(name);
    ASSERT_NE(p, nullptr) << name;
    EXPECT_EQ(p->connection_name(), absl::StrCat("amqpgw gw1 ", name));
  }
  ConnectionInfo info = session_->Info();
  EXPECT_EQ(info.state, SessionState::kReady);
  EXPECT_EQ(info.broker, "node1:5672");
  EXPECT_EQ(info.server.version, "3.10.8-fake");
  EXPECT_EQ(info.brokers,
            (std::vector<std::string>{"node1:5672", "node2:5672"}));
  EXPECT_NE(info.connected_since, absl::InfinitePast());
}

TEST_F(SessionTest, ALostConnectionMakesItReconnecting) {
  Start(Options());
  ASSERT_TRUE(WaitReady());
  broker_.WaitForPeer("consumer-1")->Drop();
  EXPECT_EQ(states_.Take(), "RECONNECTING");
  EXPECT_EQ(states_.Take(), "READY");
  EXPECT_EQ(session_->Info().reconnects, 1u);
  EXPECT_EQ(session_->Counters().reconnects, 1u);
}

TEST_F(SessionTest, PublishesAreSpreadOverThePublisherConnections) {
  Start(Options());
  ASSERT_TRUE(WaitReady());
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(Publish({Message(absl::StrCat("m", i))}).ok());
  }
  ASSERT_TRUE(done_.WaitForSize(4));
  for (auto& r : done_.TakeAll()) EXPECT_TRUE(r.at(0).ok()) << r[0];
  EXPECT_EQ(broker_.WaitForPeer("publisher-0")->count(Sent::Kind::kPublish),
            2u);
  EXPECT_EQ(broker_.WaitForPeer("publisher-1")->count(Sent::Kind::kPublish),
            2u);
  CountersSnapshot c = session_->Counters();
  EXPECT_EQ(c.published, 4u);
  EXPECT_EQ(c.confirmed, 4u);
  EXPECT_EQ(c.published_bytes, 8u);
}

TEST_F(SessionTest, PendingBytesAreBounded) {
  SessionOptions o = Options();
  o.max_pending_bytes = 1000;
  o.drain_timeout = absl::Milliseconds(10);  // Stop gives up on it
  // Nothing is confirmed: what was accepted stays pending.
  broker_.set_peer_options(FakePeer::Options());
  Start(o);
  ASSERT_TRUE(WaitReady());
  EXPECT_TRUE(Publish({Message(std::string(400, 'x'))}).ok());
  absl::Status s = Publish({Message(std::string(400, 'y'))});
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("--max_pending_bytes"), std::string::npos) << s;
}

TEST_F(SessionTest, DisconnectDrainsClosesAndRefusesCalls) {
  broker_.set_peer_options(FakePeer::Options());  // confirms by hand
  Start(Options());
  ASSERT_TRUE(WaitReady());
  NullSink& sink = sink_;
  SubscribeOptions so;
  so.queue = "q";
  ASSERT_TRUE(session_->Subscribe(so, &sink).ok());
  EXPECT_EQ(sink.events.Take(), "subscribed");
  ASSERT_TRUE(Publish({Message("in flight")}).ok());
  std::shared_ptr<FakePeer> pub = broker_.WaitForPeer("publisher-0");
  ASSERT_TRUE(pub->WaitForCount(Sent::Kind::kPublish, 1));

  Mailbox<ConnectionInfo> disconnected;
  session_->Disconnect([&](ConnectionInfo i) { disconnected.Put(i); });
  // Streams end at once; connections wait for the publisher's confirm.
  EXPECT_EQ(sink.events.Take(), "end: UNAVAILABLE");
  EXPECT_EQ(disconnected.size(), 0u);
  EXPECT_FALSE(pub->closed_by_gateway());
  pub->Confirm(pub->channel_of(Sent::Kind::kConfirmSelect), 1);
  std::optional<ConnectionInfo> info = disconnected.Take();
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->state, SessionState::kDisconnected);
  EXPECT_TRUE(done_.Take().value().at(0).ok());
  for (const auto& p : broker_.peers()) {
    EXPECT_TRUE(p->closed_by_gateway()) << p->connection_name();
  }

  // Calls fail until Connect.
  EXPECT_EQ(Publish({Message("late")}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(session_->Subscribe(so, &sink).status().code(),
            absl::StatusCode::kFailedPrecondition);
  Mailbox<absl::Status> declared;
  amqp::ExchangeDeclareArgs e;
  e.name = "e";
  session_->topology().DeclareExchange(
      e, absl::Now() + kWaitTimeout, [&](absl::Status s) { declared.Put(s); });
  EXPECT_EQ(declared.Take().value().code(),
            absl::StatusCode::kFailedPrecondition);

  // Connect again: READY, and calls work.
  Mailbox<ConnectionInfo> connected;
  session_->Connect(absl::Now() + kWaitTimeout,
                    [&](ConnectionInfo i) { connected.Put(i); });
  EXPECT_EQ(connected.Take().value().state, SessionState::kReady);
  session_->topology().DeclareExchange(
      e, absl::Now() + kWaitTimeout, [&](absl::Status s) { declared.Put(s); });
  EXPECT_TRUE(declared.Take().value().ok());
}

TEST_F(SessionTest, ConnectAnswersAtItsDeadlineWhenTheBrokerIsDown) {
  broker_.FailOpens("node1:5672", absl::UnavailableError("refused"));
  broker_.FailOpens("node2:5672", absl::UnavailableError("refused"));
  SessionOptions o = Options();
  o.connect_on_start = false;
  Start(o);
  Mailbox<ConnectionInfo> connected;
  session_->Connect(absl::Now() + absl::Milliseconds(30),
                    [&](ConnectionInfo i) { connected.Put(i); });
  std::optional<ConnectionInfo> info = connected.Take();
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->state, SessionState::kConnecting);
  EXPECT_NE(info->last_error.find("refused"), std::string::npos)
      << info->last_error;
}

TEST_F(SessionTest, TopologyIsDeclaredAgainWhenTheControlConnectionReturns) {
  Start(Options());
  ASSERT_TRUE(WaitReady());
  Mailbox<absl::StatusOr<QueueInfo>> declared;
  amqp::QueueDeclareArgs q;
  q.name = "orders";
  session_->topology().DeclareQueue(
      q, absl::Now() + kWaitTimeout,
      [&](absl::StatusOr<QueueInfo> r) { declared.Put(r); });
  ASSERT_TRUE(declared.Take().value().ok());
  broker_.WaitForPeer("control")->Drop();
  std::shared_ptr<FakePeer> next = broker_.WaitForPeer("control", 1);
  ASSERT_NE(next, nullptr);
  ASSERT_TRUE(next->WaitForCount(Sent::Kind::kQueueDeclare, 1));
  EXPECT_EQ(next->sent(Sent::Kind::kQueueDeclare)[0].name, "orders");
}

TEST_F(SessionTest, DeadlinesLeaveTheCallerTimeToHearWhy) {
  SessionOptions o = Options();
  o.default_timeout = absl::Seconds(30);
  o.connect_on_start = false;
  Start(o);
  absl::Time before = absl::Now();
  absl::Time d = session_->Deadline(absl::InfiniteFuture());
  EXPECT_GE(d, before + absl::Seconds(30));
  EXPECT_LE(d, absl::Now() + absl::Seconds(30));
  // One second left: answer 100 ms (a tenth) early.
  absl::Time caller = absl::Now() + absl::Seconds(1);
  d = session_->Deadline(caller);
  EXPECT_LE(d, caller - absl::Milliseconds(99));
  EXPECT_GE(d, caller - absl::Milliseconds(101));
  // A long deadline is capped by the default timeout.
  caller = absl::Now() + absl::Hours(1);
  d = session_->Deadline(caller);
  EXPECT_LE(d, absl::Now() + absl::Seconds(30));
}

// Streams that are not subscriptions (PublishStream) hang a drain hook on
// the session: DrainStreams calls each once with its reason, hooks added
// afterwards are refused (0), a removed hook is never called, and
// WaitStreamsEnded waits until every hook is removed.
TEST_F(SessionTest, DrainHooksAreCalledOnceAndWaitedFor) {
  Start(Options());
  ASSERT_TRUE(WaitReady());
  std::vector<std::string> calls;  // only DrainStreams' thread (this one)
  uint64_t a = session_->AddDrainHook(
      [&](const std::string& why) { calls.push_back("a: " + why); });
  uint64_t b = session_->AddDrainHook(
      [&](const std::string& why) { calls.push_back("b: " + why); });
  uint64_t gone = session_->AddDrainHook(
      [&](const std::string& why) { calls.push_back("gone: " + why); });
  ASSERT_NE(a, 0u);
  ASSERT_NE(b, 0u);
  ASSERT_NE(gone, 0u);
  session_->RemoveDrainHook(gone);

  session_->DrainStreams(absl::Seconds(1), "shutting down");
  std::sort(calls.begin(), calls.end());
  EXPECT_EQ(calls,
            (std::vector<std::string>{"a: shutting down", "b: shutting down"}));
  EXPECT_EQ(session_->AddDrainHook(
                [&](const std::string&) { calls.push_back("late"); }),
            0u);
  // Two streams still open: not ended by the deadline.
  EXPECT_FALSE(
      session_->WaitStreamsEnded(absl::Now() + absl::Milliseconds(50)));
  session_->RemoveDrainHook(a);
  std::thread closer([&] { session_->RemoveDrainHook(b); });
  EXPECT_TRUE(session_->WaitStreamsEnded(absl::Now() + kWaitTimeout));
  closer.join();
  EXPECT_EQ(calls.size(), 2u);
}

}  // namespace
}  // namespace amqpgw::core
