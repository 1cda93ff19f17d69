#include "server/core/get_messages.h"

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

using amqp::testing::QueuedMessage;
using testing::FakeBroker;
using testing::FakePeer;
using testing::kWaitTimeout;
using testing::Mailbox;
using testing::NewFakeWorker;
using testing::Sent;
using testing::StartAndConnect;

std::vector<QueuedMessage> Numbered(int n) {
  std::vector<QueuedMessage> out;
  for (int i = 0; i < n; ++i) {
    QueuedMessage m;
    m.body = absl::StrCat("m", i);
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<std::string> Bodies(const std::vector<amqp::Delivery>& ds) {
  std::vector<std::string> out;
  for (const auto& d : ds) out.push_back(d.body);
  return out;
}

std::vector<std::string> Bodies(const std::vector<QueuedMessage>& ms) {
  std::vector<std::string> out;
  for (const auto& m : ms) out.push_back(m.body);
  return out;
}

class MessageGetterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    worker_ = NewFakeWorker(broker_, "control");
    getter_ = std::make_unique<MessageGetter>(worker_.get(), [this] {
      return open_.load() ? absl::OkStatus()
                          : absl::FailedPreconditionError("disconnected");
    });
    peer_ = StartAndConnect(*worker_, broker_);
    ASSERT_NE(peer_, nullptr);
  }
  void TearDown() override {
    worker_->Stop();
    getter_.reset();
    worker_.reset();
  }

  absl::StatusOr<GetResult> Get(std::string queue, uint32_t count,
                                bool ack = false) {
    Mailbox<absl::StatusOr<GetResult>> r;
    GetRequest req;
    req.queue = std::move(queue);
    req.count = count;
    req.ack = ack;
    req.deadline = absl::Now() + absl::Hours(1);
    getter_->Get(std::move(req),
                 [&](absl::StatusOr<GetResult> g) { r.Put(std::move(g)); });
    return r.Take().value_or(absl::DeadlineExceededError("no answer"));
  }

  FakeBroker broker_;
  std::atomic<bool> open_{true};
  std::unique_ptr<ConnectionWorker> worker_;
  std::unique_ptr<MessageGetter> getter_;
  std::shared_ptr<FakePeer> peer_;
};

TEST_F(MessageGetterTest, APeekPutsTheMessagesBackInOrderByClosingItsChannel) {
  peer_->AddMessages("q", Numbered(10));
  absl::StatusOr<GetResult> r = Get("q", 5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Bodies(r->messages),
            (std::vector<std::string>{"m0", "m1", "m2", "m3", "m4"}));
  EXPECT_EQ(r->message_count, 5u);  // behind the last one taken
  for (const auto& d : r->messages) EXPECT_FALSE(d.redelivered);
  // No ack and no nack: the channel's close is what puts them back.
  EXPECT_EQ(peer_->count(Sent::Kind::kAck), 0u);
  EXPECT_EQ(peer_->count(Sent::Kind::kNack), 0u);
  EXPECT_EQ(peer_->count(Sent::Kind::kBasicGet), 5u);
  EXPECT_EQ(peer_->count(Sent::Kind::kChannelClose), 1u);
  EXPECT_TRUE(peer_->open_channels().empty());
  std::vector<QueuedMessage> left = peer_->queue("q");
  ASSERT_EQ(left.size(), 10u);
  EXPECT_EQ(Bodies(left), Bodies(Numbered(10)));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(left[i].redelivered, i < 5) << i;

  // A second peek sees the same first messages, now redelivered.
  absl::StatusOr<GetResult> again = Get("q", 2);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(Bodies(again->messages), (std::vector<std::string>{"m0", "m1"}));
  EXPECT_TRUE(again->messages[0].redelivered);
  EXPECT_EQ(amqp::DeliveryAttempt(again->messages[0]), 2u);
}

TEST_F(MessageGetterTest, AckRemovesExactlyCountWithOneMultipleAck) {
  peer_->AddMessages("q", Numbered(10));
  absl::StatusOr<GetResult> r = Get("q", 4, /*ack=*/true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Bodies(r->messages),
            (std::vector<std::string>{"m0", "m1", "m2", "m3"}));
  std::vector<Sent> acks = peer_->sent(Sent::Kind::kAck);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_TRUE(acks[0].multiple);
  EXPECT_EQ(acks[0].delivery_tag, 4u);
  EXPECT_EQ(Bodies(peer_->queue("q")),
            (std::vector<std::string>{"m4", "m5", "m6", "m7", "m8", "m9"}));
}

TEST_F(MessageGetterTest, CountBeyondTheDepthTakesWhatThereIs) {
  peer_->AddMessages("q", Numbered(3));
  absl::StatusOr<GetResult> r = Get("q", 1000);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->messages.size(), 3u);
  EXPECT_EQ(r->message_count, 0u);
  // The last get-ok said none were left: no get-empty round trip.
  EXPECT_EQ(peer_->count(Sent::Kind::kBasicGet), 3u);
  EXPECT_EQ(peer_->queue("q").size(), 3u);
}

TEST_F(MessageGetterTest, AnEmptyQueueIsAnEmptyListWithoutBasicGet) {
  peer_->AddMessages("empty", {});
  absl::StatusOr<GetResult> r = Get("empty", 10);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->messages.empty());
  // The passive declare said 0 (as it says for a stream queue, where
  // basic.get would close the connection).
  EXPECT_EQ(peer_->count(Sent::Kind::kBasicGet), 0u);
  EXPECT_TRUE(peer_->sent(Sent::Kind::kQueueDeclare).at(0).queue.passive);
}

TEST_F(MessageGetterTest, AMissingQueueFailsAloneAndOthersGoOn) {
  peer_->AddMessages("q", Numbered(2));
  peer_->Refuse(Sent::Kind::kQueueDeclare, 404,
                "NOT_FOUND - no queue 'gone' in vhost '/'", "gone");
  Mailbox<std::pair<std::string, absl::StatusOr<GetResult>>> r;
  for (const char* name : {"gone", "q"}) {
    GetRequest req;
    req.queue = name;
    req.count = 2;
    req.deadline = absl::Now() + absl::Hours(1);
    getter_->Get(std::move(req), [&r, name](absl::StatusOr<GetResult> g) {
      r.Put({name, std::move(g)});
    });
  }
  ASSERT_TRUE(r.WaitForSize(2));
  for (auto& [name, g] : r.TakeAll()) {
    if (name == "gone") {
      EXPECT_EQ(g.status().code(), absl::StatusCode::kNotFound);
      EXPECT_NE(g.status().message().find("gone"), std::string::npos)
          << g.status();
    } else {
      ASSERT_TRUE(g.ok()) << g.status();
      EXPECT_EQ(g->messages.size(), 2u);
    }
  }
  EXPECT_TRUE(peer_->open_channels().empty());
  EXPECT_EQ(peer_->queue("q").size(), 2u);
}

TEST_F(MessageGetterTest, StopsAtTheByteBudgetTakingAtLeastOne) {
  std::vector<QueuedMessage> big;
  for (int i = 0; i < 4; ++i) {
    QueuedMessage m;
    m.body = std::string(MessageGetter::kMaxBytes / 2 + 1, 'x');
    big.push_back(std::move(m));
  }
  peer_->AddMessages("big", std::move(big));
  absl::StatusOr<GetResult> r = Get("big", 4);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->messages.size(), 2u);
  EXPECT_EQ(r->message_count, 2u);
  EXPECT_EQ(peer_->queue("big").size(), 4u);
}

TEST_F(MessageGetterTest, ALostConnectionRemovesNothing) {
  peer_->AddMessages("q", Numbered(5));
  peer_->Hold(Sent::Kind::kBasicGet);
  Mailbox<absl::StatusOr<GetResult>> r;
  GetRequest req;
  req.queue = "q";
  req.count = 5;
  req.ack = true;
  req.deadline = absl::Now() + absl::Hours(1);
  getter_->Get(std::move(req),
               [&](absl::StatusOr<GetResult> g) { r.Put(std::move(g)); });
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kBasicGet, 1));
  peer_->Drop();
  std::optional<absl::StatusOr<GetResult>> g = r.Take();
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(g->status().message().find("nothing was removed"),
            std::string::npos)
      << g->status();
  EXPECT_EQ(peer_->count(Sent::Kind::kAck), 0u);
  EXPECT_EQ(peer_->queue("q").size(), 5u);
}

TEST_F(MessageGetterTest, TheDeadlineClosesTheChannelAndPutsEverythingBack) {
  peer_->AddMessages("q", Numbered(3));
  peer_->Hold(Sent::Kind::kBasicGet);
  Mailbox<absl::StatusOr<GetResult>> r;
  GetRequest req;
  req.queue = "q";
  req.count = 3;
  req.ack = true;
  req.deadline = absl::Now() + absl::Milliseconds(200);
  getter_->Get(std::move(req),
               [&](absl::StatusOr<GetResult> g) { r.Put(std::move(g)); });
  std::optional<absl::StatusOr<GetResult>> g = r.Take();
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->status().code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(peer_->WaitForCount(Sent::Kind::kChannelClose, 1));
  peer_->ReleaseHeld();
  ASSERT_TRUE(peer_->WaitUntilRead());
  EXPECT_TRUE(peer_->open_channels().empty());
  EXPECT_EQ(peer_->count(Sent::Kind::kAck), 0u);
  EXPECT_EQ(peer_->queue("q").size(), 3u);
}

TEST_F(MessageGetterTest, AfterDisconnectCallsFailAtOnce) {
  open_ = false;
  absl::StatusOr<GetResult> r = Get("q", 1);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(peer_->count(Sent::Kind::kBasicGet), 0u);
}

}  // namespace
}  // namespace amqpgw::core
