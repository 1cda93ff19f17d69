// A latency histogram with fixed Prometheus buckets, from 50 us to 60 s:
// fine enough at the low end for a broker's confirm (hundreds of
// microseconds on a local node) and for the gateway's own share of a call.
//
// Observe() is two relaxed atomic increments (a bucket and the sum), so a
// hot path may call it per message; Collect() reads them when /metrics is
// scraped. Every method may be called from any thread.
#ifndef AMQPGW_SERVER_METRICS_LATENCY_HISTOGRAM_H_
#define AMQPGW_SERVER_METRICS_LATENCY_HISTOGRAM_H_

#include <array>
#include <atomic>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/metrics/prometheus.h"

namespace amqpgw::metrics {

class LatencyHistogram {
 public:
  // Upper bounds of the buckets, in seconds (then +Inf).
  static constexpr std::array<double, 19> kBounds = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,     0.25,   0.5,     1,      2.5,   5,      10,    30,   60};

  LatencyHistogram() = default;
  LatencyHistogram(const LatencyHistogram&) = delete;
  LatencyHistogram& operator=(const LatencyHistogram&) = delete;

  // Negative durations count as 0.
  void Observe(absl::Duration d);

  // Writes the family `name` (type histogram): name_bucket{le=...},
  // name_sum (seconds) and name_count.
  void Collect(TextWriter& w, absl::string_view name,
               absl::string_view help) const;

  uint64_t count() const;
  absl::Duration sum() const;

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets_ = {};
  std::atomic<uint64_t> sum_ns_{0};
};

}  // namespace amqpgw::metrics

#endif  // AMQPGW_SERVER_METRICS_LATENCY_HISTOGRAM_H_
