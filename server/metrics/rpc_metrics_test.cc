#include "server/metrics/rpc_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace amqpgw::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(RpcMetricsTest, CountsAndHistogramByMethodAndCode) {
  RpcMetrics m({"/amqpgw.v1.Gateway/Publish", "/amqpgw.v1.Gateway/Ack"});
  int publish = m.MethodIndex("/amqpgw.v1.Gateway/Publish");
  m.Started(publish);
  m.Started(publish);
  m.Finished(publish, 0, absl::Milliseconds(3));
  m.Finished(publish, 5, absl::Milliseconds(700));
  TextWriter w;
  m.Collect(w);
  std::string text = w.Take();
  EXPECT_THAT(text, HasSubstr("# TYPE amqpgw_rpc_duration_seconds histogram"));
  EXPECT_THAT(text, HasSubstr("amqpgw_rpc_started_total{service=\"amqpgw.v1."
                              "Gateway\",method=\"Publish\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("amqpgw_rpc_handled_total{service=\"amqpgw.v1."
                              "Gateway\",method=\"Publish\",code=\"OK\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("method=\"Publish\",code=\"NOT_FOUND\"} 1\n"));
  // 3 ms falls in le=0.005 and above, not in le=0.0025.
  EXPECT_THAT(text,
              HasSubstr("method=\"Publish\",code=\"OK\",le=\"0.0025\"} 0\n"));
  EXPECT_THAT(text,
              HasSubstr("method=\"Publish\",code=\"OK\",le=\"0.005\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("method=\"Publish\",code=\"OK\",le=\"+Inf\"} 1\n"));
  EXPECT_THAT(
      text, HasSubstr("amqpgw_rpc_duration_seconds_sum{service=\"amqpgw.v1."
                      "Gateway\",method=\"Publish\",code=\"NOT_FOUND\"} 0.7"));
  // Methods without calls are not listed.
  EXPECT_THAT(text, Not(HasSubstr("method=\"Ack\"")));
}

TEST(RpcMetricsTest, UnknownMethodsAndCodesStayBounded) {
  RpcMetrics m({"/a.B/C"});
  int other = m.MethodIndex("/x.Y/Z");
  EXPECT_EQ(other, m.MethodIndex("/another/one"));
  EXPECT_NE(other, m.MethodIndex("/a.B/C"));
  m.Finished(other, 99, absl::Seconds(1));
  EXPECT_EQ(m.HandledCount(other, 2), 1u);  // UNKNOWN
}

TEST(RpcMetricsTest, ConcurrentUpdatesAreAllCounted) {
  RpcMetrics m({"/a.B/C"});
  int idx = m.MethodIndex("/a.B/C");
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) m.Finished(idx, 0, absl::Microseconds(i));
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(m.HandledCount(idx, 0), 80000u);
}

}  // namespace
}  // namespace amqpgw::metrics
