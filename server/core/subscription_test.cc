#include "server/core/subscription.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/amqp/testing/fake_connection.h"
#include "server/core/connection_worker.h"
#include "server/core/stats.h"
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
using Tags = std::vector<std::pair<uint16_t, uint64_t>>;

// Records what a stream would see: "subscribed", "paused", "resumed",
// "end: <code>", and the deliveries.
class RecordingSink : public SubscriptionSink {
 public:
  void OnSubscribed(const std::string& subscription_id,
                    const std::string& consumer_tag) override {
    id = subscription_id;
    events.Put("subscribed");
  }
  void OnDelivery(StreamDelivery delivery) override {
    deliveries.Put(std::move(delivery));
  }
  void OnPaused(const std::string& why) override { events.Put("paused"); }
  void OnResumed() override { events.Put("resumed"); }
  void OnDraining(const std::string& why) override {
    events.Put(absl::StrCat("draining: ", why));
  }
  void OnSummary(const SubscriptionCounts& c) override { counts = c; }
  void OnEnd(const absl::Status& status) override {
    end_status = status;
    events.Put(absl::StrCat("end: ", absl::StatusCodeToString(status.code())));
  }

  std::string id;  // written before "subscribed" is put
  absl::Status end_status;
  SubscriptionCounts counts;  // written before the "end: ..." event
  Mailbox<std::string> events;
  Mailbox<StreamDelivery> deliveries;
};

class SubscriptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    worker_ = NewFakeWorker(broker_, "consumer-0");
    pool_ = std::make_unique<ConsumerPool>(
        std::vector<ConnectionWorker*>{worker_.get()}, "gw1", &stats_);
    peer_ = StartAndConnect(*worker_, broker_);
    ASSERT_NE(peer_, nullptr);
  }
  void TearDown() override {
    worker_->Stop();
    pool_.reset();
    worker_.reset();
  }

  // Subscribes and waits until the stream is consuming; the channel is
  // then peer->channel_of(kConsume).
  std::shared_ptr<Subscription> Subscribe(RecordingSink* sink,
                                          AckMode mode = AckMode::kClient,
                                          uint16_t prefetch = 100,
                                          uint64_t max_messages = 0) {
    SubscribeOptions o;
    o.queue = "q";
    o.ack_mode = mode;
    o.prefetch = prefetch;
    o.max_messages = max_messages;
    auto sub = pool_->Subscribe(std::move(o), sink);
    EXPECT_EQ(sink->events.Take(), "subscribed");
    return sub;
  }

  // Delivers bodies on `peer`'s consumer channel and waits until the sink
  // has them; returns their delivery ids.
  std::vector<uint64_t> Deliver(FakePeer& peer, RecordingSink& sink,
                                std::vector<std::string> bodies) {
    uint16_t ch = peer.channel_of(Sent::Kind::kConsume);
    for (std::string& b : bodies) EXPECT_NE(peer.Deliver(ch, std::move(b)), 0u);
    std::vector<uint64_t> ids;
    for (size_t i = 0; i < bodies.size(); ++i) {
      std::optional<StreamDelivery> d = sink.deliveries.Take();
      EXPECT_TRUE(d.has_value());
      if (d.has_value()) ids.push_back(d->delivery_id);
    }
    return ids;
  }

  absl::StatusOr<AckResult> Ack(const std::string& id,
                                std::vector<uint64_t> ids,
                                AckAction action = AckAction::kAck) {
    Mailbox<absl::StatusOr<AckResult>> result;
    pool_->Ack(id, std::move(ids), action,
               [&](absl::StatusOr<AckResult> r) { result.Put(std::move(r)); });
    std::optional<absl::StatusOr<AckResult>> r = result.Take();
    if (!r.has_value()) return absl::DeadlineExceededError("no ack result");
    return *std::move(r);
  }

  // The sent acks and nacks as (tag, multiple) pairs.
  static std::vector<std::pair<uint64_t, bool>> Acks(const FakePeer& peer,
                                                     Sent::Kind kind) {
    std::vector<std::pair<uint64_t, bool>> out;
    for (const Sent& s : peer.sent(kind)) {
      out.emplace_back(s.delivery_tag, s.multiple);
    }
    return out;
  }

  // A sink that outlives the worker's calls into it (TearDown stops the
  // worker first).
  RecordingSink& NewSink() {
    sinks_.push_back(std::make_unique<RecordingSink>());
    return *sinks_.back();
  }

  // Drops `peer`'s connection, expects `sink`'s stream to pause and resume
  // on the next one, and returns that connection's peer, the n-th (nullptr
  // if it did not come).
  std::shared_ptr<FakePeer> DropAndResume(FakePeer& peer, RecordingSink& sink,
                                          size_t n) {
    peer.Drop();
    EXPECT_EQ(sink.events.Take(), "paused");
    EXPECT_EQ(sink.events.Take(), "resumed");
    return broker_.WaitForPeer("consumer-0", n);
  }

  FakeBroker broker_;
  Stats stats_;
  std::vector<std::unique_ptr<RecordingSink>> sinks_;
  std::unique_ptr<ConnectionWorker> worker_;
  std::unique_ptr<ConsumerPool> pool_;
  std::shared_ptr<FakePeer> peer_;
};

TEST_F(SubscriptionTest, OpensAChannelSetsQosAndConsumes) {
  RecordingSink& sink = NewSink();
  auto sub = Subscribe(&sink, AckMode::kAuto, /*prefetch=*/10);
  EXPECT_TRUE(absl::StartsWith(sink.id, "gw1/")) << sink.id;
  std::vector<Sent> qos = peer_->sent(Sent::Kind::kQos);
  ASSERT_EQ(qos.size(), 1u);
  EXPECT_EQ(qos[0].prefetch, 10);
  std::vector<Sent> consume = peer_->sent(Sent::Kind::kConsume);
  ASSERT_EQ(consume.size(), 1u);
  EXPECT_EQ(consume[0].consume.queue, "q");
  EXPECT_FALSE(consume[0].consume.no_ack);
  EXPECT_TRUE(absl::StartsWith(consume[0].consume.consumer_tag, "amqpgw-"));
  EXPECT_EQ(stats_.Snapshot().active_streams, 1u);
  sub->Cancel(absl::CancelledError("done"));
  EXPECT_EQ(sink.events.Take(), "end: CANCELLED");
  EXPECT_EQ(stats_.Snapshot().active_streams, 0u);
  EXPECT_EQ(pool_->active(), 0u);
}

TEST_F(SubscriptionTest, MaxMessagesBelowThePrefetchLowersTheQos) {
  RecordingSink& sink = NewSink();
  auto sub = Subscribe(&sink, AckMode::kAuto, /*prefetch=*/100,
                       /*max_messages=*/3);
  EXPECT_EQ(peer_->sent(Sent::Kind::kQos).at(0).prefetch, 3);
  sub->Cancel(absl::CancelledError("done"));
  EXPECT_EQ(sink.events.Take(), "end: CANCELLED");
}

TEST_F(SubscriptionTest, AutoModeAcksWhatWasHandedOverWithMultiple) {
  RecordingSink& sink = NewSink();
  auto sub = Subscribe(&sink, AckMode::kAuto, /*prefetch=*/8);
  std::vector<uint64_t> ids = Deliver(*peer_, sink, {"a", "b", "c", "d"});
  EXPECT_EQ(ids, (std::vector<uint64_t>{1, 2, 3, 4}));
  // Nothing acked before gRPC took them.
  EXPECT_TRUE(Settle(*worker_, *peer_));
  EXPECT_EQ(peer_->count(Sent::Kind::kAck), 0u);
  // Two of four handed over: a batch (prefetch/4 = 2) is due.
  sub->HandedOver(2);
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kAck, 1));
  // All caught up: acked at once.
  sub->HandedOver(4);
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kAck, 2));
  EXPECT_TRUE(Settle(*worker_, *peer_));  // the task that sent it is over
  EXPECT_EQ(Acks(*peer_, Sent::Kind::kAck),
            (std::vector<std::pair<uint64_t, bool>>{{2, true}, {4, true}}));
  EXPECT_TRUE(peer_->unacked(peer_->channel_of(Sent::Kind::kConsume)).empty());
  EXPECT_EQ(stats_.Snapshot().acked, 4u);
  EXPECT_EQ(stats_.Snapshot().delivered, 4u);
  sub->Cancel(absl::CancelledError("done"));
  EXPECT_EQ(sink.events.Take(), "end: CANCELLED");
}

TEST_F(SubscriptionTest,
       DeliveryIdsSurviveTwoReconnectsAndStaleAcksAreRefused) {
  RecordingSink& sink = NewSink();
  auto sub = Subscribe(&sink);
  // Generation 1: ids 1, 2 are tags 1, 2 of the first channel.
  EXPECT_EQ(Deliver(*peer_, sink, {"a", "b"}), (std::vector<uint64_t>{1, 2}));
  // Generation 2: ids 3, 4 are tags 1, 2 of the next connection's channel.
  std::shared_ptr<FakePeer> second = DropAndResume(*peer_, sink, 1);
  // The broker took a and b back.
  EXPECT_EQ(peer_->requeued(), (Tags{{1, 1}, {1, 2}}));
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(Deliver(*second, sink, {"a", "b"}), (std::vector<uint64_t>{3, 4}));
  // Acks of ids from the lost channel are stale: never sent, never mistaken
  // for tags 1 and 2 of this channel.
  absl::StatusOr<AckResult> r = Ack(sink.id, {1, 2, 3});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->applied, 1u);
  EXPECT_EQ(r->stale_ids, (std::vector<uint64_t>{1, 2}));
  ASSERT_TRUE(second->WaitForCount(Sent::Kind::kAck, 1));
  uint16_t ch2 = second->channel_of(Sent::Kind::kConsume);
  EXPECT_EQ(Acks(*second, Sent::Kind::kAck),
            (std::vector<std::pair<uint64_t, bool>>{{1, true}}));
  EXPECT_EQ(second->unacked(ch2), (std::vector<uint64_t>{2}));

  // Generation 3: id 5 is tag 1 again.
  std::shared_ptr<FakePeer> third = DropAndResume(*second, sink, 2);
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(Deliver(*third, sink, {"b"}), (std::vector<uint64_t>{5}));
  r = Ack(sink.id, {4, 5});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->applied, 1u);
  EXPECT_EQ(r->stale_ids, (std::vector<uint64_t>{4}));
  ASSERT_TRUE(third->WaitForCount(Sent::Kind::kAck, 1));
  EXPECT_EQ(Acks(*third, Sent::Kind::kAck),
            (std::vector<std::pair<uint64_t, bool>>{{1, true}}));
  // No channel was closed for an unknown tag along the way.
  EXPECT_EQ(
      third->open_channels().count(third->channel_of(Sent::Kind::kConsume)),
      1u);
  // An id never delivered is the caller's mistake.
  r = Ack(sink.id, {6});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(stats_.Snapshot().acked, 2u);
  sub->Cancel(absl::CancelledError("done"));
  EXPECT_EQ(sink.events.Take(), "end: CANCELLED");
}

TEST_F(SubscriptionTest, RequeuesGoBackInDeliveryOrder) {
  RecordingSink& sink = NewSink();
  auto sub = Subscribe(&sink);
  uint16_t ch = peer_->channel_of(Sent::Kind::kConsume);
  EXPECT_EQ(Deliver(*peer_, sink, {"a", "b", "c", "d", "e"}),
            (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  // 3 and 1 with 2 still unacked: one nack each, oldest first.
  absl::StatusOr<AckResult> r = Ack(sink.id, {3, 1}, AckAction::kRequeue);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->applied, 2u);
  // 4 and 2, now everything unacked up to 4: one nack, multiple.
  r = Ack(sink.id, {4, 2}, AckAction::kRequeue);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kNack, 3));
  std::vector<Sent> nacks = peer_->sent(Sent::Kind::kNack);
  EXPECT_EQ(Acks(*peer_, Sent::Kind::kNack),
            (std::vector<std::pair<uint64_t, bool>>{
                {1, false}, {3, false}, {4, true}}));
  for (const Sent& n : nacks) EXPECT_TRUE(n.requeue);
  EXPECT_EQ(peer_->requeued(), (Tags{{ch, 1}, {ch, 3}, {ch, 2}, {ch, 4}}));
  // A reject does not requeue.
  r = Ack(sink.id, {5}, AckAction::kReject);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kNack, 4));
  EXPECT_FALSE(peer_->sent(Sent::Kind::kNack).back().requeue);
  EXPECT_TRUE(peer_->unacked(ch).empty());
  EXPECT_EQ(peer_->requeued().size(), 4u);
  // Settled ids are stale now.
  r = Ack(sink.id, {1});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stale_ids, (std::vector<uint64_t>{1}));
  CountersSnapshot c = stats_.Snapshot();
  EXPECT_EQ(c.requeued, 4u);
  EXPECT_EQ(c.rejected, 1u);
  EXPECT_EQ(c.acked, 0u);
  sub->Cancel(absl::CancelledError("done"));
  EXPECT_EQ(sink.events.Take(), "end: CANCELLED");
}

TEST_F(SubscriptionTest, CancelAcksWhatWasHandedOverThenClosesTheChannel) {
  RecordingSink& sink = NewSink();
  auto sub = Subscribe(&sink, AckMode::kAuto, /*prefetch=*/100);
  uint16_t ch = peer_->channel_of(Sent::Kind::kConsume);
  Deliver(*peer_, sink, {"a", "b", "c"});
  sub->HandedOver(2);  // a batch of 25 is not due yet
  sub->Cancel(absl::CancelledError("client went away"));
  EXPECT_EQ(sink.events.Take(), "end: CANCELLED");
  EXPECT_EQ(Acks(*peer_, Sent::Kind::kAck),
            (std::vector<std::pair<uint64_t, bool>>{{2, true}}));
  EXPECT_EQ(peer_->count(Sent::Kind::kChannelClose), 1u);
  // c, never handed over, went back to the queue.
  EXPECT_EQ(peer_->requeued(), (Tags{{ch, 3}}));
  // Acks after the end are refused.
  EXPECT_EQ(Ack(sink.id, {1}).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SubscriptionTest, MaxMessagesCancelsTheConsumerAndEndsOk) {
  RecordingSink& sink = NewSink();
  auto sub = Subscribe(&sink, AckMode::kAuto, /*prefetch=*/10,
                       /*max_messages=*/2);
  uint16_t ch = peer_->channel_of(Sent::Kind::kConsume);
  // The worker waits until all three are sent: else it could read the
  // first two and cancel before "c" leaves, and "c" would never be sent.
  // Posting is not enough: the worker may read "a" and "b" before it runs
  // the posted task, so the test waits until the worker is inside it.
  absl::Notification holding;
  absl::Notification sent;
  worker_->Post([&holding, &sent] {
    holding.Notify();
    sent.WaitForNotification();
  });
  holding.WaitForNotification();
  peer_->Deliver(ch, "a");
  peer_->Deliver(ch, "b");
  uint64_t c = peer_->Deliver(ch, "c");  // in flight when the gateway cancels
  sent.Notify();
  ASSERT_EQ(c, 3u);
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kCancel, 1));
  EXPECT_TRUE(Settle(*worker_, *peer_));
  EXPECT_EQ(sink.deliveries.size(), 2u);
  sub->HandedOver(2);
  EXPECT_EQ(sink.events.Take(), "end: OK");
  EXPECT_EQ(Acks(*peer_, Sent::Kind::kAck),
            (std::vector<std::pair<uint64_t, bool>>{{2, true}}));
  // The stream may end before its channel's close reaches the broker.
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kChannelClose, 1));
  EXPECT_EQ(peer_->requeued(), (Tags{{ch, 3}}));
}

TEST_F(SubscriptionTest, ABrokerCancelEndsTheStreamAborted) {
  RecordingSink& sink = NewSink();
  auto sub = Subscribe(&sink);
  peer_->CancelConsumer(peer_->channel_of(Sent::Kind::kConsume));
  EXPECT_EQ(sink.events.Take(), "end: ABORTED");
  EXPECT_NE(sink.end_status.message().find("cancelled the consumer"),
            std::string::npos)
      << sink.end_status;
}

TEST_F(SubscriptionTest, RefusedSubscribesEndWithTheBrokersReason) {
  peer_->Refuse(Sent::Kind::kConsume, 404, "NOT_FOUND - no queue 'q'");
  peer_->Refuse(Sent::Kind::kConsume, 403,
                "ACCESS_REFUSED - queue 'q' in exclusive use");
  for (absl::StatusCode want :
       {absl::StatusCode::kNotFound, absl::StatusCode::kFailedPrecondition}) {
    RecordingSink& sink = NewSink();
    SubscribeOptions o;
    o.queue = "q";
    pool_->Subscribe(std::move(o), &sink);
    std::optional<std::string> e = sink.events.Take();
    EXPECT_EQ(e, absl::StrCat("end: ", absl::StatusCodeToString(want)));
  }
  EXPECT_EQ(pool_->active(), 0u);
  EXPECT_EQ(stats_.Snapshot().active_streams, 0u);
}

TEST_F(SubscriptionTest, AckErrorsSayWhatIsWrong) {
  RecordingSink& sink = NewSink();
  auto sub = Subscribe(&sink, AckMode::kAuto);
  EXPECT_EQ(Ack(sink.id, {1}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Ack("gw1/nope", {1}).status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<AckResult> other = Ack("gw2/abc", {1});
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(other.status().message().find("gw2"), std::string::npos);
  sub->Cancel(absl::CancelledError("done"));
  EXPECT_EQ(sink.events.Take(), "end: CANCELLED");
}

TEST_F(SubscriptionTest, ARequestedCloseEndsStreamsUnavailable) {
  RecordingSink& sink = NewSink();
  auto sub = Subscribe(&sink);
  worker_->Disable(absl::FailedPreconditionError("Disconnect"), [] {});
  EXPECT_EQ(sink.events.Take(), "end: UNAVAILABLE");
  EXPECT_EQ(pool_->active(), 0u);
}

TEST_F(SubscriptionTest, WithoutABrokerTheSubscribeDeadlineEndsTheStream) {
  broker_.FailOpens("node1:5672", absl::UnavailableError("refused"));
  peer_->Drop();
  ASSERT_TRUE(broker_.WaitForAttempts(2));
  RecordingSink& sink = NewSink();
  SubscribeOptions o;
  o.queue = "q";
  o.subscribe_deadline = absl::Now() + absl::Milliseconds(20);
  pool_->Subscribe(std::move(o), &sink);
  EXPECT_EQ(sink.events.Take(), "end: UNAVAILABLE");
  EXPECT_NE(sink.end_status.message().find("broker unreachable"),
            std::string::npos)
      << sink.end_status;
}

// --- Drain (Subscribe's half-close) and requeue on cancel ---

std::vector<uint64_t> CountsOf(const SubscriptionCounts& c) {
  return {c.delivered, c.acked, c.rejected, c.requeued};
}

TEST_F(SubscriptionTest, DrainAppliesAcksUntilNothingIsOutstandingThenEndsOk) {
  RecordingSink& sink = NewSink();
  auto sub = Subscribe(&sink);
  uint16_t ch = peer_->channel_of(Sent::Kind::kConsume);
  EXPECT_EQ(Deliver(*peer_, sink, {"a", "b", "c"}),
            (std::vector<uint64_t>{1, 2, 3}));
  sub->Drain(absl::Hours(1));
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kCancel, 1));
  EXPECT_TRUE(Settle(*worker_, *peer_));
  EXPECT_EQ(peer_->count(Sent::Kind::kChannelClose), 0u);
  // Acks still apply while draining.
  absl::StatusOr<AckResult> r = Ack(sink.id, {2, 1});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->applied_ids, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(peer_->count(Sent::Kind::kChannelClose), 0u);
  r = Ack(sink.id, {3}, AckAction::kReject);
  ASSERT_TRUE(r.ok()) << r.status();
  // The last outstanding one settled: the channel closes, the stream ends.
  EXPECT_EQ(sink.events.Take(), "end: OK");
  EXPECT_EQ(peer_->count(Sent::Kind::kChannelClose), 1u);
  EXPECT_TRUE(peer_->requeued().empty());
  EXPECT_TRUE(peer_->unacked(ch).empty());
  EXPECT_EQ(CountsOf(sink.counts), (std::vector<uint64_t>{3, 2, 1, 0}));
}

// Shutdown: every stream hears why, acks still apply, and the stream ends
// UNAVAILABLE (its caller should open it again) once nothing is
// outstanding; new streams are refused meanwhile by the Session.
TEST_F(SubscriptionTest, DrainAllTellsEachStreamAndEndsItUnavailable) {
  RecordingSink& sink = NewSink();
  auto sub = Subscribe(&sink);
  EXPECT_EQ(Deliver(*peer_, sink, {"a", "b"}), (std::vector<uint64_t>{1, 2}));
  pool_->DrainAll(absl::Hours(1), "the gateway is shutting down");
  EXPECT_EQ(sink.events.Take(), "draining: the gateway is shutting down");
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kCancel, 1));
  EXPECT_FALSE(pool_->WaitAllEnded(absl::Now() + absl::Milliseconds(20)));
  absl::StatusOr<AckResult> r = Ack(sink.id, {1, 2});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(sink.events.Take(), "end: UNAVAILABLE");
  EXPECT_TRUE(
      absl::StrContains(sink.end_status.message(), "open the stream again"))
      << sink.end_status;
  EXPECT_TRUE(peer_->requeued().empty());
  EXPECT_EQ(CountsOf(sink.counts), (std::vector<uint64_t>{2, 2, 0, 0}));
  EXPECT_TRUE(pool_->WaitAllEnded(absl::Now() + absl::Seconds(10)));
}

TEST_F(SubscriptionTest, DrainTimeoutClosesTheChannelAndTheRestIsRequeued) {
  RecordingSink& sink = NewSink();
  auto sub = Subscribe(&sink);
  uint16_t ch = peer_->channel_of(Sent::Kind::kConsume);
  Deliver(*peer_, sink, {"a", "b", "c", "d"});
  ASSERT_TRUE(Ack(sink.id, {1}).ok());
  sub->Drain(absl::Milliseconds(50));
  // 3 acked during the drain; 2 and 4 never: the timer closes the channel.
  ASSERT_TRUE(Ack(sink.id, {3}).ok());
  EXPECT_EQ(sink.events.Take(), "end: OK");
  EXPECT_EQ(peer_->count(Sent::Kind::kCancel), 1u);
  EXPECT_EQ(peer_->count(Sent::Kind::kChannelClose), 1u);
  EXPECT_EQ(peer_->requeued(), (Tags{{ch, 2}, {ch, 4}}));
  EXPECT_EQ(CountsOf(sink.counts), (std::vector<uint64_t>{4, 2, 0, 2}));
  // Acks after the end: the subscription is gone.
  EXPECT_EQ(Ack(sink.id, {2}).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SubscriptionTest, DrainWithNothingOutstandingEndsAtOnce) {
  RecordingSink& sink = NewSink();
  auto sub = Subscribe(&sink);
  Deliver(*peer_, sink, {"a"});
  ASSERT_TRUE(Ack(sink.id, {1}).ok());
  sub->Drain(absl::Hours(1));
  EXPECT_EQ(sink.events.Take(), "end: OK");
  EXPECT_TRUE(peer_->requeued().empty());
  EXPECT_EQ(CountsOf(sink.counts), (std::vector<uint64_t>{1, 1, 0, 0}));
}

TEST_F(SubscriptionTest, CancelRequeuesEveryUnackedDeliveryAtOnce) {
  RecordingSink& sink = NewSink();
  auto sub = Subscribe(&sink);
  uint16_t ch = peer_->channel_of(Sent::Kind::kConsume);
  Deliver(*peer_, sink, {"a", "b", "c"});
  ASSERT_TRUE(Ack(sink.id, {2}).ok());
  sub->Drain(absl::Hours(1));  // a cancel during a drain wins
  sub->Cancel(absl::CancelledError("client went away"));
  EXPECT_EQ(sink.events.Take(), "end: CANCELLED");
  EXPECT_EQ(peer_->count(Sent::Kind::kChannelClose), 1u);
  EXPECT_EQ(peer_->requeued(), (Tags{{ch, 1}, {ch, 3}}));
  EXPECT_EQ(CountsOf(sink.counts), (std::vector<uint64_t>{3, 1, 0, 2}));
}

TEST_F(SubscriptionTest, AConnectionLostWhileDrainingEndsOkWithAllCounted) {
  RecordingSink& sink = NewSink();
  auto sub = Subscribe(&sink);
  Deliver(*peer_, sink, {"a", "b"});
  // A reconnect first: a and b go back (requeued), ids 3, 4 follow.
  std::shared_ptr<FakePeer> second = DropAndResume(*peer_, sink, 1);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(Deliver(*second, sink, {"a", "b"}), (std::vector<uint64_t>{3, 4}));
  absl::StatusOr<AckResult> r = Ack(sink.id, {1, 3});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->applied_ids, (std::vector<uint64_t>{3}));
  EXPECT_EQ(r->stale_ids, (std::vector<uint64_t>{1}));
  sub->Drain(absl::Hours(1));
  ASSERT_TRUE(second->WaitForCount(Sent::Kind::kCancel, 1));
  // The connection goes while 4 is outstanding: the broker requeues it and
  // the drain is over.
  second->Drop();
  EXPECT_EQ(sink.events.Take(), "end: OK");
  EXPECT_EQ(CountsOf(sink.counts), (std::vector<uint64_t>{4, 1, 0, 3}));
}

TEST(ConsumerPoolTest, NewSubscriptionsGoToTheLeastLoadedConnection) {
  FakeBroker broker;
  Stats stats;
  std::unique_ptr<ConnectionWorker> w0 = NewFakeWorker(broker, "c-0");
  std::unique_ptr<ConnectionWorker> w1 = NewFakeWorker(broker, "c-1");
  ConsumerPool pool({w0.get(), w1.get()}, "gw", &stats);
  w0->Start();
  w1->Start();
  w0->Enable();
  w1->Enable();
  std::vector<std::unique_ptr<RecordingSink>> sinks;
  for (int i = 0; i < 4; ++i) {
    sinks.push_back(std::make_unique<RecordingSink>());
    SubscribeOptions o;
    o.queue = "q";
    pool.Subscribe(std::move(o), sinks.back().get());
    EXPECT_EQ(sinks.back()->events.Take(), "subscribed");
  }
  std::shared_ptr<FakePeer> p0 = broker.WaitForPeer("c-0");
  std::shared_ptr<FakePeer> p1 = broker.WaitForPeer("c-1");
  ASSERT_NE(p0, nullptr);
  ASSERT_NE(p1, nullptr);
  EXPECT_EQ(p0->count(Sent::Kind::kConsume), 2u);
  EXPECT_EQ(p1->count(Sent::Kind::kConsume), 2u);
  pool.CancelAll(absl::UnavailableError("shutdown"));
  for (auto& s : sinks) EXPECT_EQ(s->events.Take(), "end: UNAVAILABLE");
  w0->Stop();
  w1->Stop();
}

// A connection's channels all taken: the next stream ends
// RESOURCE_EXHAUSTED saying how to get more, and the others go on.
TEST(ConsumerPoolTest, StreamsBeyondTheChannelsOfEveryConnectionAreRefused) {
  FakeBroker broker;
  FakePeer::Options peer_options;
  peer_options.channel_max = 2;
  broker.set_peer_options(peer_options);
  Stats stats;
  std::unique_ptr<ConnectionWorker> w0 = NewFakeWorker(broker, "c-0");
  ConsumerPool pool({w0.get()}, "gw", &stats);
  w0->Start();
  w0->Enable();
  std::vector<std::unique_ptr<RecordingSink>> sinks;
  for (int i = 0; i < 3; ++i) {
    sinks.push_back(std::make_unique<RecordingSink>());
    SubscribeOptions o;
    o.queue = "q";
    pool.Subscribe(std::move(o), sinks.back().get());
  }
  int subscribed = 0, refused = 0;
  for (auto& sink : sinks) {
    std::optional<std::string> e = sink->events.Take();
    if (e == "subscribed") {
      ++subscribed;
      continue;
    }
    ASSERT_EQ(e, "end: RESOURCE_EXHAUSTED");
    ++refused;
    EXPECT_THAT(
        std::string(sink->end_status.message()),
        ::testing::AllOf(::testing::HasSubstr("all 2 channels"),
                         ::testing::HasSubstr("--consumer_connections")));
  }
  EXPECT_GE(subscribed, 1);
  EXPECT_GE(refused, 1);
  EXPECT_EQ(pool.active(), static_cast<size_t>(subscribed));
  pool.CancelAll(absl::UnavailableError("shutdown"));
  w0->Stop();
}

// --- The byte budget (max_outstanding_bytes). ---

TEST_F(SubscriptionTest, TheByteBudgetCapsThePrefetch) {
  RecordingSink& sink = NewSink();
  SubscribeOptions o;
  o.queue = "q";
  o.ack_mode = AckMode::kClient;
  o.prefetch = 65535;
  o.max_outstanding_bytes = 4 << 20;
  auto sub = pool_->Subscribe(std::move(o), &sink);
  ASSERT_EQ(sink.events.Take(), "subscribed");
  // 4 MiB / 64 KiB assumed per message, and no channel-wide window before
  // basic.consume (a quorum or stream queue would close the connection).
  std::vector<Sent> qos = peer_->sent(Sent::Kind::kQos);
  ASSERT_EQ(qos.size(), 1u);
  EXPECT_EQ(qos[0].prefetch, 64u);
  EXPECT_FALSE(qos[0].global);
}

TEST_F(SubscriptionTest, LargerMessagesNarrowTheWindowAndAcksWidenIt) {
  RecordingSink& sink = NewSink();
  SubscribeOptions o;
  o.queue = "q";
  o.ack_mode = AckMode::kClient;
  o.prefetch = 65535;
  o.max_outstanding_bytes = 4 << 20;
  auto sub = pool_->Subscribe(std::move(o), &sink);
  ASSERT_EQ(sink.events.Take(), "subscribed");
  // Eight of 1 MiB: twice the budget outstanding.
  std::vector<std::string> bodies(8, std::string(1 << 20, 'x'));
  std::vector<uint64_t> ids = Deliver(*peer_, sink, bodies);
  ASSERT_TRUE(Settle(*worker_, *peer_));
  std::vector<Sent> qos = peer_->sent(Sent::Kind::kQos);
  ASSERT_GE(qos.size(), 2u);
  EXPECT_TRUE(qos.back().global);
  // Nothing more until acks: at most what is outstanding, and under the
  // budget's count for messages this size.
  EXPECT_LE(qos.back().prefetch, 8u);
  uint16_t narrowed = qos.back().prefetch;
  // Acking all of them makes room: the window is budget / average size,
  // the average moving from the 64 KiB assumed towards 1 MiB per delivery
  // (after eight: 0.68 MiB, so 5 messages). It widens only by more than a
  // quarter (no basic.qos per read for a steady stream), and how far it
  // narrowed depends on how the worker's reads grouped the eight: from 4,
  // 5 is not worth a basic.qos.
  constexpr uint16_t kWant = 5;
  ASSERT_TRUE(Ack(sink.id, ids).ok());
  ASSERT_TRUE(Settle(*worker_, *peer_));
  qos = peer_->sent(Sent::Kind::kQos);
  EXPECT_TRUE(qos.back().global);
  EXPECT_GE(qos.back().prefetch, narrowed);
  EXPECT_EQ(qos.back().prefetch,
            kWant > narrowed + narrowed / 4 ? kWant : narrowed);
}

TEST_F(SubscriptionTest, SmallMessagesNeedNoChannelWideWindow) {
  RecordingSink& sink = NewSink();
  auto sub = Subscribe(&sink, AckMode::kClient, 100);
  Deliver(*peer_, sink, {"a", "b", "c"});
  ASSERT_TRUE(Settle(*worker_, *peer_));
  // One basic.qos: the consumer prefetch (100 x 64 KiB < 64 MiB).
  std::vector<Sent> qos = peer_->sent(Sent::Kind::kQos);
  ASSERT_EQ(qos.size(), 1u);
  EXPECT_EQ(qos[0].prefetch, 100u);
  EXPECT_FALSE(qos[0].global);
}

// --- Stream queues: where a subscribe starts. ---

// Delivers bodies carrying stream offsets (the x-stream-offset header of a
// stream queue's deliveries) and waits until the sink has them; returns
// their delivery ids.
std::vector<uint64_t> DeliverOffsets(FakePeer& peer, RecordingSink& sink,
                                     const std::vector<int64_t>& offsets) {
  uint16_t ch = peer.channel_of(Sent::Kind::kConsume);
  for (int64_t offset : offsets) {
    amqp::Properties p;
    p.headers = amqp::FieldTable{{amqp::kStreamOffsetKey, offset}};
    EXPECT_NE(peer.Deliver(ch, absl::StrCat("m", offset), false, p), 0u);
  }
  std::vector<uint64_t> ids;
  for (int64_t offset : offsets) {
    std::optional<StreamDelivery> d = sink.deliveries.Take();
    EXPECT_TRUE(d.has_value());
    if (!d.has_value()) continue;
    EXPECT_EQ(d->stream_offset, std::optional<int64_t>(offset));
    ids.push_back(d->delivery_id);
  }
  return ids;
}

// The x-stream-offset arguments of `peer`'s last basic.consume (all of
// them: there must be one at most).
std::vector<amqp::FieldValue> ConsumeOffsets(const FakePeer& peer) {
  std::vector<Sent> consume = peer.sent(Sent::Kind::kConsume);
  std::vector<amqp::FieldValue> out;
  if (consume.empty()) return out;
  for (const auto& [key, value] : consume.back().consume.arguments) {
    if (key == amqp::kStreamOffsetKey) out.push_back(value);
  }
  return out;
}

using Offsets = std::vector<amqp::FieldValue>;

TEST_F(SubscriptionTest, StreamResubscribesAfterTheLastOffsetHandedOver) {
  RecordingSink& sink = NewSink();
  SubscribeOptions o;
  o.queue = "q";
  o.ack_mode = AckMode::kAuto;
  o.prefetch = 8;
  // The typed start wins over the caller's argument.
  o.arguments = {{"x-priority", int64_t{3}},
                 {amqp::kStreamOffsetKey, std::string("last")}};
  o.stream_offset = amqp::FieldValue(std::string("first"));
  auto sub = pool_->Subscribe(std::move(o), &sink);
  ASSERT_EQ(sink.events.Take(), "subscribed");
  EXPECT_EQ(ConsumeOffsets(*peer_), (Offsets{std::string("first")}));

  // Offsets 10..13 delivered; gRPC took 10 and 11 (ids 1, 2) only.
  EXPECT_EQ(DeliverOffsets(*peer_, sink, {10, 11, 12, 13}),
            (std::vector<uint64_t>{1, 2, 3, 4}));
  sub->HandedOver(2);
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kAck, 1));
  // From the last offset handed over + 1: 12 and 13 come again, 10 and 11
  // (which the caller has) do not; the caller's other arguments stay.
  std::shared_ptr<FakePeer> second = DropAndResume(*peer_, sink, 1);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(ConsumeOffsets(*second), (Offsets{int64_t{12}}));
  EXPECT_NE(amqp::FindField(
                second->sent(Sent::Kind::kConsume).back().consume.arguments,
                "x-priority"),
            nullptr);

  // Nothing handed over on this channel: the next subscribe starts at 12
  // again, not at the original "first".
  EXPECT_EQ(DeliverOffsets(*second, sink, {12}), (std::vector<uint64_t>{5}));
  std::shared_ptr<FakePeer> third = DropAndResume(*second, sink, 2);
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(ConsumeOffsets(*third), (Offsets{int64_t{12}}));

  // 12..14 handed over (ids 6..8): after 14.
  EXPECT_EQ(DeliverOffsets(*third, sink, {12, 13, 14}),
            (std::vector<uint64_t>{6, 7, 8}));
  sub->HandedOver(8);
  ASSERT_TRUE(third->WaitForCount(Sent::Kind::kAck, 1));
  std::shared_ptr<FakePeer> fourth = DropAndResume(*third, sink, 3);
  ASSERT_NE(fourth, nullptr);
  EXPECT_EQ(ConsumeOffsets(*fourth), (Offsets{int64_t{15}}));
  sub->Cancel(absl::CancelledError("done"));
  EXPECT_EQ(sink.events.Take(), "end: CANCELLED");
}

TEST_F(SubscriptionTest, StreamClientModeResubscribesAtTheFirstUnsettled) {
  RecordingSink& sink = NewSink();
  SubscribeOptions o;
  o.queue = "q";
  o.ack_mode = AckMode::kClient;
  o.arguments = {{amqp::kStreamOffsetKey, std::string("first")}};
  auto sub = pool_->Subscribe(std::move(o), &sink);
  ASSERT_EQ(sink.events.Take(), "subscribed");
  EXPECT_EQ(ConsumeOffsets(*peer_), (Offsets{std::string("first")}));
  EXPECT_EQ(DeliverOffsets(*peer_, sink, {0, 1, 2, 3}),
            (std::vector<uint64_t>{1, 2, 3, 4}));
  // 0, 1 and 3 settled; 2 not.
  ASSERT_TRUE(Ack(sink.id, {1, 2}).ok());
  ASSERT_TRUE(Ack(sink.id, {4}, AckAction::kReject).ok());
  std::shared_ptr<FakePeer> second = DropAndResume(*peer_, sink, 1);
  ASSERT_NE(second, nullptr);
  // Unsettled deliveries come again, as on other queues: from 2.
  EXPECT_EQ(ConsumeOffsets(*second), (Offsets{int64_t{2}}));
  // All settled: after the last delivered.
  EXPECT_EQ(DeliverOffsets(*second, sink, {2, 3, 4}),
            (std::vector<uint64_t>{5, 6, 7}));
  ASSERT_TRUE(Ack(sink.id, {5, 6, 7}).ok());
  std::shared_ptr<FakePeer> third = DropAndResume(*second, sink, 2);
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(ConsumeOffsets(*third), (Offsets{int64_t{5}}));
  sub->Cancel(absl::CancelledError("done"));
  EXPECT_EQ(sink.events.Take(), "end: CANCELLED");
}

TEST_F(SubscriptionTest, OffsetOnAQueueThatIsNotAStreamEndsTheSubscription) {
  RecordingSink& sink = NewSink();
  SubscribeOptions o;
  o.queue = "classic";
  o.ack_mode = AckMode::kAuto;
  o.stream_offset = amqp::FieldValue(int64_t{5});
  auto sub = pool_->Subscribe(std::move(o), &sink);
  ASSERT_EQ(sink.events.Take(), "subscribed");
  uint16_t ch = peer_->channel_of(Sent::Kind::kConsume);
  // A delivery without x-stream-offset: the queue is not a stream.
  EXPECT_NE(peer_->Deliver(ch, "a"), 0u);
  EXPECT_EQ(sink.events.Take(), "end: FAILED_PRECONDITION");
  EXPECT_TRUE(absl::StartsWith(sink.end_status.message(), "offset: queue "))
      << sink.end_status;
  EXPECT_TRUE(
      absl::StrContains(sink.end_status.message(), "is not a stream queue"));
  // Never passed on; the closed channel gave it back to the queue.
  EXPECT_EQ(sink.deliveries.size(), 0u);
  EXPECT_EQ(sink.counts.delivered, 0u);
  EXPECT_EQ(peer_->count(Sent::Kind::kAck), 0u);
  EXPECT_EQ(peer_->requeued(), (Tags{{ch, 1}}));
}

}  // namespace
}  // namespace amqpgw::core
