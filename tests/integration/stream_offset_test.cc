// Stream queues read from an offset (StreamMessagesRequest.offset and
// SubscribeStart.offset) against a real RabbitMQ node: where each start
// begins, the offset each delivery carries, a typed offset on a queue that is
// not a stream, and the resume after a lost connection (no offset twice, none
// missing).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/stream_reader.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

using ::testing::HasSubstr;

v1::StreamOffset Position(v1::StreamOffset::Position p) {
  v1::StreamOffset o;
  o.set_position(p);
  return o;
}

v1::StreamOffset Absolute(uint64_t offset) {
  v1::StreamOffset o;
  o.set_offset(offset);
  return o;
}

v1::StreamOffset At(absl::Time t) {
  v1::StreamOffset o;
  o.mutable_timestamp()->set_seconds(absl::ToUnixSeconds(t));
  return o;
}

v1::StreamMessagesRequest Request(
    const std::string& q, const v1::StreamOffset& offset, uint64_t max_messages,
    v1::StreamMessagesRequest::AckMode mode = v1::StreamMessagesRequest::AUTO) {
  v1::StreamMessagesRequest r;
  r.set_queue(q);
  r.set_ack_mode(mode);
  r.set_prefetch(50);
  r.set_max_messages(max_messages);
  r.set_max_batch(16);
  *r.mutable_offset() = offset;
  return r;
}

// "body:offset" of each delivery, in order.
std::vector<std::string> Seen(const std::vector<v1::Delivery>& deliveries) {
  std::vector<std::string> out;
  for (const v1::Delivery& d : deliveries) {
    out.push_back(absl::StrCat(
        d.body(), ":",
        d.has_stream_offset() ? absl::StrCat(d.stream_offset()) : "none"));
  }
  return out;
}

// "i:i" for i in [from, to): on a new stream, message i is at offset i.
std::vector<std::string> Expected(int from, int to) {
  std::vector<std::string> out;
  for (int i = from; i < to; ++i) out.push_back(absl::StrCat(i, ":", i));
  return out;
}

class StreamOffsetTest : public SharedGatewayTest {
 public:
  static std::string NewQueue(TestGateway& g, const std::string& prefix,
                              v1::QueueType type = v1::STREAM) {
    std::string q = UniqueName(prefix);
    v1::DeclareQueueRequest req;
    req.set_name(q);
    req.set_type(type);
    v1::DeclareQueueResponse resp;
    ::grpc::Status s = g.stub().DeclareQueue(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return q;
  }

  // Publishes bodies "<from>" .. "<to - 1>", confirmed, in one batch.
  static void Publish(TestGateway& g, const std::string& q, int from, int to) {
    v1::PublishBatchRequest req;
    for (int i = from; i < to; ++i) {
      auto* m = req.add_messages();
      m->set_routing_key(q);
      m->set_body(absl::StrCat(i));
    }
    v1::PublishBatchResponse resp;
    ::grpc::Status s =
        g.stub().PublishBatch(Ctx(absl::Seconds(60)).get(), req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(resp.ok_count(), static_cast<uint32_t>(to - from));
  }

 protected:
  // Reads `n` deliveries from `offset` (AUTO) and returns "body:offset".
  std::vector<std::string> Read(const std::string& q,
                                const v1::StreamOffset& offset, int n) {
    StreamReader reader(&stub(), Request(q, offset, n));
    ::grpc::Status end = reader.WaitDone();
    EXPECT_TRUE(end.ok()) << end.error_message();
    return Seen(reader.deliveries());
  }
};

TEST_F(StreamOffsetTest, StartsAtFirstAbsoluteTimestampNextAndLast) {
  std::string q = NewQueue(*gateway_, "offsets");
  Publish(*gateway_, q, 0, 10);

  // first: everything, each delivery with its offset.
  EXPECT_EQ(Read(q, Position(v1::StreamOffset::FIRST), 10), Expected(0, 10));
  // An absolute offset: from there.
  EXPECT_EQ(Read(q, Absolute(6), 4), Expected(6, 10));

  // A timestamp: the messages published from that second on. The second
  // batch is published in a later second than the first one.
  absl::Time first_done = absl::Now();
  ASSERT_TRUE(WaitFor([&] {
    return absl::ToUnixSeconds(absl::Now()) > absl::ToUnixSeconds(first_done);
  }));
  absl::Time second_start = absl::Now();
  Publish(*gateway_, q, 10, 15);
  EXPECT_EQ(Read(q, At(second_start), 5), Expected(10, 15));

  // next: only what is published after the consumer started.
  StreamReader next(&stub(), Request(q, Position(v1::StreamOffset::NEXT), 3));
  ASSERT_TRUE(next.WaitSubscribed());
  Publish(*gateway_, q, 15, 18);
  ::grpc::Status end = next.WaitDone();
  EXPECT_TRUE(end.ok()) << end.error_message();
  EXPECT_EQ(Seen(next.deliveries()), Expected(15, 18));

  // last: the last chunk written (15..17 went in one batch), so its first
  // delivery is one of them.
  std::vector<std::string> last = Read(q, Position(v1::StreamOffset::LAST), 1);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_THAT(Expected(15, 18), ::testing::Contains(last[0]));

  // The typed offset wins over the argument.
  v1::StreamMessagesRequest both = Request(q, Absolute(16), 2);
  (*both.mutable_arguments())["x-stream-offset"].set_string_value("first");
  StreamReader typed(&stub(), both);
  end = typed.WaitDone();
  EXPECT_TRUE(end.ok()) << end.error_message();
  EXPECT_EQ(Seen(typed.deliveries()), Expected(16, 18));

  // Subscribe's start alike; every delivery settled by the caller.
  auto ctx = Ctx();
  auto stream = stub().Subscribe(ctx.get());
  v1::SubscribeRequest start;
  start.mutable_start()->set_queue(q);
  start.mutable_start()->set_prefetch(10);
  start.mutable_start()->set_max_messages(3);
  *start.mutable_start()->mutable_offset() = Absolute(12);
  ASSERT_TRUE(stream->Write(start));
  std::vector<v1::Delivery> got;
  v1::SubscribeResponse ev;
  uint64_t summary_delivered = 0;
  while (stream->Read(&ev)) {
    if (ev.has_batch()) {
      v1::SubscribeRequest ack;
      for (const v1::Delivery& d : ev.batch().deliveries()) {
        got.push_back(d);
        ack.mutable_ack()->add_delivery_ids(d.delivery_id());
      }
      ASSERT_TRUE(stream->Write(ack));
    }
    if (ev.has_summary()) summary_delivered = ev.summary().delivered();
  }
  ::grpc::Status s = stream->Finish();
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(Seen(got), Expected(12, 15));
  EXPECT_EQ(summary_delivered, 3u);
}

TEST_F(StreamOffsetTest, OffsetOnAQueueThatIsNotAStreamIsRefused) {
  for (v1::QueueType type : {v1::CLASSIC, v1::QUORUM}) {
    SCOPED_TRACE(v1::QueueType_Name(type));
    std::string q = NewQueue(*gateway_, "not-a-stream", type);
    Publish(*gateway_, q, 0, 1);
    StreamReader reader(&stub(),
                        Request(q, Position(v1::StreamOffset::FIRST), 0));
    ::grpc::Status end = reader.WaitDone();
    EXPECT_EQ(end.error_code(), ::grpc::StatusCode::FAILED_PRECONDITION)
        << end.error_message();
    EXPECT_THAT(end.error_message(), HasSubstr("offset: queue '" + q));
    EXPECT_THAT(end.error_message(), HasSubstr("is not a stream queue"));
    EXPECT_TRUE(reader.deliveries().empty());
    // The message was not taken.
    EXPECT_TRUE(WaitFor([&] {
      v1::InspectQueueRequest req;
      req.set_name(q);
      v1::InspectQueueResponse resp;
      return stub().InspectQueue(Ctx().get(), req, &resp).ok() &&
             resp.message_count() == 1 && resp.consumer_count() == 0;
    }));
  }
  // The gateway's shared connection survived: a stream still works.
  std::string stream = NewQueue(*gateway_, "still-fine");
  Publish(*gateway_, stream, 0, 2);
  EXPECT_EQ(Read(stream, Position(v1::StreamOffset::FIRST), 2), Expected(0, 2));
  std::string q = NewQueue(*gateway_, "bad-offset", v1::CLASSIC);

  // An offset that says nothing is refused before anything is sent.
  v1::StreamMessagesRequest empty = Request(q, v1::StreamOffset(), 0);
  StreamReader bad(&stub(), empty);
  ::grpc::Status end = bad.WaitDone();
  EXPECT_EQ(end.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(end.error_message(), HasSubstr("offset: set one of"));
}

// AUTO from `first`: the connection is cut after 120 deliveries; the stream
// resumes after the last offset it handed over, so that every offset comes
// exactly once (the original "first" would replay 0..119).
TEST_F(StreamOffsetTest, AfterAReconnectNoOffsetTwiceAndNoneMissing) {
  BrokerNode node = BrokerNode::Shared();
  auto g = TestGateway::Start(node.uri(), [](daemon::Options& o) {
    o.instance_id = UniqueName("offsets");
  });
  ASSERT_TRUE(g->WaitReady());
  std::string q = NewQueue(*g, "resume");
  Publish(*g, q, 0, 120);
  auto stream_stub = g->NewStub();
  StreamReader reader(stream_stub.get(),
                      Request(q, Position(v1::StreamOffset::FIRST), 0),
                      absl::Seconds(120));
  ASSERT_TRUE(reader.WaitDeliveries(120));

  absl::StatusOr<int> closed = CloseConnectionsOf(node, *g);
  ASSERT_TRUE(closed.ok()) << closed.status();
  EXPECT_GE(*closed, 2);  // at least a publisher and consumer
  ASSERT_TRUE(reader.WaitEvent([](const v1::StreamMessagesResponse& e) {
    return e.status().kind() == v1::StreamStatus::RESUMED;
  }));
  // More while the stream goes on. A replay from "first" would bring
  // offsets 0..119 again before these.
  Publish(*g, q, 120, 201);
  ASSERT_TRUE(reader.WaitDeliveries(201));
  std::vector<v1::Delivery> got = reader.deliveries();
  std::map<uint64_t, int> times;
  for (const v1::Delivery& d : got) {
    ASSERT_TRUE(d.has_stream_offset()) << d.body();
    ++times[d.stream_offset()];
    EXPECT_EQ(d.body(), absl::StrCat(d.stream_offset()));
  }
  EXPECT_EQ(got.size(), 201u);
  EXPECT_EQ(times.size(), 201u);
  for (const auto& [offset, n] : times) {
    EXPECT_EQ(n, 1) << "offset " << offset << " delivered " << n << " times";
  }
  EXPECT_EQ(times.begin()->first, 0u);
  EXPECT_EQ(times.rbegin()->first, 200u);
  // In order, too.
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].stream_offset(), i) << "delivery " << i;
  }
  // The ids go on across the reconnect: 1..201.
  EXPECT_EQ(got.back().delivery_id(), 201u);
}

// The broker restarts under a stream read from `first`: the stream resumes
// after the last offset it handed over; every offset once, in order.
TEST(StreamOffsetRestartTest, BrokerRestartResumesAfterTheLastOffset) {
  auto node = BrokerNode::StartPrivate("stream-restart");
  ASSERT_TRUE(node.ok()) << node.status();
  auto g = TestGateway::Start(node->uri());
  ASSERT_TRUE(g->WaitReady());
  std::string q = StreamOffsetTest::NewQueue(*g, "restart");
  StreamOffsetTest::Publish(*g, q, 0, 100);
  auto stream_stub = g->NewStub();
  StreamReader reader(stream_stub.get(),
                      Request(q, Position(v1::StreamOffset::FIRST), 0),
                      absl::Seconds(180));
  ASSERT_TRUE(reader.WaitDeliveries(100));

  ASSERT_TRUE(node->Stop().ok());
  ASSERT_TRUE(reader.WaitEvent([](const v1::StreamMessagesResponse& e) {
    return e.status().kind() == v1::StreamStatus::RECONNECTING;
  }));
  ASSERT_TRUE(node->Start().ok());
  ASSERT_TRUE(g->WaitReady(absl::Seconds(60)));
  ASSERT_TRUE(reader.WaitEvent(
      [](const v1::StreamMessagesResponse& e) {
        return e.status().kind() == v1::StreamStatus::RESUMED;
      },
      absl::Seconds(60)));
  StreamOffsetTest::Publish(*g, q, 100, 200);
  ASSERT_TRUE(reader.WaitDeliveries(200));
  std::vector<v1::Delivery> got = reader.deliveries();
  ASSERT_EQ(got.size(), 200u);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].stream_offset(), i) << "delivery " << i;
    EXPECT_EQ(got[i].body(), absl::StrCat(i));
  }
  reader.Cancel();
  g.reset();
  EXPECT_TRUE(node->Stop().ok());
}

// CLIENT: what the caller had not acked when the connection went comes
// again (from the first unacked offset), nothing before it.
TEST_F(StreamOffsetTest, ClientModeResumesAtTheFirstUnackedOffset) {
  BrokerNode node = BrokerNode::Shared();
  auto g = TestGateway::Start(node.uri(), [](daemon::Options& o) {
    o.instance_id = UniqueName("offsets-client");
  });
  ASSERT_TRUE(g->WaitReady());
  std::string q = NewQueue(*g, "resume-client");
  Publish(*g, q, 0, 40);
  auto stream_stub = g->NewStub();
  v1::StreamMessagesRequest req = Request(q, Position(v1::StreamOffset::FIRST),
                                          0, v1::StreamMessagesRequest::CLIENT);
  req.set_prefetch(40);
  StreamReader reader(stream_stub.get(), req, absl::Seconds(120));
  ASSERT_TRUE(reader.WaitDeliveries(40));
  // Ack offsets 0..24 (ids 1..25); 25..39 stay unacked.
  v1::AckRequest ack;
  ack.set_subscription_id(reader.subscription_id());
  for (uint64_t id = 1; id <= 25; ++id) ack.add_delivery_ids(id);
  v1::AckResponse ack_resp;
  ::grpc::Status s = g->stub().Ack(Ctx().get(), ack, &ack_resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(ack_resp.applied_count(), 25u);

  absl::StatusOr<int> closed = CloseConnectionsOf(node, *g);
  ASSERT_TRUE(closed.ok()) << closed.status();
  EXPECT_GE(*closed, 2);
  ASSERT_TRUE(reader.WaitDeliveries(40 + 15));
  std::vector<v1::Delivery> got = reader.deliveries();
  std::vector<std::string> again;
  for (size_t i = 40; i < got.size(); ++i) {
    again.push_back(absl::StrCat(got[i].body(), ":", got[i].stream_offset()));
  }
  EXPECT_EQ(again, Expected(25, 40));
  EXPECT_EQ(got.size(), 55u);
}

}  // namespace
}  // namespace amqpgw::testing
