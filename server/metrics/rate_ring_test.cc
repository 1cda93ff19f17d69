#include "server/metrics/rate_ring.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace amqpgw::metrics {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1700000000);

TEST(RateRingTest, NothingBeforeTheFirstSample) {
  RateRing<2> ring(absl::Seconds(60));
  RateRing<2>::Rates r = ring.Over(absl::Seconds(10), kStart, {5, 5});
  EXPECT_EQ(r.window, absl::ZeroDuration());
  EXPECT_EQ(r.per_second[0], 0);
}

TEST(RateRingTest, RatesOverTheWindowAsked) {
  RateRing<2> ring(absl::Seconds(60));
  // Counter 0 grows by 100 a second, counter 1 by 10 a second for the first
  // 50 s and then stops.
  for (int s = 0; s <= 70; ++s) {
    ring.Add(kStart + absl::Seconds(s),
             {uint64_t(100 * s), uint64_t(10 * std::min(s, 50))});
  }
  const absl::Time now = kStart + absl::Seconds(70.5);
  const RateRing<2>::Values current = {7050, 500};
  RateRing<2>::Rates r10 = ring.Over(absl::Seconds(10), now, current);
  // The newest sample at least 10 s old is the one at 60 s.
  EXPECT_EQ(r10.window, absl::Seconds(10.5));
  EXPECT_DOUBLE_EQ(r10.per_second[0], 100);
  EXPECT_DOUBLE_EQ(r10.per_second[1], 0);
  RateRing<2>::Rates r60 = ring.Over(absl::Seconds(60), now, current);
  EXPECT_EQ(r60.window, absl::Seconds(60.5));
  EXPECT_DOUBLE_EQ(r60.per_second[0], 100);
  // 10 a second until 50 s: 40 s of 10/s over 60.5 s.
  EXPECT_NEAR(r60.per_second[1], 400 / 60.5, 1e-9);
}

TEST(RateRingTest, AYoungDaemonReportsTheShorterWindowItHas) {
  RateRing<1> ring(absl::Seconds(60));
  ring.Add(kStart, {0});
  ring.Add(kStart + absl::Seconds(1), {50});
  ring.Add(kStart + absl::Seconds(2), {100});
  RateRing<1>::Rates r =
      ring.Over(absl::Seconds(60), kStart + absl::Seconds(4), {200});
  EXPECT_EQ(r.window, absl::Seconds(4));
  EXPECT_DOUBLE_EQ(r.per_second[0], 50);
}

TEST(RateRingTest, TheRingForgetsWhatItNoLongerNeeds) {
  RateRing<1> ring(absl::Seconds(5));
  for (int s = 0; s < 100; ++s) ring.Add(kStart + absl::Seconds(s), {0});
  // Only ~8 samples are kept: the oldest is at most ~8 s old.
  RateRing<1>::Rates r =
      ring.Over(absl::Seconds(60), kStart + absl::Seconds(99), {0});
  EXPECT_LE(r.window, absl::Seconds(8));
  EXPECT_GE(r.window, absl::Seconds(5));
}

TEST(RateRingTest, CountersThatGoDownCountAsZero) {
  RateRing<1> ring(absl::Seconds(60));
  ring.Add(kStart, {100});
  RateRing<1>::Rates r =
      ring.Over(absl::Seconds(10), kStart + absl::Seconds(10), {40});
  EXPECT_EQ(r.per_second[0], 0);
  // A sample in the future (clock step) gives no rate rather than a
  // negative window.
  r = ring.Over(absl::Seconds(10), kStart - absl::Seconds(1), {200});
  EXPECT_EQ(r.window, absl::ZeroDuration());
  EXPECT_EQ(r.per_second[0], 0);
}

TEST(RateRingTest, AddsAndReadsFromManyThreads) {
  RateRing<1> ring(absl::Seconds(60));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        if (t % 2 == 0) {
          ring.Add(kStart + absl::Milliseconds(i), {uint64_t(i)});
        } else {
          (void)ring.Over(absl::Seconds(1), kStart + absl::Seconds(2), {5000});
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GT(ring.Over(absl::Seconds(1), kStart + absl::Seconds(2), {5000})
                .per_second[0],
            0);
}

}  // namespace
}  // namespace amqpgw::metrics
