// A finished span of the gateway's own work (publish, confirm, deliver), as
// handed to a SpanExporter.
#ifndef AMQPGW_SERVER_TRACE_SPAN_H_
#define AMQPGW_SERVER_TRACE_SPAN_H_

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/time/time.h"

namespace amqpgw::trace {

// OTLP's SpanKind numbers.
enum class SpanKind : int {
  kInternal = 1,
  kServer = 2,
  kClient = 3,
  kProducer = 4,
  kConsumer = 5,
};

struct Attribute {
  std::string key;
  std::variant<std::string, int64_t, bool, double> value;
};

struct Span {
  std::string trace_id;        // 32 hex digits
  std::string span_id;         // 16 hex digits
  std::string parent_span_id;  // empty for a root span
  std::string trace_state;
  std::string name;
  SpanKind kind = SpanKind::kInternal;
  absl::Time start;
  absl::Time end;
  bool error = false;
  std::string status_message;  // when error
  std::vector<Attribute> attributes;

  void Add(std::string key, std::string value) {
    attributes.push_back({std::move(key), std::move(value)});
  }
  void Add(std::string key, int64_t value) {
    attributes.push_back({std::move(key), value});
  }
  void Add(std::string key, bool value) {
    attributes.push_back({std::move(key), value});
  }
};

// Where finished spans go. Export never blocks; any thread may call it.
class SpanExporter {
 public:
  virtual ~SpanExporter() = default;
  virtual void Export(Span span) = 0;
};

}  // namespace amqpgw::trace

#endif  // AMQPGW_SERVER_TRACE_SPAN_H_
