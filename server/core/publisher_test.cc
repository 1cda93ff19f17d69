#include "server/core/publisher.h"

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
#include "server/core/stats.h"
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
using testing::Settle;

// One finished batch: its tag (the first body) and every result.
struct Done {
  std::string tag;
  std::vector<absl::Status> results;
};

amqp::OutgoingMessage Message(std::string body, std::string exchange = "",
                              std::string routing_key = "q") {
  amqp::OutgoingMessage m;
  m.exchange = std::move(exchange);
  m.routing_key = std::move(routing_key);
  m.body = std::move(body);
  return m;
}

std::vector<std::string> Bodies(const std::vector<Sent>& sent) {
  std::vector<std::string> out;
  for (const Sent& s : sent) out.push_back(s.message.body);
  return out;
}

class PublisherTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(Publisher::Options()); }
  void Start(Publisher::Options options) {
    worker_ = std::make_unique<ConnectionWorker>(
        FakeWorkerOptions(broker_, {FakeAddress(1), FakeAddress(2)}), [] {});
    publisher_ = std::make_unique<Publisher>(worker_.get(), options, &stats_,
                                             &pending_bytes_);
    worker_->Start();
    worker_->Enable();
    peer_ = ConfirmChannelReady(0);
  }
  void TearDown() override {
    worker_->Stop();
    publisher_.reset();
    worker_.reset();
    EXPECT_EQ(pending_bytes_.load(), 0);
  }

  // The n-th connection, once the publisher's confirm channel is ready.
  std::shared_ptr<FakePeer> ConfirmChannelReady(size_t n) {
    std::shared_ptr<FakePeer> peer = broker_.WaitForPeer("test", n);
    EXPECT_NE(peer, nullptr);
    if (peer == nullptr) return nullptr;
    EXPECT_TRUE(peer->WaitForCount(Sent::Kind::kConfirmSelect, 1));
    Settle(*worker_, *peer);
    return peer;
  }

  uint16_t confirm_channel() {
    return peer_->channel_of(Sent::Kind::kConfirmSelect);
  }

  // Publishes one batch; its results go to done_ tagged with the first body.
  void Publish(std::vector<amqp::OutgoingMessage> messages,
               absl::Duration timeout = absl::Hours(1)) {
    std::string tag = messages.empty() ? "" : messages[0].body;
    auto batch = std::make_shared<PublishBatch>(
        std::move(messages), absl::Now() + timeout,
        [this, tag](PublishBatch& b) {
          Done d{tag, {}};
          for (size_t i = 0; i < b.size(); ++i) {
            d.results.push_back(b.result(i).status);
          }
          done_.Put(std::move(d));
        });
    pending_bytes_.fetch_add(static_cast<int64_t>(batch->bytes()));
    publisher_->Publish(std::move(batch));
  }
  void PublishEach(const std::vector<std::string>& bodies) {
    for (const std::string& b : bodies) Publish({Message(b)});
  }

  FakeBroker broker_;
  Stats stats_;
  std::atomic<int64_t> pending_bytes_{0};
  std::unique_ptr<ConnectionWorker> worker_;
  std::unique_ptr<Publisher> publisher_;
  std::shared_ptr<FakePeer> peer_;
  Mailbox<Done> done_;
};

TEST_F(PublisherTest, OpensAConfirmChannelAndPublishesInOrder) {
  PublishEach({"m1", "m2", "m3"});
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kPublish, 3));
  std::vector<Sent> sent = peer_->sent(Sent::Kind::kPublish);
  EXPECT_EQ(Bodies(sent), (std::vector<std::string>{"m1", "m2", "m3"}));
  for (size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(sent[i].channel, confirm_channel());
    EXPECT_EQ(sent[i].seq, i + 1);
    EXPECT_TRUE(sent[i].message.mandatory);
  }
  // Nothing is answered before its confirm.
  EXPECT_TRUE(Settle(*worker_, *peer_));
  EXPECT_EQ(done_.size(), 0u);
  EXPECT_EQ(stats_.Snapshot().unconfirmed, 3u);
  peer_->Confirm(confirm_channel(), 3, /*multiple=*/true);
  ASSERT_TRUE(done_.WaitForSize(3));
  EXPECT_EQ(stats_.Snapshot().confirmed, 3u);
  EXPECT_EQ(stats_.Snapshot().unconfirmed, 0u);
}

TEST_F(PublisherTest, ConfirmsCompleteMessagesInConfirmOrderWithMultiple) {
  PublishEach({"m1", "m2", "m3", "m4", "m5"});
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kPublish, 5));
  uint16_t ch = confirm_channel();
  peer_->Confirm(ch, 3, /*multiple=*/true);  // m1..m3
  peer_->Confirm(ch, 5);                     // m5 alone
  peer_->Confirm(ch, 4);                     // then m4
  std::vector<std::string> order;
  for (int i = 0; i < 5; ++i) {
    std::optional<Done> d = done_.Take();
    ASSERT_TRUE(d.has_value());
    EXPECT_TRUE(d->results.at(0).ok()) << d->tag << ": " << d->results[0];
    order.push_back(d->tag);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"m1", "m2", "m3", "m5", "m4"}));
  // A duplicate or out-of-range confirm changes nothing.
  peer_->Confirm(ch, 4);
  peer_->Confirm(ch, 99, /*multiple=*/true);
  EXPECT_TRUE(Settle(*worker_, *peer_));
  EXPECT_EQ(done_.size(), 0u);
  EXPECT_EQ(stats_.Snapshot().confirmed, 5u);
}

TEST_F(PublisherTest, ANackFailsOnlyTheMessagesItCovers) {
  Publish({Message("a1"), Message("a2"), Message("a3"), Message("a4")});
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kPublish, 4));
  uint16_t ch = confirm_channel();
  peer_->Confirm(ch, 1);
  peer_->NackPublish(ch, 3, /*multiple=*/true);  // a2, a3
  peer_->Confirm(ch, 4);
  std::optional<Done> d = done_.Take();
  ASSERT_TRUE(d.has_value());
  ASSERT_EQ(d->results.size(), 4u);
  EXPECT_TRUE(d->results[0].ok());
  EXPECT_EQ(d->results[1].code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(d->results[2].code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(d->results[1].message().find("basic.nack"), std::string::npos);
  EXPECT_TRUE(d->results[3].ok());
  CountersSnapshot c = stats_.Snapshot();
  EXPECT_EQ(c.nacked, 2u);
  EXPECT_EQ(c.confirmed, 2u);
  EXPECT_EQ(c.unconfirmed, 0u);
}

TEST_F(PublisherTest, AReturnFollowedByItsConfirmFailsThatMessageOnly) {
  // Two messages alike: the return (no sequence number) belongs to the
  // oldest unsettled one.
  PublishEach({"r1", "r2"});
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kPublish, 2));
  uint16_t ch = confirm_channel();
  peer_->Return(ch, 1);
  peer_->Confirm(ch, 1);
  peer_->Confirm(ch, 2);
  std::optional<Done> first = done_.Take();
  std::optional<Done> second = done_.Take();
  ASSERT_TRUE(first.has_value() && second.has_value());
  EXPECT_EQ(first->tag, "r1");
  EXPECT_EQ(first->results[0].code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(first->results[0].message().find("NO_ROUTE"), std::string::npos)
      << first->results[0];
  EXPECT_EQ(second->tag, "r2");
  EXPECT_TRUE(second->results[0].ok()) << second->results[0];
  CountersSnapshot c = stats_.Snapshot();
  EXPECT_EQ(c.returned, 1u);
  EXPECT_EQ(c.confirmed, 1u);
}

TEST_F(PublisherTest, UnconfirmedMessagesAreRepublishedAfterALostConnection) {
  PublishEach({"m1", "m2", "m3", "m4", "m5"});
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kPublish, 5));
  uint16_t ch = confirm_channel();
  peer_->Confirm(ch, 2, /*multiple=*/true);
  ASSERT_TRUE(done_.WaitForSize(2));
  peer_->Drop();

  // The next connection (the second node) gets m3..m5 again, in order, and
  // never m1 or m2, which the broker confirmed.
  std::shared_ptr<FakePeer> next = ConfirmChannelReady(1);
  ASSERT_NE(next, nullptr);
  EXPECT_EQ(next->address().host, "node2");
  ASSERT_TRUE(next->WaitForCount(Sent::Kind::kPublish, 3));
  EXPECT_TRUE(Settle(*worker_, *next));
  std::vector<Sent> again = next->sent(Sent::Kind::kPublish);
  EXPECT_EQ(Bodies(again), (std::vector<std::string>{"m3", "m4", "m5"}));
  EXPECT_EQ(again[0].seq, 1u);  // a new channel counts from 1
  EXPECT_EQ(stats_.Snapshot().unconfirmed, 3u);

  next->Confirm(next->channel_of(Sent::Kind::kConfirmSelect), 3, true);
  ASSERT_TRUE(done_.WaitForSize(5));
  for (const Done& d : done_.TakeAll()) {
    EXPECT_TRUE(d.results[0].ok()) << d.tag << ": " << d.results[0];
  }
  CountersSnapshot c = stats_.Snapshot();
  EXPECT_EQ(c.confirmed, 5u);
  EXPECT_EQ(c.unconfirmed, 0u);
}

TEST_F(PublisherTest, QueuedMessagesWaitForTheConnection) {
  // While no connection is up (the next open is held), messages queue.
  broker_.BlockOpens("node2:5672");
  peer_->Drop();
  ASSERT_TRUE(broker_.WaitForBlocked(1));
  PublishEach({"w1", "w2"});
  RunOn(*worker_, [] {});
  EXPECT_EQ(done_.size(), 0u);
  broker_.Unblock("node2:5672");
  std::shared_ptr<FakePeer> next = ConfirmChannelReady(1);
  ASSERT_TRUE(next->WaitForCount(Sent::Kind::kPublish, 2));
  EXPECT_EQ(Bodies(next->sent(Sent::Kind::kPublish)),
            (std::vector<std::string>{"w1", "w2"}));
  next->Confirm(next->channel_of(Sent::Kind::kConfirmSelect), 2, true);
  ASSERT_TRUE(done_.WaitForSize(2));
}

// confirm_window 2.
class PublisherWindowTest : public PublisherTest {
 protected:
  void SetUp() override {
    Publisher::Options o;
    o.confirm_window = 2;
    Start(o);
  }
};

TEST_F(PublisherWindowTest, TheConfirmWindowBoundsMessagesInFlight) {
  PublishEach({"m1", "m2", "m3", "m4"});
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kPublish, 2));
  EXPECT_TRUE(Settle(*worker_, *peer_));
  EXPECT_EQ(peer_->count(Sent::Kind::kPublish), 2u);
  peer_->Confirm(confirm_channel(), 1);
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kPublish, 3));
  EXPECT_TRUE(Settle(*worker_, *peer_));
  EXPECT_EQ(peer_->count(Sent::Kind::kPublish), 3u);
  peer_->Confirm(confirm_channel(), 3, true);
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kPublish, 4));
  peer_->Confirm(confirm_channel(), 4);
  ASSERT_TRUE(done_.WaitForSize(4));
}

TEST_F(PublisherTest, AnUnknownExchangeIsCheckedOnceOnASecondChannel) {
  peer_->Refuse(Sent::Kind::kExchangeDeclare, 404,
                "NOT_FOUND - no exchange 'missing' in vhost '/'", "missing");
  Publish({Message("x1", "orders")});
  Publish({Message("bad", "missing")});
  Publish({Message("x2", "orders")});
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kPublish, 2));
  std::optional<Done> bad = done_.Take();
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->tag, "bad");
  EXPECT_EQ(bad->results[0].code(), absl::StatusCode::kNotFound);
  EXPECT_NE(bad->results[0].message().find("exchange 'missing' does not exist"),
            std::string::npos)
      << bad->results[0];
  // The checks: passive, on a channel other than the confirm channel,
  // one per exchange.
  std::vector<Sent> checks = peer_->sent(Sent::Kind::kExchangeDeclare);
  ASSERT_EQ(checks.size(), 2u);
  EXPECT_EQ(checks[0].name, "orders");
  EXPECT_TRUE(checks[0].exchange.passive);
  EXPECT_NE(checks[0].channel, confirm_channel());
  EXPECT_EQ(checks[1].name, "missing");
  EXPECT_EQ(Bodies(peer_->sent(Sent::Kind::kPublish)),
            (std::vector<std::string>{"x1", "x2"}));
  peer_->Confirm(confirm_channel(), 2, true);
  ASSERT_TRUE(done_.WaitForSize(2));
  for (const Done& d : done_.TakeAll()) EXPECT_TRUE(d.results[0].ok());
}

TEST_F(PublisherTest, TheDeadlineAnswersWhatTheBrokerDidNotConfirm) {
  Publish({Message("late")}, absl::Milliseconds(20));
  std::optional<Done> d = done_.Take();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->results[0].code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(d->results[0].message().find("may or may not"), std::string::npos)
      << d->results[0];
  // Its confirm, arriving after, changes nothing.
  peer_->Confirm(confirm_channel(), 1);
  EXPECT_TRUE(Settle(*worker_, *peer_));
  EXPECT_EQ(done_.size(), 0u);
  EXPECT_EQ(stats_.Snapshot().unconfirmed, 0u);
}

TEST_F(PublisherTest, WithoutABrokerTheDeadlineAnswersUnavailable) {
  broker_.FailOpens("node1:5672", absl::UnavailableError("refused"));
  broker_.FailOpens("node2:5672", absl::UnavailableError("refused"));
  peer_->Drop();
  ASSERT_TRUE(broker_.WaitForAttempts(3));
  Publish({Message("lost")}, absl::Milliseconds(20));
  std::optional<Done> d = done_.Take();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->results[0].code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(d->results[0].message().find("not published"), std::string::npos)
      << d->results[0];
}

TEST_F(PublisherTest, ABlockedBrokerHoldsPublishesUntilUnblocked) {
  peer_->Block("low on memory");
  EXPECT_TRUE(Settle(*worker_, *peer_));
  PublishEach({"b1"});
  EXPECT_TRUE(Settle(*worker_, *peer_));
  EXPECT_EQ(peer_->count(Sent::Kind::kPublish), 0u);
  peer_->Unblock();
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kPublish, 1));
  peer_->Confirm(confirm_channel(), 1);
  ASSERT_TRUE(done_.WaitForSize(1));
}

TEST_F(PublisherTest, ACancelledCallIsNotPublished) {
  auto batch = std::make_shared<PublishBatch>(
      std::vector<amqp::OutgoingMessage>{Message("c1")},
      absl::Now() + absl::Hours(1), [this](PublishBatch& b) {
        done_.Put(Done{"c1", {b.result(0).status}});
      });
  batch->set_cancelled([] { return true; });
  pending_bytes_.fetch_add(static_cast<int64_t>(batch->bytes()));
  publisher_->Publish(batch);
  std::optional<Done> d = done_.Take();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->results[0].code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(Settle(*worker_, *peer_));
  EXPECT_EQ(peer_->count(Sent::Kind::kPublish), 0u);
}

TEST_F(PublisherWindowTest, DrainWaitsForConfirmsAndFailsWhatIsQueued) {
  PublishEach({"d1", "d2", "d3"});
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kPublish, 2));
  amqpgw::Notification drained;
  publisher_->Drain(absl::Now() + absl::Hours(1),
                    absl::FailedPreconditionError("disconnecting"),
                    [&] { drained.Notify(); });
  // d3 never left the queue: it fails with the drain's reason.
  std::optional<Done> d3 = done_.Take();
  ASSERT_TRUE(d3.has_value());
  EXPECT_EQ(d3->tag, "d3");
  EXPECT_EQ(d3->results[0].code(), absl::StatusCode::kFailedPrecondition);
  peer_->Confirm(confirm_channel(), 1);
  EXPECT_TRUE(Settle(*worker_, *peer_));
  EXPECT_FALSE(drained.HasBeenNotified());  // d2 still unconfirmed
  peer_->Confirm(confirm_channel(), 2);
  ASSERT_TRUE(drained.WaitForNotificationWithTimeout(kWaitTimeout));
  ASSERT_TRUE(done_.WaitForSize(2));
  for (const Done& d : done_.TakeAll()) EXPECT_TRUE(d.results[0].ok());
  EXPECT_EQ(peer_->count(Sent::Kind::kPublish), 2u);
}

TEST_F(PublisherTest, ARequestedCloseFailsWhatIsInFlight) {
  PublishEach({"f1"});
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kPublish, 1));
  amqpgw::Notification closed;
  worker_->Disable(absl::FailedPreconditionError("Disconnect"),
                   [&] { closed.Notify(); });
  ASSERT_TRUE(closed.WaitForNotificationWithTimeout(kWaitTimeout));
  std::optional<Done> d = done_.Take();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->results[0].code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(stats_.Snapshot().unconfirmed, 0u);
}

}  // namespace
}  // namespace amqpgw::core
