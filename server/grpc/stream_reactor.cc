#include "server/grpc/stream_reactor.h"

#include <utility>

#include "server/grpc/convert.h"
#include "server/grpc/status.h"

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
                             uint32_t prefetch)
    : mode_(mode), queue_name_(std::move(queue)), prefetch_(prefetch) {}

void StreamReactor::Attach(std::shared_ptr<core::Subscription> subscription) {
  std::shared_ptr<Shared> s = shared_;
  absl::MutexLock lock(&s->mu);
  if (!s->ended) s->subscription = std::move(subscription);
}

void StreamReactor::FinishNow(const ::grpc::Status& status) {
  std::shared_ptr<Shared> s = shared_;
  {
    absl::MutexLock lock(&s->mu);
    s->ended = true;
    s->end_status = status;
  }
  Pump(s);
}

void StreamReactor::OnSubscribed(const std::string& subscription_id,
                                 const std::string& consumer_tag) {
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
  Push(std::move(delivery));
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
    absl::MutexLock lock(&s->mu);
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
    absl::MutexLock lock(&s->mu);
    s->ended = true;
    s->end_status = ToGrpcStatus(status);
    s->subscription.reset();
  }
  Pump(s);
}

void StreamReactor::Push(Item item) {
  std::shared_ptr<Shared> s = shared_;
  {
    absl::MutexLock lock(&s->mu);
    s->queue.push_back(std::move(item));
  }
  Pump(s);
}

void StreamReactor::Pump(const std::shared_ptr<Shared>& s) {
  bool finish = false;
  ::grpc::Status status;
  core::StreamDelivery delivery;
  bool is_delivery = false;
  v1::StreamMessagesResponse event;
  std::shared_ptr<core::Subscription> subscription;
  {
    absl::MutexLock lock(&s->mu);
    if (s->finished || s->writing) return;
    if (s->queue.empty()) {
      if (!s->ended) return;
      s->finished = true;
      finish = true;
      status = s->end_status;
    } else {
      s->writing = true;
      Item& item = s->queue.front();
      if (auto* d = std::get_if<core::StreamDelivery>(&item)) {
        delivery = std::move(*d);
        is_delivery = true;
      } else {
        event = std::move(std::get<v1::StreamMessagesResponse>(item));
      }
      s->queue.pop_front();
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
    current_delivery_id_ = delivery.delivery_id;
    ToProtoDelivery(std::move(delivery), current_.mutable_delivery());
    if (mode_ == core::AckMode::kNone && subscription != nullptr) {
      subscription->HandedOver(current_delivery_id_);
    }
  } else {
    current_ = std::move(event);
    current_delivery_id_ = 0;
  }
  StartWrite(&current_);
}

void StreamReactor::OnWriteDone(bool ok) {
  std::shared_ptr<Shared> s = shared_;
  std::shared_ptr<core::Subscription> subscription;
  uint64_t handed = 0;
  {
    absl::MutexLock lock(&s->mu);
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
    absl::MutexLock lock(&s->mu);
    subscription = s->subscription;
  }
  if (subscription != nullptr) {
    subscription->Cancel(
        absl::CancelledError("the client cancelled the stream"));
  }
}

void StreamReactor::OnDone() { delete this; }

}  // namespace amqpgw::grpc_api
