// Publish and PublishBatch against a real RabbitMQ node, checked with an
// independent AMQP client.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/support/amqp_peer.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

class PublishTest : public SharedGatewayTest {
 protected:
  void SetUp() override {
    auto peer = AmqpPeer::Connect(node_->port());
    ASSERT_TRUE(peer.ok()) << peer.status();
    peer_ = *std::move(peer);
  }

  std::string NewQueue(const std::string& prefix) {
    std::string q = UniqueName(prefix);
    v1::DeclareQueueRequest req;
    req.set_name(q);
    v1::DeclareQueueResponse resp;
    EXPECT_TRUE(stub().DeclareQueue(Ctx().get(), req, &resp).ok());
    return q;
  }

  std::unique_ptr<AmqpPeer> peer_;
};

TEST_F(PublishTest, MessageReachesTheBrokerWithPropertiesAndTypedHeaders) {
  std::string q = NewQueue("props");
  v1::PublishRequest req;
  req.set_routing_key(q);
  req.set_body(std::string("\x00\x01payload\xff", 10));
  v1::MessageProperties* p = req.mutable_properties();
  p->set_content_type("application/json");
  p->set_content_encoding("identity");
  p->set_priority(7);
  p->set_correlation_id("corr-1");
  p->set_reply_to("replies");
  p->mutable_expiration()->set_seconds(60);
  p->set_message_id("msg-1");
  p->mutable_timestamp()->set_seconds(1700000000);
  p->set_type("order.created");
  p->set_user_id("guest");
  p->set_app_id("tests");
  auto& h = *p->mutable_headers();
  h["b"].set_bool_value(true);
  h["i"].set_int_value(-5);
  h["d"].set_double_value(1.5);
  h["s"].set_string_value("héllo");
  h["x"].set_bytes_value(std::string("\x01\x02", 2));
  h["t"].mutable_timestamp_value()->set_seconds(1700000001);
  (*h["tab"].mutable_table_value()->mutable_fields())["n"].set_int_value(1);
  auto* arr = h["arr"].mutable_array_value();
  arr->add_values()->set_int_value(1);
  arr->add_values()->set_string_value("two");
  h["dec"].mutable_decimal_value()->set_scale(2);
  h["dec"].mutable_decimal_value()->set_value(12345);
  h["nul"].set_null_value(google::protobuf::NULL_VALUE);

  v1::PublishResponse resp;
  ::grpc::Status s = stub().Publish(Ctx().get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.message_id(), "msg-1");
  EXPECT_GT(resp.publish_time().seconds(), 1700000000);

  auto got = peer_->Get(q);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  const PeerMessage& m = **got;
  EXPECT_EQ(m.body, req.body());
  EXPECT_EQ(m.routing_key, q);
  EXPECT_EQ(m.properties.at("content_type"), "application/json");
  EXPECT_EQ(m.properties.at("content_encoding"), "identity");
  EXPECT_EQ(m.properties.at("delivery_mode"), "2");
  EXPECT_EQ(m.properties.at("priority"), "7");
  EXPECT_EQ(m.properties.at("correlation_id"), "corr-1");
  EXPECT_EQ(m.properties.at("reply_to"), "replies");
  EXPECT_EQ(m.properties.at("expiration"), "60000");
  EXPECT_EQ(m.properties.at("message_id"), "msg-1");
  EXPECT_EQ(m.properties.at("timestamp"), "1700000000");
  EXPECT_EQ(m.properties.at("type"), "order.created");
  EXPECT_EQ(m.properties.at("user_id"), "guest");
  EXPECT_EQ(m.properties.at("app_id"), "tests");
  EXPECT_THAT(
      m.headers,
      UnorderedElementsAre(
          Pair("b", "t:1"), Pair("i", "l:-5"), Pair("d", "d:1.5"),
          Pair("s", "S:héllo"), Pair("x", "x:0102"), Pair("t", "T:1700000001"),
          Pair("tab", "F:{n=l:1}"), Pair("arr", "A:[l:1,S:two]"),
          // No `traceparent`: the call had no trace context and the
          // gateway records no spans (docs/operations.md, "Tracing").
          Pair("dec", "D:2,12345"), Pair("nul", "V:")));
}

TEST_F(PublishTest, DefaultsArePersistentWithNothingAdded) {
  std::string q = NewQueue("defaults");
  v1::PublishRequest req;
  req.set_routing_key(q);
  req.set_body("hello");
  v1::PublishResponse resp;
  ASSERT_TRUE(stub().Publish(Ctx().get(), req, &resp).ok());
  // No message_id and no trace headers unless asked for.
  EXPECT_EQ(resp.message_id(), "");
  auto got = peer_->Get(q);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->properties.at("delivery_mode"), "2");
  EXPECT_EQ((*got)->properties.count("message_id"), 0u);
  EXPECT_TRUE((*got)->headers.empty());

  req.mutable_properties()->set_delivery_mode(v1::TRANSIENT);
  ASSERT_TRUE(stub().Publish(Ctx().get(), req, &resp).ok());
  got = peer_->Get(q);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->properties.at("delivery_mode"), "1");
}

TEST_F(PublishTest, DefaultMessageIdFlagGivesEachMessageAUuid) {
  auto g = TestGateway::Start(
      node_->uri(), [](daemon::Options& o) { o.default_message_id = true; });
  ASSERT_TRUE(g->WaitReady());
  std::string q = NewQueue("default-id");
  v1::PublishBatchRequest req;
  for (int i = 0; i < 3; ++i) {
    v1::PublishRequest* m = req.add_messages();
    m->set_routing_key(q);
    m->set_body(absl::StrCat(i));
  }
  req.mutable_messages(2)->mutable_properties()->set_message_id("mine");
  v1::PublishBatchResponse resp;
  ASSERT_TRUE(g->stub().PublishBatch(Ctx().get(), req, &resp).ok());
  ASSERT_EQ(resp.ok_count(), 3u);
  EXPECT_EQ(resp.results(0).message_id().size(), 36u);  // a UUID
  EXPECT_NE(resp.results(0).message_id(), resp.results(1).message_id());
  EXPECT_EQ(resp.results(2).message_id(), "mine");  // the caller's kept
  for (int i = 0; i < 3; ++i) {
    auto got = peer_->Get(q);
    ASSERT_TRUE(got.ok() && got->has_value());
    EXPECT_EQ((*got)->properties.at("message_id"),
              resp.results(i).message_id());
  }
}

TEST_F(PublishTest, UnroutableIsReportedUnlessAllowed) {
  v1::PublishRequest req;
  req.set_routing_key(UniqueName("nobody"));
  req.set_body("x");
  v1::PublishResponse resp;
  ::grpc::Status s = stub().Publish(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("NO_ROUTE"));
  EXPECT_THAT(s.error_message(), HasSubstr(req.routing_key()));

  req.set_allow_unroutable(true);
  EXPECT_TRUE(stub().Publish(Ctx().get(), req, &resp).ok());
}

TEST_F(PublishTest, MissingExchangeIsNotFoundAndDoesNotDisturbOthers) {
  std::string q = NewQueue("undisturbed");
  std::atomic<int> ok{0};
  std::thread good([&] {
    auto stub = gateway_->NewStub();
    for (int i = 0; i < 200; ++i) {
      v1::PublishRequest req;
      req.set_routing_key(q);
      req.set_body("good");
      v1::PublishResponse resp;
      if (stub->Publish(Ctx().get(), req, &resp).ok()) ++ok;
    }
  });
  for (int i = 0; i < 20; ++i) {
    v1::PublishRequest req;
    req.set_exchange(UniqueName("missing"));
    req.set_body("bad");
    v1::PublishResponse resp;
    ::grpc::Status s = stub().Publish(Ctx().get(), req, &resp);
    EXPECT_EQ(s.error_code(), ::grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(s.error_message(), HasSubstr(req.exchange()));
  }
  good.join();
  EXPECT_EQ(ok.load(), 200);
  auto count = peer_->MessageCount(q);
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 200u);
}

TEST_F(PublishTest, BrokerNackIsResourceExhausted) {
  std::string q = UniqueName("full");
  v1::DeclareQueueRequest dq;
  dq.set_name(q);
  (*dq.mutable_arguments())["x-max-length"].set_int_value(1);
  (*dq.mutable_arguments())["x-overflow"].set_string_value("reject-publish");
  v1::DeclareQueueResponse dq_resp;
  ASSERT_TRUE(stub().DeclareQueue(Ctx().get(), dq, &dq_resp).ok());
  v1::PublishRequest req;
  req.set_routing_key(q);
  req.set_body("1");
  v1::PublishResponse resp;
  ASSERT_TRUE(stub().Publish(Ctx().get(), req, &resp).ok());
  ::grpc::Status s = stub().Publish(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("nack"));
}

TEST_F(PublishTest, TwentyConcurrentClientsAllConfirmed) {
  std::string q = NewQueue("concurrent");
  constexpr int kClients = 20, kEach = 500 / kLoadDivisor;
  std::atomic<int> ok{0}, failed{0};
  std::string first_error;  // written by the first failing client only
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto stub = gateway_->NewStub();
      for (int i = 0; i < kEach; ++i) {
        v1::PublishRequest req;
        req.set_routing_key(q);
        req.set_body(absl::StrCat(c, "-", i));
        v1::PublishResponse resp;
        // (Under TSan, 20 clients on 2 cores can wait long for a turn.)
        ::grpc::Status s = stub->Publish(
            Ctx(absl::Seconds(30) * kLoadDivisor).get(), req, &resp);
        if (s.ok()) {
          ++ok;
        } else if (++failed == 1) {
          first_error = absl::StrCat(s.error_code(), ": ", s.error_message());
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), kClients * kEach);
  EXPECT_EQ(failed.load(), 0) << first_error;
  auto count = peer_->MessageCount(q);
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, static_cast<uint32_t>(kClients * kEach));
}

TEST_F(PublishTest, BatchReportsEachMessage) {
  std::string q = NewQueue("batch");
  v1::PublishBatchRequest req;
  for (int i = 0; i < 100; ++i) {
    auto* m = req.add_messages();
    m->set_routing_key(q);
    m->set_body(absl::StrCat(i));
  }
  req.mutable_messages(10)->set_routing_key(UniqueName("nobody"));
  req.mutable_messages(20)->set_exchange(UniqueName("missing"));
  v1::PublishBatchResponse resp;
  ASSERT_TRUE(stub().PublishBatch(Ctx().get(), req, &resp).ok());
  ASSERT_EQ(resp.results_size(), 100);
  EXPECT_EQ(resp.ok_count(), 98u);
  EXPECT_EQ(resp.results(10).code(), ::grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(resp.results(10).error(), HasSubstr("NO_ROUTE"));
  EXPECT_EQ(resp.results(20).code(), ::grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(resp.results(0).code(), 0);
  EXPECT_EQ(resp.results(0).message_id(), "");  // none set, none added
  // The 98 good ones arrived, in order.
  for (int i = 0; i < 100; ++i) {
    if (i == 10 || i == 20) continue;
    auto got = peer_->Get(q);
    ASSERT_TRUE(got.ok() && got->has_value());
    EXPECT_EQ((*got)->body, absl::StrCat(i));
  }
}

// The gateway encodes publish frames itself and writes a batch with one
// send (amqp/publish_frames.h): every body size around the frame size and
// past what a connection holds at once (128 KiB, then a body leaves in
// parts) reaches the queue byte for byte, in order, between small ones.
TEST_F(PublishTest, BodiesOfEverySizeArriveByteForByte) {
  std::string q = NewQueue("sizes");
  const size_t sizes[] = {0,   1,      100,           131064, 131065,
                          100, 300001, (3 << 20) + 7, 100,    262144};
  v1::PublishBatchRequest batch;
  for (size_t i = 0; i < std::size(sizes); ++i) {
    v1::PublishRequest* m = batch.add_messages();
    m->set_routing_key(q);
    std::string body(sizes[i], '\0');
    for (size_t j = 0; j < body.size(); ++j) {
      body[j] = static_cast<char>((j * 31 + i) % 253);
    }
    m->set_body(std::move(body));
    m->mutable_properties()->set_message_id(absl::StrCat("m", i));
  }
  v1::PublishBatchResponse resp;
  ::grpc::Status s = stub().PublishBatch(Ctx().get(), batch, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.results_size(), batch.messages_size());
  for (const v1::PublishResult& r : resp.results()) {
    EXPECT_EQ(r.code(), 0) << r.error();
  }
  for (int i = 0; i < batch.messages_size(); ++i) {
    auto got = peer_->Get(q);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(got->has_value()) << "message " << i << " missing";
    EXPECT_EQ((*got)->properties.at("message_id"), absl::StrCat("m", i));
    EXPECT_TRUE((*got)->body == batch.messages(i).body())
        << "message " << i << ": " << (*got)->body.size() << " bytes, sent "
        << sizes[i];
  }
  auto none = peer_->Get(q);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());
}

TEST_F(PublishTest, BadFieldsAreInvalidArgumentNamingTheField) {
  struct Case {
    std::function<void(v1::PublishRequest&)> set;
    std::string field;
  } cases[] = {
      {[](auto& r) { r.set_routing_key(std::string(256, 'k')); },
       "routing_key"},
      {[](auto& r) { r.set_exchange(std::string(300, 'e')); }, "exchange"},
      {[](auto& r) { r.mutable_properties()->set_priority(300); },
       "properties.priority"},
      {[](auto& r) {
         r.mutable_properties()->mutable_expiration()->set_seconds(-1);
       },
       "properties.expiration"},
      {[](auto& r) {
         r.mutable_properties()->mutable_expiration()->set_seconds(100000000);
       },
       "properties.expiration"},
      {[](auto& r) {
         r.mutable_properties()->set_delivery_mode(
             static_cast<v1::DeliveryMode>(7));
       },
       "properties.delivery_mode"},
      {[](auto& r) {
         r.mutable_properties()->set_content_type(std::string(256, 'c'));
       },
       "properties.content_type"},
      {[](auto& r) { r.set_body(std::string((4 << 20) + 1, 'b')); }, "body"},
      {[](auto& r) {
         v1::FieldValue* v = &(*r.mutable_properties()->mutable_headers())["h"];
         for (int i = 0; i < 17; ++i) {
           v = &(*v->mutable_table_value()->mutable_fields())["n"];
         }
         v->set_int_value(1);
       },
       "properties.headers"},
  };
  for (const Case& c : cases) {
    v1::PublishRequest req;
    req.set_routing_key("q");
    c.set(req);
    v1::PublishResponse resp;
    ::grpc::Status s = stub().Publish(Ctx().get(), req, &resp);
    EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_THAT(s.error_message(), HasSubstr(c.field));
  }
  // A bad message in a batch names its index.
  v1::PublishBatchRequest batch;
  batch.add_messages()->set_routing_key("q");
  batch.add_messages()->mutable_properties()->set_priority(256);
  v1::PublishBatchResponse batch_resp;
  ::grpc::Status s = stub().PublishBatch(Ctx().get(), batch, &batch_resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("messages[1].properties.priority"));

  v1::PublishBatchRequest too_many;
  for (int i = 0; i < 10001; ++i) too_many.add_messages()->set_routing_key("q");
  s = stub().PublishBatch(Ctx().get(), too_many, &batch_resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("10000"));

  // The daemon still serves.
  v1::GetStatusResponse status;
  EXPECT_TRUE(
      stub().GetStatus(Ctx().get(), v1::GetStatusRequest(), &status).ok());
}

TEST_F(PublishTest, CountersMove) {
  v1::GetStatusResponse before, after;
  ASSERT_TRUE(
      stub().GetStatus(Ctx().get(), v1::GetStatusRequest(), &before).ok());
  std::string q = NewQueue("counters");
  v1::PublishRequest req;
  req.set_routing_key(q);
  v1::PublishResponse resp;
  ASSERT_TRUE(stub().Publish(Ctx().get(), req, &resp).ok());
  ASSERT_TRUE(
      stub().GetStatus(Ctx().get(), v1::GetStatusRequest(), &after).ok());
  EXPECT_GE(after.counters().published(), before.counters().published() + 1);
  EXPECT_GE(after.counters().confirmed(), before.counters().confirmed() + 1);
  EXPECT_FALSE(after.version().empty());
}

}  // namespace
}  // namespace amqpgw::testing
