#include "server/metrics/latency_histogram.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace amqpgw::metrics {
namespace {

using ::testing::HasSubstr;

TEST(LatencyHistogramTest, BucketsAreCumulativeAndCountMatchesInf) {
  LatencyHistogram h;
  h.Observe(absl::Microseconds(40));   // le=5e-05 (0.00005)
  h.Observe(absl::Microseconds(300));  // le=0.0005
  h.Observe(absl::Milliseconds(3));    // le=0.005
  h.Observe(absl::Seconds(120));       // +Inf only
  h.Observe(absl::Microseconds(-5));   // as 0
  EXPECT_EQ(h.count(), 5u);
  EXPECT_EQ(h.sum(), absl::Seconds(120) + absl::Milliseconds(3) +
                         absl::Microseconds(340));
  TextWriter w;
  h.Collect(w, "amqpgw_test_seconds", "A test.");
  std::string text = w.Take();
  EXPECT_THAT(text, HasSubstr("# TYPE amqpgw_test_seconds histogram\n"));
  EXPECT_THAT(text, HasSubstr("amqpgw_test_seconds_bucket{le=\"5e-05\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("amqpgw_test_seconds_bucket{le=\"0.00025\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("amqpgw_test_seconds_bucket{le=\"0.0005\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("amqpgw_test_seconds_bucket{le=\"0.0025\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("amqpgw_test_seconds_bucket{le=\"0.005\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("amqpgw_test_seconds_bucket{le=\"60\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("amqpgw_test_seconds_bucket{le=\"+Inf\"} 5\n"));
  EXPECT_THAT(text, HasSubstr("amqpgw_test_seconds_sum 120.00334\n"));
  EXPECT_THAT(text, HasSubstr("amqpgw_test_seconds_count 5\n"));
}

}  // namespace
}  // namespace amqpgw::metrics
