#include "server/metrics/prometheus.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "server/base/check.h"
#include "server/base/sync.h"

namespace amqpgw::metrics {

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  // The shortest form that reads back as the same double.
  char buf[32];
  for (int precision = 15; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  return buf;
}

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

namespace {

// HELP text escapes backslash and newline only.
std::string EscapeHelp(absl::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

void TextWriter::Family(absl::string_view name, absl::string_view type,
                        absl::string_view help) {
  absl::StrAppend(&out_, "# HELP ", name, " ", EscapeHelp(help), "\n",
                  "# TYPE ", name, " ", type, "\n");
}

void TextWriter::Sample(absl::string_view name,
                        std::initializer_list<Label> labels, double value) {
  SampleImpl(name, labels.begin(), labels.size(), value);
}

void TextWriter::Sample(absl::string_view name,
                        const std::vector<Label>& labels, double value) {
  SampleImpl(name, labels.data(), labels.size(), value);
}

void TextWriter::SampleImpl(absl::string_view name, const Label* labels,
                            size_t n, double value) {
  out_.append(name.data(), name.size());
  if (n > 0) {
    out_.push_back('{');
    for (size_t i = 0; i < n; ++i) {
      if (i > 0) out_.push_back(',');
      absl::StrAppend(&out_, labels[i].first, "=\"",
                      EscapeLabelValue(labels[i].second), "\"");
    }
    out_.push_back('}');
  }
  absl::StrAppend(&out_, " ", FormatValue(value), "\n");
}

void TextWriter::Histogram(absl::string_view name, std::vector<Label> labels,
                           absl::Span<const double> bounds,
                           absl::Span<const uint64_t> counts, double sum) {
  AMQPGW_DCHECK(counts.size() == bounds.size() + 1);
  const std::string bucket = absl::StrCat(name, "_bucket");
  labels.emplace_back("le", "");
  uint64_t cumulative = 0;
  for (size_t b = 0; b < counts.size(); ++b) {
    cumulative += counts[b];
    const std::string le = b < bounds.size() ? FormatValue(bounds[b]) : "+Inf";
    labels.back().second = le;
    Sample(bucket, labels, static_cast<double>(cumulative));
  }
  labels.pop_back();
  Sample(absl::StrCat(name, "_sum"), labels, sum);
  Sample(absl::StrCat(name, "_count"), labels, static_cast<double>(cumulative));
}

void TextWriter::Counter(absl::string_view name, absl::string_view help,
                         double value) {
  Family(name, "counter", help);
  Sample(name, {}, value);
}

void TextWriter::Gauge(absl::string_view name, absl::string_view help,
                       double value) {
  Family(name, "gauge", help);
  Sample(name, {}, value);
}

void Registry::Add(Collector collector) {
  amqpgw::MutexLock lock(&mu_);
  collectors_.push_back(std::move(collector));
}

std::string Registry::Render() const {
  TextWriter w;
  amqpgw::MutexLock lock(&mu_);
  for (const Collector& c : collectors_) c(w);
  return w.Take();
}

}  // namespace amqpgw::metrics
