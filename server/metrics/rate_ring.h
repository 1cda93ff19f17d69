// RateRing: per-second rates of N monotonic counters over recent windows
// ("the last 10 s", "the last minute"), from a ring of samples that someone
// adds about once a second. Memory is fixed (one sample a second for
// `keep`); reading costs a scan of the ring.
//
// Thread safety: Add and Over from any thread (one short lock each).
#ifndef AMQPGW_SERVER_METRICS_RATE_RING_H_
#define AMQPGW_SERVER_METRICS_RATE_RING_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "server/base/sync.h"

namespace amqpgw::metrics {

template <size_t N>
class RateRing {
 public:
  using Values = std::array<uint64_t, N>;

  struct Rates {
    // Per second, in the order of Values.
    std::array<double, N> per_second{};
    // The span they average over: the window asked for (or a little more,
    // by the sampling interval), less while the samples do not reach back
    // that far; zero before the first sample.
    absl::Duration window = absl::ZeroDuration();
  };

  // Keeps samples for `keep` at one a second (a few more for jitter).
  explicit RateRing(absl::Duration keep)
      : samples_(static_cast<size_t>(absl::ToInt64Seconds(keep)) + 3) {}

  void Add(absl::Time t, const Values& values) ABSL_LOCKS_EXCLUDED(mu_) {
    amqpgw::MutexLock lock(&mu_);
    samples_[next_] = Sample{t, values};
    next_ = (next_ + 1) % samples_.size();
    if (count_ < samples_.size()) ++count_;
  }

  // Rates from the newest sample taken at least `window` before `now` (or
  // the oldest there is) to `current`, the counters at `now`. A counter
  // that went down counts as 0.
  Rates Over(absl::Duration window, absl::Time now, const Values& current) const
      ABSL_LOCKS_EXCLUDED(mu_) {
    Rates out;
    Sample base;
    {
      amqpgw::MutexLock lock(&mu_);
      if (count_ == 0) return out;
      // Oldest first: the last one at or before now - window wins.
      size_t oldest = (next_ + samples_.size() - count_) % samples_.size();
      base = samples_[oldest];
      for (size_t i = 1; i < count_; ++i) {
        const Sample& s = samples_[(oldest + i) % samples_.size()];
        if (s.t > now - window) break;
        base = s;
      }
    }
    out.window = now - base.t;
    const double seconds = absl::ToDoubleSeconds(out.window);
    if (seconds <= 0) {
      out.window = absl::ZeroDuration();
      return out;
    }
    for (size_t i = 0; i < N; ++i) {
      if (current[i] > base.values[i]) {
        out.per_second[i] =
            static_cast<double>(current[i] - base.values[i]) / seconds;
      }
    }
    return out;
  }

 private:
  struct Sample {
    absl::Time t = absl::InfinitePast();
    Values values{};
  };

  mutable amqpgw::Mutex mu_;
  std::vector<Sample> samples_ ABSL_GUARDED_BY(mu_);
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
  size_t count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace amqpgw::metrics

#endif  // AMQPGW_SERVER_METRICS_RATE_RING_H_
