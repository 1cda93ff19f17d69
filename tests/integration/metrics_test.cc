// /metrics on --metrics_listen: Prometheus text whose numbers move as RPCs
// are made, over TCP and over the in-process channel the grpc-web bridge
// uses.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/http_client.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kGateway[] = "service=\"amqpgw.v1.Gateway\"";

std::string Handled(const std::string& method, const std::string& code) {
  return absl::StrCat("amqpgw_rpc_handled_total{", kGateway, ",method=\"",
                      method, "\",code=\"", code, "\"}");
}

class MetricsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    node_ = new BrokerNode(BrokerNode::Shared());
    gateway_ = TestGateway::Start(node_->uri(), [](daemon::Options& o) {
                 o.metrics_listen = "127.0.0.1:0";
               }).release();
    ASSERT_TRUE(gateway_->WaitReady());
  }
  static void TearDownTestSuite() {
    delete gateway_;
    delete node_;
  }

  std::string Scrape() {
    auto r = HttpGet(gateway_->daemon().metrics_port(), "/metrics");
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return "";
    EXPECT_EQ(r->status, 200);
    return r->body;
  }

  double Value(const std::string& sample) {
    return std::max(0.0, MetricValue(Scrape(), sample));
  }

  std::string NewQueue() {
    std::string q = UniqueName("metrics");
    v1::DeclareQueueRequest req;
    req.set_name(q);
    v1::DeclareQueueResponse resp;
    EXPECT_TRUE(gateway_->stub().DeclareQueue(Ctx().get(), req, &resp).ok());
    return q;
  }

  static BrokerNode* node_;
  static TestGateway* gateway_;
};

BrokerNode* MetricsTest::node_ = nullptr;
TestGateway* MetricsTest::gateway_ = nullptr;

TEST_F(MetricsTest, TextFormatWithHelpAndTypeForEveryFamily) {
  auto r = HttpGet(gateway_->daemon().metrics_port(), "/metrics");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->content_type, "text/plain; version=0.0.4; charset=utf-8");
  std::set<std::string> typed, helped;
  int samples = 0;
  for (absl::string_view line :
       absl::StrSplit(r->body, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    if (absl::ConsumePrefix(&line, "# TYPE ")) {
      typed.insert(std::string(f[2]));
      continue;
    }
    if (absl::ConsumePrefix(&line, "# HELP ")) {
      helped.insert(std::string(f[2]));
      continue;
    }
    ASSERT_NE(line[0], '#') << line;
    ++samples;
    // Each sample belongs to a family declared before it.
    std::string name(line.substr(0, line.find_first_of("{ ")));
    std::string family = name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      if (absl::EndsWith(name, suffix) &&
          typed.count(name.substr(0, name.size() - strlen(suffix)))) {
        family = name.substr(0, name.size() - strlen(suffix));
      }
    }
    EXPECT_TRUE(typed.count(family)) << "no TYPE before " << line;
    EXPECT_TRUE(helped.count(family)) << "no HELP before " << line;
  }
  EXPECT_GT(samples, 10);
  for (const char* family :
       {"amqpgw_rpc_handled_total", "amqpgw_rpc_duration_seconds",
        "amqpgw_messages_published_total", "amqpgw_messages_confirmed_total",
        "amqpgw_messages_nacked_total", "amqpgw_messages_returned_total",
        "amqpgw_deliveries_total", "amqpgw_deliveries_acked_total",
        "amqpgw_deliveries_requeued_total", "amqpgw_streams_active",
        "amqpgw_session_state", "amqpgw_session_reconnects_total",
        "amqpgw_broker_blocked", "amqpgw_bytes_in_total",
        "amqpgw_bytes_out_total", "amqpgw_publish_queued_seconds",
        "amqpgw_publish_confirm_seconds"}) {
    EXPECT_TRUE(typed.count(family)) << family;
  }
  EXPECT_EQ(MetricValue(r->body, "amqpgw_session_state{state=\"READY\"}"), 1);
  EXPECT_EQ(
      MetricValue(r->body, "amqpgw_session_state{state=\"RECONNECTING\"}"), 0);
  EXPECT_EQ(MetricValue(r->body, "amqpgw_broker_blocked"), 0);
  // The broker URI's password never shows.
  EXPECT_THAT(r->body, Not(HasSubstr("guest:guest")));
}

TEST_F(MetricsTest, NumbersMoveAsRpcsAreMade) {
  std::string q = NewQueue();
  std::string before = Scrape();
  auto v = [](const std::string& page, const std::string& sample) {
    return std::max(0.0, MetricValue(page, sample));
  };

  // A stream, active while open; then three confirmed messages (5 body
  // bytes each) delivered to it, and one NOT_FOUND call.
  v1::StreamMessagesRequest sreq;
  sreq.set_queue(q);
  sreq.set_max_messages(3);
  auto sctx = Ctx();
  auto reader = gateway_->stub().StreamMessages(sctx.get(), sreq);
  v1::StreamMessagesResponse event;
  ASSERT_TRUE(reader->Read(&event));
  ASSERT_TRUE(event.has_subscribed());
  EXPECT_TRUE(WaitFor([&] { return Value("amqpgw_streams_active") >= 1; }));

  for (int i = 0; i < 3; ++i) {
    v1::PublishRequest req;
    req.set_routing_key(q);
    req.set_body("hello");
    v1::PublishResponse resp;
    ASSERT_TRUE(gateway_->stub().Publish(Ctx().get(), req, &resp).ok());
  }
  v1::InspectQueueRequest missing;
  missing.set_name(UniqueName("missing"));
  v1::InspectQueueResponse inspect;
  EXPECT_EQ(gateway_->stub()
                .InspectQueue(Ctx().get(), missing, &inspect)
                .error_code(),
            ::grpc::StatusCode::NOT_FOUND);

  int deliveries = 0;
  while (reader->Read(&event)) deliveries += event.has_delivery() ? 1 : 0;
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(deliveries, 3);

  std::string after;
  // Acks and the stream's end are counted as the stream closes.
  ASSERT_TRUE(WaitFor([&] {
    after = Scrape();
    return v(after, "amqpgw_deliveries_acked_total") -
                   v(before, "amqpgw_deliveries_acked_total") >=
               3 &&
           v(after, Handled("StreamMessages", "OK")) -
                   v(before, Handled("StreamMessages", "OK")) >=
               1;
  }));
  EXPECT_EQ(
      v(after, Handled("Publish", "OK")) - v(before, Handled("Publish", "OK")),
      3);
  EXPECT_EQ(v(after, Handled("InspectQueue", "NOT_FOUND")) -
                v(before, Handled("InspectQueue", "NOT_FOUND")),
            1);
  std::string count =
      absl::StrCat("amqpgw_rpc_duration_seconds_count{", kGateway,
                   ",method=\"Publish\",code=\"OK\"}");
  std::string inf =
      absl::StrCat("amqpgw_rpc_duration_seconds_bucket{", kGateway,
                   ",method=\"Publish\",code=\"OK\",le=\"+Inf\"}");
  EXPECT_EQ(v(after, count) - v(before, count), 3);
  EXPECT_EQ(v(after, inf), v(after, count));
  EXPECT_GT(v(after, absl::StrCat("amqpgw_rpc_duration_seconds_sum{", kGateway,
                                  ",method=\"Publish\",code=\"OK\"}")),
            0);
  EXPECT_GE(v(after, absl::StrCat("amqpgw_rpc_started_total{", kGateway,
                                  ",method=\"Publish\"}")) -
                v(before, absl::StrCat("amqpgw_rpc_started_total{", kGateway,
                                       ",method=\"Publish\"}")),
            3);
  EXPECT_EQ(v(after, "amqpgw_messages_published_total") -
                v(before, "amqpgw_messages_published_total"),
            3);
  EXPECT_EQ(v(after, "amqpgw_messages_confirmed_total") -
                v(before, "amqpgw_messages_confirmed_total"),
            3);
  EXPECT_EQ(v(after, "amqpgw_deliveries_total") -
                v(before, "amqpgw_deliveries_total"),
            3);
  // Each confirmed message's time, split at its write to the broker: both
  // parts lie inside its Publish call.
  auto delta = [&](const std::string& sample) {
    return v(after, sample) - v(before, sample);
  };
  EXPECT_EQ(delta("amqpgw_publish_queued_seconds_count"), 3);
  EXPECT_EQ(delta("amqpgw_publish_confirm_seconds_count"), 3);
  EXPECT_EQ(v(after, "amqpgw_publish_confirm_seconds_bucket{le=\"+Inf\"}"),
            v(after, "amqpgw_publish_confirm_seconds_count"));
  const double queued = delta("amqpgw_publish_queued_seconds_sum");
  const double confirm = delta("amqpgw_publish_confirm_seconds_sum");
  EXPECT_GT(queued, 0);
  EXPECT_GT(confirm, 0);
  EXPECT_LT(queued + confirm,
            delta(absl::StrCat("amqpgw_rpc_duration_seconds_sum{", kGateway,
                               ",method=\"Publish\",code=\"OK\"}")));
  EXPECT_EQ(
      v(after, "amqpgw_bytes_in_total") - v(before, "amqpgw_bytes_in_total"),
      15);
  EXPECT_EQ(
      v(after, "amqpgw_bytes_out_total") - v(before, "amqpgw_bytes_out_total"),
      15);
  EXPECT_TRUE(WaitFor([&] { return Value("amqpgw_streams_active") == 0; }));
}

TEST_F(MetricsTest, UnroutableMessagesCountAsReturned) {
  double before = Value("amqpgw_messages_returned_total");
  double failed_before = Value(Handled("Publish", "FAILED_PRECONDITION"));
  v1::PublishRequest req;
  req.set_exchange("amq.direct");
  req.set_routing_key(UniqueName("nobody"));
  req.set_body("x");
  v1::PublishResponse resp;
  EXPECT_EQ(gateway_->stub().Publish(Ctx().get(), req, &resp).error_code(),
            ::grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Value("amqpgw_messages_returned_total") - before, 1);
  EXPECT_EQ(Value(Handled("Publish", "FAILED_PRECONDITION")) - failed_before,
            1);
}

TEST_F(MetricsTest, InProcessCallsAreCountedToo) {
  // The grpc-web bridge reaches the service through the in-process channel.
  double before = Value(Handled("GetStatus", "OK"));
  auto stub = v1::Gateway::NewStub(gateway_->daemon().InProcessChannel());
  v1::GetStatusResponse resp;
  ASSERT_TRUE(stub->GetStatus(Ctx().get(), v1::GetStatusRequest(), &resp).ok());
  EXPECT_EQ(Value(Handled("GetStatus", "OK")) - before, 1);
}

TEST_F(MetricsTest, HealthChecksAreCountedUnderTheirService) {
  std::string sample =
      "amqpgw_rpc_handled_total{service=\"grpc.health.v1.Health\","
      "method=\"Check\",code=\"OK\"}";
  double before = Value(sample);
  EXPECT_EQ(gateway_->Health(), "SERVING");
  EXPECT_EQ(Value(sample) - before, 1);
}

}  // namespace
}  // namespace amqpgw::testing
