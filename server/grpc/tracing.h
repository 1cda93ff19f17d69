// W3C trace context across the gateway, and the gateway's own spans.
//
// Publish / PublishBatch: the call's `traceparent` / `tracestate` metadata
// (or, when a message already carries a valid `traceparent` header, that
// one) is the parent of each message; a call without either starts a new
// trace. The message's AMQP headers `traceparent` / `tracestate` are set so
// that consumers continue the trace. When spans are exported and the trace
// is sampled, each message gets a "publish" span (PRODUCER: from receiving
// the call to the broker's confirm) and a "confirm" span (from writing the
// message to the broker to its basic.ack/nack), and its header names the
// publish span as parent.
//
// Without an exporter nothing is recorded: only the headers are written.
#ifndef AMQPGW_SERVER_GRPC_TRACING_H_
#define AMQPGW_SERVER_GRPC_TRACING_H_

#include <grpcpp/grpcpp.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "server/amqp/types.h"
#include "server/core/publisher.h"
#include "server/trace/span.h"
#include "server/trace/trace_context.h"

namespace amqpgw::grpc_api {

// The valid trace context in a call's metadata, if any.
std::optional<trace::TraceContext> TraceContextFromMetadata(
    const ::grpc::ServerContextBase& ctx);

// The valid trace context in a message's AMQP headers, if any.
std::optional<trace::TraceContext> TraceContextFromHeaders(
    const amqp::Properties& properties);

// Trace handling of one Publish or PublishBatch call. Inject() runs on the
// handler's thread; Finish() once, on the publisher's thread, after every
// message has its result.
class PublishTracing {
 public:
  // `caller`: from the call's metadata. `exporter`: null when spans are off.
  // `rpc`: "Publish" or "PublishBatch".
  PublishTracing(std::optional<trace::TraceContext> caller,
                 trace::SpanExporter* exporter, const char* rpc);

  // Sets message `index`'s trace headers (and prepares its spans): the
  // message's own valid `traceparent` wins, else the caller's context; a
  // call with neither starts a new trace only when spans are recorded (an
  // exporter), else its messages get no trace headers.
  void Inject(size_t index, amqp::OutgoingMessage& message);
  // True when at least one message has spans to export.
  bool recording() const { return !spans_.empty(); }
  // Exports the publish and confirm spans from the batch's results.
  void Finish(const core::PublishBatch& batch);
  // The same for a tracing of one message (Inject(0, ...)) that went out in
  // a batch of others: exports its spans from `result`.
  void Finish(const core::PublishBatch::Result& result);

 private:
  // Exports `span` (and its confirm span) from `r`.
  void ExportSpans(trace::Span span, const core::PublishBatch::Result& r);

  std::optional<trace::TraceContext> caller_;
  trace::SpanExporter* const exporter_;
  const char* const rpc_;
  absl::Time start_;
  // The trace started for this call when the caller sent none (with an
  // exporter only).
  std::optional<trace::TraceContext> root_;
  // (message index, its publish span), for recorded messages.
  std::vector<std::pair<size_t, trace::Span>> spans_;
};

}  // namespace amqpgw::grpc_api

#endif  // AMQPGW_SERVER_GRPC_TRACING_H_
