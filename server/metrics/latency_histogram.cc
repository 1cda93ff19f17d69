#include "server/metrics/latency_histogram.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

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
  w.Family(name, "histogram", help);
  const std::string bucket = absl::StrCat(name, "_bucket");
  uint64_t cumulative = 0;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    cumulative += buckets_[b].load(std::memory_order_relaxed);
    std::string le = b < kBounds.size() ? FormatValue(kBounds[b]) : "+Inf";
    w.Sample(bucket, {{"le", le}}, static_cast<double>(cumulative));
  }
  // The count is the +Inf bucket's, so that the two always agree.
  const std::vector<Label> none;
  w.Sample(absl::StrCat(name, "_sum"), none, absl::ToDoubleSeconds(sum()));
  w.Sample(absl::StrCat(name, "_count"), none, static_cast<double>(cumulative));
}

}  // namespace amqpgw::metrics
