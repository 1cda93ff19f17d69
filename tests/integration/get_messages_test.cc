// GetMessages against a real RabbitMQ node over real gRPC: a peek leaves
// the queue's count and order as they were, an ack removes exactly the
// messages returned, and refusals fail the caller alone.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/base/sync.h"
#include "tests/support/amqp_peer.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

using ::grpc::StatusCode;
using ::testing::HasSubstr;

class GetMessagesTest : public SharedGatewayTest {
 protected:
  void SetUp() override {
    auto peer = AmqpPeer::Connect(node_->port());
    ASSERT_TRUE(peer.ok()) << peer.status();
    peer_ = *std::move(peer);
  }

  // A queue holding "0".."n-1" (declared and filled by the independent
  // client), `type` CLASSIC or QUORUM.
  std::string Filled(const std::string& prefix, int n,
                     v1::QueueType type = v1::CLASSIC) {
    std::string q = UniqueName(prefix);
    v1::DeclareQueueRequest req;
    req.set_name(q);
    req.set_type(type);
    v1::DeclareQueueResponse resp;
    EXPECT_TRUE(stub().DeclareQueue(Ctx().get(), req, &resp).ok());
    for (int i = 0; i < n; ++i) {
      EXPECT_TRUE(peer_->Publish("", q, absl::StrCat(i)).ok());
    }
    EXPECT_TRUE(WaitForCount(q, n)) << q;
    return q;
  }

  bool WaitForCount(const std::string& q, uint32_t n) {
    return WaitFor(
        [&] {
          absl::StatusOr<uint32_t> c = peer_->MessageCount(q);
          return c.ok() && *c == n;
        },
        absl::Seconds(10));
  }

  ::grpc::Status Get(const std::string& q, uint32_t count, bool ack,
                     v1::GetMessagesResponse* out) {
    v1::GetMessagesRequest req;
    req.set_queue(q);
    req.set_count(count);
    req.set_ack(ack);
    return stub().GetMessages(Ctx().get(), req, out);
  }

  static std::vector<std::string> Bodies(const v1::GetMessagesResponse& r) {
    std::vector<std::string> out;
    for (const auto& d : r.messages()) out.push_back(d.body());
    return out;
  }

  // Reads the whole queue with the independent client (acked).
  std::vector<std::string> Drain(const std::string& q) {
    std::vector<std::string> out;
    for (;;) {
      auto m = peer_->Get(q);
      EXPECT_TRUE(m.ok()) << m.status();
      if (!m.ok() || !m->has_value()) return out;
      out.push_back((*m)->body);
    }
  }

  static std::vector<std::string> Numbers(int from, int to) {
    std::vector<std::string> out;
    for (int i = from; i < to; ++i) out.push_back(absl::StrCat(i));
    return out;
  }

  std::unique_ptr<AmqpPeer> peer_;
};

TEST_F(GetMessagesTest, APeekLeavesCountAndOrderAsTheyWere) {
  for (v1::QueueType type : {v1::CLASSIC, v1::QUORUM}) {
    SCOPED_TRACE(v1::QueueType_Name(type));
    std::string q = Filled("peek", 10, type);
    v1::GetMessagesResponse r;
    ::grpc::Status s = Get(q, 5, false, &r);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(Bodies(r), Numbers(0, 5));
    EXPECT_TRUE(r.requeued());
    EXPECT_EQ(r.message_count(), 5u);
    for (const auto& d : r.messages()) {
      EXPECT_FALSE(d.redelivered());
      EXPECT_EQ(d.delivery_attempt(), 1u);
      EXPECT_EQ(d.delivery_id(), 0u);
      EXPECT_EQ(d.routing_key(), q);
    }
    ASSERT_TRUE(WaitForCount(q, 10));

    // Twice: the same first messages, now marked redelivered.
    v1::GetMessagesResponse again;
    ASSERT_TRUE(Get(q, 5, false, &again).ok());
    EXPECT_EQ(Bodies(again), Numbers(0, 5));
    for (const auto& d : again.messages()) {
      EXPECT_TRUE(d.redelivered());
      EXPECT_EQ(d.delivery_attempt(), 2u);
    }
    ASSERT_TRUE(WaitForCount(q, 10));

    // A consumer then reads all ten, in the original order.
    EXPECT_EQ(Drain(q), Numbers(0, 10));
  }
}

TEST_F(GetMessagesTest, AckRemovesExactlyCount) {
  std::string q = Filled("ack", 10);
  v1::GetMessagesResponse r;
  ASSERT_TRUE(Get(q, 4, true, &r).ok());
  EXPECT_EQ(Bodies(r), Numbers(0, 4));
  EXPECT_FALSE(r.requeued());
  EXPECT_EQ(r.message_count(), 6u);
  ASSERT_TRUE(WaitForCount(q, 6));
  EXPECT_EQ(Drain(q), Numbers(4, 10));
}

TEST_F(GetMessagesTest, CountBeyondTheDepthReturnsTheDepth) {
  std::string q = Filled("depth", 3);
  v1::GetMessagesResponse r;
  ASSERT_TRUE(Get(q, 1000, false, &r).ok());
  EXPECT_EQ(Bodies(r), Numbers(0, 3));
  EXPECT_EQ(r.message_count(), 0u);
  ASSERT_TRUE(WaitForCount(q, 3));
  v1::GetMessagesResponse acked;
  ASSERT_TRUE(Get(q, 1000, true, &acked).ok());
  EXPECT_EQ(acked.messages_size(), 3);
  ASSERT_TRUE(WaitForCount(q, 0));
}

TEST_F(GetMessagesTest, AnEmptyQueueIsAnEmptyList) {
  std::string q = Filled("empty", 0);
  v1::GetMessagesResponse r;
  ::grpc::Status s = Get(q, 10, false, &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.messages_size(), 0);
  EXPECT_FALSE(r.requeued());
  EXPECT_EQ(r.message_count(), 0u);
}

TEST_F(GetMessagesTest, AStreamQueueAnswersEmptyAndTheConnectionLives) {
  // basic.get on a stream queue would close the gateway's control
  // connection (540); the gateway never sends it there.
  std::string q = Filled("stream", 0, v1::STREAM);
  ASSERT_TRUE(peer_->Publish("", q, "s").ok());
  uint64_t reconnects = GatewayStatus(*gateway_).connection().reconnects();
  v1::GetMessagesResponse r;
  ::grpc::Status s = Get(q, 10, false, &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.messages_size(), 0);
  v1::InspectQueueRequest ireq;
  ireq.set_name(q);
  v1::InspectQueueResponse iresp;
  EXPECT_TRUE(stub().InspectQueue(Ctx().get(), ireq, &iresp).ok());
  EXPECT_EQ(GatewayStatus(*gateway_).connection().reconnects(), reconnects);
}

TEST_F(GetMessagesTest, AMissingQueueIsNotFoundAndOthersAreUnaffected) {
  // Each innocent caller peeks at a queue of its own: concurrent peeks of
  // one queue would share its messages out between them.
  std::vector<std::string> innocent;
  for (int i = 0; i < 3; ++i) innocent.push_back(Filled("innocent", 3));
  std::string missing = UniqueName("missing");
  uint64_t reconnects = GatewayStatus(*gateway_).connection().reconnects();
  // The missing queue's calls and an innocent caller's, at the same time.
  struct Call {
    std::string queue;
    v1::GetMessagesRequest req;
    v1::GetMessagesResponse resp;
    std::unique_ptr<::grpc::ClientContext> ctx;
    ::grpc::Status status;
    bool done = false;
  };
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < 6; ++i) {
    auto c = std::make_unique<Call>();
    c->queue = i % 2 == 0 ? missing : innocent[i / 2];
    c->req.set_queue(c->queue);
    c->req.set_count(3);
    c->ctx = Ctx();
    calls.push_back(std::move(c));
  }
  amqpgw::Mutex mu;
  int done = 0;
  for (auto& c : calls) {
    stub().async()->GetMessages(c->ctx.get(), &c->req, &c->resp,
                                [&mu, &done, call = c.get()](::grpc::Status s) {
                                  amqpgw::MutexLock lock(&mu);
                                  call->status = std::move(s);
                                  call->done = true;
                                  ++done;
                                });
  }
  ASSERT_TRUE(WaitFor(
      [&] {
        amqpgw::MutexLock lock(&mu);
        return done == static_cast<int>(calls.size());
      },
      absl::Seconds(30)));
  for (auto& c : calls) {
    if (c->queue == missing) {
      EXPECT_EQ(c->status.error_code(), StatusCode::NOT_FOUND);
      EXPECT_THAT(c->status.error_message(), HasSubstr(missing));
    } else {
      EXPECT_TRUE(c->status.ok()) << c->status.error_message();
      EXPECT_EQ(Bodies(c->resp), Numbers(0, 3));
    }
  }
  EXPECT_EQ(GatewayStatus(*gateway_).connection().reconnects(), reconnects);
  for (const std::string& q : innocent) {
    ASSERT_TRUE(WaitForCount(q, 3));
    EXPECT_EQ(Drain(q), Numbers(0, 3));
  }
}

TEST_F(GetMessagesTest, CountOutsideOneToThousandIsInvalidArgument) {
  std::string q = Filled("count", 2);
  for (uint32_t count : {0u, 1001u}) {
    v1::GetMessagesResponse r;
    ::grpc::Status s = Get(q, count, true, &r);
    EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT) << count;
    EXPECT_THAT(s.error_message(), HasSubstr("count: must be 1..1000"));
  }
  v1::GetMessagesResponse r;
  ::grpc::Status s = Get("", 1, false, &r);
  EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("queue"));
  ASSERT_TRUE(WaitForCount(q, 2));
}

}  // namespace
}  // namespace amqpgw::testing
