#include "server/core/publisher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
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
using testing::kWaitTimeout;
using testing::Mailbox;
using testing::NewFakeWorker;
using testing::OwnCopy;
using testing::RunOn;
using testing::Sent;
using testing::Settle;
using testing::StartAndConnect;

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
    worker_ = NewFakeWorker(broker_, "test", {FakeAddress(1), FakeAddress(2)});
    publisher_ = std::make_unique<Publisher>(worker_.get(), options, &stats_,
                                             &pending_bytes_);
    ASSERT_NE(StartAndConnect(*worker_, broker_), nullptr);
    peer_ = ConfirmChannelReady(0);
    ProveDefaultExchange();
  }

  // A publisher pipelines only messages whose exchange it has seen confirmed
  // once (isolation: the first is sent alone), so the tests of the pipeline
  // start with the default exchange proven: one message, "warm", confirmed
  // with sequence number 1 on the first connection. Seq(n) is the n-th
  // publish of a test there; Published() and Confirmed() leave "warm" out.
  void ProveDefaultExchange() {
    Publish({Message("warm")});
    ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kPublish, 1));
    peer_->Confirm(confirm_channel(), 1);
    std::optional<Done> d = done_.Take();
    ASSERT_TRUE(d.has_value());
    ASSERT_TRUE(d->results[0].ok()) << d->results[0];
  }
  static uint64_t Seq(uint64_t n) { return n + 1; }
  std::vector<Sent> Published() {
    std::vector<Sent> sent = peer_->sent(Sent::Kind::kPublish);
    if (!sent.empty() && sent[0].message.body == "warm") {
      sent.erase(sent.begin());
    }
    return sent;
  }
  bool WaitPublished(size_t n) {
    return peer_->WaitForCount(Sent::Kind::kPublish, n + 1);
  }
  uint64_t Confirmed() { return stats_.Snapshot().confirmed - 1; }
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
            d.results.push_back(OwnCopy(b.result(i).status));
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
  ASSERT_TRUE(WaitPublished(3));
  std::vector<Sent> sent = Published();
  EXPECT_EQ(Bodies(sent), (std::vector<std::string>{"m1", "m2", "m3"}));
  for (size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(sent[i].channel, confirm_channel());
    EXPECT_EQ(sent[i].seq, Seq(i + 1));
    EXPECT_TRUE(sent[i].message.mandatory);
  }
  // Nothing is answered before its confirm.
  EXPECT_TRUE(Settle(*worker_, *peer_));
  EXPECT_EQ(done_.size(), 0u);
  EXPECT_EQ(stats_.Snapshot().unconfirmed, 3u);
  peer_->Confirm(confirm_channel(), Seq(3), /*multiple=*/true);
  ASSERT_TRUE(done_.WaitForSize(3));
  EXPECT_EQ(Confirmed(), 3u);
  EXPECT_EQ(stats_.Snapshot().unconfirmed, 0u);
}

TEST_F(PublisherTest, ConfirmsCompleteMessagesInConfirmOrderWithMultiple) {
  PublishEach({"m1", "m2", "m3", "m4", "m5"});
  ASSERT_TRUE(WaitPublished(5));
  uint16_t ch = confirm_channel();
  peer_->Confirm(ch, Seq(3), /*multiple=*/true);  // m1..m3
  peer_->Confirm(ch, Seq(5));                     // m5 alone
  peer_->Confirm(ch, Seq(4));                     // then m4
  std::vector<std::string> order;
  for (int i = 0; i < 5; ++i) {
    std::optional<Done> d = done_.Take();
    ASSERT_TRUE(d.has_value());
    EXPECT_TRUE(d->results.at(0).ok()) << d->tag << ": " << d->results[0];
    order.push_back(d->tag);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"m1", "m2", "m3", "m5", "m4"}));
  // A duplicate or out-of-range confirm changes nothing.
  peer_->Confirm(ch, Seq(4));
  peer_->Confirm(ch, 99, /*multiple=*/true);
  EXPECT_TRUE(Settle(*worker_, *peer_));
  EXPECT_EQ(done_.size(), 0u);
  EXPECT_EQ(Confirmed(), 5u);
}

TEST_F(PublisherTest, ANackFailsOnlyTheMessagesItCovers) {
  Publish({Message("a1"), Message("a2"), Message("a3"), Message("a4")});
  ASSERT_TRUE(WaitPublished(4));
  uint16_t ch = confirm_channel();
  peer_->Confirm(ch, Seq(1));
  peer_->NackPublish(ch, Seq(3), /*multiple=*/true);  // a2, a3
  peer_->Confirm(ch, Seq(4));
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
  EXPECT_EQ(Confirmed(), 2u);
  EXPECT_EQ(c.unconfirmed, 0u);
}

TEST_F(PublisherTest, OnResultAnswersEachMessageOfABatchAsItIsSettled) {
  // PublishStream's batches: every message is answered at its own confirm,
  // not when the batch's last one is.
  Mailbox<std::string> results;
  auto batch = std::make_shared<PublishBatch>(
      std::vector<amqp::OutgoingMessage>{Message("b1"), Message("b2"),
                                         Message("b3")},
      absl::Now() + absl::Hours(1), [this](PublishBatch& b) {
        done_.Put(Done{b.message(0).body, {}});
      });
  batch->set_on_result([&results](PublishBatch& b, size_t i) {
    results.Put(absl::StrCat(b.message(i).body, ":",
                             b.result(i).status.ok() ? "ok" : "failed"));
  });
  pending_bytes_.fetch_add(static_cast<int64_t>(batch->bytes()));
  publisher_->Publish(std::move(batch));
  ASSERT_TRUE(WaitPublished(3));
  uint16_t ch = confirm_channel();
  peer_->Confirm(ch, Seq(2));
  EXPECT_EQ(results.Take(), "b2:ok");
  EXPECT_TRUE(Settle(*worker_, *peer_));
  EXPECT_EQ(results.size(), 0u);
  EXPECT_EQ(done_.size(), 0u);
  peer_->NackPublish(ch, Seq(1));
  EXPECT_EQ(results.Take(), "b1:failed");
  EXPECT_EQ(done_.size(), 0u);
  peer_->Confirm(ch, Seq(3));
  EXPECT_EQ(results.Take(), "b3:ok");
  std::optional<Done> d = done_.Take();  // after the last one's result
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->tag, "b1");
}

TEST_F(PublisherTest, OnBrokerSettledRefillsTheWindowBeforeTheAnswers) {
  // PublishStream keeps a window of messages at the broker: a confirm tells
  // the batch how many left it, the batch queues more there, and those are
  // written before the answers of the confirmed ones are made.
  std::vector<std::string> events;  // the worker thread's, until Settle
  std::shared_ptr<PublishBatch> refill;
  auto batch = std::make_shared<PublishBatch>(
      std::vector<amqp::OutgoingMessage>{Message("b1"), Message("b2"),
                                         Message("b3")},
      absl::Now() + absl::Hours(1), [this](PublishBatch& b) {
        done_.Put(Done{b.message(0).body, {}});
      });
  batch->set_on_broker_settled([&](PublishBatch&, size_t count) {
    events.push_back(absl::StrCat("left the broker: ", count));
    if (refill == nullptr) return;
    pending_bytes_.fetch_add(static_cast<int64_t>(refill->bytes()));
    publisher_->PublishHere(std::move(refill));
  });
  batch->set_on_result([&](PublishBatch& b, size_t i) {
    events.push_back(absl::StrCat(b.message(i).body, " answered, ",
                                  b.result(i).settled_by_broker ? "" : "not ",
                                  "by the broker, after ", Published().size(),
                                  " writes"));
  });
  refill = std::make_shared<PublishBatch>(
      std::vector<amqp::OutgoingMessage>{Message("r1"), Message("r2")},
      absl::Now() + absl::Hours(1), [this](PublishBatch& b) {
        done_.Put(Done{b.message(0).body, {}});
      });
  pending_bytes_.fetch_add(static_cast<int64_t>(batch->bytes()));
  publisher_->Publish(std::move(batch));
  ASSERT_TRUE(WaitPublished(3));
  uint16_t ch = confirm_channel();
  peer_->Confirm(ch, Seq(2), /*multiple=*/true);  // b1, b2
  ASSERT_TRUE(WaitPublished(5));
  ASSERT_TRUE(Settle(*worker_, *peer_));
  EXPECT_EQ(Bodies(Published()),
            (std::vector<std::string>{"b1", "b2", "b3", "r1", "r2"}));
  // A nack is the broker's settlement too.
  peer_->NackPublish(ch, Seq(3));
  ASSERT_TRUE(done_.WaitForSize(1));
  peer_->Confirm(ch, Seq(5), /*multiple=*/true);
  ASSERT_TRUE(done_.WaitForSize(2));
  EXPECT_EQ(events, (std::vector<std::string>{
                        "left the broker: 2",
                        "b1 answered, by the broker, after 5 writes",
                        "b2 answered, by the broker, after 5 writes",
                        "left the broker: 1",
                        "b3 answered, by the broker, after 5 writes",
                    }));
}

TEST_F(PublisherTest, WhatTheGatewaySettlesIsNotCountedAsLeavingTheBroker) {
  // Expired before its confirm: answered by the gateway, and its confirm,
  // arriving after, counts nothing (a window must not be freed twice).
  std::vector<std::string> events;
  auto batch = std::make_shared<PublishBatch>(
      std::vector<amqp::OutgoingMessage>{Message("late")},
      absl::Now() + absl::Milliseconds(20), [this](PublishBatch& b) {
        done_.Put(Done{b.message(0).body, {}});
      });
  batch->set_on_broker_settled([&](PublishBatch&, size_t count) {
    events.push_back(absl::StrCat("left the broker: ", count));
  });
  batch->set_on_result([&](PublishBatch& b, size_t i) {
    events.push_back(absl::StrCat(
        b.message(i).body, ": ",
        b.result(i).status.code() == absl::StatusCode::kDeadlineExceeded
            ? "expired"
            : "other",
        b.result(i).settled_by_broker ? ", by the broker" : ""));
  });
  pending_bytes_.fetch_add(static_cast<int64_t>(batch->bytes()));
  publisher_->Publish(std::move(batch));
  ASSERT_TRUE(done_.WaitForSize(1));
  peer_->Confirm(confirm_channel(), Seq(1));
  ASSERT_TRUE(Settle(*worker_, *peer_));
  EXPECT_EQ(events, (std::vector<std::string>{"late: expired"}));
}

TEST_F(PublisherTest, AReturnFollowedByItsConfirmFailsThatMessageOnly) {
  // Two messages alike: the return (no sequence number) belongs to the
  // oldest unsettled one.
  PublishEach({"r1", "r2"});
  ASSERT_TRUE(WaitPublished(2));
  uint16_t ch = confirm_channel();
  peer_->Return(ch, Seq(1));
  peer_->Confirm(ch, Seq(1));
  peer_->Confirm(ch, Seq(2));
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
  EXPECT_EQ(Confirmed(), 1u);
}

TEST_F(PublisherTest, AReturnWithoutMessageIdsFindsItsMessageByBody) {
  // No message_id (the default): the second message is returned while the
  // first, to the same routing key, is still unconfirmed (a headers
  // exchange routes by headers, say). The body tells them apart.
  PublishEach({"routed", "returned"});
  ASSERT_TRUE(WaitPublished(2));
  uint16_t ch = confirm_channel();
  peer_->Return(ch, Seq(2));
  peer_->Confirm(ch, Seq(2));
  peer_->Confirm(ch, Seq(1));
  std::optional<Done> first = done_.Take();
  std::optional<Done> second = done_.Take();
  ASSERT_TRUE(first.has_value() && second.has_value());
  EXPECT_EQ(first->tag, "returned");
  EXPECT_EQ(first->results[0].code(), absl::StatusCode::kFailedPrecondition)
      << first->results[0];
  EXPECT_EQ(second->tag, "routed");
  EXPECT_TRUE(second->results[0].ok()) << second->results[0];
}

TEST_F(PublisherTest, UnconfirmedMessagesAreRepublishedAfterALostConnection) {
  PublishEach({"m1", "m2", "m3", "m4", "m5"});
  ASSERT_TRUE(WaitPublished(5));
  uint16_t ch = confirm_channel();
  peer_->Confirm(ch, Seq(2), /*multiple=*/true);
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
  EXPECT_EQ(Confirmed(), 5u);
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
  ASSERT_TRUE(WaitPublished(2));
  EXPECT_TRUE(Settle(*worker_, *peer_));
  EXPECT_EQ(Published().size(), 2u);
  peer_->Confirm(confirm_channel(), Seq(1));
  ASSERT_TRUE(WaitPublished(3));
  EXPECT_TRUE(Settle(*worker_, *peer_));
  EXPECT_EQ(Published().size(), 3u);
  peer_->Confirm(confirm_channel(), Seq(3), true);
  ASSERT_TRUE(WaitPublished(4));
  peer_->Confirm(confirm_channel(), Seq(4));
  ASSERT_TRUE(done_.WaitForSize(4));
}

TEST_F(PublisherTest, AnUnknownExchangeIsCheckedOnceOnASecondChannel) {
  peer_->Refuse(Sent::Kind::kExchangeDeclare, 404,
                "NOT_FOUND - no exchange 'missing' in vhost '/'", "missing");
  Publish({Message("x1", "orders")});
  Publish({Message("bad", "missing")});
  Publish({Message("x2", "orders")});
  // x1, the first message to "orders", goes alone; its confirm lets the rest
  // through.
  ASSERT_TRUE(WaitPublished(1));
  peer_->Confirm(confirm_channel(), Seq(1));
  ASSERT_TRUE(WaitPublished(2));
  std::optional<Done> x1 = done_.Take();
  ASSERT_TRUE(x1.has_value());
  EXPECT_EQ(x1->tag, "x1");
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
  EXPECT_EQ(Bodies(Published()), (std::vector<std::string>{"x1", "x2"}));
  peer_->Confirm(confirm_channel(), Seq(2), true);
  ASSERT_TRUE(done_.WaitForSize(1));
  for (const Done& d : done_.TakeAll()) EXPECT_TRUE(d.results[0].ok());
}

TEST_F(PublisherTest, TheDeadlineAnswersWhatTheBrokerDidNotConfirm) {
  Publish({Message("late")}, absl::Milliseconds(20));
  std::optional<Done> d = done_.Take();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->results[0].code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(d->results[0].message().find("outcome unknown"), std::string::npos)
      << d->results[0];
  // Its confirm, arriving after, changes nothing.
  peer_->Confirm(confirm_channel(), Seq(1));
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
  EXPECT_EQ(Published().size(), 0u);
  peer_->Unblock();
  ASSERT_TRUE(WaitPublished(1));
  peer_->Confirm(confirm_channel(), Seq(1));
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
  EXPECT_EQ(Published().size(), 0u);
}

TEST_F(PublisherWindowTest, DrainWaitsForConfirmsAndFailsWhatIsQueued) {
  PublishEach({"d1", "d2", "d3"});
  ASSERT_TRUE(WaitPublished(2));
  amqpgw::Notification drained;
  publisher_->Drain(absl::Now() + absl::Hours(1),
                    absl::FailedPreconditionError("disconnecting"),
                    [&] { drained.Notify(); });
  // d3 never left the queue: it fails with the drain's reason.
  std::optional<Done> d3 = done_.Take();
  ASSERT_TRUE(d3.has_value());
  EXPECT_EQ(d3->tag, "d3");
  EXPECT_EQ(d3->results[0].code(), absl::StatusCode::kFailedPrecondition);
  peer_->Confirm(confirm_channel(), Seq(1));
  EXPECT_TRUE(Settle(*worker_, *peer_));
  EXPECT_FALSE(drained.HasBeenNotified());  // d2 still unconfirmed
  peer_->Confirm(confirm_channel(), Seq(2));
  ASSERT_TRUE(drained.WaitForNotificationWithTimeout(kWaitTimeout));
  ASSERT_TRUE(done_.WaitForSize(2));
  for (const Done& d : done_.TakeAll()) EXPECT_TRUE(d.results[0].ok());
  EXPECT_EQ(Published().size(), 2u);
}

TEST_F(PublisherTest, ARequestedCloseFailsWhatIsInFlight) {
  PublishEach({"f1"});
  ASSERT_TRUE(WaitPublished(1));
  amqpgw::Notification closed;
  worker_->Disable(absl::FailedPreconditionError("Disconnect"),
                   [&] { closed.Notify(); });
  ASSERT_TRUE(closed.WaitForNotificationWithTimeout(kWaitTimeout));
  // Sent, not confirmed: it may have been published.
  std::optional<Done> d = done_.Take();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->results[0].code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(d->results[0].message().find("outcome unknown"), std::string::npos)
      << d->results[0];
  EXPECT_EQ(stats_.Snapshot().unconfirmed, 0u);
}

// --- One caller's refused message hurts no other (issue 18). ---

// The bodies published on the k-th confirm channel (1-based: after the
// k-th confirm.select and before the next; a reopened channel may get the
// same number).
std::vector<std::string> BodiesOn(const std::vector<Sent>& sent, size_t k) {
  std::vector<std::string> out;
  size_t selects = 0;
  for (const Sent& s : sent) {
    if (s.kind == Sent::Kind::kConfirmSelect) ++selects;
    if (s.kind == Sent::Kind::kPublish && selects == k) {
      out.push_back(s.message.body);
    }
  }
  return out;
}
std::vector<std::string> BodiesOn(FakePeer& peer, size_t k) {
  return BodiesOn(peer.sent(), k);
}

// The results of the finished batches, by tag.
std::map<std::string, absl::Status> ByTag(std::vector<Done> done) {
  std::map<std::string, absl::Status> out;
  for (Done& d : done) out[d.tag] = d.results.at(0);
  return out;
}

TEST_F(PublisherTest, TheFirstMessageToAnExchangeGoesAlone) {
  Publish({Message("o1", "orders"), Message("o2", "orders")});
  PublishEach({"m1"});
  ASSERT_TRUE(WaitPublished(1));
  EXPECT_TRUE(Settle(*worker_, *peer_));
  // Alone: nothing else is sent until the broker has taken it.
  EXPECT_EQ(Bodies(Published()), (std::vector<std::string>{"o1"}));
  peer_->Confirm(confirm_channel(), Seq(1));
  ASSERT_TRUE(WaitPublished(3));
  EXPECT_EQ(Bodies(Published()), (std::vector<std::string>{"o1", "o2", "m1"}));
  peer_->Confirm(confirm_channel(), Seq(3), /*multiple=*/true);
  ASSERT_TRUE(done_.WaitForSize(2));
  for (const Done& d : done_.TakeAll()) {
    for (const absl::Status& r : d.results) EXPECT_TRUE(r.ok()) << r;
  }
}

TEST_F(PublisherTest, ARefusedMessageSentAloneFailsAloneAndIsNotSentAgain) {
  // RabbitMQ answers a publish to an internal exchange by closing the
  // channel (403).
  peer_->Refuse(Sent::Kind::kPublish, 403,
                "ACCESS_REFUSED - cannot publish to internal exchange 'in' in "
                "vhost '/'",
                "in");
  Publish({Message("bad", "in")});
  PublishEach({"m1", "m2"});
  std::optional<Done> bad = done_.Take();
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->tag, "bad");
  EXPECT_EQ(bad->results[0].code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(bad->results[0].message().find("internal exchange 'in'"),
            std::string::npos)
      << bad->results[0];
  // The others go out on the reopened channel, and are confirmed.
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kConfirmSelect, 2));
  ASSERT_TRUE(peer_->WaitUntil([&](const std::vector<Sent>& sent) {
    return BodiesOn(sent, 2).size() == 2;
  }));
  EXPECT_EQ(BodiesOn(*peer_, 2), (std::vector<std::string>{"m1", "m2"}));
  peer_->Confirm(confirm_channel(), 2, /*multiple=*/true);
  ASSERT_TRUE(done_.WaitForSize(2));
  for (const Done& d : done_.TakeAll()) EXPECT_TRUE(d.results[0].ok());
  // For a moment the refusal stands for the exchange: another message to it
  // fails at once, without closing the channel again.
  Publish({Message("bad2", "in")});
  std::optional<Done> bad2 = done_.Take();
  ASSERT_TRUE(bad2.has_value());
  EXPECT_EQ(bad2->results[0].code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(bad2->results[0].message().find("not sent"), std::string::npos)
      << bad2->results[0];
  EXPECT_TRUE(Settle(*worker_, *peer_));
  EXPECT_EQ(BodiesOn(*peer_, 1),
            (std::vector<std::string>{"warm", "bad"}));  // never again
  EXPECT_EQ(BodiesOn(*peer_, 2), (std::vector<std::string>{"m1", "m2"}));
  EXPECT_EQ(peer_->count(Sent::Kind::kConfirmSelect), 2u);
}

TEST_F(PublisherTest, ARefusalOnThePipelineIsPinnedOnTheMessageItNames) {
  // "x" proven: its messages are pipelined with everybody's.
  Publish({Message("x0", "x")});
  ASSERT_TRUE(WaitPublished(1));
  peer_->Confirm(confirm_channel(), Seq(1));
  ASSERT_TRUE(done_.WaitForSize(1));
  done_.TakeAll();
  // Then "x" is deleted under traffic: RabbitMQ routes a1, refuses b1 and
  // discards a2, and the confirm of a1 dies with the channel.
  uint16_t first = confirm_channel();
  PublishEach({"a1"});
  Publish({Message("b1", "x")});
  PublishEach({"a2"});
  ASSERT_TRUE(WaitPublished(4));
  peer_->CloseChannel(first, 404, "NOT_FOUND - no exchange 'x' in vhost '/'",
                      60, 40);
  std::optional<Done> b1 = done_.Take();
  ASSERT_TRUE(b1.has_value());
  EXPECT_EQ(b1->tag, "b1");
  EXPECT_EQ(b1->results[0].code(), absl::StatusCode::kNotFound);
  // a1 and a2 are published again, in order, on the new channel (a1 may
  // now be in its queue twice: at-least-once); b1 never.
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kConfirmSelect, 2));
  uint16_t second = confirm_channel();
  ASSERT_TRUE(peer_->WaitUntil([&](const std::vector<Sent>& sent) {
    return BodiesOn(sent, 2).size() == 2;
  }));
  EXPECT_EQ(BodiesOn(*peer_, 2), (std::vector<std::string>{"a1", "a2"}));
  peer_->Confirm(second, 2, /*multiple=*/true);
  ASSERT_TRUE(done_.WaitForSize(2));
  for (const Done& d : done_.TakeAll()) {
    EXPECT_TRUE(d.results[0].ok()) << d.tag << ": " << d.results[0];
  }
  // The next message to "x" is checked again (and alone).
  Publish({Message("x3", "x")});
  ASSERT_TRUE(peer_->WaitUntil([&](const std::vector<Sent>& sent) {
    size_t checks = 0;
    for (const Sent& s : sent) {
      if (s.kind == Sent::Kind::kExchangeDeclare && s.name == "x") ++checks;
    }
    return checks == 2;
  }));
  ASSERT_TRUE(peer_->WaitUntil([&](const std::vector<Sent>& sent) {
    return BodiesOn(sent, 2).size() == 3;
  }));
  peer_->Confirm(second, 3);
  ASSERT_TRUE(done_.WaitForSize(1));
}

TEST_F(PublisherTest, ACloseNothingPinsMakesSuspectsThatGoAlone) {
  PublishEach({"s1", "s2"});
  ASSERT_TRUE(WaitPublished(2));
  // A reply text the gateway does not know: it cannot tell which one.
  peer_->CloseChannel(confirm_channel(), 406,
                      "PRECONDITION_FAILED - something new", 60, 40);
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kConfirmSelect, 2));
  ASSERT_TRUE(peer_->WaitUntil([&](const std::vector<Sent>& sent) {
    return BodiesOn(sent, 2).size() == 1;
  }));
  EXPECT_TRUE(Settle(*worker_, *peer_));
  EXPECT_EQ(BodiesOn(*peer_, 2), (std::vector<std::string>{"s1"}));
  peer_->Confirm(confirm_channel(), 1);
  ASSERT_TRUE(peer_->WaitUntil([&](const std::vector<Sent>& sent) {
    return BodiesOn(sent, 2).size() == 2;
  }));
  // s2 alone: the close is its.
  peer_->CloseChannel(confirm_channel(), 406,
                      "PRECONDITION_FAILED - something new", 60, 40);
  ASSERT_TRUE(done_.WaitForSize(2));
  std::map<std::string, absl::Status> r = ByTag(done_.TakeAll());
  EXPECT_TRUE(r["s1"].ok()) << r["s1"];
  EXPECT_EQ(r["s2"].code(), absl::StatusCode::kFailedPrecondition) << r["s2"];
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kConfirmSelect, 3));
  EXPECT_TRUE(Settle(*worker_, *peer_));
  EXPECT_EQ(BodiesOn(*peer_, 3).size(), 0u);  // never sent again
}

TEST_F(PublisherTest, AMessageInFlightAtTwoBrokerClosesFailsAsPoison) {
  PublishEach({"i1", "p", "i2"});
  ASSERT_TRUE(WaitPublished(3));
  // The broker cannot handle one of them and closes the connection.
  peer_->CloseConnection(541, "INTERNAL_ERROR");
  std::shared_ptr<FakePeer> second = ConfirmChannelReady(1);
  ASSERT_NE(second, nullptr);
  uint16_t ch = second->channel_of(Sent::Kind::kConfirmSelect);
  // The three are suspects now: sent one at a time.
  ASSERT_TRUE(second->WaitForCount(Sent::Kind::kPublish, 1));
  EXPECT_TRUE(Settle(*worker_, *second));
  EXPECT_EQ(BodiesOn(*second, 1), (std::vector<std::string>{"i1"}));
  second->Confirm(ch, 1);
  ASSERT_TRUE(second->WaitForCount(Sent::Kind::kPublish, 2));
  EXPECT_TRUE(Settle(*worker_, *second));
  EXPECT_EQ(BodiesOn(*second, 1), (std::vector<std::string>{"i1", "p"}));
  // The same again, with p alone in flight: p is the poison.
  second->CloseConnection(541, "INTERNAL_ERROR");
  std::shared_ptr<FakePeer> third = ConfirmChannelReady(2);
  ASSERT_NE(third, nullptr);
  ASSERT_TRUE(third->WaitForCount(Sent::Kind::kPublish, 1));
  EXPECT_TRUE(Settle(*worker_, *third));
  uint16_t ch3 = third->channel_of(Sent::Kind::kConfirmSelect);
  EXPECT_EQ(BodiesOn(*third, 1), (std::vector<std::string>{"i2"}));
  third->Confirm(ch3, 1);
  ASSERT_TRUE(done_.WaitForSize(3));
  std::map<std::string, absl::Status> r = ByTag(done_.TakeAll());
  EXPECT_TRUE(r["i1"].ok()) << r["i1"];
  EXPECT_TRUE(r["i2"].ok()) << r["i2"];
  EXPECT_EQ(r["p"].code(), absl::StatusCode::kInvalidArgument) << r["p"];
  EXPECT_NE(r["p"].message().find("each of the two times"), std::string::npos)
      << r["p"];
}

TEST_F(PublisherTest, AnOperatorsCloseMakesNoSuspects) {
  PublishEach({"c1", "c2"});
  ASSERT_TRUE(WaitPublished(2));
  // 320: rabbitmqctl close_connection, a node shutting down.
  peer_->CloseConnection(320, "CONNECTION_FORCED - closed by the operator");
  std::shared_ptr<FakePeer> next = ConfirmChannelReady(1);
  ASSERT_NE(next, nullptr);
  // Pipelined again at once, not one at a time.
  ASSERT_TRUE(next->WaitForCount(Sent::Kind::kPublish, 2));
  next->Confirm(next->channel_of(Sent::Kind::kConfirmSelect), 2, true);
  ASSERT_TRUE(done_.WaitForSize(2));
  for (const Done& d : done_.TakeAll()) EXPECT_TRUE(d.results[0].ok());
}

TEST_F(PublisherTest, ASocketThatTakesNothingHoldsLargeMessagesBack) {
  // The kernel holds a full buffer the broker does not read: writing on
  // would park the worker inside rabbitmq-c.
  peer_->set_unsent_bytes(Publisher::kMaxUnsentBytes);
  Publish({Message(std::string(Publisher::kUnsentCheckBytes, 'x'))});
  EXPECT_TRUE(Settle(*worker_, *peer_));
  EXPECT_EQ(Published().size(), 0u);
  // The worker still runs its tasks and timers meanwhile.
  EXPECT_TRUE(RunOn(*worker_, [] { return true; }));
  peer_->set_unsent_bytes(0);
  ASSERT_TRUE(WaitPublished(1));
  peer_->Confirm(confirm_channel(), Seq(1));
  ASSERT_TRUE(done_.WaitForSize(1));
}

TEST_F(PublisherTest, TheMessageThatMetABlockIsNeverAnsweredAsFailed) {
  Publish({Message("sent")}, absl::Milliseconds(300));
  ASSERT_TRUE(WaitPublished(1));
  peer_->Block("low on memory");
  EXPECT_TRUE(Settle(*worker_, *peer_));
  Publish({Message("held")}, absl::Milliseconds(100));
  ASSERT_TRUE(done_.WaitForSize(2));
  std::map<std::string, absl::Status> r = ByTag(done_.TakeAll());
  // Sent before the block: RabbitMQ may still route and confirm it.
  EXPECT_EQ(r["sent"].code(), absl::StatusCode::kDeadlineExceeded) << r["sent"];
  EXPECT_NE(r["sent"].message().find("outcome unknown"), std::string::npos)
      << r["sent"];
  EXPECT_NE(r["sent"].message().find("low on memory"), std::string::npos)
      << r["sent"];
  // Never sent: definitely not published.
  EXPECT_EQ(r["held"].code(), absl::StatusCode::kUnavailable) << r["held"];
  EXPECT_NE(r["held"].message().find("not published"), std::string::npos)
      << r["held"];
  EXPECT_EQ(Published().size(), 1u);
}

}  // namespace
}  // namespace amqpgw::core
