#include "server/grpc/stream_reactor.h"

#include <algorithm>
#include <optional>
#include <type_traits>
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

template <typename Response, typename Reactor>
DeliveryStream<Response, Reactor>::DeliveryStream(core::AckMode mode,
                                                  std::string queue,
                                                  uint32_t prefetch,
                                                  uint32_t max_batch,
                                                  trace::SpanExporter* spans)
    : mode_(mode),
      queue_name_(std::move(queue)),
      prefetch_(prefetch),
      max_batch_(max_batch),
      spans_(spans) {}

template <typename Response, typename Reactor>
void DeliveryStream<Response, Reactor>::Configure(core::AckMode mode,
                                                  std::string queue,
                                                  uint32_t prefetch,
                                                  uint32_t max_batch) {
  mode_ = mode;
  queue_name_ = std::move(queue);
  prefetch_ = prefetch;
  max_batch_ = max_batch;
}

template <typename Response, typename Reactor>
std::shared_ptr<core::Subscription>
DeliveryStream<Response, Reactor>::subscription() {
  std::shared_ptr<Shared> s = shared_;
  amqpgw::MutexLock lock(&s->mu);
  return s->subscription;
}

template <typename Response, typename Reactor>
absl::AnyInvocable<bool(Response)>
DeliveryStream<Response, Reactor>::WorkerPush() {
  return [this, s = shared_](Response event) {
    {
      amqpgw::MutexLock lock(&s->mu);
      if (s->ended) return false;
      s->queue.push_back(std::move(event));
    }
    // Not ended: only this (the worker) thread could end it (OnEnd), so the
    // stream cannot finish meanwhile and `this` is alive.
    Pump(s);
    return true;
  };
}

template <typename Response, typename Reactor>
void DeliveryStream<Response, Reactor>::Attach(
    std::shared_ptr<core::Subscription> subscription) {
  std::shared_ptr<Shared> s = shared_;
  amqpgw::MutexLock lock(&s->mu);
  if (!s->ended) s->subscription = std::move(subscription);
}

template <typename Response, typename Reactor>
void DeliveryStream<Response, Reactor>::FinishNow(
    const ::grpc::Status& status) {
  std::shared_ptr<Shared> s = shared_;
  {
    amqpgw::MutexLock lock(&s->mu);
    s->ended = true;
    s->end_status = status;
  }
  Pump(s);
}

template <typename Response, typename Reactor>
void DeliveryStream<Response, Reactor>::OnSubscribed(
    const std::string& subscription_id, const std::string& consumer_tag) {
  if (spans_ != nullptr) subscription_id_ = subscription_id;
  Response r;
  v1::Subscribed* sub = r.mutable_subscribed();
  sub->set_subscription_id(subscription_id);
  sub->set_consumer_tag(consumer_tag);
  sub->set_queue(queue_name_);
  sub->set_prefetch(prefetch_);
  sub->set_ack_mode(ToProtoAckMode(mode_));
  Push(std::move(r));
}

template <typename Response, typename Reactor>
void DeliveryStream<Response, Reactor>::OnDelivery(
    core::StreamDelivery delivery) {
  absl::Time received = spans_ != nullptr ? absl::Now() : absl::InfinitePast();
  // Queued only: OnDeliveriesRead starts the write once the read that
  // brought it is over, so that one write carries all of the read's
  // deliveries (max_batch) or they leave in one flush (buffer hints).
  std::shared_ptr<Shared> s = shared_;
  amqpgw::MutexLock lock(&s->mu);
  s->queue.push_back(PendingDelivery{std::move(delivery), received});
}

template <typename Response, typename Reactor>
void DeliveryStream<Response, Reactor>::OnDeliveriesRead() {
  std::shared_ptr<Shared> s = shared_;  // Pump may end with `this` deleted
  Pump(s);
}

template <typename Response, typename Reactor>
void DeliveryStream<Response, Reactor>::OnPaused(const std::string& why) {
  Response r;
  r.mutable_status()->set_kind(v1::StreamStatus::RECONNECTING);
  r.mutable_status()->set_message(
      SanitizeUtf8(why +
                   "; resubscribing when the broker is back. Unacknowledged "
                   "messages will be redelivered; Ack answers their old ids "
                   "as stale."));
  std::shared_ptr<Shared> s = shared_;
  {
    amqpgw::MutexLock lock(&s->mu);
    // Buffered deliveries were not acknowledged: the broker redelivers them.
    std::deque<Item> kept;
    for (Item& item : s->queue) {
      if (std::holds_alternative<Response>(item)) {
        kept.push_back(std::move(item));
      }
    }
    s->queue.swap(kept);
    s->queue.push_back(std::move(r));
  }
  Pump(s);
}

template <typename Response, typename Reactor>
void DeliveryStream<Response, Reactor>::OnResumed() {
  Response r;
  r.mutable_status()->set_kind(v1::StreamStatus::RESUMED);
  r.mutable_status()->set_message("subscribed again; deliveries go on");
  Push(std::move(r));
}

template <typename Response, typename Reactor>
void DeliveryStream<Response, Reactor>::OnDraining(const std::string& why) {
  Response r;
  r.mutable_status()->set_kind(v1::StreamStatus::DRAINING);
  r.mutable_status()->set_message(SanitizeUtf8(
      why +
      ": no more deliveries on this stream. Acknowledge what you "
      "have now (the rest goes back to the queue when the stream "
      "ends), then open a new stream: it reaches another instance."));
  Push(std::move(r));
}

template <typename Response, typename Reactor>
void DeliveryStream<Response, Reactor>::OnEnd(const absl::Status& status) {
  std::shared_ptr<Shared> s = shared_;
  {
    amqpgw::MutexLock lock(&s->mu);
    s->ended = true;
    s->end_status = ToGrpcStatus(status);
    s->subscription.reset();
  }
  Pump(s);
}

template <typename Response, typename Reactor>
void DeliveryStream<Response, Reactor>::Push(Item item) {
  std::shared_ptr<Shared> s = shared_;
  {
    amqpgw::MutexLock lock(&s->mu);
    s->queue.push_back(std::move(item));
  }
  Pump(s);
}

template <typename Response, typename Reactor>
void DeliveryStream<Response, Reactor>::Pump(const std::shared_ptr<Shared>& s) {
  ::grpc::Status status;
  PendingDelivery delivery;
  bool is_delivery = false;
  Response event;
  std::shared_ptr<core::Subscription> subscription;
  std::unique_ptr<WriteSlot> slot;
  {
    amqpgw::MutexLock lock(&s->mu);
    // A write is under way while the slot is not idle.
    if (s->finished || s->idle == nullptr) return;
    if (s->queue.empty()) {
      if (!s->ended) return;
      s->finished = true;
      status = s->end_status;
    } else {
      slot = std::move(s->idle);
      Item& item = s->queue.front();
      if (auto* d = std::get_if<PendingDelivery>(&item)) {
        delivery = std::move(*d);
        is_delivery = true;
      } else {
        event = std::move(std::get<Response>(item));
      }
      s->queue.pop_front();
      subscription = s->subscription;
    }
  }
  if (slot == nullptr) {
    this->Finish(status);  // OnDone may delete `this` from here on
    return;
  }
  // This thread owns the slot: `this` stays alive until OnWriteDone.
  if (is_delivery) {
    TakeDeliveries(s, std::move(delivery), *slot);
    if (mode_ == core::AckMode::kNone && subscription != nullptr) {
      subscription->HandedOver(slot->last_delivery_id);
    }
  } else {
    if constexpr (std::is_same_v<Response, v1::SubscribeResponse>) {
      slot->ack_result = event.has_ack();
    } else {
      slot->ack_result = false;
    }
    slot->response = std::move(event);
    slot->last_delivery_id = 0;
  }
  // More queued behind this one: let gRPC buffer it (it goes out with the
  // next write that has no hint, at the latest the queue's last), so that a
  // burst of deliveries leaves in few HTTP/2 frames and sendmsg calls
  // instead of one each (bench/compare.sh: gateway CPU per delivery). AUTO
  // acks only what a write-through write's completion proves written to
  // the socket, never what was merely buffered: the write that ends a run
  // of hinted ones is written through, and acks the whole run (what a
  // reader that stops can lose is then only what its own receive buffers
  // held; docs/api.md has the figures).
  DeliveryWrites::Flush flush;
  WriteSlot* writing = slot.get();
  {
    amqpgw::MutexLock lock(&s->mu);
    flush = slot->writes.Start(mode_, prefetch_, slot->last_delivery_id,
                               !s->queue.empty());
    s->in_flight = std::move(slot);
  }
  ::grpc::WriteOptions options;
  if (flush.write_through) options.set_write_through();
  if (flush.buffer_hint) options.set_buffer_hint();
  // gRPC reads the response until OnWriteDone, which alone takes the slot
  // out of in_flight again.
  this->StartWrite(&writing->response, options);
}

template <typename Response, typename Reactor>
void DeliveryStream<Response, Reactor>::TakeDeliveries(
    const std::shared_ptr<Shared>& s, PendingDelivery first, WriteSlot& slot) {
  // Converted by the thread that starts the write: the consumer thread at
  // the end of a read that found gRPC idle, else gRPC's in OnWriteDone.
  slot.ack_result = false;
  Response& r = slot.response;
  if constexpr (std::is_same_v<Response, v1::StreamMessagesResponse>) {
    if (max_batch_ == 0) {
      if (!r.has_delivery()) r.Clear();
      ConvertDelivery(std::move(first), r.mutable_delivery(), slot);
      return;
    }
  }
  if (!r.has_batch()) r.Clear();
  auto* deliveries = r.mutable_batch()->mutable_deliveries();
  // The previous batch's Delivery objects are reused in place.
  auto next_slot = [deliveries](int i) {
    return i < deliveries->size() ? deliveries->Mutable(i) : deliveries->Add();
  };
  int n = 0;
  size_t bytes = 0;
  PendingDelivery next = std::move(first);
  while (true) {
    v1::Delivery* d = next_slot(n++);
    ConvertDelivery(std::move(next), d, slot);
    bytes += d->ByteSizeLong();
    amqpgw::MutexLock lock(&s->mu);
    if (s->queue.empty() || n >= static_cast<int>(std::max(1u, max_batch_)) ||
        bytes >= kMaxBatchBytes) {
      break;
    }
    auto* queued = std::get_if<PendingDelivery>(&s->queue.front());
    if (queued == nullptr) break;  // an event: it goes in a write of its own
    next = std::move(*queued);
    s->queue.pop_front();
  }
  while (deliveries->size() > n) deliveries->RemoveLast();
}

template <typename Response, typename Reactor>
void DeliveryStream<Response, Reactor>::ConvertDelivery(PendingDelivery&& from,
                                                        v1::Delivery* to,
                                                        WriteSlot& slot) {
  // The previous delivery's message objects are cleared, not freed: its
  // Delivery and MessageProperties (and their strings' buffers) are reused,
  // which saves several allocations per message (bench/profile.sh stream).
  // Delivery::Clear() deletes its properties message: keep it aside.
  v1::MessageProperties* props =
      to->has_properties() ? to->release_properties() : nullptr;
  to->Clear();
  if (props != nullptr) {
    props->Clear();
    to->set_allocated_properties(props);
  }
  slot.last_delivery_id = from.delivery.delivery_id;
  ToProtoDelivery(std::move(from.delivery), to);
  if (spans_ != nullptr) StartDeliverSpan(to, from.received, slot);
}

template <typename Response, typename Reactor>
void DeliveryStream<Response, Reactor>::StartDeliverSpan(v1::Delivery* d,
                                                         absl::Time received,
                                                         WriteSlot& slot) {
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
  slot.spans.push_back(std::move(span));
}

template <typename Response, typename Reactor>
void DeliveryStream<Response, Reactor>::OnWriteDone(bool ok) {
  absl::Time end = absl::Now();
  std::shared_ptr<Shared> s = shared_;
  std::shared_ptr<core::Subscription> subscription;
  uint64_t handed = 0;
  std::vector<trace::Span> spans;
  std::unique_ptr<WriteSlot> slot;
  {
    amqpgw::MutexLock lock(&s->mu);
    slot = std::move(s->in_flight);
  }
  // This thread owns the slot again: no other write starts, and the stream
  // cannot finish, until it goes back to idle.
  if (slot->ack_result) OnAckResultWritten();
  {
    amqpgw::MutexLock lock(&s->mu);
    // The spans leave with this write; the slot goes back for the next.
    spans.swap(slot->spans);
    // AUTO: what the write-through write that ended a run proves written.
    handed = slot->writes.Done(ok);
    s->idle = std::move(slot);
    subscription = s->subscription;
  }
  for (trace::Span& span : spans) {
    span.end = end;
    if (!ok) {
      span.error = true;
      span.status_message = "the stream broke before the write";
    }
    spans_->Export(std::move(span));
  }
  if (subscription != nullptr) {
    if (handed != 0) subscription->HandedOver(handed);
    if (!ok) subscription->Cancel(absl::CancelledError("the stream broke"));
  }
  Pump(s);
}

template <typename Response, typename Reactor>
void DeliveryStream<Response, Reactor>::OnCancel() {
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

template <typename Response, typename Reactor>
void DeliveryStream<Response, Reactor>::OnDone() {
  delete this;
}

// The two consumer RPCs' reactors (declared extern in the header).
template class DeliveryStream<
    v1::StreamMessagesResponse,
    ::grpc::ServerWriteReactor<v1::StreamMessagesResponse>>;
template class DeliveryStream<
    v1::SubscribeResponse,
    ::grpc::ServerBidiReactor<v1::SubscribeRequest, v1::SubscribeResponse>>;

}  // namespace amqpgw::grpc_api
