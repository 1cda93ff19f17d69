#include "server/metrics/latency_histogram.h"

#include <algorithm>

namespace amqpgw::metrics {

void LatencyHistogram::Observe(absl::Duration d) {
  int64_t ns = std::max<int64_t>(0, absl::ToInt64Nanoseconds(d));
  double seconds = static_cast<double>(ns) / 1e9;
  size_t b = std::lower_bound(kBounds.begin(), kBounds.end(), seconds) -
             kBounds.begin();
  buckets_[b].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(ns), std::memory_order_relaxed);
}

uint64_t LatencyHistogram::count() const {
  uint64_t n = 0;
  for (const auto& b : buckets_) n += b.load(std::memory_order_relaxed);
  return n;
}

absl::Duration LatencyHistogram::sum() const {
  return absl::Nanoseconds(sum_ns_.load(std::memory_order_relaxed));
}

void LatencyHistogram::Collect(TextWriter& w, absl::string_view name,
                               absl::string_view help) const {
  std::array<uint64_t, kBounds.size() + 1> counts;
  for (size_t b = 0; b < counts.size(); ++b) {
    counts[b] = buckets_[b].load(std::memory_order_relaxed);
  }
  w.Family(name, "histogram", help);
  w.Histogram(name, {}, kBounds, counts, absl::ToDoubleSeconds(sum()));
}

}  // namespace amqpgw::metrics
