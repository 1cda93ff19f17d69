#include "server/core/retry.h"

#include <gmock/gmock.h>
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
#include "server/core/publisher.h"
#include "server/core/stats.h"
#include "server/core/subscription.h"
#include "server/core/testing/worker_testing.h"

namespace amqpgw::core {
namespace {

using testing::FakeBroker;
using testing::FakePeer;
using testing::Mailbox;
using testing::NewFakeWorker;
using testing::Sent;
using testing::Settle;
using testing::StartAndConnect;

int64_t IntHeader(const amqp::Properties& p, const std::string& key) {
  if (!p.headers.has_value()) return -1;
  const amqp::FieldValue* v = amqp::FindField(*p.headers, key);
  if (v == nullptr) return -1;
  const int64_t* n = std::get_if<int64_t>(&v->value);
  return n == nullptr ? -1 : *n;
}

std::string TextHeader(const amqp::Properties& p, const std::string& key) {
  if (!p.headers.has_value()) return "<none>";
  const amqp::FieldValue* v = amqp::FindField(*p.headers, key);
  if (v == nullptr) return "<none>";
  const std::string* s = std::get_if<std::string>(&v->value);
  return s == nullptr ? "<not text>" : *s;
}

// --- The pure parts ---

TEST(RetryNames, DelayQueueNameAndArguments) {
  EXPECT_EQ(DelayQueueName("orders", absl::Milliseconds(200)),
            "amqpgw.retry.orders.200");
  amqp::QueueDeclareArgs a = DelayQueueArgs("orders", absl::Seconds(30));
  EXPECT_EQ(a.name, "amqpgw.retry.orders.30000");
  EXPECT_TRUE(a.durable);
  EXPECT_FALSE(a.auto_delete);
  EXPECT_EQ(*amqp::FindField(a.arguments, "x-message-ttl"),
            amqp::FieldValue(int64_t{30000}));
  EXPECT_EQ(*amqp::FindField(a.arguments, "x-dead-letter-exchange"),
            amqp::FieldValue(std::string()));
  EXPECT_EQ(*amqp::FindField(a.arguments, "x-dead-letter-routing-key"),
            amqp::FieldValue(std::string("orders")));
  EXPECT_EQ(*amqp::FindField(a.arguments, "x-expires"),
            amqp::FieldValue(int64_t{30000 + 3600000}));
}

TEST(RetryNames, QueueNamesThatLeaveNoRoomForTheDelayAreRefused) {
  EXPECT_TRUE(CheckRetryQueue("queue", std::string(233, 'q')).ok());
  // The longest delay queue name of a 233-byte queue is exactly 255 bytes.
  EXPECT_EQ(DelayQueueName(std::string(233, 'q'), kMaxRetryDelay).size(), 255u);
  absl::Status s = CheckRetryQueue("queue", std::string(234, 'q'));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message().substr(0, 7), "queue: ") << s;
}

TEST(RetryNames, DelaysOutsideZeroToADayAreRefusedNamingTheField) {
  EXPECT_TRUE(CheckRetryDelay("retry_delay", absl::ZeroDuration()).ok());
  EXPECT_TRUE(CheckRetryDelay("retry_delay", absl::Hours(24)).ok());
  absl::Status s = CheckRetryDelay("retry_delay", absl::Hours(25));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message().substr(0, 13), "retry_delay: ") << s;
  EXPECT_FALSE(CheckRetryDelay("retry_delay", absl::Milliseconds(-1)).ok());
  RetryPolicy p;
  p.multiplier = 0.5;
  EXPECT_EQ(CheckRetryPolicy(p).message().substr(0, 24),
            "retry_policy.multiplier:");
  p = RetryPolicy();
  p.jitter = 2;
  EXPECT_EQ(CheckRetryPolicy(p).message().substr(0, 20),
            "retry_policy.jitter:");
  p = RetryPolicy();
  p.max_backoff = absl::Milliseconds(10);
  EXPECT_FALSE(CheckRetryPolicy(p).ok());
}

TEST(RetryPolicyDelay, GrowsByTheMultiplierUpToTheMaximum) {
  RetryPolicy p;
  p.initial_backoff = absl::Seconds(1);
  p.max_backoff = absl::Seconds(5);
  p.multiplier = 2;
  EXPECT_EQ(PolicyDelay(p, 1, 0.5), absl::Seconds(1));
  EXPECT_EQ(PolicyDelay(p, 2, 0.5), absl::Seconds(2));
  EXPECT_EQ(PolicyDelay(p, 3, 0.5), absl::Seconds(4));
  EXPECT_EQ(PolicyDelay(p, 4, 0.5), absl::Seconds(5));
  EXPECT_EQ(PolicyDelay(p, 400, 0.5), absl::Seconds(5));
}

TEST(RetryPolicyDelay, JitterShortensAndRoundsToTwoDigits) {
  RetryPolicy p;
  p.initial_backoff = absl::Milliseconds(1234);
  p.max_backoff = absl::Seconds(10);
  p.jitter = 0.5;
  EXPECT_EQ(PolicyDelay(p, 1, 0.0), absl::Milliseconds(1200));
  EXPECT_EQ(PolicyDelay(p, 1, 0.999999), absl::Milliseconds(610));
  for (double r : {0.1, 0.3, 0.7}) {
    absl::Duration d = PolicyDelay(p, 1, r);
    EXPECT_GE(d, absl::Milliseconds(600));
    EXPECT_LE(d, absl::Milliseconds(1234));
  }
}

TEST(RetryAttempt, CountsEarlierCopiesAndThisCopysDeliveries) {
  amqp::Delivery d;
  EXPECT_EQ(amqp::DeliveryAttempt(d), 1u);
  d.redelivered = true;
  EXPECT_EQ(amqp::DeliveryAttempt(d), 2u);
  d.redelivered = false;
  d.properties.headers = amqp::FieldTable{{"x-amqpgw-attempt", int64_t{3}}};
  EXPECT_EQ(amqp::DeliveryAttempt(d), 4u);
  // A quorum queue's count wins over the redelivered flag.
  d.redelivered = true;
  d.properties.headers->emplace_back("x-delivery-count", int64_t{2});
  EXPECT_EQ(amqp::DeliveryAttempt(d), 6u);
}

TEST(RetryCopies, KeepPropertiesAndHeadersAndCountAttempts) {
  amqp::Delivery d;
  d.exchange = "ex";
  d.routing_key = "rk";
  d.body = "payload";
  d.properties.message_id = "m1";
  d.properties.content_type = "text/plain";
  d.properties.headers = amqp::FieldTable{{"app", std::string("x")},
                                          {"x-delivery-count", int64_t{1}},
                                          {"x-amqpgw-attempt", int64_t{1}}};
  amqp::OutgoingMessage m = RetryCopy(d, "orders", absl::Seconds(1), 3);
  EXPECT_EQ(m.exchange, "");
  EXPECT_EQ(m.routing_key, "amqpgw.retry.orders.1000");
  EXPECT_TRUE(m.mandatory);
  EXPECT_EQ(m.body, "payload");
  EXPECT_EQ(m.properties.message_id, "m1");
  EXPECT_EQ(m.properties.content_type, "text/plain");
  EXPECT_EQ(TextHeader(m.properties, "app"), "x");
  EXPECT_EQ(IntHeader(m.properties, "x-delivery-count"), -1);
  EXPECT_EQ(IntHeader(m.properties, kAttemptHeader), 3);

  amqp::OutgoingMessage dl =
      DeadLetterCopy(d, DeadLetterTarget{"dlx", ""}, "orders", 5, "boom");
  EXPECT_EQ(dl.exchange, "dlx");
  EXPECT_EQ(dl.routing_key, "rk");  // the original's
  EXPECT_EQ(TextHeader(dl.properties, kReasonHeader), "max_attempts");
  EXPECT_EQ(TextHeader(dl.properties, kQueueHeader), "orders");
  EXPECT_EQ(TextHeader(dl.properties, kErrorHeader), "boom");
  EXPECT_EQ(IntHeader(dl.properties, kAttemptHeader), 5);
  EXPECT_EQ(DeadLetterCopy(d, DeadLetterTarget{"dlx", "dead"}, "orders", 5,
                           std::string(5000, 'e'))
                .routing_key,
            "dead");
  EXPECT_EQ(TextHeader(DeadLetterCopy(d, DeadLetterTarget{"dlx", ""}, "orders",
                                      5, std::string(5000, 'e'))
                           .properties,
                       kErrorHeader)
                .size(),
            kMaxRetryErrorBytes);
}

// --- A subscription's RETRY over the fake connection: a real Publisher on
// one fake connection, the subscription on another ---

class Sink : public SubscriptionSink {
 public:
  void OnSubscribed(const std::string& subscription_id,
                    const std::string&) override {
    id = subscription_id;
    events.Put("subscribed");
  }
  void OnDelivery(StreamDelivery d) override { deliveries.Put(std::move(d)); }
  void OnPaused(const std::string& why) override {
    paused_why = why;
    events.Put("paused");
  }
  void OnResumed() override { events.Put("resumed"); }
  void OnEnd(const absl::Status& status) override {
    end_message = std::string(status.message());
    events.Put(absl::StrCat("end: ", absl::StatusCodeToString(status.code())));
  }
  std::string id;
  std::string paused_why;   // written before "paused" is put
  std::string end_message;  // written before "end: ..." is put
  Mailbox<std::string> events;
  Mailbox<StreamDelivery> deliveries;
};

class RetryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    publisher_worker_ = NewFakeWorker(broker_, "publisher-0");
    publisher_ = std::make_unique<Publisher>(
        publisher_worker_.get(), Publisher::Options(), &stats_, &pending_);
    consumer_worker_ = NewFakeWorker(broker_, "consumer-0");
    pool_ = std::make_unique<ConsumerPool>(
        std::vector<ConnectionWorker*>{consumer_worker_.get()}, "gw1", &stats_);
    retrier_ = std::make_unique<Retrier>(
        [this](amqp::QueueDeclareArgs args, absl::Time,
               absl::AnyInvocable<void(absl::Status) &&> done) {
          declared_.Put(args.name);
          std::move(done)(declare_status_);
        },
        [this](std::shared_ptr<PublishBatch> batch) {
          pending_.fetch_add(static_cast<int64_t>(batch->bytes()));
          publisher_->Publish(std::move(batch));
          return absl::OkStatus();
        });
    pool_->set_retrier(retrier_.get());
    pub_ = StartAndConnect(*publisher_worker_, broker_);
    con_ = StartAndConnect(*consumer_worker_, broker_);
    ASSERT_NE(pub_, nullptr);
    ASSERT_NE(con_, nullptr);
    ASSERT_TRUE(pub_->WaitForCount(Sent::Kind::kConfirmSelect, 1));
    Settle(*publisher_worker_, *pub_);
  }
  void TearDown() override {
    consumer_worker_->Stop();
    publisher_worker_->Stop();
    pool_.reset();
    publisher_.reset();
  }

  std::shared_ptr<Subscription> Subscribe(RetryOptions retry = {}) {
    SubscribeOptions o;
    o.queue = "orders";
    o.ack_mode = AckMode::kClient;
    o.retry = std::move(retry);
    auto sub = pool_->Subscribe(std::move(o), &sink_);
    EXPECT_EQ(sink_.events.Take(), "subscribed");
    return sub;
  }
  uint16_t consumer_channel() { return con_->channel_of(Sent::Kind::kConsume); }
  uint16_t confirm_channel() {
    return pub_->channel_of(Sent::Kind::kConfirmSelect);
  }
  StreamDelivery Deliver(std::string body, amqp::Properties p = {}) {
    EXPECT_NE(
        con_->Deliver(consumer_channel(), std::move(body), false, std::move(p)),
        0u);
    std::optional<StreamDelivery> d = sink_.deliveries.Take();
    EXPECT_TRUE(d.has_value());
    return d.has_value() ? *std::move(d) : StreamDelivery();
  }
  // Starts an Ack; its result arrives in `results_`.
  void StartAck(uint64_t id, AckCommand command) {
    pool_->Ack(
        sink_.id, {id}, std::move(command),
        [this](absl::StatusOr<AckResult> r) { results_.Put(std::move(r)); });
  }
  static AckCommand RetryIn(absl::Duration delay, std::string error = "") {
    AckCommand c(AckAction::kRetry);
    c.retry_delay = delay;
    c.error = std::move(error);
    return c;
  }

  FakeBroker broker_;
  Stats stats_;
  std::atomic<int64_t> pending_{0};
  Sink sink_;
  absl::Status declare_status_;
  Mailbox<std::string> declared_;
  Mailbox<absl::StatusOr<AckResult>> results_;
  std::unique_ptr<ConnectionWorker> publisher_worker_;
  std::unique_ptr<Publisher> publisher_;
  std::unique_ptr<ConnectionWorker> consumer_worker_;
  std::unique_ptr<ConsumerPool> pool_;
  std::unique_ptr<Retrier> retrier_;
  std::shared_ptr<FakePeer> pub_;
  std::shared_ptr<FakePeer> con_;
};

TEST_F(RetryTest, AcksTheOriginalOnlyOnceTheCopyIsConfirmed) {
  auto sub = Subscribe();
  amqp::Properties props;
  props.message_id = "m1";
  StreamDelivery d = Deliver("work", props);
  EXPECT_EQ(d.delivery_attempt, 1u);
  // Kept for RETRY by sharing the message with the sink, not by a copy.
  ASSERT_NE(d.retained, nullptr);
  EXPECT_EQ(d.get().body, "work");
  EXPECT_TRUE(d.message.body.empty());
  StartAck(d.delivery_id, RetryIn(absl::Milliseconds(200)));
  EXPECT_EQ(declared_.Take(), "amqpgw.retry.orders.200");
  ASSERT_TRUE(pub_->WaitForCount(Sent::Kind::kPublish, 1));
  Sent copy = pub_->sent(Sent::Kind::kPublish).at(0);
  EXPECT_EQ(copy.message.routing_key, "amqpgw.retry.orders.200");
  EXPECT_EQ(copy.message.body, "work");
  EXPECT_EQ(copy.message.properties.message_id, "m1");
  EXPECT_EQ(IntHeader(copy.message.properties, kAttemptHeader), 1);
  // Not confirmed yet: the original stays unacked, the Ack unanswered.
  EXPECT_TRUE(Settle(*consumer_worker_, *con_));
  EXPECT_EQ(con_->count(Sent::Kind::kAck), 0u);
  EXPECT_EQ(con_->unacked(consumer_channel()).size(), 1u);
  EXPECT_FALSE(results_.Take(absl::ZeroDuration()).has_value());

  pub_->Confirm(confirm_channel(), 1);
  std::optional<absl::StatusOr<AckResult>> r = results_.Take();
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->ok()) << r->status();
  EXPECT_EQ((*r)->applied, 1u);
  ASSERT_TRUE(con_->WaitForCount(Sent::Kind::kAck, 1));
  EXPECT_TRUE(con_->unacked(consumer_channel()).empty());
  // A second RETRY of the same id is stale, and publishes nothing.
  StartAck(d.delivery_id, RetryIn(absl::Milliseconds(200)));
  r = results_.Take();
  ASSERT_TRUE(r.has_value() && r->ok());
  EXPECT_EQ((*r)->stale_ids, std::vector<uint64_t>{d.delivery_id});
  EXPECT_EQ(pub_->count(Sent::Kind::kPublish), 1u);
  sub->Cancel(absl::CancelledError("done"));
  EXPECT_EQ(sink_.events.Take(), "end: CANCELLED");
}

TEST_F(RetryTest, ARefusedCopyLeavesTheOriginalToTheCaller) {
  auto sub = Subscribe();
  StreamDelivery d = Deliver("work");
  StartAck(d.delivery_id, RetryIn(absl::Seconds(1)));
  ASSERT_TRUE(pub_->WaitForCount(Sent::Kind::kPublish, 1));
  pub_->Return(confirm_channel(), 1);  // NO_ROUTE: the delay queue is gone
  pub_->Confirm(confirm_channel(), 1);
  std::optional<absl::StatusOr<AckResult>> r = results_.Take();
  ASSERT_TRUE(r.has_value() && r->ok());
  EXPECT_EQ((*r)->applied, 0u);
  EXPECT_EQ((*r)->failed_ids, std::vector<uint64_t>{d.delivery_id});
  EXPECT_EQ((*r)->failure.code(), absl::StatusCode::kFailedPrecondition)
      << (*r)->failure;
  EXPECT_EQ(con_->count(Sent::Kind::kAck), 0u);
  EXPECT_EQ(con_->unacked(consumer_channel()).size(), 1u);
  // Still the caller's: a plain ACK applies.
  StartAck(d.delivery_id, AckAction::kAck);
  r = results_.Take();
  ASSERT_TRUE(r.has_value() && r->ok());
  EXPECT_EQ((*r)->applied, 1u);
  // The delay queue is declared again for the next copy.
  StreamDelivery e = Deliver("again");
  StartAck(e.delivery_id, RetryIn(absl::Seconds(1)));
  EXPECT_EQ(declared_.Take(), "amqpgw.retry.orders.1000");
  EXPECT_EQ(declared_.Take(), "amqpgw.retry.orders.1000");
  ASSERT_TRUE(pub_->WaitForCount(Sent::Kind::kPublish, 2));
  pub_->Confirm(confirm_channel(), 2);
  r = results_.Take();
  ASSERT_TRUE(r.has_value() && r->ok()) << r->status();
  sub->Cancel(absl::CancelledError("done"));
  EXPECT_EQ(sink_.events.Take(), "end: CANCELLED");
}

TEST_F(RetryTest, ACopyConfirmedAfterTheChannelWasLostAcksNothing) {
  auto sub = Subscribe();
  StreamDelivery d = Deliver("work");
  StartAck(d.delivery_id, RetryIn(absl::Seconds(1)));
  ASSERT_TRUE(pub_->WaitForCount(Sent::Kind::kPublish, 1));
  con_->Drop();  // the broker requeues the original
  EXPECT_EQ(sink_.events.Take(), "paused");
  EXPECT_EQ(sink_.events.Take(), "resumed");
  std::shared_ptr<FakePeer> second = broker_.WaitForPeer("consumer-0", 1);
  ASSERT_NE(second, nullptr);
  // The redelivery: tag 1 of the new channel.
  uint16_t ch = second->channel_of(Sent::Kind::kConsume);
  ASSERT_NE(second->Deliver(ch, "work", true), 0u);
  ASSERT_TRUE(sink_.deliveries.Take().has_value());
  pub_->Confirm(confirm_channel(), 1);
  std::optional<absl::StatusOr<AckResult>> r = results_.Take();
  ASSERT_TRUE(r.has_value() && r->ok()) << r->status();
  // Never an ack of the new channel's tag 1 (another delivery).
  EXPECT_TRUE(Settle(*consumer_worker_, *second));
  EXPECT_EQ(second->count(Sent::Kind::kAck), 0u);
  EXPECT_EQ(second->unacked(ch).size(), 1u);
  sub->Cancel(absl::CancelledError("done"));
  EXPECT_EQ(sink_.events.Take(), "end: CANCELLED");
}

TEST_F(RetryTest, RequeueFollowsThePolicyAndMaxAttemptsDeadLetters) {
  RetryOptions retry;
  retry.policy.emplace();
  retry.policy->initial_backoff = absl::Milliseconds(100);
  retry.policy->max_backoff = absl::Seconds(1);
  retry.policy->max_attempts = 3;
  retry.dead_letter = DeadLetterTarget{"dlx", "dead"};
  auto sub = Subscribe(retry);
  // Attempt 2 (one earlier copy): REQUEUE is a retry after 200 ms.
  amqp::Properties p;
  p.headers = amqp::FieldTable{{"x-amqpgw-attempt", int64_t{1}}};
  StreamDelivery d = Deliver("a", p);
  EXPECT_EQ(d.delivery_attempt, 2u);
  StartAck(d.delivery_id, AckAction::kRequeue);
  EXPECT_EQ(declared_.Take(), "amqpgw.retry.orders.200");
  ASSERT_TRUE(pub_->WaitForCount(Sent::Kind::kPublish, 1));
  pub_->Confirm(confirm_channel(), 1);
  std::optional<absl::StatusOr<AckResult>> r = results_.Take();
  ASSERT_TRUE(r.has_value() && r->ok()) << r->status();
  EXPECT_EQ(con_->count(Sent::Kind::kNack), 0u);  // never a plain requeue
  // Attempt 3 = max_attempts: dead-lettered with the caller's error.
  p.headers = amqp::FieldTable{{"x-amqpgw-attempt", int64_t{2}}};
  StreamDelivery e = Deliver("b", p);
  EXPECT_EQ(e.delivery_attempt, 3u);
  StartAck(e.delivery_id, RetryIn(absl::Seconds(5), "parse error"));
  ASSERT_TRUE(pub_->WaitForCount(Sent::Kind::kPublish, 2));
  Sent dead = pub_->sent(Sent::Kind::kPublish).at(1);
  EXPECT_EQ(dead.message.exchange, "dlx");
  EXPECT_EQ(dead.message.routing_key, "dead");
  EXPECT_EQ(TextHeader(dead.message.properties, kErrorHeader), "parse error");
  EXPECT_EQ(IntHeader(dead.message.properties, kAttemptHeader), 3);
  EXPECT_TRUE(Settle(*consumer_worker_, *con_));
  EXPECT_EQ(con_->unacked(consumer_channel()).size(), 1u);
  pub_->Confirm(confirm_channel(), 2);
  r = results_.Take();
  ASSERT_TRUE(r.has_value() && r->ok()) << r->status();
  ASSERT_TRUE(con_->WaitForCount(Sent::Kind::kAck, 2));
  EXPECT_TRUE(con_->unacked(consumer_channel()).empty());
  sub->Cancel(absl::CancelledError("done"));
  EXPECT_EQ(sink_.events.Take(), "end: CANCELLED");
}

TEST_F(RetryTest, WithoutADeadLetterTargetTheLastAttemptIsRejected) {
  RetryOptions retry;
  retry.policy.emplace();
  retry.policy->max_attempts = 1;
  auto sub = Subscribe(retry);
  StreamDelivery d = Deliver("a");
  StartAck(d.delivery_id, AckAction::kRequeue);
  std::optional<absl::StatusOr<AckResult>> r = results_.Take();
  ASSERT_TRUE(r.has_value() && r->ok()) << r->status();
  ASSERT_TRUE(con_->WaitForCount(Sent::Kind::kNack, 1));
  Sent nack = con_->sent(Sent::Kind::kNack).at(0);
  EXPECT_FALSE(nack.requeue);
  EXPECT_EQ(pub_->count(Sent::Kind::kPublish), 0u);
  sub->Cancel(absl::CancelledError("done"));
  EXPECT_EQ(sink_.events.Take(), "end: CANCELLED");
}

TEST_F(RetryTest, RetryWithoutADelayOrPolicyIsInvalid) {
  auto sub = Subscribe();
  StreamDelivery d = Deliver("a");
  StartAck(d.delivery_id, AckAction::kRetry);
  std::optional<absl::StatusOr<AckResult>> r = results_.Take();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r->status().message().substr(0, 12), "retry_delay:");
  sub->Cancel(absl::CancelledError("done"));
  EXPECT_EQ(sink_.events.Take(), "end: CANCELLED");
}

constexpr char kTimedOut[] =
    "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. "
    "Timeout value used: 1800000 ms. This timeout value can be configured, "
    "see consumers doc guide to learn more";

TEST_F(RetryTest, ConsumerTimeoutEndsTheStreamNamingTheDelivery) {
  auto sub = Subscribe();
  Deliver("a");
  Deliver("b");
  con_->CloseChannel(consumer_channel(), 406, kTimedOut);
  std::optional<std::string> end = sink_.events.Take();
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(*end, "end: FAILED_PRECONDITION");
  EXPECT_THAT(sink_.end_message,
              ::testing::AllOf(::testing::HasSubstr("delivery 1 of queue"),
                               ::testing::HasSubstr("consumer_timeout"),
                               ::testing::HasSubstr("rabbitmq.conf")));
  EXPECT_FALSE(IsConsumerTimeout(406, "PRECONDITION_FAILED - other"));
}

TEST_F(RetryTest, ConsumerTimeoutWithARetryPolicySubscribesAgain) {
  RetryOptions retry;
  retry.policy.emplace();
  auto sub = Subscribe(retry);
  Deliver("a");
  con_->CloseChannel(consumer_channel(), 406, kTimedOut);
  EXPECT_EQ(sink_.events.Take(), "paused");
  EXPECT_EQ(sink_.events.Take(), "resumed");
  EXPECT_THAT(sink_.paused_why, ::testing::HasSubstr("delivery 1 of queue"));
  EXPECT_EQ(con_->count(Sent::Kind::kConsume), 2u);
  // The redelivery is id 2, and acks of it apply.
  StreamDelivery d = Deliver("a");
  EXPECT_EQ(d.delivery_id, 2u);
  StartAck(d.delivery_id, AckAction::kAck);
  std::optional<absl::StatusOr<AckResult>> r = results_.Take();
  ASSERT_TRUE(r.has_value() && r->ok());
  EXPECT_EQ((*r)->applied, 1u);
  sub->Cancel(absl::CancelledError("done"));
  EXPECT_EQ(sink_.events.Take(), "end: CANCELLED");
}

}  // namespace
}  // namespace amqpgw::core
