// A Prometheus registry rendered in the text exposition format 0.0.4.
//
// The registry holds collectors: functions that read the current values
// (atomic counters, the session's state) and write them as metric families
// when /metrics is scraped. Nothing is computed between scrapes, so the hot
// paths only bump their own atomics.
//
// Thread safety: Add() and Render() may be called from any thread; a
// collector runs on the thread that renders and must not block for long.
#ifndef AMQPGW_SERVER_METRICS_PROMETHEUS_H_
#define AMQPGW_SERVER_METRICS_PROMETHEUS_H_

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/base/sync.h"

namespace amqpgw::metrics {

using Label = std::pair<absl::string_view, absl::string_view>;

// The content type of the text format.
inline constexpr char kContentType[] =
    "text/plain; version=0.0.4; charset=utf-8";

// Writes metric families. Not thread-safe; one per render.
class TextWriter {
 public:
  // Starts a family: its # HELP and # TYPE lines. `type` is "counter",
  // "gauge" or "histogram". Counter names should end in _total.
  void Family(absl::string_view name, absl::string_view type,
              absl::string_view help);
  // One sample line: name{labels} value. Label values are escaped.
  void Sample(absl::string_view name, std::initializer_list<Label> labels,
              double value);
  void Sample(absl::string_view name, const std::vector<Label>& labels,
              double value);
  // The samples of one histogram series: name_bucket{labels, le} for each
  // of `bounds` (upper bounds, ascending) and +Inf, cumulative; name_sum
  // (`sum`) and name_count (the +Inf bucket's, so that the two always
  // agree). `counts` holds bounds.size() + 1 per-bucket counts, not
  // cumulative. The family's HELP and TYPE come from Family().
  void Histogram(absl::string_view name, std::vector<Label> labels,
                 absl::Span<const double> bounds,
                 absl::Span<const uint64_t> counts, double sum);
  // Shorthands: a family with one unlabelled sample.
  void Counter(absl::string_view name, absl::string_view help, double value);
  void Gauge(absl::string_view name, absl::string_view help, double value);

  std::string Take() { return std::move(out_); }

 private:
  void SampleImpl(absl::string_view name, const Label* labels, size_t n,
                  double value);
  std::string out_;
};

// Formats a sample value: integers without a fraction, +Inf, NaN.
std::string FormatValue(double value);
// Escapes a label value (backslash, double quote, newline).
std::string EscapeLabelValue(absl::string_view value);

class Registry {
 public:
  using Collector = std::function<void(TextWriter&)>;

  // Collectors render in the order they were added.
  void Add(Collector collector) ABSL_LOCKS_EXCLUDED(mu_);
  std::string Render() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable amqpgw::Mutex mu_;
  std::vector<Collector> collectors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace amqpgw::metrics

#endif  // AMQPGW_SERVER_METRICS_PROMETHEUS_H_
