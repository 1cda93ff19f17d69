#include "server/trace/otlp_exporter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/base/sync.h"

namespace amqpgw::trace {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

Span MakeSpan(const std::string& name) {
  Span s;
  s.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  s.span_id = "00f067aa0ba902b7";
  s.name = name;
  s.kind = SpanKind::kProducer;
  s.start = absl::FromUnixNanos(1700000000000000001);
  s.end = absl::FromUnixNanos(1700000000000000002);
  return s;
}

TEST(OtlpJsonTest, EncodesSpansWithHexIdsAndStringTimestamps) {
  Span s = MakeSpan("publish");
  s.parent_span_id = "1111111111111111";
  s.trace_state = "k=v";
  s.Add("messaging.system", std::string("rabbitmq"));
  s.Add("size", int64_t{42});
  s.Add("flag", true);
  s.error = true;
  s.status_message = "said \"no\"\n";
  Resource r;
  r.service_version = "0.1.0";
  r.service_instance_id = "host:1";
  std::string json = EncodeOtlpJson({s}, r);
  EXPECT_THAT(json,
              HasSubstr("{\"resourceSpans\":[{\"resource\":{\"attributes\":"
                        "[{\"key\":\"service.name\",\"value\":{\"stringValue\":"
                        "\"amqpgw\"}}"));
  EXPECT_THAT(json,
              HasSubstr("\"traceId\":\"4bf92f3577b34da6a3ce929d0e0e4736\""));
  EXPECT_THAT(json, HasSubstr("\"parentSpanId\":\"1111111111111111\""));
  EXPECT_THAT(json, HasSubstr("\"traceState\":\"k=v\""));
  EXPECT_THAT(json, HasSubstr("\"kind\":4"));
  EXPECT_THAT(json, HasSubstr("\"startTimeUnixNano\":\"1700000000000000001\""));
  EXPECT_THAT(json,
              HasSubstr("{\"key\":\"size\",\"value\":{\"intValue\":\"42\"}}"));
  EXPECT_THAT(json,
              HasSubstr("{\"key\":\"flag\",\"value\":{\"boolValue\":true}}"));
  EXPECT_THAT(json, HasSubstr("\"status\":{\"code\":2,\"message\":\"said "
                              "\\\"no\\\"\\n\"}"));
}

TEST(OtlpJsonTest, InvalidUtf8BecomesReplacementCharacters) {
  Span s = MakeSpan(std::string("bad\xff\xc3(", 6));
  std::string json = EncodeOtlpJson({s}, Resource());
  EXPECT_THAT(json, HasSubstr("\"name\":\"bad\xef\xbf\xbd\xef\xbf\xbd(\""));
  EXPECT_THAT(json, Not(HasSubstr("\"parentSpanId\"")));
}

TEST(OtlpEndpointTest, AddsTheStandardPath) {
  auto e = ParseEndpoint("http://127.0.0.1:4318");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->scheme_host_port, "http://127.0.0.1:4318");
  EXPECT_EQ(e->path, "/v1/traces");
  e = ParseEndpoint("https://collector:4318/custom/traces");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->path, "/custom/traces");
  EXPECT_FALSE(ParseEndpoint("grpc://x:4317").ok());
  EXPECT_FALSE(ParseEndpoint("http:///v1/traces").ok());
}

// A collector on loopback that records request bodies.
class Collector {
 public:
  Collector() {
    server_.Post("/v1/traces",
                 [this](const httplib::Request& req, httplib::Response& res) {
                   amqpgw::MutexLock lock(&mu_);
                   bodies_.push_back(req.body);
                   res.set_content("{}", "application/json");
                 });
    port_ = server_.bind_to_any_port("127.0.0.1");
    // bind_to_any_port already listens: connections queue until accepted.
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Collector() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  std::vector<std::string> bodies() {
    amqpgw::MutexLock lock(&mu_);
    return bodies_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  amqpgw::Mutex mu_;
  std::vector<std::string> bodies_;
};

TEST(OtlpHttpExporterTest, SendsBatchesAndFlushesOnShutdown) {
  Collector collector;
  OtlpHttpExporter::Options o;
  o.endpoint = absl::StrCat("http://127.0.0.1:", collector.port());
  o.max_batch = 2;
  o.flush_interval = absl::Hours(1);  // only full batches, then shutdown
  auto e = OtlpHttpExporter::Create(o);
  ASSERT_TRUE(e.ok()) << e.status();
  for (int i = 0; i < 5; ++i) (*e)->Export(MakeSpan(absl::StrCat("span-", i)));
  (*e)->Shutdown();
  std::vector<std::string> bodies = collector.bodies();
  ASSERT_EQ(bodies.size(), 3u);
  std::string all = absl::StrCat(bodies[0], bodies[1], bodies[2]);
  for (int i = 0; i < 5; ++i) {
    EXPECT_THAT(all, HasSubstr(absl::StrCat("\"name\":\"span-", i, "\"")));
  }
  EXPECT_EQ((*e)->counters().exported, 5u);
  EXPECT_EQ((*e)->counters().dropped, 0u);
}

TEST(OtlpHttpExporterTest, FullQueueDropsAndCounts) {
  OtlpHttpExporter::Options o;
  // Nothing listens there: sends fail and are counted too.
  o.endpoint = "http://127.0.0.1:1";
  o.max_queue = 3;
  o.max_batch = 100;
  o.flush_interval = absl::Hours(1);
  o.timeout = absl::Seconds(2);
  auto e = OtlpHttpExporter::Create(o);
  ASSERT_TRUE(e.ok());
  for (int i = 0; i < 10; ++i) (*e)->Export(MakeSpan("s"));
  EXPECT_EQ((*e)->counters().dropped, 7u);
  (*e)->Shutdown();
  EXPECT_EQ((*e)->counters().failed, 3u);
  EXPECT_EQ((*e)->counters().exported, 0u);
}

}  // namespace
}  // namespace amqpgw::trace
