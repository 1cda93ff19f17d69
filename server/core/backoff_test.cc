#include "server/core/backoff.h"

#include <gtest/gtest.h>

namespace amqpgw::core {
namespace {

TEST(BackoffTest, GrowsToTheMaximumWithJitter) {
  BackoffPolicy p;
  p.initial = absl::Milliseconds(100);
  p.max = absl::Seconds(2);
  p.multiplier = 2;
  p.jitter = 0.5;
  Backoff b(p, /*seed=*/42);
  absl::Duration nominal = p.initial;
  for (int i = 0; i < 20; ++i) {
    absl::Duration d = b.Next();
    EXPECT_LE(d, nominal) << i;
    EXPECT_GE(d, nominal * 0.5) << i;
    nominal = std::min(p.max, nominal * 2);
  }
  EXPECT_EQ(b.attempts(), 20);
}

TEST(BackoffTest, ResetStartsOver) {
  BackoffPolicy p;
  p.jitter = 0;
  Backoff b(p, 1);
  EXPECT_EQ(b.Next(), absl::Milliseconds(100));
  EXPECT_EQ(b.Next(), absl::Milliseconds(200));
  EXPECT_EQ(b.Next(), absl::Milliseconds(400));
  b.Reset();
  EXPECT_EQ(b.attempts(), 0);
  EXPECT_EQ(b.Next(), absl::Milliseconds(100));
}

TEST(BackoffTest, JitterSpreadsDelays) {
  BackoffPolicy p;
  p.initial = p.max = absl::Seconds(1);
  Backoff b(p, 7);
  absl::Duration lo = absl::InfiniteDuration(), hi = absl::ZeroDuration();
  for (int i = 0; i < 100; ++i) {
    absl::Duration d = b.Next();
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  EXPECT_LT(lo, absl::Milliseconds(700));
  EXPECT_GT(hi, absl::Milliseconds(900));
}

}  // namespace
}  // namespace amqpgw::core
