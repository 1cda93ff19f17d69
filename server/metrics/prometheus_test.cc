#include "server/metrics/prometheus.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>

namespace amqpgw::metrics {
namespace {

using ::testing::HasSubstr;

TEST(PrometheusTest, FamiliesHaveHelpAndTypeLines) {
  Registry r;
  r.Add([](TextWriter& w) {
    w.Counter("amqpgw_things_total", "Things counted.", 42);
    w.Family("amqpgw_state", "gauge", "State\\machine\nline");
    w.Sample("amqpgw_state", {{"state", "READY"}}, 1);
    w.Sample("amqpgw_state", {{"state", "a\"b\\c\nd"}}, 0);
  });
  EXPECT_EQ(r.Render(),
            "# HELP amqpgw_things_total Things counted.\n"
            "# TYPE amqpgw_things_total counter\n"
            "amqpgw_things_total 42\n"
            "# HELP amqpgw_state State\\\\machine\\nline\n"
            "# TYPE amqpgw_state gauge\n"
            "amqpgw_state{state=\"READY\"} 1\n"
            "amqpgw_state{state=\"a\\\"b\\\\c\\nd\"} 0\n");
}

TEST(PrometheusTest, CollectorsRunAtEveryRender) {
  Registry r;
  int value = 1;
  r.Add([&](TextWriter& w) { w.Gauge("g", "A gauge.", value); });
  EXPECT_THAT(r.Render(), HasSubstr("\ng 1\n"));
  value = 7;
  EXPECT_THAT(r.Render(), HasSubstr("\ng 7\n"));
}

TEST(PrometheusTest, HistogramBucketsAreCumulativeAndEndInInf) {
  TextWriter w;
  const double bounds[] = {0.001, 0.5};
  const uint64_t counts[] = {2, 0, 3};  // the last one is +Inf's own
  w.Histogram("h_seconds", {{"method", "Publish"}}, bounds, counts, 1.5);
  EXPECT_EQ(w.Take(),
            "h_seconds_bucket{method=\"Publish\",le=\"0.001\"} 2\n"
            "h_seconds_bucket{method=\"Publish\",le=\"0.5\"} 2\n"
            "h_seconds_bucket{method=\"Publish\",le=\"+Inf\"} 5\n"
            "h_seconds_sum{method=\"Publish\"} 1.5\n"
            "h_seconds_count{method=\"Publish\"} 5\n");
}

TEST(PrometheusTest, FormatsValues) {
  EXPECT_EQ(FormatValue(3), "3");
  EXPECT_EQ(FormatValue(0.25), "0.25");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(FormatValue(1e20), "1e+20");
}

}  // namespace
}  // namespace amqpgw::metrics
