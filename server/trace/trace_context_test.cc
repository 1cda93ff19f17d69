#include "server/trace/trace_context.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

namespace amqpgw::trace {
namespace {

constexpr char kValid[] =
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceContextTest, ParsesAndFormatsAValidTraceparent) {
  auto c = ParseTraceparent(kValid, "congo=t61rcWkgMzE");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(c->span_id, "00f067aa0ba902b7");
  EXPECT_TRUE(c->sampled());
  EXPECT_EQ(c->tracestate, "congo=t61rcWkgMzE");
  EXPECT_EQ(c->Traceparent(), kValid);
  EXPECT_EQ(c->WithSpan("1111111111111111").Traceparent(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01");
}

TEST(TraceContextTest, RefusesMalformedValues) {
  const char* bad[] = {
      "",
      "garbage",
      // upper case hex
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
      // all-zero trace id / span id
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      // version ff
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      // version 00 with extra fields
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
      // short trace id
      "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
  };
  for (const char* tp : bad) EXPECT_FALSE(ParseTraceparent(tp)) << tp;
  // A later version may carry more fields.
  EXPECT_TRUE(ParseTraceparent(
      "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever"));
}

TEST(TraceContextTest, DropsUnprintableTracestate) {
  auto c = ParseTraceparent(kValid, "a=b\nc=d");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->tracestate, "");
}

TEST(TraceContextTest, NewIdsAreWellFormedAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    TraceContext c = NewRootContext(true);
    auto parsed = ParseTraceparent(c.Traceparent());
    ASSERT_TRUE(parsed.has_value()) << c.Traceparent();
    EXPECT_TRUE(parsed->sampled());
    seen.insert(c.trace_id);
  }
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_FALSE(NewRootContext(false).sampled());
}

}  // namespace
}  // namespace amqpgw::trace
