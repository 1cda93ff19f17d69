// W3C trace context across the gateway and its spans at an OTLP/HTTP
// collector: a tiny collector on loopback (cpp-httplib) receives the JSON
// the daemon exports.
#include <gmock/gmock.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/base/sync.h"
#include "server/trace/trace_context.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/http_client.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

struct SpanRecord {
  std::string trace_id;
  std::string span_id;
  std::string parent_span_id;
  std::string name;
  int kind = 0;
};

// An OTLP/HTTP JSON collector on 127.0.0.1 that keeps every span.
class Collector {
 public:
  Collector() {
    server_.Post("/v1/traces", [this](const httplib::Request& req,
                                      httplib::Response& res) {
      google::protobuf::Struct doc;
      if (!google::protobuf::util::JsonStringToMessage(req.body, &doc).ok()) {
        res.status = 400;
        amqpgw::MutexLock lock(&mu_);
        ++bad_requests_;
        return;
      }
      amqpgw::MutexLock lock(&mu_);
      Collect(doc);
      res.set_content("{}", "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    // bind_to_any_port already listens: connections queue until accepted.
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Collector() {
    WaitFor([this] { return server_.is_running(); }, absl::Seconds(5));
    server_.stop();
    thread_.join();
  }
  std::string endpoint() const {
    return absl::StrCat("http://127.0.0.1:", port_);
  }
  std::vector<SpanRecord> SpansOf(const std::string& trace_id) {
    amqpgw::MutexLock lock(&mu_);
    std::vector<SpanRecord> out;
    for (const auto& s : spans_) {
      if (s.trace_id == trace_id) out.push_back(s);
    }
    return out;
  }
  int bad_requests() {
    amqpgw::MutexLock lock(&mu_);
    return bad_requests_;
  }

 private:
  static const google::protobuf::Value& Field(const google::protobuf::Value& v,
                                              const char* name) {
    static const google::protobuf::Value kNone;
    const auto& fields = v.struct_value().fields();
    auto it = fields.find(name);
    return it == fields.end() ? kNone : it->second;
  }
  void Collect(const google::protobuf::Struct& doc)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    google::protobuf::Value root;
    *root.mutable_struct_value() = doc;
    for (const auto& rs : Field(root, "resourceSpans").list_value().values()) {
      for (const auto& ss : Field(rs, "scopeSpans").list_value().values()) {
        for (const auto& s : Field(ss, "spans").list_value().values()) {
          SpanRecord r;
          r.trace_id = Field(s, "traceId").string_value();
          r.span_id = Field(s, "spanId").string_value();
          r.parent_span_id = Field(s, "parentSpanId").string_value();
          r.name = Field(s, "name").string_value();
          r.kind = static_cast<int>(Field(s, "kind").number_value());
          spans_.push_back(r);
        }
      }
    }
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  amqpgw::Mutex mu_;
  std::vector<SpanRecord> spans_ ABSL_GUARDED_BY(mu_);
  int bad_requests_ ABSL_GUARDED_BY(mu_) = 0;
};

// The first span named `name`, or nullptr.
const SpanRecord* Find(const std::vector<SpanRecord>& spans,
                       const std::string& name) {
  for (const auto& s : spans) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

class TracingTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    node_ = new BrokerNode(BrokerNode::Shared());
    collector_ = new Collector();
    traced_ = TestGateway::Start(node_->uri(), [](daemon::Options& o) {
                o.otlp_endpoint = collector_->endpoint();
              }).release();
    plain_ = TestGateway::Start(node_->uri()).release();
    ASSERT_TRUE(traced_->WaitReady());
    ASSERT_TRUE(plain_->WaitReady());
  }
  static void TearDownTestSuite() {
    delete traced_;
    delete plain_;
    delete collector_;
    delete node_;
  }

  static std::string NewQueue(TestGateway* g) {
    std::string q = UniqueName("trace");
    v1::DeclareQueueRequest req;
    req.set_name(q);
    v1::DeclareQueueResponse resp;
    EXPECT_TRUE(g->stub().DeclareQueue(Ctx().get(), req, &resp).ok());
    return q;
  }

  static void Publish(TestGateway* g, const std::string& q,
                      const std::string& traceparent,
                      const std::string& tracestate = "") {
    auto ctx = Ctx();
    if (!traceparent.empty()) ctx->AddMetadata("traceparent", traceparent);
    if (!tracestate.empty()) ctx->AddMetadata("tracestate", tracestate);
    v1::PublishRequest req;
    req.set_routing_key(q);
    req.set_body("traced");
    v1::PublishResponse resp;
    ASSERT_TRUE(g->stub().Publish(ctx.get(), req, &resp).ok());
  }

  // Reads `n` deliveries from `q`.
  static std::vector<v1::Delivery> Consume(TestGateway* g, const std::string& q,
                                           int n, uint32_t max_batch = 0) {
    v1::StreamMessagesRequest req;
    req.set_queue(q);
    req.set_max_messages(n);
    req.set_max_batch(max_batch);
    auto ctx = Ctx();
    auto reader = g->stub().StreamMessages(ctx.get(), req);
    std::vector<v1::Delivery> out;
    v1::StreamMessagesResponse event;
    while (reader->Read(&event)) {
      if (event.has_delivery()) out.push_back(event.delivery());
      for (const v1::Delivery& d : event.batch().deliveries()) {
        out.push_back(d);
      }
    }
    EXPECT_TRUE(reader->Finish().ok());
    return out;
  }

  static BrokerNode* node_;
  static Collector* collector_;
  static TestGateway* traced_;
  static TestGateway* plain_;
};

BrokerNode* TracingTest::node_ = nullptr;
Collector* TracingTest::collector_ = nullptr;
TestGateway* TracingTest::traced_ = nullptr;
TestGateway* TracingTest::plain_ = nullptr;

TEST_F(TracingTest, PublishedThenConsumedMessageYieldsSpansSharingOneTraceId) {
  trace::TraceContext caller = trace::NewRootContext(/*sampled=*/true);
  std::string q = NewQueue(traced_);
  Publish(traced_, q, caller.Traceparent(), "vendor=abc");
  std::vector<v1::Delivery> d = Consume(traced_, q, 1);
  ASSERT_EQ(d.size(), 1u);

  // The message carries the trace in its AMQP headers...
  auto header = d[0].properties().headers().find("traceparent");
  ASSERT_NE(header, d[0].properties().headers().end());
  auto in_header = trace::ParseTraceparent(header->second.string_value());
  ASSERT_TRUE(in_header.has_value());
  EXPECT_EQ(in_header->trace_id, caller.trace_id);
  // ...and the delivery gives it back as its trace context.
  auto delivered = trace::ParseTraceparent(d[0].trace_context().traceparent());
  ASSERT_TRUE(delivered.has_value()) << d[0].trace_context().DebugString();
  EXPECT_EQ(delivered->trace_id, caller.trace_id);
  EXPECT_EQ(d[0].trace_context().tracestate(), "vendor=abc");

  std::vector<SpanRecord> spans;
  ASSERT_TRUE(WaitFor([&] {
    spans = collector_->SpansOf(caller.trace_id);
    return Find(spans, "publish") && Find(spans, "confirm") &&
           Find(spans, "deliver");
  })) << spans.size()
      << " spans";
  const SpanRecord* publish = Find(spans, "publish");
  const SpanRecord* confirm = Find(spans, "confirm");
  const SpanRecord* deliver = Find(spans, "deliver");
  // One trace: the caller's span -> publish -> confirm, and publish ->
  // deliver (through the message's header) -> the consumer's context.
  EXPECT_EQ(publish->parent_span_id, caller.span_id);
  EXPECT_EQ(publish->kind, 4);  // PRODUCER
  EXPECT_EQ(in_header->span_id, publish->span_id);
  EXPECT_EQ(confirm->parent_span_id, publish->span_id);
  EXPECT_EQ(deliver->parent_span_id, publish->span_id);
  EXPECT_EQ(deliver->kind, 5);  // CONSUMER
  EXPECT_EQ(delivered->span_id, deliver->span_id);
  EXPECT_EQ(collector_->bad_requests(), 0);

  // Counted once the collector has answered the POST.
  std::string metrics;
  EXPECT_TRUE(WaitFor([&] {
    metrics = traced_->daemon().RenderMetrics();
    return MetricValue(metrics, "amqpgw_trace_spans_exported_total") >= 3;
  }));
  EXPECT_EQ(MetricValue(metrics, "amqpgw_trace_spans_dropped_total"), 0);
}

TEST_F(TracingTest, CallWithoutContextStartsATraceThatIsExported) {
  std::string q = NewQueue(traced_);
  Publish(traced_, q, "");
  std::vector<v1::Delivery> d = Consume(traced_, q, 1);
  ASSERT_EQ(d.size(), 1u);
  auto delivered = trace::ParseTraceparent(d[0].trace_context().traceparent());
  ASSERT_TRUE(delivered.has_value());
  EXPECT_TRUE(delivered->sampled());
  std::vector<SpanRecord> spans;
  ASSERT_TRUE(WaitFor([&] {
    spans = collector_->SpansOf(delivered->trace_id);
    return Find(spans, "publish") && Find(spans, "deliver");
  }));
  EXPECT_EQ(Find(spans, "publish")->parent_span_id, "");  // the root
  EXPECT_EQ(Find(spans, "deliver")->parent_span_id,
            Find(spans, "publish")->span_id);
}

TEST_F(TracingTest, BatchMessagesShareTheCallersTrace) {
  trace::TraceContext caller = trace::NewRootContext(true);
  std::string q = NewQueue(traced_);
  auto ctx = Ctx();
  ctx->AddMetadata("traceparent", caller.Traceparent());
  v1::PublishBatchRequest req;
  for (int i = 0; i < 3; ++i) {
    auto* m = req.add_messages();
    m->set_routing_key(q);
    m->set_body(absl::StrCat(i));
  }
  v1::PublishBatchResponse resp;
  ASSERT_TRUE(traced_->stub().PublishBatch(ctx.get(), req, &resp).ok());
  ASSERT_EQ(resp.ok_count(), 3u);
  // Consumed in batches (max_batch): still one deliver span per message,
  // each the parent named in its delivery's trace context.
  std::set<std::string> delivered_parents;
  for (const v1::Delivery& d : Consume(traced_, q, 3, /*max_batch=*/3)) {
    auto c = trace::ParseTraceparent(d.trace_context().traceparent());
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(c->trace_id, caller.trace_id);
    delivered_parents.insert(c->span_id);
  }
  EXPECT_EQ(delivered_parents.size(), 3u);
  std::set<std::string> deliver_spans;
  EXPECT_TRUE(WaitFor([&] {
    int publishes = 0;
    deliver_spans.clear();
    for (const auto& s : collector_->SpansOf(caller.trace_id)) {
      publishes += s.name == "publish" ? 1 : 0;
      if (s.name == "deliver") deliver_spans.insert(s.span_id);
    }
    return publishes == 3 && deliver_spans.size() == 3;
  }));
  EXPECT_EQ(deliver_spans, delivered_parents);
}

TEST_F(TracingTest, WithoutExporterTheContextStillCrossesTheGateway) {
  // Caller's context: passed through unchanged.
  std::string caller = trace::NewRootContext(true).Traceparent();
  std::string q = NewQueue(plain_);
  Publish(plain_, q, caller, "k=v");
  // None: no trace is started (nothing would record it), no headers.
  Publish(plain_, q, "");
  std::vector<v1::Delivery> d = Consume(plain_, q, 2);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].trace_context().traceparent(), caller);
  EXPECT_EQ(d[0].trace_context().tracestate(), "k=v");
  EXPECT_FALSE(d[1].has_trace_context());
  EXPECT_EQ(d[1].properties().headers_size(), 0);
  // Nothing is exported without --otlp_endpoint.
  EXPECT_EQ(MetricValue(plain_->daemon().RenderMetrics(),
                        "amqpgw_trace_spans_exported_total"),
            0);
}

}  // namespace
}  // namespace amqpgw::testing
