// W3C Trace Context (https://www.w3.org/TR/trace-context/): the
// `traceparent` and `tracestate` values that carry a trace across the
// gateway, from a call's gRPC metadata into the AMQP headers of the messages
// it publishes, and from a delivery's headers back to the consumer.
//
// Plain values; every function is thread-safe.
#ifndef AMQPGW_SERVER_TRACE_TRACE_CONTEXT_H_
#define AMQPGW_SERVER_TRACE_TRACE_CONTEXT_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace amqpgw::trace {

// Header and metadata keys.
inline constexpr char kTraceparent[] = "traceparent";
inline constexpr char kTracestate[] = "tracestate";

struct TraceContext {
  std::string trace_id;  // 32 lowercase hex digits, not all zero
  std::string span_id;   // 16 lowercase hex digits, not all zero
  uint8_t flags = 0;     // bit 0: sampled
  std::string tracestate;

  bool sampled() const { return (flags & 1) != 0; }
  // "00-<trace_id>-<span_id>-<flags>".
  std::string Traceparent() const;
  // The same trace and flags, another span as the parent.
  TraceContext WithSpan(std::string span_id) const;
};

// Parses a traceparent (and keeps `tracestate` as given, when it is at most
// 512 bytes of printable ASCII). nullopt when the traceparent is malformed,
// as the spec says receivers must then start a new trace. Versions above 00
// are accepted by their first four fields.
std::optional<TraceContext> ParseTraceparent(absl::string_view traceparent,
                                             absl::string_view tracestate = "");

// A new random trace (sampled as given).
TraceContext NewRootContext(bool sampled);
// Random, never all zero. Fast (not for secrets).
std::string NewTraceId();
std::string NewSpanId();

}  // namespace amqpgw::trace

#endif  // AMQPGW_SERVER_TRACE_TRACE_CONTEXT_H_
