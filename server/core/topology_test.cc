#include "server/core/topology.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/amqp/testing/fake_connection.h"
#include "server/core/connection_worker.h"
#include "server/core/testing/worker_testing.h"

namespace amqpgw::core {
namespace {

using testing::FakeBroker;
using testing::FakePeer;
using testing::kWaitTimeout;
using testing::Mailbox;
using testing::NewFakeWorker;
using testing::RunOn;
using testing::Sent;
using testing::Settle;
using testing::StartAndConnect;

amqp::QueueDeclareArgs Queue(std::string name) {
  amqp::QueueDeclareArgs a;
  a.name = std::move(name);
  return a;
}

amqp::ExchangeDeclareArgs Exchange(std::string name) {
  amqp::ExchangeDeclareArgs a;
  a.name = std::move(name);
  a.type = "topic";
  return a;
}

amqp::BindArgs Binding(std::string queue, std::string exchange) {
  amqp::BindArgs a;
  a.queue = std::move(queue);
  a.exchange = std::move(exchange);
  a.routing_key = "#";
  return a;
}

// "<method> <name>" of each topology method sent: the order a broker saw.
std::vector<std::string> Steps(const FakePeer& peer) {
  std::vector<std::string> out;
  for (const Sent& s : peer.sent()) {
    switch (s.kind) {
      case Sent::Kind::kExchangeDeclare:
      case Sent::Kind::kQueueDeclare:
      case Sent::Kind::kQueueDelete:
      case Sent::Kind::kQueuePurge:
      case Sent::Kind::kExchangeDelete:
        out.push_back(absl::StrCat(SentKindName(s.kind), " ", s.name));
        break;
      case Sent::Kind::kQueueBind:
      case Sent::Kind::kQueueUnbind:
        out.push_back(absl::StrCat(SentKindName(s.kind), " ", s.bind.queue,
                                   "->", s.bind.exchange));
        break;
      default:
        break;
    }
  }
  return out;
}

class TopologyServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    worker_ = NewFakeWorker(broker_, "control");
    service_ = std::make_unique<TopologyService>(
        worker_.get(),
        [this] {
          return open_.load() ? absl::OkStatus()
                              : absl::FailedPreconditionError("disconnected");
        },
        kWaitTimeout);
    peer_ = StartAndConnect(*worker_, broker_);
    ASSERT_NE(peer_, nullptr);
  }
  void TearDown() override {
    worker_->Stop();
    service_.reset();
    worker_.reset();
  }

  absl::Time Deadline() { return absl::Now() + absl::Hours(1); }

  absl::StatusOr<QueueInfo> DeclareQueue(amqp::QueueDeclareArgs args) {
    Mailbox<absl::StatusOr<QueueInfo>> r;
    service_->DeclareQueue(std::move(args), Deadline(),
                           [&](absl::StatusOr<QueueInfo> q) { r.Put(q); });
    return r.Take().value_or(absl::DeadlineExceededError("no answer"));
  }
  absl::Status DeclareExchange(amqp::ExchangeDeclareArgs args) {
    Mailbox<absl::Status> r;
    service_->DeclareExchange(std::move(args), Deadline(),
                              [&](absl::Status s) { r.Put(s); });
    return r.Take().value_or(absl::DeadlineExceededError("no answer"));
  }
  absl::Status Bind(amqp::BindArgs args) {
    Mailbox<absl::Status> r;
    service_->BindQueue(std::move(args), Deadline(),
                        [&](absl::Status s) { r.Put(s); });
    return r.Take().value_or(absl::DeadlineExceededError("no answer"));
  }
  absl::StatusOr<uint32_t> DeleteQueue(std::string name) {
    Mailbox<absl::StatusOr<uint32_t>> r;
    service_->DeleteQueue(std::move(name), false, false, Deadline(),
                          [&](absl::StatusOr<uint32_t> n) { r.Put(n); });
    return r.Take().value_or(absl::DeadlineExceededError("no answer"));
  }

  // Declares what the replay tests replay: two exchanges, two queues, two
  // bindings, in an order unlike the replay's.
  void DeclareSomeTopology() {
    ASSERT_TRUE(DeclareQueue(Queue("q1")).ok());
    ASSERT_TRUE(DeclareExchange(Exchange("e1")).ok());
    ASSERT_TRUE(Bind(Binding("q1", "e1")).ok());
    ASSERT_TRUE(DeclareExchange(Exchange("e2")).ok());
    ASSERT_TRUE(DeclareQueue(Queue("q2")).ok());
    ASSERT_TRUE(Bind(Binding("q2", "e2")).ok());
  }

  // The steps that replay DeclareSomeTopology: exchanges, then queues,
  // then bindings.
  static std::vector<std::string> SomeTopologyReplayed() {
    return {
        "exchange.declare e1", "exchange.declare e2", "queue.declare q1",
        "queue.declare q2",    "queue.bind q1->e1",   "queue.bind q2->e2",
    };
  }

  // The connection after `n` reconnects, once its replay is done (the
  // steps are sequential: the last one sent and answered).
  std::shared_ptr<FakePeer> Reconnected(size_t n, size_t steps) {
    std::shared_ptr<FakePeer> peer = broker_.WaitForPeer("control", n);
    EXPECT_NE(peer, nullptr);
    if (peer == nullptr) return nullptr;
    EXPECT_TRUE(peer->WaitUntil([&](const std::vector<Sent>& sent) {
      size_t topo = 0;
      for (const Sent& s : sent) {
        if (s.kind == Sent::Kind::kExchangeDeclare ||
            s.kind == Sent::Kind::kQueueDeclare ||
            s.kind == Sent::Kind::kQueueBind) {
          ++topo;
        }
      }
      return topo >= steps;
    }));
    EXPECT_TRUE(Settle(*worker_, *peer));
    return peer;
  }

  FakeBroker broker_;
  std::atomic<bool> open_{true};
  std::unique_ptr<ConnectionWorker> worker_;
  std::unique_ptr<TopologyService> service_;
  std::shared_ptr<FakePeer> peer_;
};

TEST_F(TopologyServiceTest, DeclaresAndRecordsWhatAReconnectNeeds) {
  absl::StatusOr<QueueInfo> q = DeclareQueue(Queue("orders"));
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->name, "orders");
  // Broker-named and exclusive queues die with the connection: not
  // recorded; neither is a passive inspect.
  absl::StatusOr<QueueInfo> named = DeclareQueue(Queue(""));
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named->name.rfind("amq.gen-", 0), 0u) << named->name;
  amqp::QueueDeclareArgs exclusive = Queue("mine");
  exclusive.exclusive = true;
  ASSERT_TRUE(DeclareQueue(exclusive).ok());
  Mailbox<absl::StatusOr<QueueInfo>> inspected;
  service_->InspectQueue(
      "orders", Deadline(),
      [&](absl::StatusOr<QueueInfo> r) { inspected.Put(r); });
  ASSERT_TRUE(inspected.Take().value().ok());
  EXPECT_TRUE(peer_->sent(Sent::Kind::kQueueDeclare).back().queue.passive);

  TopologyRegistry::Snapshot rec = service_->Recorded();
  ASSERT_EQ(rec.queues.size(), 1u);
  EXPECT_EQ(rec.queues[0].name, "orders");
  ASSERT_TRUE(DeleteQueue("orders").ok());
  EXPECT_TRUE(service_->Recorded().queues.empty());
}

TEST_F(TopologyServiceTest, ARefusedRequestFailsAloneOnItsOwnChannel) {
  peer_->Refuse(Sent::Kind::kQueueDeclare, 406,
                "PRECONDITION_FAILED - inequivalent arg 'durable' for queue "
                "'a'",
                "a");
  Mailbox<std::pair<std::string, absl::StatusOr<QueueInfo>>> r;
  for (const char* name : {"a", "b"}) {
    service_->DeclareQueue(Queue(name), Deadline(),
                           [&r, name](absl::StatusOr<QueueInfo> q) {
                             r.Put({name, q});
                           });
  }
  ASSERT_TRUE(r.WaitForSize(2));
  for (auto& [name, q] : r.TakeAll()) {
    if (name == "a") {
      EXPECT_EQ(q.status().code(), absl::StatusCode::kFailedPrecondition);
      EXPECT_NE(q.status().message().find("declare queue 'a'"),
                std::string::npos)
          << q.status();
    } else {
      EXPECT_TRUE(q.ok()) << q.status();
    }
  }
  // The connection survived; the refused one's channel was replaced.
  EXPECT_EQ(broker_.peers().size(), 1u);
  EXPECT_TRUE(DeclareQueue(Queue("c")).ok());
  EXPECT_EQ(service_->Recorded().queues.size(), 2u);  // b, c
}

TEST_F(TopologyServiceTest, ASlowRequestDoesNotHoldUpTheOthers) {
  peer_->Hold(Sent::Kind::kQueueDelete);
  Mailbox<absl::StatusOr<uint32_t>> deleted;
  service_->DeleteQueue("long", false, false, Deadline(),
                        [&](absl::StatusOr<uint32_t> n) { deleted.Put(n); });
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kQueueDelete, 1));
  Mailbox<absl::StatusOr<uint32_t>> purged;
  service_->PurgeQueue("x", Deadline(),
                       [&](absl::StatusOr<uint32_t> n) { purged.Put(n); });
  ASSERT_TRUE(purged.Take().value().ok());
  EXPECT_EQ(deleted.size(), 0u);
  EXPECT_NE(peer_->channel_of(Sent::Kind::kQueueDelete),
            peer_->channel_of(Sent::Kind::kQueuePurge));
  peer_->ReleaseHeld();
  ASSERT_TRUE(deleted.Take().value().ok());
}

TEST_F(TopologyServiceTest, ReplaysExchangesThenQueuesThenBindingsInOrder) {
  DeclareSomeTopology();
  // Deleted ones (and their bindings) are not replayed.
  ASSERT_TRUE(DeclareQueue(Queue("gone")).ok());
  ASSERT_TRUE(Bind(Binding("gone", "e1")).ok());
  ASSERT_TRUE(DeleteQueue("gone").ok());

  peer_->Drop();
  std::shared_ptr<FakePeer> next = Reconnected(1, 6);
  ASSERT_NE(next, nullptr);
  EXPECT_EQ(Steps(*next), SomeTopologyReplayed());
  // Replayed as declared (not passive), and a second reconnect does the
  // same again.
  EXPECT_EQ(next->sent(Sent::Kind::kExchangeDeclare)[0].exchange.type, "topic");
  EXPECT_FALSE(next->sent(Sent::Kind::kQueueDeclare)[0].queue.passive);
  next->Drop();
  std::shared_ptr<FakePeer> third = Reconnected(2, 6);
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(Steps(*third), Steps(*next));
}

TEST_F(TopologyServiceTest, AReplayStepTheBrokerRefusesIsSkipped) {
  DeclareSomeTopology();
  // The next node refuses q1 (declared there with other arguments, say)
  // and the binding of q2.
  broker_.set_on_open([](FakePeer& next) {
    next.Refuse(Sent::Kind::kQueueDeclare, 406,
                "PRECONDITION_FAILED - inequivalent arg", "q1");
    next.Refuse(Sent::Kind::kQueueBind, 404, "NOT_FOUND - no queue 'q2'", "q2");
  });
  peer_->Drop();
  std::shared_ptr<FakePeer> next = Reconnected(1, 6);
  ASSERT_NE(next, nullptr);
  EXPECT_EQ(Steps(*next), SomeTopologyReplayed());
  // A failed step changes no record: the next reconnect tries it again.
  TopologyRegistry::Snapshot rec = service_->Recorded();
  EXPECT_EQ(rec.queues.size(), 2u);
  EXPECT_EQ(rec.bindings.size(), 2u);
  EXPECT_EQ(broker_.peers().size(), 2u);  // and the connection lived on
  // The channels the refusals closed were replaced: the API still works.
  EXPECT_TRUE(DeclareQueue(Queue("q3")).ok());
}

TEST_F(TopologyServiceTest, TheReplayWaitsForEachStepsReply) {
  DeclareSomeTopology();
  broker_.set_on_open(
      [](FakePeer& next) { next.Hold(Sent::Kind::kExchangeDeclare); });
  peer_->Drop();
  std::shared_ptr<FakePeer> next = broker_.WaitForPeer("control", 1);
  ASSERT_NE(next, nullptr);
  ASSERT_TRUE(next->WaitForCount(Sent::Kind::kExchangeDeclare, 1));
  EXPECT_TRUE(Settle(*worker_, *next));
  EXPECT_EQ(Steps(*next), (std::vector<std::string>{"exchange.declare e1"}));
  next->ReleaseHeld();
  ASSERT_TRUE(next->WaitForCount(Sent::Kind::kQueueBind, 2));
  EXPECT_EQ(Steps(*next).size(), 6u);
}

TEST_F(TopologyServiceTest, AClosedGateFailsAtOnceAndStopsTheReplay) {
  DeclareSomeTopology();
  size_t sent = peer_->sent().size();
  open_ = false;
  absl::StatusOr<QueueInfo> q = DeclareQueue(Queue("late"));
  EXPECT_EQ(q.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(peer_->sent().size(), sent);
  peer_->Drop();
  std::shared_ptr<FakePeer> next = broker_.WaitForPeer("control", 1);
  ASSERT_NE(next, nullptr);
  EXPECT_TRUE(Settle(*worker_, *next));
  EXPECT_TRUE(Steps(*next).empty());
}

TEST_F(TopologyServiceTest, DeadlinesSayWhetherTheBrokerWasReachable) {
  // Connected, no reply: it may or may not have been applied.
  peer_->Hold(Sent::Kind::kQueuePurge);
  Mailbox<absl::StatusOr<uint32_t>> r;
  service_->PurgeQueue("q", absl::Now() + absl::Milliseconds(20),
                       [&](absl::StatusOr<uint32_t> n) { r.Put(n); });
  absl::StatusOr<uint32_t> purged = r.Take().value();
  EXPECT_EQ(purged.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(purged.status().message().find("may or may not"), std::string::npos)
      << purged.status();

  // Not connected at all: unreachable.
  broker_.FailOpens("node1:5672", absl::UnavailableError("refused"));
  peer_->Drop();
  ASSERT_TRUE(broker_.WaitForAttempts(2));
  service_->PurgeQueue("q", absl::Now() + absl::Milliseconds(20),
                       [&](absl::StatusOr<uint32_t> n) { r.Put(n); });
  purged = r.Take().value();
  EXPECT_EQ(purged.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(purged.status().message().find("broker unreachable"),
            std::string::npos)
      << purged.status();
}

TEST_F(TopologyServiceTest, ALossBeforeTheReplyIsReportedAsUncertain) {
  peer_->Hold(Sent::Kind::kExchangeDelete);
  Mailbox<absl::Status> r;
  service_->DeleteExchange("e", false, Deadline(),
                           [&](absl::Status s) { r.Put(s); });
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kExchangeDelete, 1));
  peer_->Drop();
  absl::Status s = r.Take().value();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("may or may not have been applied"),
            std::string::npos)
      << s;
}

TEST_F(TopologyServiceTest, ARequestMadeWhileDisconnectedGoesOutOnReconnect) {
  broker_.BlockOpens("node1:5672");
  peer_->Drop();
  ASSERT_TRUE(broker_.WaitForBlocked(1));
  Mailbox<absl::StatusOr<QueueInfo>> r;
  service_->DeclareQueue(Queue("waiting"), Deadline(),
                         [&](absl::StatusOr<QueueInfo> q) { r.Put(q); });
  RunOn(*worker_, [] {});
  EXPECT_EQ(r.size(), 0u);
  broker_.Unblock("node1:5672");
  absl::StatusOr<QueueInfo> q = r.Take().value();
  EXPECT_TRUE(q.ok()) << q.status();
}

TEST_F(TopologyServiceTest, ATableTooDeepToEncodeFailsWithoutHarm) {
  amqp::FieldTable table;
  for (int i = 0; i < amqp::kMaxTableDepth + 2; ++i) {
    amqp::FieldTable outer;
    outer.emplace_back("t", amqp::FieldValue(std::move(table)));
    table = std::move(outer);
  }
  amqp::QueueDeclareArgs args = Queue("deep");
  args.arguments = table;
  absl::StatusOr<QueueInfo> q = DeclareQueue(args);
  EXPECT_FALSE(q.ok());
  EXPECT_TRUE(DeclareQueue(Queue("fine")).ok());
  EXPECT_EQ(broker_.peers().size(), 1u);
}

TEST(TopologyRegistryTest, KeepsTheLatestDeclarationsBounded) {
  TopologyRegistry r(/*max_entries=*/2);
  amqp::QueueDeclareArgs q1 = Queue("q1");
  r.QueueDeclared(q1);
  q1.durable = false;
  r.QueueDeclared(q1);  // replaces
  r.QueueDeclared(Queue("q2"));
  r.QueueDeclared(Queue("q3"));  // beyond the bound
  TopologyRegistry::Snapshot s = r.Get();
  ASSERT_EQ(s.queues.size(), 2u);
  EXPECT_FALSE(s.queues[0].durable);
  EXPECT_EQ(s.queues[1].name, "q2");

  r.ExchangeDeclared(Exchange("e"));
  r.Bound(Binding("q1", "e"));
  r.Bound(Binding("q1", "e"));  // once
  r.Bound(Binding("q2", "e"));
  EXPECT_EQ(r.Get().bindings.size(), 2u);
  r.Unbound(Binding("q2", "e"));
  EXPECT_EQ(r.Get().bindings.size(), 1u);
  r.ExchangeDeleted("e");  // takes its bindings along
  EXPECT_TRUE(r.Get().exchanges.empty());
  EXPECT_TRUE(r.Get().bindings.empty());
}

}  // namespace
}  // namespace amqpgw::core
