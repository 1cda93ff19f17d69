#include "server/core/connection_worker.h"

#include <gtest/gtest.h>

#include <string>
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
using testing::FakeWorkerOptions;
using testing::kWaitTimeout;
using testing::Mailbox;
using testing::RunOn;
using testing::Sent;

constexpr absl::Duration kPause = absl::Milliseconds(2);
constexpr int kMany = ConnectionWorker::kReadPauseMinEvents;

TEST(ReadPauseAfterTest, FewEventsAreNotFollowedByAPause) {
  // A prefetch-1 stream sees one delivery per read: it must never wait.
  for (int events = 0; events < kMany; ++events) {
    EXPECT_EQ(ConnectionWorker::ReadPauseAfter(events, 1000, kPause),
              absl::ZeroDuration())
        << events;
  }
}

TEST(ReadPauseAfterTest, ABusyReadWithALargeWindowGetsTheConfiguredPause) {
  EXPECT_EQ(ConnectionWorker::ReadPauseAfter(kMany, 1000, kPause), kPause);
  EXPECT_EQ(ConnectionWorker::ReadPauseAfter(2048, 65535, kPause), kPause);
}

TEST(ReadPauseAfterTest, SmallWindowsShortenThePause) {
  // Prefetch 20: the broker may send only 20 more during the pause, so the
  // pause must be short enough not to leave it waiting for acks.
  EXPECT_EQ(ConnectionWorker::ReadPauseAfter(kMany, 20, kPause),
            20 * ConnectionWorker::kReadPausePerWindowMessage);
  EXPECT_LT(ConnectionWorker::ReadPauseAfter(kMany, 20, kPause),
            absl::Microseconds(100));
  // Two streams of 100 on one connection: their windows add up.
  EXPECT_EQ(ConnectionWorker::ReadPauseAfter(kMany, 200, kPause),
            absl::Microseconds(400));
}

TEST(ReadPauseAfterTest, NoWindowOrNoPauseNeverPauses) {
  EXPECT_EQ(ConnectionWorker::ReadPauseAfter(2048, 0, kPause),
            absl::ZeroDuration());
  EXPECT_EQ(ConnectionWorker::ReadPauseAfter(2048, 1000, absl::ZeroDuration()),
            absl::ZeroDuration());
}

// Records a worker's lifecycle callbacks ("connected", "disconnected:
// <code>", "blocked: <reason>", "unblocked").
class RecordingObserver : public ConnectionWorker::Observer {
 public:
  void OnConnected() override { events.Put("connected"); }
  void OnDisconnected(const absl::Status& why) override {
    events.Put(
        absl::StrCat("disconnected: ", absl::StatusCodeToString(why.code())));
  }
  void OnBlocked(bool blocked, const std::string& reason) override {
    events.Put(blocked ? "blocked: " + reason : "unblocked");
  }
  Mailbox<std::string> events;
};

// Records one channel's events.
class RecordingHandler : public ConnectionWorker::ChannelHandler {
 public:
  void OnChannelEvent(amqp::Event& event) override {
    events.Put(amqp::EventTypeName(event.type));
  }
  Mailbox<std::string> events;
};

class ConnectionWorkerTest : public ::testing::Test {
 protected:
  void Start(std::vector<amqp::BrokerAddress> brokers,
             absl::Duration connect_timeout = kWaitTimeout) {
    ConnectionWorker::Options o =
        FakeWorkerOptions(broker_, std::move(brokers));
    o.open.connect_timeout = connect_timeout;
    worker_ = std::make_unique<ConnectionWorker>(o, [] {});
    worker_->AddObserver(&observer_);  // before Start: allowed
    worker_->Start();
  }
  void TearDown() override {
    if (worker_ != nullptr) worker_->Stop();
  }
  WorkerSnapshot::State state() { return worker_->Snapshot().state; }
  // A handler that outlives the worker's calls into it (TearDown stops the
  // worker first).
  RecordingHandler& NewHandler() {
    handlers_.push_back(std::make_unique<RecordingHandler>());
    return *handlers_.back();
  }

  FakeBroker broker_;
  RecordingObserver observer_;
  std::vector<std::unique_ptr<RecordingHandler>> handlers_;
  std::unique_ptr<ConnectionWorker> worker_;
};

TEST_F(ConnectionWorkerTest, TriesTheBrokersOfTheListInOrder) {
  broker_.FailOpens("node1:5672", absl::UnavailableError("refused"));
  Start({FakeAddress(1), FakeAddress(2), FakeAddress(3)});
  worker_->Enable();
  EXPECT_EQ(observer_.events.Take(), "connected");
  EXPECT_EQ(broker_.attempts(),
            (std::vector<std::string>{"node1:5672", "node2:5672"}));
  WorkerSnapshot s = worker_->Snapshot();
  EXPECT_EQ(s.state, WorkerSnapshot::State::kConnected);
  EXPECT_EQ(s.broker, "node2:5672");
  EXPECT_EQ(s.server.version, "3.10.8-fake");
  EXPECT_NE(s.last_error.find("refused"), std::string::npos) << s.last_error;
  EXPECT_EQ(s.reconnects, 0u);
  // The broker sees the worker's name in the connection name.
  EXPECT_EQ(broker_.peers().at(0)->connection_name(), "amqpgw test");
}

TEST_F(ConnectionWorkerTest, ABlockingOpenDoesNotStallTasksAndTimers) {
  // node1 never answers (a black-holed SYN) for as long as the connect
  // timeout allows: an hour here, so only a worker that keeps running while
  // it waits can pass.
  broker_.BlockOpens("node1:5672");
  Start({FakeAddress(1), FakeAddress(2)}, absl::Hours(1));
  worker_->Enable();
  ASSERT_TRUE(broker_.WaitForBlocked(1));
  EXPECT_EQ(state(), WorkerSnapshot::State::kConnecting);
  EXPECT_EQ(worker_->Snapshot().broker, "node1:5672");

  // Posted tasks and timers run meanwhile.
  Mailbox<std::string> ran;
  worker_->Post([&] {
    ran.Put("task");
    worker_->RunAfter(absl::Milliseconds(1), [&] { ran.Put("timer"); });
    EXPECT_FALSE(worker_->connected());
  });
  EXPECT_EQ(ran.Take(), "task");
  EXPECT_EQ(ran.Take(), "timer");
  EXPECT_EQ(RunOn(*worker_, [&] { return worker_->connected(); }), false);
  EXPECT_EQ(broker_.attempts().size(), 1u);

  // node1 gives up (as at its connect timeout): the worker goes on to node2.
  broker_.FailOpens("node1:5672", absl::UnavailableError("timed out"));
  broker_.Unblock("node1:5672");
  EXPECT_EQ(observer_.events.Take(), "connected");
  EXPECT_EQ(broker_.attempts(),
            (std::vector<std::string>{"node1:5672", "node2:5672"}));
  EXPECT_EQ(worker_->Snapshot().broker, "node2:5672");
}

TEST_F(ConnectionWorkerTest, AnOpenThatTimesOutMovesOnToTheNextBroker) {
  broker_.BlockOpens("node1:5672");
  Start({FakeAddress(1), FakeAddress(2)}, absl::Milliseconds(20));
  worker_->Enable();
  EXPECT_EQ(observer_.events.Take(), "connected");
  EXPECT_EQ(broker_.attempts(),
            (std::vector<std::string>{"node1:5672", "node2:5672"}));
}

TEST_F(ConnectionWorkerTest, RetriesFullRoundsWithBackoffUntilOneSucceeds) {
  broker_.FailOpens("node1:5672", absl::UnavailableError("down"));
  broker_.FailOpens("node2:5672", absl::UnavailableError("down"));
  Start({FakeAddress(1), FakeAddress(2)});
  worker_->Enable();
  ASSERT_TRUE(broker_.WaitForAttempts(6));  // three rounds
  std::vector<std::string> attempts = broker_.attempts();
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(attempts[i], i % 2 == 0 ? "node1:5672" : "node2:5672") << i;
  }
  EXPECT_EQ(observer_.events.size(), 0u);
  broker_.ClearFailures("node2:5672");
  EXPECT_EQ(observer_.events.Take(), "connected");
  EXPECT_EQ(worker_->Snapshot().broker, "node2:5672");
}

TEST_F(ConnectionWorkerTest, ALostConnectionIsReopenedOnTheNextBrokerFirst) {
  Start({FakeAddress(1), FakeAddress(2)});
  worker_->Enable();
  EXPECT_EQ(observer_.events.Take(), "connected");
  std::shared_ptr<FakePeer> first = broker_.peers().at(0);
  EXPECT_EQ(first->address().host, "node1");

  first->Drop();
  EXPECT_EQ(observer_.events.Take(), "disconnected: UNAVAILABLE");
  EXPECT_EQ(observer_.events.Take(), "connected");
  EXPECT_EQ(broker_.peers().at(1)->address().host, "node2");
  EXPECT_TRUE(first->destroyed());
  EXPECT_EQ(worker_->Snapshot().reconnects, 1u);

  // And a broker's connection.close is a loss too.
  broker_.peers().at(1)->CloseConnection(320, "CONNECTION_FORCED - shutdown");
  EXPECT_EQ(observer_.events.Take(), "disconnected: UNAVAILABLE");
  EXPECT_EQ(observer_.events.Take(), "connected");
  EXPECT_EQ(broker_.peers().at(2)->address().host, "node1");
  WorkerSnapshot s = worker_->Snapshot();
  EXPECT_EQ(s.reconnects, 2u);
  EXPECT_NE(s.last_error.find("CONNECTION_FORCED"), std::string::npos)
      << s.last_error;
}

TEST_F(ConnectionWorkerTest, DisableClosesGracefullyAndTellsObservers) {
  Start({FakeAddress(1)});
  worker_->Enable();
  EXPECT_EQ(observer_.events.Take(), "connected");
  amqpgw::Notification done;
  worker_->Disable(absl::FailedPreconditionError("Disconnect"),
                   [&] { done.Notify(); });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWaitTimeout));
  EXPECT_EQ(observer_.events.Take(), "disconnected: FAILED_PRECONDITION");
  EXPECT_TRUE(broker_.peers().at(0)->closed_by_gateway());
  EXPECT_EQ(state(), WorkerSnapshot::State::kIdle);
}

TEST_F(ConnectionWorkerTest, AConnectionThatOpensAfterDisableIsClosed) {
  broker_.BlockOpens("node1:5672");
  Start({FakeAddress(1)});
  worker_->Enable();
  ASSERT_TRUE(broker_.WaitForBlocked(1));
  amqpgw::Notification disabled;
  worker_->Disable(absl::FailedPreconditionError("Disconnect"),
                   [&] { disabled.Notify(); });
  // Disable does not wait for the open.
  ASSERT_TRUE(disabled.WaitForNotificationWithTimeout(kWaitTimeout));
  EXPECT_EQ(state(), WorkerSnapshot::State::kIdle);
  broker_.Unblock("node1:5672");
  std::shared_ptr<FakePeer> peer = broker_.WaitForPeer("test");
  ASSERT_NE(peer, nullptr);
  ASSERT_TRUE(peer->WaitForDestroyed());
  EXPECT_TRUE(peer->closed_by_gateway());
  EXPECT_FALSE(RunOn(*worker_, [&] { return worker_->connected(); }));
  EXPECT_EQ(observer_.events.size(), 0u);
  EXPECT_EQ(state(), WorkerSnapshot::State::kIdle);
}

TEST_F(ConnectionWorkerTest, EnableAgainWhileAnOpenRunsUsesThatOpen) {
  broker_.BlockOpens("node1:5672");
  Start({FakeAddress(1)});
  worker_->Enable();
  ASSERT_TRUE(broker_.WaitForBlocked(1));
  worker_->Disable(absl::FailedPreconditionError("Disconnect"), [] {});
  worker_->Enable();
  RunOn(*worker_, [] {});
  broker_.Unblock("node1:5672");
  EXPECT_EQ(observer_.events.Take(), "connected");
  EXPECT_EQ(broker_.attempts().size(), 1u);
}

TEST_F(ConnectionWorkerTest, StopJoinsAnOpenThatIsStillRunning) {
  broker_.BlockOpens("node1:5672");
  Start({FakeAddress(1)}, absl::Milliseconds(50));
  worker_->Enable();
  ASSERT_TRUE(broker_.WaitForBlocked(1));
  worker_->Stop();  // returns once the open gave up (its connect timeout)
  EXPECT_EQ(broker_.peers().size(), 0u);
  worker_.reset();
}

TEST_F(ConnectionWorkerTest, ChannelsAreNumberedReusedAndBounded) {
  FakePeer::Options po;
  po.channel_max = 2;
  broker_.set_peer_options(po);
  Start({FakeAddress(1)});
  worker_->Enable();
  EXPECT_EQ(observer_.events.Take(), "connected");
  RecordingHandler& a = NewHandler();
  RecordingHandler& b = NewHandler();
  RecordingHandler& c = NewHandler();
  auto opened = RunOn(*worker_, [&] {
    std::vector<absl::StatusOr<uint16_t>> out;
    out.push_back(worker_->OpenChannel(&a));
    out.push_back(worker_->OpenChannel(&b));
    out.push_back(worker_->OpenChannel(&c));
    return out;
  });
  EXPECT_EQ(*opened[0], 1);
  EXPECT_EQ(*opened[1], 2);
  EXPECT_EQ(opened[2].status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(a.events.Take(), "channel.open-ok");
  EXPECT_EQ(b.events.Take(), "channel.open-ok");
  EXPECT_EQ(RunOn(*worker_, [&] { return worker_->open_channels(); }), 2u);

  // A channel the broker closed is released and its number reused.
  std::shared_ptr<FakePeer> peer = broker_.peers().at(0);
  peer->CloseChannel(1, 406, "PRECONDITION_FAILED - test");
  EXPECT_EQ(a.events.Take(), "channel.close");
  auto reopened = RunOn(*worker_, [&] {
    worker_->ReleaseChannel(1);
    return worker_->OpenChannel(&c);
  });
  EXPECT_EQ(*reopened, 1);
  EXPECT_EQ(c.events.Take(), "channel.open-ok");
  EXPECT_EQ(a.events.size(), 0u);
}

TEST_F(ConnectionWorkerTest, BlockedAndUnblockedReachObserversAndSnapshot) {
  Start({FakeAddress(1)});
  worker_->Enable();
  EXPECT_EQ(observer_.events.Take(), "connected");
  std::shared_ptr<FakePeer> peer = broker_.peers().at(0);
  peer->Block("low on memory");
  EXPECT_EQ(observer_.events.Take(), "blocked: low on memory");
  EXPECT_TRUE(worker_->Snapshot().blocked);
  EXPECT_EQ(worker_->Snapshot().blocked_reason, "low on memory");
  peer->Unblock();
  EXPECT_EQ(observer_.events.Take(), "unblocked");
  EXPECT_FALSE(worker_->Snapshot().blocked);
}

TEST_F(ConnectionWorkerTest, ADroppedSocketFailsSendsAndIsReopened) {
  Start({FakeAddress(1)});
  worker_->Enable();
  EXPECT_EQ(observer_.events.Take(), "connected");
  std::shared_ptr<FakePeer> peer = broker_.peers().at(0);
  peer->Drop("broken pipe");
  RecordingHandler& h = NewHandler();
  // The send fails inside a posted task; the worker notices after it.
  worker_->Post([&] { EXPECT_FALSE(worker_->OpenChannel(&h).ok()); });
  EXPECT_EQ(observer_.events.Take(), "disconnected: UNAVAILABLE");
  EXPECT_EQ(observer_.events.Take(), "connected");
}

using ConnectionWorkerDeathTest = ConnectionWorkerTest;

TEST_F(ConnectionWorkerDeathTest, WorkerOnlyMethodsCheckTheirThread) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Start({FakeAddress(1)});
  worker_->Enable();
  EXPECT_EQ(observer_.events.Take(), "connected");
  EXPECT_DEATH(worker_->connection(), "check failed: InWorkerThread");
}

}  // namespace
}  // namespace amqpgw::core
