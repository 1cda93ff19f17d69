#include "server/grpc/stream_reactor.h"

#include <utility>

#include "server/base/sync.h"
#include "server/grpc/convert.h"
#include "server/grpc/status.h"
#include "server/grpc/tracing.h"
#include "server/trace/trace_context.h"

namespace amqpgw::grpc_api {
namespace {

v1::StreamMessagesRequest::AckMode ToProtoAckMode(core::AckMode mode) {
  switch (mode) {
    case core::AckMode::kAuto:
      return v1::StreamMessagesRequest::AUTO;
    case core::AckMode::kClient:
      return v1::StreamMessagesRequest::CLIENT;
    case core::AckMode::kNone:
      return v1::StreamMessagesRequest::NONE;
  }
  return v1::StreamMessagesRequest::AUTO;
}

}  // namespace

StreamReactor::StreamReactor(core::AckMode mode, std::string queue,
                             uint32_t prefetch, trace::SpanExporter* spans)
    : mode_(mode),
      queue_name_(std::move(queue)),
      prefetch_(prefetch),
      spans_(spans) {}

void StreamReactor::Attach(std::shared_ptr<core::Subscription> subscription) {
  std::shared_ptr<Shared> s = shared_;
  amqpgw::MutexLock lock(&s->mu);
  if (!s->ended) s->subscription = std::move(subscription);
}

void StreamReactor::FinishNow(const ::grpc::Status& status) {
  std::shared_ptr<Shared> s = shared_;
  {
    amqpgw::MutexLock lock(&s->mu);
    s->ended = true;
    s->end_status = status;
  }
  Pump(s);
}

void StreamReactor::OnSubscribed(const std::string& subscription_id,
                                 const std::string& consumer_tag) {
  if (spans_ != nullptr) subscription_id_ = subscription_id;
  v1::StreamMessagesResponse r;
  v1::Subscribed* sub = r.mutable_subscribed();
  sub->set_subscription_id(subscription_id);
  sub->set_consumer_tag(consumer_tag);
  sub->set_queue(queue_name_);
  sub->set_prefetch(prefetch_);
  sub->set_ack_mode(ToProtoAckMode(mode_));
  Push(std::move(r));
}

void StreamReactor::OnDelivery(core::StreamDelivery delivery) {
  absl::Time received = spans_ != nullptr ? absl::Now() : absl::InfinitePast();
  Push(PendingDelivery{std::move(delivery), received});
}

void StreamReactor::OnPaused(const std::string& why) {
  v1::StreamMessagesResponse r;
  r.mutable_status()->set_kind(v1::StreamStatus::RECONNECTING);
  r.mutable_status()->set_message(
      SanitizeUtf8("broker connection lost (" + why +
                   "); resubscribing. Unacknowledged messages will be "
                   "redelivered; Ack answers their old ids as stale."));
  std::shared_ptr<Shared> s = shared_;
  {
    amqpgw::MutexLock lock(&s->mu);
    // Buffered deliveries were not acknowledged: the broker redelivers them.
    std::deque<Item> kept;
    for (Item& item : s->queue) {
      if (std::holds_alternative<v1::StreamMessagesResponse>(item)) {
        kept.push_back(std::move(item));
      }
    }
    s->queue.swap(kept);
    s->queue.push_back(std::move(r));
  }
  Pump(s);
}

void StreamReactor::OnResumed() {
  v1::StreamMessagesResponse r;
  r.mutable_status()->set_kind(v1::StreamStatus::RESUMED);
  r.mutable_status()->set_message("subscribed again; deliveries go on");
  Push(std::move(r));
}

void StreamReactor::OnEnd(const absl::Status& status) {
  std::shared_ptr<Shared> s = shared_;
  {
    amqpgw::MutexLock lock(&s->mu);
    s->ended = true;
    s->end_status = ToGrpcStatus(status);
    s->subscription.reset();
  }
  Pump(s);
}

void StreamReactor::Push(Item item) {
  std::shared_ptr<Shared> s = shared_;
  {
    amqpgw::MutexLock lock(&s->mu);
    s->queue.push_back(std::move(item));
  }
  Pump(s);
}

void StreamReactor::Pump(const std::shared_ptr<Shared>& s) {
  bool finish = false;
  ::grpc::Status status;
  PendingDelivery delivery;
  bool is_delivery = false;
  bool more = false;
  v1::StreamMessagesResponse event;
  std::shared_ptr<core::Subscription> subscription;
  {
    amqpgw::MutexLock lock(&s->mu);
    if (s->finished || s->writing) return;
    if (s->queue.empty()) {
      if (!s->ended) return;
      s->finished = true;
      finish = true;
      status = s->end_status;
    } else {
      s->writing = true;
      Item& item = s->queue.front();
      if (auto* d = std::get_if<PendingDelivery>(&item)) {
        delivery = std::move(*d);
        is_delivery = true;
      } else {
        event = std::move(std::get<v1::StreamMessagesResponse>(item));
      }
      s->queue.pop_front();
      more = !s->queue.empty();
      subscription = s->subscription;
    }
  }
  if (finish) {
    Finish(status);  // OnDone may delete `this` from here on
    return;
  }
  // This thread holds the write: `this` stays alive until OnWriteDone.
  if (is_delivery) {
    // Converted here, on the thread that writes, not the broker's thread.
    // The previous delivery's message objects are cleared, not freed: its
    // Delivery and MessageProperties (and their strings' buffers) are reused,
    // which saves several allocations per message (bench/profile.sh stream).
    if (current_.has_delivery()) {
      // Delivery::Clear() deletes its properties message: keep it aside.
      v1::Delivery* d = current_.mutable_delivery();
      v1::MessageProperties* props =
          d->has_properties() ? d->release_properties() : nullptr;
      d->Clear();
      if (props != nullptr) {
        props->Clear();
        d->set_allocated_properties(props);
      }
    } else {
      current_.Clear();
    }
    current_delivery_id_ = delivery.delivery.delivery_id;
    ToProtoDelivery(std::move(delivery.delivery), current_.mutable_delivery());
    if (spans_ != nullptr) StartDeliverSpan(delivery.received);
    if (mode_ == core::AckMode::kNone && subscription != nullptr) {
      subscription->HandedOver(current_delivery_id_);
    }
  } else {
    current_ = std::move(event);
    current_delivery_id_ = 0;
  }
  // More queued behind this one: let gRPC buffer it (it goes out with the
  // next write that has no hint, at the latest the queue's last), so that a
  // burst of deliveries leaves in few HTTP/2 frames and sendmsg calls
  // instead of one each (bench/compare.sh: gateway CPU per delivery).
  ::grpc::WriteOptions options;
  if (more) options.set_buffer_hint();
  StartWrite(&current_, options);
}

void StreamReactor::StartDeliverSpan(absl::Time received) {
  v1::Delivery* d = current_.mutable_delivery();
  if (!d->has_trace_context()) return;
  std::optional<trace::TraceContext> parent = trace::ParseTraceparent(
      d->trace_context().traceparent(), d->trace_context().tracestate());
  if (!parent.has_value() || !parent->sampled()) return;
  trace::Span span;
  span.trace_id = parent->trace_id;
  span.span_id = trace::NewSpanId();
  span.parent_span_id = parent->span_id;
  span.trace_state = parent->tracestate;
  span.name = "deliver";
  span.kind = trace::SpanKind::kConsumer;
  span.start = received;
  span.Add("messaging.system", std::string("rabbitmq"));
  span.Add("messaging.operation", std::string("deliver"));
  span.Add("messaging.source.name", queue_name_);
  span.Add("messaging.rabbitmq.destination.routing_key", d->routing_key());
  if (!d->properties().message_id().empty()) {
    span.Add("messaging.message.id", d->properties().message_id());
  }
  span.Add("messaging.message.body.size",
           static_cast<int64_t>(d->body().size()));
  span.Add("amqpgw.subscription_id", subscription_id_);
  span.Add("amqpgw.delivery_id", static_cast<int64_t>(d->delivery_id()));
  span.Add("amqpgw.redelivered", d->redelivered());
  d->mutable_trace_context()->set_traceparent(
      parent->WithSpan(span.span_id).Traceparent());
  current_span_ = std::move(span);
}

void StreamReactor::OnWriteDone(bool ok) {
  if (current_span_.has_value()) {
    current_span_->end = absl::Now();
    if (!ok) {
      current_span_->error = true;
      current_span_->status_message = "the stream broke before the write";
    }
    spans_->Export(*std::move(current_span_));
    current_span_.reset();
  }
  std::shared_ptr<Shared> s = shared_;
  std::shared_ptr<core::Subscription> subscription;
  uint64_t handed = 0;
  {
    amqpgw::MutexLock lock(&s->mu);
    s->writing = false;
    subscription = s->subscription;
    if (ok && mode_ == core::AckMode::kAuto) handed = current_delivery_id_;
  }
  if (subscription != nullptr) {
    if (handed != 0) subscription->HandedOver(handed);
    if (!ok) subscription->Cancel(absl::CancelledError("the stream broke"));
  }
  Pump(s);
}

void StreamReactor::OnCancel() {
  std::shared_ptr<Shared> s = shared_;
  std::shared_ptr<core::Subscription> subscription;
  {
    amqpgw::MutexLock lock(&s->mu);
    subscription = s->subscription;
  }
  if (subscription != nullptr) {
    subscription->Cancel(
        absl::CancelledError("the client cancelled the stream"));
  }
}

void StreamReactor::OnDone() { delete this; }

}  // namespace amqpgw::grpc_api
