// StreamMessages and Ack against a real RabbitMQ node: ordering, the three
// ack modes, flow control, cancellation, many streams, broker restarts.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tests/support/amqp_peer.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/stream_reader.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

using ::testing::HasSubstr;

class StreamTest : public SharedGatewayTest {
 protected:
  std::string NewQueue(const std::string& prefix,
                       const std::map<std::string, v1::FieldValue>& args = {}) {
    std::string q = UniqueName(prefix);
    v1::DeclareQueueRequest req;
    req.set_name(q);
    for (const auto& [k, v] : args) (*req.mutable_arguments())[k] = v;
    v1::DeclareQueueResponse resp;
    EXPECT_TRUE(stub().DeclareQueue(Ctx().get(), req, &resp).ok());
    return q;
  }

  void PublishN(const std::string& q, int n, int start = 0) {
    for (int done = 0; done < n;) {
      v1::PublishBatchRequest req;
      int chunk = std::min(1000, n - done);
      for (int i = 0; i < chunk; ++i) {
        auto* m = req.add_messages();
        m->set_routing_key(q);
        m->set_body(absl::StrCat(start + done + i));
      }
      v1::PublishBatchResponse resp;
      ASSERT_TRUE(stub().PublishBatch(Ctx().get(), req, &resp).ok());
      ASSERT_EQ(resp.ok_count(), static_cast<uint32_t>(chunk));
      done += chunk;
    }
  }

  uint32_t Count(const std::string& q) {
    v1::InspectQueueRequest req;
    req.set_name(q);
    v1::InspectQueueResponse resp;
    EXPECT_TRUE(stub().InspectQueue(Ctx().get(), req, &resp).ok());
    return resp.message_count();
  }

  uint32_t Consumers(const std::string& q) {
    v1::InspectQueueRequest req;
    req.set_name(q);
    v1::InspectQueueResponse resp;
    EXPECT_TRUE(stub().InspectQueue(Ctx().get(), req, &resp).ok());
    return resp.consumer_count();
  }

  ::grpc::Status Ack(const std::string& sub, const std::vector<uint64_t>& ids,
                     v1::AckRequest::Action action = v1::AckRequest::ACK,
                     v1::AckResponse* out = nullptr) {
    v1::AckRequest req;
    req.set_subscription_id(sub);
    for (uint64_t id : ids) req.add_delivery_ids(id);
    req.set_action(action);
    v1::AckResponse resp;
    return stub().Ack(Ctx().get(), req, out ? out : &resp);
  }

  v1::Counters Counters() {
    v1::GetStatusResponse r;
    EXPECT_TRUE(stub().GetStatus(Ctx().get(), v1::GetStatusRequest(), &r).ok());
    return r.counters();
  }

  static v1::StreamMessagesRequest Request(
      const std::string& q, v1::StreamMessagesRequest::AckMode mode,
      uint32_t prefetch = 100, uint64_t max = 0, uint32_t max_batch = 0) {
    v1::StreamMessagesRequest r;
    r.set_queue(q);
    r.set_ack_mode(mode);
    r.set_prefetch(prefetch);
    r.set_max_messages(max);
    r.set_max_batch(max_batch);
    return r;
  }
};

TEST_F(StreamTest, TenThousandRoundTripInOrderWithTypedHeaders) {
  std::string q = NewQueue("roundtrip");
  constexpr int kN = 10000 / kLoadDivisor;
  v1::PublishBatchRequest batch;
  for (int i = 0; i < kN; ++i) {
    auto* m = batch.add_messages();
    m->set_routing_key(q);
    m->set_body(absl::StrCat("body-", i));
    auto* p = m->mutable_properties();
    p->set_content_type("text/plain");
    p->set_correlation_id(absl::StrCat("c", i));
    p->set_priority(3);
    (*p->mutable_headers())["seq"].set_int_value(i);
    (*p->mutable_headers())["ok"].set_bool_value(i % 2 == 0);
    (*p->mutable_headers())["ratio"].set_double_value(i / 4.0);
    (*p->mutable_headers())["raw"].set_bytes_value(std::string("\x00\xff", 2));
  }
  v1::PublishBatchResponse resp;
  ASSERT_TRUE(stub().PublishBatch(Ctx().get(), batch, &resp).ok());
  ASSERT_EQ(resp.ok_count(), static_cast<uint32_t>(kN));

  StreamReader reader(&stub(),
                      Request(q, v1::StreamMessagesRequest::AUTO, 1000, kN));
  ::grpc::Status end = reader.WaitDone(absl::Seconds(120));
  EXPECT_TRUE(end.ok()) << end.error_message();
  auto events = reader.events();
  ASSERT_FALSE(events.empty());
  EXPECT_TRUE(events[0].has_subscribed());
  EXPECT_EQ(events[0].subscribed().queue(), q);
  auto deliveries = reader.deliveries();
  ASSERT_EQ(deliveries.size(), static_cast<size_t>(kN));
  for (int i = 0; i < kN; ++i) {
    const v1::Delivery& d = deliveries[i];
    ASSERT_EQ(d.body(), absl::StrCat("body-", i));
    EXPECT_EQ(d.delivery_id(), static_cast<uint64_t>(i + 1));
    EXPECT_EQ(d.delivery_attempt(), 1u);
    EXPECT_FALSE(d.redelivered());
    EXPECT_EQ(d.routing_key(), q);
    const auto& p = d.properties();
    EXPECT_EQ(p.content_type(), "text/plain");
    EXPECT_EQ(p.correlation_id(), absl::StrCat("c", i));
    EXPECT_EQ(p.priority(), 3u);
    EXPECT_EQ(p.delivery_mode(), v1::PERSISTENT);
    EXPECT_EQ(p.message_id(), resp.results(i).message_id());
    EXPECT_EQ(p.headers().at("seq").int_value(), i);
    EXPECT_EQ(p.headers().at("ok").bool_value(), i % 2 == 0);
    EXPECT_EQ(p.headers().at("ratio").double_value(), i / 4.0);
    EXPECT_EQ(p.headers().at("raw").bytes_value(), std::string("\x00\xff", 2));
  }
  EXPECT_TRUE(WaitFor([&] { return Count(q) == 0 && Consumers(q) == 0; }));
}

TEST_F(StreamTest, AutoCancelMidStreamLeavesWhatWasNotHandedOver) {
  std::string q = NewQueue("autocancel");
  constexpr int kN = 2000;
  PublishN(q, kN);
  uint64_t acked_before = Counters().acked();
  size_t received;
  {
    StreamReader reader(&stub(),
                        Request(q, v1::StreamMessagesRequest::AUTO, 20));
    ASSERT_TRUE(reader.WaitDeliveries(100));
    reader.Cancel();
    reader.WaitDone();
    received = reader.deliveries().size();
  }
  // The consumer is gone and every message the gateway acknowledged was
  // handed to gRPC for this stream; everything else is still queued.
  ASSERT_TRUE(WaitFor([&] { return Consumers(q) == 0; }));
  uint64_t acked = Counters().acked() - acked_before;
  uint32_t left = Count(q);
  EXPECT_EQ(left + acked, static_cast<uint64_t>(kN));
  EXPECT_GE(acked, received);
  EXPECT_LT(acked, static_cast<uint64_t>(kN));
  // The messages still queued are exactly the ones after those handed over.
  StreamReader rest(&stub(),
                    Request(q, v1::StreamMessagesRequest::AUTO, 100, left));
  ASSERT_TRUE(rest.WaitDone().ok());
  auto d = rest.deliveries();
  ASSERT_EQ(d.size(), left);
  for (size_t i = 0; i < d.size(); ++i) {
    EXPECT_EQ(d[i].body(), absl::StrCat(kN - left + i));
  }
}

TEST_F(StreamTest, AutoStreamThatCaughtUpLeavesNothingUnacknowledged) {
  // Acks are batched (one per quarter of the prefetch window while gRPC
  // lags), but a stream that has written everything it received acks at
  // once: nothing stays unacknowledged behind an open, idle stream.
  std::string q = NewQueue("caughtup");
  StreamReader reader(&stub(),
                      Request(q, v1::StreamMessagesRequest::AUTO, 100));
  ASSERT_TRUE(reader.WaitSubscribed());
  auto unacked = [&]() -> std::string {
    auto listed = node_->Ctl({"list_queues", "-q", "--no-table-headers", "name",
                              "messages_unacknowledged"});
    return listed.ok() ? *listed : listed.status().ToString();
  };
  PublishN(q, 37);  // a burst, fewer than a batch of 25 after the first
  ASSERT_TRUE(reader.WaitDeliveries(37));
  EXPECT_TRUE(WaitFor([&] { return absl::StrContains(unacked(), q + "\t0"); }))
      << unacked();
  // A trickle: one message at a time, each acked once written.
  for (int i = 0; i < 3; ++i) {
    PublishN(q, 1);
    ASSERT_TRUE(reader.WaitDeliveries(38 + i));
    EXPECT_TRUE(WaitFor([&] {
      return absl::StrContains(unacked(), q + "\t0");
    })) << unacked();
  }
  reader.Cancel();
  reader.WaitDone();
  EXPECT_EQ(Count(q), 0u);
}

TEST_F(StreamTest, ClientAcksRespectPrefetchAndUnackedAreRedelivered) {
  std::string q = NewQueue("client");
  PublishN(q, 100);
  std::set<std::string> acked_bodies;
  {
    StreamReader reader(&stub(),
                        Request(q, v1::StreamMessagesRequest::CLIENT, 10));
    ASSERT_TRUE(reader.WaitSubscribed());
    std::string sub = reader.subscription_id();
    ASSERT_TRUE(reader.WaitDeliveries(10));
    // The broker holds the rest back: exactly 10 unacknowledged.
    auto listed = node_->Ctl({"list_queues", "-q", "--no-table-headers", "name",
                              "messages_unacknowledged", "messages_ready"});
    ASSERT_TRUE(listed.ok());
    EXPECT_THAT(*listed, HasSubstr(q + "\t10\t90"));
    EXPECT_EQ(reader.deliveries().size(), 10u);

    // Ack one at a time up to 50; never more than 10 outstanding.
    size_t acked = 0;
    while (acked < 50) {
      ASSERT_TRUE(reader.WaitDeliveries(acked + 1));
      auto d = reader.deliveries();
      EXPECT_LE(d.size() - acked, 10u);
      v1::AckResponse resp;
      ASSERT_TRUE(
          Ack(sub, {d[acked].delivery_id()}, v1::AckRequest::ACK, &resp).ok());
      EXPECT_EQ(resp.applied_count(), 1u);
      acked_bodies.insert(d[acked].body());
      ++acked;
    }
    ASSERT_TRUE(reader.WaitDeliveries(60));
    EXPECT_LE(reader.deliveries().size(), 60u);
    reader.Cancel();
    reader.WaitDone();
  }
  ASSERT_TRUE(WaitFor([&] { return Count(q) == 50; }));
  StreamReader next(&stub(),
                    Request(q, v1::StreamMessagesRequest::AUTO, 100, 50));
  ASSERT_TRUE(next.WaitDone().ok());
  auto d = next.deliveries();
  ASSERT_EQ(d.size(), 50u);
  int redelivered = 0;
  for (const auto& m : d) {
    EXPECT_EQ(acked_bodies.count(m.body()), 0u) << m.body();
    if (m.redelivered()) {
      ++redelivered;
      EXPECT_EQ(m.delivery_attempt(), 2u);
    }
  }
  EXPECT_EQ(redelivered, 10);  // the ones delivered but not acked
}

TEST_F(StreamTest, RequeueAndRejectToDeadLetters) {
  std::string dlq = NewQueue("dead");
  v1::FieldValue dlx, dlk;
  dlx.set_string_value("");
  dlk.set_string_value(dlq);
  std::string q = NewQueue("work", {{"x-dead-letter-exchange", dlx},
                                    {"x-dead-letter-routing-key", dlk}});
  PublishN(q, 2);
  StreamReader reader(&stub(),
                      Request(q, v1::StreamMessagesRequest::CLIENT, 10));
  ASSERT_TRUE(reader.WaitDeliveries(2));
  std::string sub = reader.subscription_id();
  auto d = reader.deliveries();
  // REQUEUE the first: it comes back, redelivered.
  ASSERT_TRUE(Ack(sub, {d[0].delivery_id()}, v1::AckRequest::REQUEUE).ok());
  ASSERT_TRUE(reader.WaitDeliveries(3));
  v1::Delivery again = reader.deliveries()[2];
  EXPECT_EQ(again.body(), d[0].body());
  EXPECT_TRUE(again.redelivered());
  // REJECT the second: dead-lettered.
  ASSERT_TRUE(Ack(sub, {d[1].delivery_id()}, v1::AckRequest::REJECT).ok());
  ASSERT_TRUE(Ack(sub, {again.delivery_id()}).ok());
  ASSERT_TRUE(WaitFor([&] { return Count(dlq) == 1; }));
  StreamReader dead(&stub(),
                    Request(dlq, v1::StreamMessagesRequest::AUTO, 10, 1));
  ASSERT_TRUE(dead.WaitDone().ok());
  ASSERT_EQ(dead.deliveries().size(), 1u);
  v1::Delivery m = dead.deliveries()[0];
  EXPECT_EQ(m.body(), d[1].body());
  ASSERT_TRUE(m.properties().headers().contains("x-death"));
  EXPECT_TRUE(m.properties().headers().at("x-death").has_array_value());

  // Acking twice: the second time the id is stale.
  v1::AckResponse resp;
  ASSERT_TRUE(Ack(sub, {again.delivery_id()}, v1::AckRequest::ACK, &resp).ok());
  EXPECT_EQ(resp.applied_count(), 0u);
  EXPECT_THAT(resp.stale_ids(), ::testing::ElementsAre(again.delivery_id()));
  EXPECT_EQ(Count(q), 0u);
}

TEST_F(StreamTest, AckErrors) {
  std::string q = NewQueue("ackerr");
  PublishN(q, 1);
  StreamReader client(&stub(),
                      Request(q, v1::StreamMessagesRequest::CLIENT, 10));
  ASSERT_TRUE(client.WaitDeliveries(1));
  std::string sub = client.subscription_id();

  ::grpc::Status s = Ack(sub, {99});
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("99"));
  s = Ack(sub, {});
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  s = Ack(sub.substr(0, sub.find('/')) + "/0000", {1});
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::NOT_FOUND);
  s = Ack("other-instance:50051/abcd", {1});
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("other-instance:50051"));
  s = Ack("", {1});
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);

  std::string q2 = NewQueue("ackerr-auto");
  StreamReader autos(&stub(), Request(q2, v1::StreamMessagesRequest::AUTO, 10));
  ASSERT_TRUE(autos.WaitSubscribed());
  s = Ack(autos.subscription_id(), {1});
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("AUTO"));
  // The valid ack still works after all that.
  EXPECT_TRUE(Ack(sub, {client.deliveries()[0].delivery_id()}).ok());
}

TEST_F(StreamTest, BadRequestsAndMissingQueue) {
  struct Case {
    v1::StreamMessagesRequest req;
    ::grpc::StatusCode code;
    std::string text;
  };
  std::vector<Case> cases;
  cases.push_back({Request("", v1::StreamMessagesRequest::AUTO),
                   ::grpc::StatusCode::INVALID_ARGUMENT, "queue"});
  cases.push_back({Request("q", v1::StreamMessagesRequest::AUTO, 70000),
                   ::grpc::StatusCode::INVALID_ARGUMENT, "prefetch"});
  cases.push_back(
      {Request("q", static_cast<v1::StreamMessagesRequest::AckMode>(9)),
       ::grpc::StatusCode::INVALID_ARGUMENT, "ack_mode"});
  cases.push_back({Request("q", v1::StreamMessagesRequest::AUTO, 100, 0, 70000),
                   ::grpc::StatusCode::INVALID_ARGUMENT, "max_batch"});
  std::string missing = UniqueName("missing");
  cases.push_back({Request(missing, v1::StreamMessagesRequest::AUTO),
                   ::grpc::StatusCode::NOT_FOUND, missing});
  for (const Case& c : cases) {
    StreamReader reader(&stub(), c.req);
    ::grpc::Status s = reader.WaitDone();
    EXPECT_EQ(s.error_code(), c.code) << c.text << ": " << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(c.text));
    for (const auto& e : reader.events()) EXPECT_FALSE(e.has_subscribed());
  }
}

TEST_F(StreamTest, CancelRemovesTheConsumerPromptly) {
  std::string q = NewQueue("cancel");
  StreamReader reader(&stub(), Request(q, v1::StreamMessagesRequest::AUTO));
  ASSERT_TRUE(reader.WaitSubscribed());
  EXPECT_TRUE(WaitFor([&] { return Consumers(q) == 1; }));
  reader.Cancel();
  EXPECT_EQ(reader.WaitDone().error_code(), ::grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(WaitFor([&] { return Consumers(q) == 0; }, absl::Seconds(5)));
}

TEST_F(StreamTest, DeletedQueueEndsTheStreamAborted) {
  std::string q = NewQueue("deleted");
  StreamReader reader(&stub(), Request(q, v1::StreamMessagesRequest::AUTO));
  ASSERT_TRUE(reader.WaitSubscribed());
  v1::DeleteQueueRequest del;
  del.set_name(q);
  v1::DeleteQueueResponse resp;
  ASSERT_TRUE(stub().DeleteQueue(Ctx().get(), del, &resp).ok());
  ::grpc::Status s = reader.WaitDone();
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::ABORTED);
  EXPECT_THAT(s.error_message(), HasSubstr(q));
}

TEST_F(StreamTest, NoneModeDrainsTheQueue) {
  std::string q = NewQueue("none");
  PublishN(q, 500);
  StreamReader reader(&stub(),
                      Request(q, v1::StreamMessagesRequest::NONE, 50, 500));
  ASSERT_TRUE(reader.WaitDone().ok());
  EXPECT_EQ(reader.deliveries().size(), 500u);
  EXPECT_TRUE(WaitFor([&] { return Count(q) == 0; }));
}

TEST_F(StreamTest, TwoHundredStreamsAndOneStuckReader) {
  constexpr int kStreams = 200;
  // A stream whose client never reads: its queue holds far more than the
  // HTTP/2 windows can absorb.
  std::string stuck_q = NewQueue("stuck");
  PublishN(stuck_q, 3000);
  auto stuck_stub = gateway_->NewStub();
  auto stuck_ctx = Ctx(absl::Seconds(120));
  auto stuck = stuck_stub->StreamMessages(
      stuck_ctx.get(), Request(stuck_q, v1::StreamMessagesRequest::AUTO, 100));
  v1::StreamMessagesResponse first;
  ASSERT_TRUE(stuck->Read(&first));  // subscribed; then never read again

  std::vector<std::string> queues;
  std::vector<std::unique_ptr<StreamReader>> readers;
  auto stub2 = gateway_->NewStub();
  for (int i = 0; i < kStreams; ++i) {
    queues.push_back(NewQueue("many"));
    readers.push_back(std::make_unique<StreamReader>(
        stub2.get(),
        Request(queues.back(), v1::StreamMessagesRequest::AUTO, 10)));
  }
  for (auto& r : readers) ASSERT_TRUE(r->WaitSubscribed());
  for (int i = 0; i < kStreams; ++i) PublishN(queues[i], 5, i * 100);
  for (int i = 0; i < kStreams; ++i) {
    ASSERT_TRUE(readers[i]->WaitDeliveries(5)) << i;
    auto d = readers[i]->deliveries();
    ASSERT_EQ(d.size(), 5u);
    for (int k = 0; k < 5; ++k)
      EXPECT_EQ(d[k].body(), absl::StrCat(i * 100 + k));
  }
  EXPECT_GE(Counters().active_streams(), static_cast<uint64_t>(kStreams + 1));
  readers.clear();
  stuck_ctx->TryCancel();
  while (stuck->Read(&first)) {
  }
  stuck->Finish();
}

TEST_F(StreamTest, MaxMessagesEndsWithOk) {
  std::string q = NewQueue("max");
  PublishN(q, 30);
  StreamReader reader(&stub(),
                      Request(q, v1::StreamMessagesRequest::AUTO, 100, 10));
  ::grpc::Status s = reader.WaitDone();
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(reader.deliveries().size(), 10u);
  EXPECT_TRUE(WaitFor([&] { return Count(q) == 20; }));
}

// max_batch: every delivery arrives once, in order, only in `batch` events
// of at most max_batch; a burst is packed (fewer writes than deliveries).
TEST_F(StreamTest, BatchesCarryEveryDeliveryInOrder) {
  std::string q = NewQueue("batch");
  constexpr int kN = 5000 / kLoadDivisor;
  PublishN(q, kN);
  StreamReader reader(&stub(), Request(q, v1::StreamMessagesRequest::AUTO, 1000,
                                       kN, /*max_batch=*/64));
  ::grpc::Status end = reader.WaitDone(absl::Seconds(120));
  ASSERT_TRUE(end.ok()) << end.error_message();
  int batches = 0;
  for (const auto& e : reader.events()) {
    EXPECT_FALSE(e.has_delivery()) << "a lone delivery with max_batch set";
    if (!e.has_batch()) continue;
    ++batches;
    EXPECT_GE(e.batch().deliveries_size(), 1);
    EXPECT_LE(e.batch().deliveries_size(), 64);
  }
  auto d = reader.deliveries();
  ASSERT_EQ(d.size(), static_cast<size_t>(kN));
  for (int i = 0; i < kN; ++i) {
    ASSERT_EQ(d[i].body(), absl::StrCat(i));
    ASSERT_EQ(d[i].delivery_id(), static_cast<uint64_t>(i + 1));
  }
  // A full queue arrives in bursts of up to 1000 (the prefetch window)
  // while each write takes a thread hop: batches hold more than one.
  EXPECT_LT(batches, kN);
  EXPECT_TRUE(WaitFor([&] { return Count(q) == 0 && Consumers(q) == 0; }));
}

// CLIENT acks take the ids of batched deliveries; the prefetch window still
// bounds what is outstanding.
TEST_F(StreamTest, ClientAcksOfBatchedDeliveries) {
  std::string q = NewQueue("batchclient");
  PublishN(q, 60);
  StreamReader reader(&stub(), Request(q, v1::StreamMessagesRequest::CLIENT, 10,
                                       60, /*max_batch=*/4));
  ASSERT_TRUE(reader.WaitSubscribed());
  std::string sub = reader.subscription_id();
  size_t acked = 0;
  while (acked < 60) {
    ASSERT_TRUE(reader.WaitDeliveries(acked + 1));
    auto d = reader.deliveries();
    EXPECT_LE(d.size() - acked, 10u);
    std::vector<uint64_t> ids;
    for (size_t i = acked; i < d.size(); ++i) {
      EXPECT_EQ(d[i].body(), absl::StrCat(i));
      ids.push_back(d[i].delivery_id());
    }
    v1::AckResponse resp;
    ASSERT_TRUE(Ack(sub, ids, v1::AckRequest::ACK, &resp).ok());
    EXPECT_EQ(resp.applied_count(), ids.size());
    EXPECT_EQ(resp.stale_ids_size(), 0);
    acked = d.size();
  }
  ::grpc::Status end = reader.WaitDone();
  EXPECT_TRUE(end.ok()) << end.error_message();
  for (const auto& e : reader.events()) {
    if (e.has_batch()) {
      EXPECT_LE(e.batch().deliveries_size(), 4);
    }
  }
  EXPECT_TRUE(WaitFor([&] { return Count(q) == 0; }));
}

// Large messages: a batch closes once it reaches 1 MiB encoded, so it stays
// under gRPC's default 4 MiB receive limit whatever max_batch says.
TEST_F(StreamTest, BatchesOfLargeMessagesStayNearOneMebibyte) {
  std::string q = NewQueue("batchbig");
  constexpr int kN = 60;
  const std::string body(200 * 1024, 'x');
  for (int done = 0; done < kN; done += 10) {
    v1::PublishBatchRequest batch;
    for (int i = 0; i < 10; ++i) {
      auto* m = batch.add_messages();
      m->set_routing_key(q);
      m->set_body(body);
    }
    v1::PublishBatchResponse resp;
    ASSERT_TRUE(stub().PublishBatch(Ctx().get(), batch, &resp).ok());
    ASSERT_EQ(resp.ok_count(), 10u);
  }
  StreamReader reader(&stub(), Request(q, v1::StreamMessagesRequest::NONE, 100,
                                       kN, /*max_batch=*/1000));
  ::grpc::Status end = reader.WaitDone(absl::Seconds(120));
  ASSERT_TRUE(end.ok()) << end.error_message();
  EXPECT_EQ(reader.deliveries().size(), static_cast<size_t>(kN));
  for (const auto& e : reader.events()) {
    if (!e.has_batch()) continue;
    // All but the last delivery were under the limit when it was added.
    size_t before_last = 0;
    for (int i = 0; i + 1 < e.batch().deliveries_size(); ++i) {
      before_last += e.batch().deliveries(i).ByteSizeLong();
    }
    EXPECT_LT(before_last, size_t{1} << 20);
    EXPECT_LE(e.batch().deliveries_size(), 6);  // 5 x 200 KiB < 1 MiB
  }
  EXPECT_TRUE(WaitFor([&] { return Count(q) == 0; }));
}

// Broker restart while a stream and PublishBatch calls run: every confirmed
// message reaches the consumer at least once; old ids are stale.
TEST(StreamRestartTest, ConfirmedMessagesSurviveABrokerRestart) {
  auto node = BrokerNode::StartPrivate("stream-restart");
  ASSERT_TRUE(node.ok()) << node.status();
  auto g = TestGateway::Start(node->uri());
  ASSERT_TRUE(g->WaitReady());
  std::string q = UniqueName("restart");
  v1::DeclareQueueRequest dq;
  dq.set_name(q);
  v1::DeclareQueueResponse dq_resp;
  ASSERT_TRUE(g->stub().DeclareQueue(Ctx().get(), dq, &dq_resp).ok());
  std::string cq = UniqueName("restart-client");
  dq.set_name(cq);
  ASSERT_TRUE(g->stub().DeclareQueue(Ctx().get(), dq, &dq_resp).ok());

  // A CLIENT stream holding one unacked delivery across the restart.
  v1::PublishRequest one;
  one.set_routing_key(cq);
  one.set_body("held");
  v1::PublishResponse one_resp;
  ASSERT_TRUE(g->stub().Publish(Ctx().get(), one, &one_resp).ok());
  auto client_stub = g->NewStub();
  v1::StreamMessagesRequest creq;
  creq.set_queue(cq);
  creq.set_ack_mode(v1::StreamMessagesRequest::CLIENT);
  StreamReader client(client_stub.get(), creq, absl::Seconds(300));
  ASSERT_TRUE(client.WaitDeliveries(1));
  uint64_t old_id = client.deliveries()[0].delivery_id();

  auto stream_stub = g->NewStub();
  v1::StreamMessagesRequest sreq;
  sreq.set_queue(q);
  sreq.set_prefetch(200);
  StreamReader consumer(stream_stub.get(), sreq, absl::Seconds(300));
  ASSERT_TRUE(consumer.WaitSubscribed());

  std::mutex mu;
  std::set<int> confirmed;
  std::atomic<bool> stop{false};
  std::atomic<int> next{0};
  std::thread publisher([&] {
    auto stub = g->NewStub();
    while (!stop.load()) {
      v1::PublishBatchRequest req;
      int base = next.fetch_add(50);
      for (int i = 0; i < 50; ++i) {
        auto* m = req.add_messages();
        m->set_routing_key(q);
        m->set_body(absl::StrCat(base + i));
      }
      v1::PublishBatchResponse resp;
      if (!stub->PublishBatch(Ctx(absl::Seconds(60)).get(), req, &resp).ok()) {
        continue;
      }
      std::lock_guard<std::mutex> lock(mu);
      for (int i = 0; i < resp.results_size(); ++i) {
        if (resp.results(i).code() == 0) confirmed.insert(base + i);
      }
    }
  });
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard<std::mutex> lock(mu);
    return confirmed.size() >= 500;
  }));
  ASSERT_TRUE(node->Stop().ok());
  ASSERT_TRUE(node->Start().ok());
  ASSERT_TRUE(consumer.WaitEvent(
      [](const v1::StreamMessagesResponse& e) {
        return e.has_status() && e.status().kind() == v1::StreamStatus::RESUMED;
      },
      absl::Seconds(120)));
  ASSERT_TRUE(WaitFor(
      [&] {
        std::lock_guard<std::mutex> lock(mu);
        return confirmed.size() >= 1500;
      },
      absl::Seconds(120)));
  stop.store(true);
  publisher.join();

  std::set<int> want;
  {
    std::lock_guard<std::mutex> lock(mu);
    want = confirmed;
  }
  auto received_all = [&] {
    std::set<int> got;
    for (const auto& d : consumer.deliveries()) {
      int n;
      if (absl::SimpleAtoi(d.body(), &n)) got.insert(n);
    }
    return std::includes(got.begin(), got.end(), want.begin(), want.end());
  };
  EXPECT_TRUE(WaitFor(received_all, absl::Seconds(120)));
  EXPECT_TRUE(consumer.WaitEvent([](const v1::StreamMessagesResponse& e) {
    return e.has_status() &&
           e.status().kind() == v1::StreamStatus::RECONNECTING;
  }));

  // The CLIENT stream resumed too; its old delivery id is stale, and the
  // message came back as a new delivery, redelivered.
  ASSERT_TRUE(client.WaitDeliveries(2, absl::Seconds(60)));
  v1::AckRequest ack;
  ack.set_subscription_id(client.subscription_id());
  ack.add_delivery_ids(old_id);
  v1::AckResponse ack_resp;
  ASSERT_TRUE(g->stub().Ack(Ctx().get(), ack, &ack_resp).ok());
  EXPECT_EQ(ack_resp.applied_count(), 0u);
  EXPECT_THAT(ack_resp.stale_ids(), ::testing::ElementsAre(old_id));
  v1::Delivery redelivered = client.deliveries()[1];
  EXPECT_EQ(redelivered.body(), "held");
  EXPECT_TRUE(redelivered.redelivered());
  EXPECT_GT(redelivered.delivery_id(), old_id);
  ack.set_delivery_ids(0, redelivered.delivery_id());
  ASSERT_TRUE(g->stub().Ack(Ctx().get(), ack, &ack_resp).ok());
  EXPECT_EQ(ack_resp.applied_count(), 1u);

  consumer.Cancel();
  client.Cancel();
  g.reset();
  EXPECT_TRUE(node->Stop().ok());
}

}  // namespace
}  // namespace amqpgw::testing
