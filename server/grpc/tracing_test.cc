#include "server/grpc/tracing.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

namespace amqpgw::grpc_api {
namespace {

constexpr char kCaller[] =
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr char kCallerTrace[] = "4bf92f3577b34da6a3ce929d0e0e4736";

class CollectingExporter : public trace::SpanExporter {
 public:
  void Export(trace::Span span) override { spans.push_back(std::move(span)); }
  std::vector<trace::Span> spans;
};

std::string Header(const amqp::OutgoingMessage& m, const char* key) {
  const amqp::FieldValue* v = amqp::FindField(*m.properties.headers, key);
  if (v == nullptr) return "";
  const auto* s = std::get_if<std::string>(&v->value);
  return s != nullptr ? *s : "<not a string>";
}

TEST(TracingTest, CallWithoutContextAndWithoutExporterAddsNoHeaders) {
  PublishTracing t(std::nullopt, nullptr, "Publish");
  amqp::OutgoingMessage bare, with_headers;
  with_headers.properties.headers = amqp::FieldTable{{"app", std::string("x")}};
  t.Inject(0, bare);
  t.Inject(1, with_headers);
  EXPECT_FALSE(t.recording());
  // No header table at all: it would cost the broker per message.
  EXPECT_FALSE(bare.properties.headers.has_value());
  EXPECT_EQ(Header(with_headers, "traceparent"), "");
  EXPECT_EQ(Header(with_headers, "app"), "x");
}

TEST(TracingTest, CallWithoutContextStartsATraceWhenSpansAreRecorded) {
  CollectingExporter exporter;
  PublishTracing t(std::nullopt, &exporter, "Publish");
  amqp::OutgoingMessage a, b;
  t.Inject(0, a);
  t.Inject(1, b);
  EXPECT_TRUE(t.recording());
  auto ca = trace::ParseTraceparent(Header(a, "traceparent"));
  auto cb = trace::ParseTraceparent(Header(b, "traceparent"));
  ASSERT_TRUE(ca.has_value());
  ASSERT_TRUE(cb.has_value());
  // One sampled trace per call; each message names its own publish span.
  EXPECT_EQ(ca->trace_id, cb->trace_id);
  EXPECT_TRUE(ca->sampled());
  EXPECT_NE(ca->span_id, cb->span_id);
  EXPECT_EQ(amqp::FindField(*a.properties.headers, "tracestate"), nullptr);
}

TEST(TracingTest, CallerContextPassesThroughWithoutExporter) {
  PublishTracing t(trace::ParseTraceparent(kCaller, "vendor=1"), nullptr,
                   "Publish");
  amqp::OutgoingMessage m;
  m.properties.headers = amqp::FieldTable{{"app", std::string("x")}};
  t.Inject(0, m);
  EXPECT_EQ(Header(m, "traceparent"), kCaller);
  EXPECT_EQ(Header(m, "tracestate"), "vendor=1");
  EXPECT_EQ(Header(m, "app"), "x");
}

TEST(TracingTest, SampledCallerWithExporterRecordsAPublishSpan) {
  CollectingExporter exporter;
  PublishTracing t(trace::ParseTraceparent(kCaller), &exporter, "Publish");
  amqp::OutgoingMessage m;
  m.exchange = "orders";
  t.Inject(0, m);
  EXPECT_TRUE(t.recording());
  auto c = trace::ParseTraceparent(Header(m, "traceparent"));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->trace_id, kCallerTrace);
  // The header names the gateway's publish span, not the caller's.
  EXPECT_NE(c->span_id, "00f067aa0ba902b7");
}

TEST(TracingTest, UnsampledCallerIsNotRecorded) {
  CollectingExporter exporter;
  PublishTracing t(
      trace::ParseTraceparent(
          "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
      &exporter, "Publish");
  amqp::OutgoingMessage m;
  t.Inject(0, m);
  EXPECT_FALSE(t.recording());
  EXPECT_EQ(Header(m, "traceparent"),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
}

TEST(TracingTest, MessageHeaderWinsOverCallMetadata) {
  const char* own = "00-11111111111111111111111111111111-2222222222222222-01";
  PublishTracing t(trace::ParseTraceparent(kCaller), nullptr, "PublishBatch");
  amqp::OutgoingMessage m;
  m.properties.headers = amqp::FieldTable{{"traceparent", std::string(own)}};
  t.Inject(0, m);
  EXPECT_EQ(Header(m, "traceparent"), own);
  // An invalid header is replaced.
  amqp::OutgoingMessage bad;
  bad.properties.headers =
      amqp::FieldTable{{"traceparent", std::string("nonsense")}};
  t.Inject(1, bad);
  EXPECT_EQ(Header(bad, "traceparent"), kCaller);
}

TEST(TracingTest, ReadsContextFromDeliveredHeaders) {
  amqp::Properties p;
  EXPECT_FALSE(TraceContextFromHeaders(p).has_value());
  p.headers = amqp::FieldTable{{"traceparent", amqp::Bytes{kCaller}},
                               {"tracestate", std::string("a=b")}};
  auto c = TraceContextFromHeaders(p);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->Traceparent(), kCaller);
  EXPECT_EQ(c->tracestate, "a=b");
}

}  // namespace
}  // namespace amqpgw::grpc_api
