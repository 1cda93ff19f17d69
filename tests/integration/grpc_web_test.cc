// grpc-web on the daemon's HTTP port against a real RabbitMQ node: unary
// and streaming calls in both content types, errors in trailers, a browser
// that goes away (its consumer is cancelled, unacked messages requeued),
// 200 concurrent streams, shutdown, CORS and the page itself; and `buf
// curl --protocol grpcweb` as a third-party client (BufCurl*, run by the
// grpc_web_buf_curl_test ctest entry, which needs tests/web's npm packages).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "amqpgw/v1/gateway.pb.h"
#include "server/web/web_server.h"
#include "tests/support/amqp_peer.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/grpc_web_client.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kService[] = "/amqpgw.v1.Gateway/";

GrpcWebCallOptions Text() {
  GrpcWebCallOptions o;
  o.text = true;
  return o;
}

template <typename T>
std::vector<T> Parse(const std::vector<std::string>& messages) {
  std::vector<T> out;
  for (const std::string& m : messages) {
    T t;
    EXPECT_TRUE(t.ParseFromString(m));
    out.push_back(std::move(t));
  }
  return out;
}

// Events of a StreamMessages response so far, keep-alives (empty) skipped.
std::vector<v1::StreamMessagesResponse> Events(const GrpcWebReply& r) {
  std::vector<v1::StreamMessagesResponse> out;
  for (auto& e : Parse<v1::StreamMessagesResponse>(r.messages)) {
    if (e.event_case() != v1::StreamMessagesResponse::EVENT_NOT_SET) {
      out.push_back(std::move(e));
    }
  }
  return out;
}

size_t Deliveries(const GrpcWebReply& r) {
  size_t n = 0;
  for (const auto& e : Events(r)) n += e.has_delivery() ? 1 : 0;
  return n;
}

bool Subscribed(const GrpcWebReply& r) {
  auto events = Events(r);
  return !events.empty() && events[0].has_subscribed();
}

class GrpcWebTest : public SharedGatewayTest {
 protected:
  static void SetUpTestSuite() {
    SharedGatewayTest::SetUpTestSuite();
    if (HasFatalFailure()) return;
    auto peer = AmqpPeer::Connect(node_->port());
    ASSERT_TRUE(peer.ok()) << peer.status();
    peer_ = peer->release();
  }
  static void TearDownTestSuite() {
    delete peer_;
    SharedGatewayTest::TearDownTestSuite();
  }

  int port() const { return gateway_->daemon().http_port(); }

  // Declares a queue through grpc-web and returns its name.
  std::string DeclareQueue(const std::string& prefix) {
    v1::DeclareQueueRequest req;
    req.set_name(UniqueName(prefix));
    req.set_durable(false);
    GrpcWebReply r = GrpcWebPost(port(), absl::StrCat(kService, "DeclareQueue"),
                                 {req.SerializeAsString()});
    EXPECT_EQ(r.GrpcStatus(), 0) << r.GrpcMessage();
    return req.name();
  }

  void PublishTo(const std::string& queue, int n) {
    v1::PublishBatchRequest batch;
    for (int i = 0; i < n; ++i) {
      v1::PublishRequest* m = batch.add_messages();
      m->set_routing_key(queue);
      m->set_body(absl::StrCat("m", i));
    }
    v1::PublishBatchResponse resp;
    auto ctx = Ctx();
    ASSERT_TRUE(gateway_->stub().PublishBatch(ctx.get(), batch, &resp).ok());
    ASSERT_EQ(resp.ok_count(), static_cast<uint32_t>(n));
  }

  std::string StreamRequest(const std::string& queue,
                            v1::StreamMessagesRequest::AckMode mode,
                            uint32_t prefetch = 100) {
    v1::StreamMessagesRequest req;
    req.set_queue(queue);
    req.set_ack_mode(mode);
    req.set_prefetch(prefetch);
    return req.SerializeAsString();
  }

  static AmqpPeer* peer_;
};

AmqpPeer* GrpcWebTest::peer_ = nullptr;

TEST_F(GrpcWebTest, UnaryCallsInBothContentTypes) {
  ASSERT_GT(port(), 0);
  for (bool text : {false, true}) {
    GrpcWebCallOptions o;
    o.text = text;
    GrpcWebReply status =
        GrpcWebPost(port(), absl::StrCat(kService, "GetStatus"),
                    {v1::GetStatusRequest().SerializeAsString()}, o);
    ASSERT_EQ(status.http_status, 200);
    ASSERT_EQ(status.GrpcStatus(), 0) << status.GrpcMessage();
    ASSERT_EQ(status.messages.size(), 1u);
    auto s = Parse<v1::GetStatusResponse>(status.messages)[0];
    EXPECT_EQ(s.version(), AMQPGW_VERSION);
    EXPECT_EQ(s.connection().state(), v1::ConnectionInfo::READY);

    // Declare, publish and inspect, all through grpc-web.
    v1::DeclareQueueRequest declare;
    declare.set_name(UniqueName(text ? "web-text" : "web-bin"));
    declare.set_durable(false);
    GrpcWebReply d = GrpcWebPost(port(), absl::StrCat(kService, "DeclareQueue"),
                                 {declare.SerializeAsString()}, o);
    ASSERT_EQ(d.GrpcStatus(), 0) << d.GrpcMessage();
    EXPECT_EQ(Parse<v1::DeclareQueueResponse>(d.messages)[0].name(),
              declare.name());

    v1::PublishRequest publish;
    publish.set_routing_key(declare.name());
    publish.set_body(std::string("bytes \x00\xff", 8));
    (*publish.mutable_properties()->mutable_headers())["x-n"].set_int_value(7);
    publish.mutable_properties()->set_message_id("web-1");
    GrpcWebReply p = GrpcWebPost(port(), absl::StrCat(kService, "Publish"),
                                 {publish.SerializeAsString()}, o);
    ASSERT_EQ(p.GrpcStatus(), 0) << p.GrpcMessage();
    EXPECT_EQ(Parse<v1::PublishResponse>(p.messages)[0].message_id(), "web-1");

    v1::InspectQueueRequest inspect;
    inspect.set_name(declare.name());
    GrpcWebReply i = GrpcWebPost(port(), absl::StrCat(kService, "InspectQueue"),
                                 {inspect.SerializeAsString()}, o);
    ASSERT_EQ(i.GrpcStatus(), 0);
    EXPECT_EQ(Parse<v1::InspectQueueResponse>(i.messages)[0].message_count(),
              1u);

    // What the broker really has.
    auto got = peer_->Get(declare.name());
    ASSERT_TRUE(got.ok() && got->has_value());
    EXPECT_EQ((*got)->body, std::string("bytes \x00\xff", 8));
    EXPECT_EQ((*got)->headers["x-n"], "l:7");
  }
}

TEST_F(GrpcWebTest, ErrorsComeAsGrpcStatusInTheTrailer) {
  v1::InspectQueueRequest missing;
  missing.set_name(UniqueName("web-missing"));
  GrpcWebReply r = GrpcWebPost(port(), absl::StrCat(kService, "InspectQueue"),
                               {missing.SerializeAsString()});
  EXPECT_EQ(r.http_status, 200);
  ASSERT_TRUE(r.has_trailer);
  EXPECT_EQ(r.GrpcStatus(), static_cast<int>(::grpc::NOT_FOUND));
  EXPECT_THAT(r.GrpcMessage(), HasSubstr(missing.name()));

  v1::PublishRequest bad;
  bad.set_routing_key(std::string(300, 'k'));
  GrpcWebReply b = GrpcWebPost(port(), absl::StrCat(kService, "Publish"),
                               {bad.SerializeAsString()});
  EXPECT_EQ(b.GrpcStatus(), static_cast<int>(::grpc::INVALID_ARGUMENT));
  EXPECT_THAT(b.GrpcMessage(), HasSubstr("routing_key"));

  // Unknown methods and services: the gRPC server's own UNIMPLEMENTED.
  for (const char* path :
       {"/amqpgw.v1.Gateway/NoSuchMethod", "/no.such.Service/Call"}) {
    GrpcWebReply u = GrpcWebPost(port(), path, {""});
    EXPECT_EQ(u.http_status, 200) << path;
    EXPECT_EQ(u.GrpcStatus(), static_cast<int>(::grpc::UNIMPLEMENTED)) << path;
  }
  // A request that is not the method's message.
  GrpcWebReply garbage = GrpcWebPost(port(), absl::StrCat(kService, "Publish"),
                                     {std::string("\xff\xff\xff", 3)});
  EXPECT_NE(garbage.GrpcStatus(), 0);
  EXPECT_NE(garbage.GrpcStatus(), -1);
  // Other services of the gRPC port are there too (health).
  GrpcWebReply health =
      GrpcWebPost(port(), "/grpc.health.v1.Health/Check", {""});
  EXPECT_EQ(health.GrpcStatus(), 0);
  EXPECT_EQ(health.messages.size(), 1u);
}

TEST_F(GrpcWebTest, StreamDeliversEachMessageAsItIsPublished) {
  for (bool text : {false, true}) {
    std::string queue = DeclareQueue("web-live");
    GrpcWebCallOptions o;
    o.text = text;
    GrpcWebStream stream(port(), absl::StrCat(kService, "StreamMessages"),
                         StreamRequest(queue, v1::StreamMessagesRequest::AUTO),
                         o);
    ASSERT_TRUE(stream.WaitFor(Subscribed)) << stream.Snapshot().raw;
    for (int i = 0; i < 5; ++i) {
      PublishTo(queue, 1);
      // Each message arrives while the response is still open.
      ASSERT_TRUE(stream.WaitFor([&](const GrpcWebReply& r) {
        return Deliveries(r) == static_cast<size_t>(i + 1);
      })) << text
          << " " << i;
      EXPECT_FALSE(stream.Snapshot().has_trailer);
    }
    auto events = Events(stream.Snapshot());
    EXPECT_EQ(events.back().delivery().body(), "m0");
    EXPECT_EQ(events.back().delivery().delivery_id(), 5u);
  }
}

TEST_F(GrpcWebTest, ClosedBrowserCancelsTheConsumerAndRequeues) {
  std::string queue = DeclareQueue("web-gone");
  PublishTo(queue, 3);
  {
    GrpcWebStream stream(
        port(), absl::StrCat(kService, "StreamMessages"),
        StreamRequest(queue, v1::StreamMessagesRequest::CLIENT));
    ASSERT_TRUE(stream.WaitFor(
        [](const GrpcWebReply& r) { return Deliveries(r) == 3; }));
    ASSERT_TRUE(WaitFor([&] {
      auto n = peer_->ConsumerCount(queue);
      return n.ok() && *n == 1;
    }));
    EXPECT_EQ(*peer_->MessageCount(queue), 0u);  // all 3 unacked
    stream.HangUp();                             // the tab closes
    // The consumer goes away promptly and the broker requeues.
    EXPECT_TRUE(WaitFor(
        [&] {
          auto n = peer_->ConsumerCount(queue);
          return n.ok() && *n == 0;
        },
        absl::Seconds(10)));
    EXPECT_TRUE(WaitFor(
        [&] {
          auto n = peer_->MessageCount(queue);
          return n.ok() && *n == 3;
        },
        absl::Seconds(10)));
  }
  EXPECT_TRUE(
      WaitFor([&] { return gateway_->daemon().web()->active_calls() == 0; },
              absl::Seconds(10)));
}

TEST_F(GrpcWebTest, AckOverGrpcWeb) {
  std::string queue = DeclareQueue("web-ack");
  PublishTo(queue, 2);
  GrpcWebStream stream(port(), absl::StrCat(kService, "StreamMessages"),
                       StreamRequest(queue, v1::StreamMessagesRequest::CLIENT));
  ASSERT_TRUE(
      stream.WaitFor([](const GrpcWebReply& r) { return Deliveries(r) == 2; }));
  auto events = Events(stream.Snapshot());
  v1::AckRequest ack;
  ack.set_subscription_id(events[0].subscribed().subscription_id());
  ack.add_delivery_ids(events[1].delivery().delivery_id());
  ack.set_action(v1::AckRequest::ACK);
  GrpcWebReply a = GrpcWebPost(port(), absl::StrCat(kService, "Ack"),
                               {ack.SerializeAsString()}, Text());
  ASSERT_EQ(a.GrpcStatus(), 0) << a.GrpcMessage();
  EXPECT_EQ(Parse<v1::AckResponse>(a.messages)[0].applied_count(), 1u);
  stream.HangUp();
  // One acked, one requeued.
  EXPECT_TRUE(WaitFor([&] {
    auto n = peer_->MessageCount(queue);
    auto c = peer_->ConsumerCount(queue);
    return n.ok() && c.ok() && *n == 1 && *c == 0;
  }));
}

TEST_F(GrpcWebTest, TwoHundredConcurrentStreams) {
  constexpr int kStreams = 200;
  std::string queue = DeclareQueue("web-200");
  std::vector<std::unique_ptr<GrpcWebStream>> streams;
  for (int i = 0; i < kStreams; ++i) {
    streams.push_back(std::make_unique<GrpcWebStream>(
        port(), absl::StrCat(kService, "StreamMessages"),
        StreamRequest(queue, v1::StreamMessagesRequest::CLIENT,
                      /*prefetch=*/1),
        i % 2 == 1 ? Text() : GrpcWebCallOptions()));
  }
  for (int i = 0; i < kStreams; ++i) {
    ASSERT_TRUE(streams[i]->WaitFor(Subscribed, absl::Seconds(120)))
        << "stream " << i << ": " << streams[i]->Snapshot().raw;
  }
  EXPECT_TRUE(WaitFor([&] {
    auto n = peer_->ConsumerCount(queue);
    return n.ok() && *n == kStreams;
  }));
  // With prefetch 1 and nothing acked, each stream gets exactly one.
  PublishTo(queue, kStreams);
  for (int i = 0; i < kStreams; ++i) {
    EXPECT_TRUE(streams[i]->WaitFor(
        [](const GrpcWebReply& r) { return Deliveries(r) == 1; },
        absl::Seconds(120)))
        << "stream " << i;
  }
  for (auto& s : streams) s->HangUp();
  streams.clear();
  EXPECT_TRUE(WaitFor(
      [&] {
        auto n = peer_->ConsumerCount(queue);
        auto m = peer_->MessageCount(queue);
        return n.ok() && m.ok() && *n == 0 && *m == kStreams;
      },
      absl::Seconds(60)));
}

TEST_F(GrpcWebTest, IdleStreamsGetKeepAlivesFromTheDescriptors) {
  EXPECT_TRUE(
      web::IsServerStreamingMethod("/amqpgw.v1.Gateway/StreamMessages"));
  EXPECT_FALSE(web::IsServerStreamingMethod("/amqpgw.v1.Gateway/Publish"));
  EXPECT_FALSE(web::IsServerStreamingMethod("/grpc.health.v1.Health/Check"));
  EXPECT_FALSE(web::IsServerStreamingMethod("/no.Such/Method"));
  EXPECT_FALSE(web::IsServerStreamingMethod("garbage"));

  // A bridge of its own on the daemon's gRPC server, with a short interval.
  web::WebServer::Options o;
  o.listen = "127.0.0.1:0";
  o.keepalive_interval = absl::Milliseconds(100);
  web::WebServer bridge(o, gateway_->daemon().InProcessChannel());
  ASSERT_TRUE(bridge.Start().ok());
  std::string queue = DeclareQueue("web-idle");
  GrpcWebStream stream(bridge.port(), absl::StrCat(kService, "StreamMessages"),
                       StreamRequest(queue, v1::StreamMessagesRequest::AUTO));
  // subscribed, then empty messages while the queue stays empty.
  ASSERT_TRUE(stream.WaitFor([](const GrpcWebReply& r) {
    int empty = 0;
    for (const auto& m : r.messages) empty += m.empty() ? 1 : 0;
    return Subscribed(r) && empty >= 3;
  })) << stream.Snapshot().raw.size();
  EXPECT_EQ(Deliveries(stream.Snapshot()), 0u);
  // The keep-alives do not disturb deliveries.
  PublishTo(queue, 1);
  EXPECT_TRUE(
      stream.WaitFor([](const GrpcWebReply& r) { return Deliveries(r) == 1; }));
  // A unary answer is exactly one message, never a keep-alive.
  GrpcWebReply status =
      GrpcWebPost(bridge.port(), absl::StrCat(kService, "GetStatus"), {""});
  EXPECT_EQ(status.messages.size(), 1u);
  stream.HangUp();
  bridge.Stop();
}

TEST_F(GrpcWebTest, ThePageIsServedAtTheRoot) {
  HttpReply page = HttpGet(port(), "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.Header("Content-Type"), "text/html; charset=utf-8");
  EXPECT_THAT(page.body, HasSubstr("amqpgw"));
  // The page's script, embedded in the binary.
  HttpReply script = HttpGet(port(), "/app.js");
  EXPECT_EQ(script.status, 200);
  EXPECT_THAT(script.body, HasSubstr("amqpgw.v1.Gateway"));
}

// A gateway of its own: shutdown while a grpc-web stream is open, and the
// --cors_origins flag.
TEST(GrpcWebDaemonTest, ShutdownEndsStreamsWithUnavailableAndCorsFlagWorks) {
  BrokerNode node = BrokerNode::Shared();
  auto gateway = TestGateway::Start(node.uri(), [](daemon::Options& o) {
    o.cors_origins = "https://app.example, https://other.example/";
  });
  ASSERT_TRUE(gateway->WaitReady());
  const int port = gateway->daemon().http_port();

  GrpcWebCallOptions pre;
  pre.headers = {{"Origin", "https://other.example"}};
  GrpcWebReply allowed =
      GrpcWebPost(port, absl::StrCat(kService, "GetStatus"), {""}, pre);
  EXPECT_EQ(allowed.GrpcStatus(), 0);
  EXPECT_EQ(allowed.Header("Access-Control-Allow-Origin"),
            "https://other.example");
  pre.headers = {{"Origin", "https://evil.example"}};
  GrpcWebReply refused =
      GrpcWebPost(port, absl::StrCat(kService, "GetStatus"), {""}, pre);
  EXPECT_EQ(refused.http_status, 403);

  auto peer = AmqpPeer::Connect(node.port());
  ASSERT_TRUE(peer.ok());
  std::string queue = UniqueName("web-shutdown");
  ASSERT_TRUE((*peer)->DeclareQueue(queue, /*durable=*/false).ok());
  v1::StreamMessagesRequest req;
  req.set_queue(queue);
  GrpcWebStream stream(port, absl::StrCat(kService, "StreamMessages"),
                       req.SerializeAsString());
  ASSERT_TRUE(stream.WaitFor(Subscribed));
  gateway->Shutdown();
  ASSERT_TRUE(stream.WaitEnded(absl::Seconds(30)));
  GrpcWebReply end = stream.Snapshot();
  ASSERT_TRUE(end.has_trailer) << end.raw;
  EXPECT_EQ(end.GrpcStatus(), static_cast<int>(::grpc::UNAVAILABLE));
  EXPECT_THAT(end.GrpcMessage(), HasSubstr("shutting down")) << end.raw;
  EXPECT_TRUE(WaitFor([&] {
    auto n = (*peer)->ConsumerCount(queue);
    return n.ok() && *n == 0;
  }));
  (void)(*peer)->DeleteQueue(queue);
}

// `buf curl` (from tests/web's npm packages) as a third-party grpc-web
// client, with the protoset the build makes.
TEST_F(GrpcWebTest, BufCurlUnaryAndServerStream) {
  const std::string buf = AMQPGW_BUF_BINARY;
  // A protoset is a binary FileDescriptorSet: buf wants the format named.
  const std::string schema = absl::StrCat(AMQPGW_PROTOSET, "#format=binpb");
  std::string queue = UniqueName("web-buf");
  auto declare = RunCommand(
      absl::StrCat(buf, " curl --protocol grpcweb --schema ", schema,
                   " --data '{\"name\": \"", queue,
                   "\", \"durable\": false}' http://127.0.0.1:", port(),
                   "/amqpgw.v1.Gateway/DeclareQueue 2>&1"));
  ASSERT_TRUE(declare.ok()) << declare.status();
  EXPECT_THAT(*declare, HasSubstr(absl::StrCat("\"name\": \"", queue, "\"")));

  PublishTo(queue, 2);
  auto stream = RunCommand(
      absl::StrCat(buf, " curl --protocol grpcweb --schema ", schema,
                   " --data '{\"queue\": \"", queue,
                   "\", \"maxMessages\": 2}' http://127.0.0.1:", port(),
                   "/amqpgw.v1.Gateway/StreamMessages 2>&1"));
  ASSERT_TRUE(stream.ok()) << stream.status();
  EXPECT_THAT(*stream, HasSubstr("\"subscribed\""));
  EXPECT_THAT(*stream, HasSubstr("\"body\": \"bTA=\""));  // "m0"
  EXPECT_THAT(*stream, HasSubstr("\"body\": \"bTE=\""));  // "m1"

  // An error: buf reports the code and the message.
  auto missing = RunCommand(absl::StrCat(
      buf, " curl --protocol grpcweb --schema ", schema,
      " --data '{\"name\": \"", queue, "-nope\"}' http://127.0.0.1:", port(),
      "/amqpgw.v1.Gateway/InspectQueue 2>&1"));
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("not_found"));
  (void)peer_->DeleteQueue(queue);
}

}  // namespace
}  // namespace amqpgw::testing
