#include "server/grpc/tracing.h"

#include <variant>

#include "absl/strings/str_cat.h"

namespace amqpgw::grpc_api {
namespace {

std::optional<absl::string_view> Metadata(const ::grpc::ServerContextBase& ctx,
                                          const char* key) {
  const auto& md = ctx.client_metadata();
  auto it = md.find(key);
  if (it == md.end()) return std::nullopt;
  return absl::string_view(it->second.data(), it->second.size());
}

const std::string* HeaderString(const amqp::FieldTable& table,
                                absl::string_view key) {
  const amqp::FieldValue* v =
      amqp::FindField(table, std::string_view(key.data(), key.size()));
  if (v == nullptr) return nullptr;
  if (const auto* s = std::get_if<std::string>(&v->value)) return s;
  if (const auto* b = std::get_if<amqp::Bytes>(&v->value)) return &b->data;
  return nullptr;
}

void SetHeader(amqp::FieldTable& table, absl::string_view key,
               std::string value) {
  for (auto& [k, v] : table) {
    if (k == key) {
      v = amqp::FieldValue(std::move(value));
      return;
    }
  }
  table.emplace_back(std::string(key), amqp::FieldValue(std::move(value)));
}

std::string StatusText(const absl::Status& s) {
  return absl::StrCat(absl::StatusCodeToString(s.code()), ": ", s.message());
}

}  // namespace

std::optional<trace::TraceContext> TraceContextFromMetadata(
    const ::grpc::ServerContextBase& ctx) {
  std::optional<absl::string_view> tp = Metadata(ctx, trace::kTraceparent);
  if (!tp.has_value()) return std::nullopt;
  return trace::ParseTraceparent(
      *tp, Metadata(ctx, trace::kTracestate).value_or(""));
}

std::optional<trace::TraceContext> TraceContextFromHeaders(
    const amqp::Properties& properties) {
  if (!properties.headers.has_value()) return std::nullopt;
  const std::string* tp =
      HeaderString(*properties.headers, trace::kTraceparent);
  if (tp == nullptr) return std::nullopt;
  const std::string* ts = HeaderString(*properties.headers, trace::kTracestate);
  return trace::ParseTraceparent(*tp, ts != nullptr ? *ts : "");
}

PublishTracing::PublishTracing(std::optional<trace::TraceContext> caller,
                               trace::SpanExporter* exporter, const char* rpc)
    : caller_(std::move(caller)), exporter_(exporter), rpc_(rpc) {
  if (exporter_ != nullptr) start_ = absl::Now();
}

void PublishTracing::Inject(size_t index, amqp::OutgoingMessage& m) {
  std::optional<trace::TraceContext> own =
      TraceContextFromHeaders(m.properties);
  const trace::TraceContext* parent = nullptr;
  bool parent_is_span = true;  // false: a trace started here, no parent span
  if (own.has_value()) {
    parent = &*own;
  } else if (caller_.has_value()) {
    parent = &*caller_;
  } else if (exporter_ == nullptr) {
    // No trace to continue and none recorded here: no headers. A header
    // table costs the broker 6-22 us per message across compare.sh runs
    // (bench/direct_bench.cc --gateway_props), up to a sixth of its publish
    // throughput.
    return;
  } else {
    if (!root_.has_value()) {
      root_ = trace::NewRootContext(/*sampled=*/true);
    }
    parent = &*root_;
    parent_is_span = false;
  }
  bool record = exporter_ != nullptr && parent->sampled();
  if (!m.properties.headers.has_value()) m.properties.headers.emplace();
  amqp::FieldTable& headers = *m.properties.headers;
  if (record || !parent_is_span) {
    // Consumers see a span of this hop as the parent (when not recorded,
    // a new trace still needs a non-zero parent id).
    std::string span_id = trace::NewSpanId();
    SetHeader(headers, trace::kTraceparent,
              parent->WithSpan(span_id).Traceparent());
    if (record) {
      trace::Span s;
      s.trace_id = parent->trace_id;
      s.span_id = std::move(span_id);
      if (parent_is_span) s.parent_span_id = parent->span_id;
      s.trace_state = parent->tracestate;
      s.name = "publish";
      s.kind = trace::SpanKind::kProducer;
      s.start = start_;
      s.Add("messaging.system", std::string("rabbitmq"));
      s.Add("messaging.operation", std::string("publish"));
      s.Add("messaging.destination.name",
            m.exchange.empty() ? std::string("amq.default") : m.exchange);
      s.Add("messaging.rabbitmq.destination.routing_key", m.routing_key);
      if (m.properties.message_id.has_value()) {
        s.Add("messaging.message.id", *m.properties.message_id);
      }
      s.Add("messaging.message.body.size", static_cast<int64_t>(m.body.size()));
      s.Add("rpc.system", std::string("grpc"));
      s.Add("rpc.service", std::string("amqpgw.v1.Gateway"));
      s.Add("rpc.method", std::string(rpc_));
      spans_.emplace_back(index, std::move(s));
    }
  } else if (!own.has_value()) {
    SetHeader(headers, trace::kTraceparent, parent->Traceparent());
  }
  if (!own.has_value() && !parent->tracestate.empty()) {
    SetHeader(headers, trace::kTracestate, parent->tracestate);
  }
}

void PublishTracing::Finish(const core::PublishBatch& batch) {
  for (auto& [index, span] : spans_) {
    ExportSpans(std::move(span), batch.result(index));
  }
  spans_.clear();
}

void PublishTracing::Finish(const core::PublishBatch::Result& result) {
  for (auto& [index, span] : spans_) ExportSpans(std::move(span), result);
  spans_.clear();
}

void PublishTracing::ExportSpans(trace::Span span,
                                 const core::PublishBatch::Result& r) {
  span.end = r.confirmed_at;
  if (!r.status.ok()) {
    span.error = true;
    span.status_message = StatusText(r.status);
  }
  if (r.sent_at != absl::InfinitePast()) {
    trace::Span confirm;
    confirm.trace_id = span.trace_id;
    confirm.span_id = trace::NewSpanId();
    confirm.parent_span_id = span.span_id;
    confirm.trace_state = span.trace_state;
    confirm.name = "confirm";
    confirm.kind = trace::SpanKind::kClient;
    confirm.start = r.sent_at;
    confirm.end = r.confirmed_at;
    confirm.Add("messaging.system", std::string("rabbitmq"));
    confirm.Add(
        "amqpgw.confirm",
        std::string(r.status.ok() ? "ack"
                    : r.status.code() == absl::StatusCode::kResourceExhausted
                        ? "nack"
                        : "none"));
    confirm.error = span.error;
    confirm.status_message = span.status_message;
    exporter_->Export(std::move(confirm));
  }
  exporter_->Export(std::move(span));
}

}  // namespace amqpgw::grpc_api
