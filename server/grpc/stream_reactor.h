// The consumer streams' reactors: a SubscriptionSink that writes a
// subscription's events to one gRPC stream. DeliveryStream holds the write
// path both consumer RPCs share (the queue, the write slot's hand-off,
// batches, spans); StreamReactor serves StreamMessages (a server stream),
// SubscribeReactor (subscribe_reactor.h) Subscribe (bidirectional).
#ifndef AMQPGW_SERVER_GRPC_STREAM_REACTOR_H_
#define AMQPGW_SERVER_GRPC_STREAM_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "amqpgw/v1/gateway.pb.h"
#include "server/base/sync.h"
#include "server/core/session.h"
#include "server/grpc/delivery_stream_writes.h"
#include "server/trace/span.h"

namespace amqpgw::grpc_api {

// Lifetime: created by the handler; deletes itself in OnDone, which gRPC
// calls after Finish. Finish is called only after the subscription's OnEnd,
// the last call the subscription makes into this sink.
//
// Threads: Sink methods run on the subscription's worker thread; gRPC
// reactions (OnWriteDone, OnCancel, OnDone) on gRPC's threads. The queue and
// the write slot are shared under Shared::mu (see Shared for the slot's
// hand-off). At most `prefetch` deliveries, and about max_outstanding_bytes
// of them, wait in the queue, because the broker sends no more than the
// subscription's window of unacknowledged messages and the gateway
// acknowledges (AUTO, NONE) only once a message leaves the queue.
//
// Deliveries wait in the queue until the subscription's read that brought
// them is over (OnDeliveriesRead), or a write in progress completes. With
// max_batch >= 1 a write takes the deliveries waiting at the front of the
// queue, up to max_batch of them and until they reach kMaxBatchBytes
// encoded; it never waits for more. A write with more queued behind it is
// buffer-hinted; in AUTO a run of hinted writes ends with a write-through
// one, whose completion acknowledges the run's deliveries (DeliveryWrites,
// delivery_stream_writes.h).
//
// Tracing: each delivery's `trace_context` comes from its AMQP headers. With
// a span exporter, a delivery of a sampled trace also gets a "deliver" span
// (CONSUMER: from the broker's basic.deliver reaching the gateway to gRPC
// accepting the message for sending), and the caller's trace_context names
// that span as parent.
//
// `Response` is the RPC's response message (StreamMessagesResponse or
// SubscribeResponse: both have `subscribed`, `status` and `batch` events;
// only StreamMessagesResponse has a lone `delivery`); `Reactor` the gRPC
// reactor it is (a ServerWriteReactor or ServerBidiReactor of Response).
template <typename Response, typename Reactor>
class DeliveryStream : public Reactor, public core::SubscriptionSink {
 public:
  // A batch closes once its deliveries reach this many bytes encoded.
  static constexpr size_t kMaxBatchBytes = 1 << 20;

  // `max_batch`: 0 writes each delivery alone as a `delivery` event, else
  // `batch` events of up to that many. `spans`: null when spans are off;
  // else must outlive the reactor.
  DeliveryStream(core::AckMode mode, std::string queue, uint32_t prefetch,
                 uint32_t max_batch = 0, trace::SpanExporter* spans = nullptr);

  // Binds the subscription (for acks and cancellation). Call once, from the
  // handler, before returning the reactor.
  void Attach(std::shared_ptr<core::Subscription> subscription);
  // Ends the stream at once (no subscription was made).
  void FinishNow(const ::grpc::Status& status);

  // core::SubscriptionSink.
  void OnSubscribed(const std::string& subscription_id,
                    const std::string& consumer_tag) override;
  void OnDelivery(core::StreamDelivery delivery) override;
  void OnDeliveriesRead() override;
  void OnPaused(const std::string& why) override;
  void OnResumed() override;
  void OnDraining(const std::string& why) override;
  void OnEnd(const absl::Status& status) override;

  // The gRPC reactor's.
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 protected:
  // Sets what the constructor would have, for a reactor that learns it from
  // its first request: call before the subscription is made.
  void Configure(core::AckMode mode, std::string queue, uint32_t prefetch,
                 uint32_t max_batch);
  // Queues `event` and starts its write when none is under way.
  void PushEvent(Response event) { Push(std::move(event)); }
  // A function for the subscription's worker thread that queues an event
  // unless the subscription has ended (after OnEnd the stream may finish and
  // the reactor be gone: the function then touches nothing but the shared
  // state, and returns false).
  absl::AnyInvocable<bool(Response)> WorkerPush();
  // The subscription (null before Attach and after OnEnd).
  std::shared_ptr<core::Subscription> subscription();
  // Runs on the thread that completed a write of an ack result (Subscribe),
  // before the write slot is free again (so the stream cannot finish
  // meanwhile): for read flow control.
  virtual void OnAckResultWritten() {}

 private:
  // A delivery waiting to be written; `received` is set only with spans.
  struct PendingDelivery {
    core::StreamDelivery delivery;
    absl::Time received;
  };
  using Item = std::variant<Response, PendingDelivery>;

  // The response of one write, with what it carries: owned by exactly one
  // place at a time, which is the hand-off of a write between threads (see
  // Shared). Its Delivery messages are cleared and reused by the next
  // write, not freed.
  struct WriteSlot {
    Response response;
    // The response is an answer to a request (Subscribe's ack results).
    bool ack_result = false;
    // The id of the response's last delivery; 0 for other events.
    uint64_t last_delivery_id = 0;
    // The deliver spans of the response, ended in OnWriteDone.
    std::vector<trace::Span> spans;
    // How writes are flushed and what their completion acknowledges (AUTO);
    // it goes with the slot from write to write.
    DeliveryWrites writes;
  };

  // State shared by the subscription's thread and gRPC's. Each entry point
  // holds a reference while it runs: once a thread unlocks, another may
  // Finish and OnDone may delete the reactor, but never the mutex under a
  // thread still unlocking it.
  //
  // The write slot is in `idle` while no write is under way. A thread that
  // starts a write takes it out under `mu` (so no other thread can), fills
  // it as the only owner (a local unique_ptr), and puts it in `in_flight`
  // under `mu` before StartWrite; OnWriteDone takes it back under `mu`.
  // Every access to a slot is therefore either under `mu` or through the
  // one owning pointer, which the lock analysis and ThreadSanitizer both
  // see (gRPC's own hand-off from StartWrite to OnWriteDone is invisible to
  // TSan: gRPC is not instrumented).
  struct Shared {
    amqpgw::Mutex mu;
    std::shared_ptr<core::Subscription> subscription ABSL_GUARDED_BY(mu);
    std::deque<Item> queue ABSL_GUARDED_BY(mu);
    std::unique_ptr<WriteSlot> idle ABSL_GUARDED_BY(mu) =
        std::make_unique<WriteSlot>();
    std::unique_ptr<WriteSlot> in_flight ABSL_GUARDED_BY(mu);
    bool ended ABSL_GUARDED_BY(mu) = false;
    bool finished ABSL_GUARDED_BY(mu) = false;
    ::grpc::Status end_status ABSL_GUARDED_BY(mu);
  };

  void Push(Item item);
  // Starts the next write, or Finish once the queue is empty and the
  // subscription ended. Touches `this` only while it holds the write slot
  // (or to call Finish, as its last action).
  void Pump(const std::shared_ptr<Shared>& s);
  // Converts `first` and, with max_batch_ >= 1, the deliveries queued behind
  // it into `slot`.
  void TakeDeliveries(const std::shared_ptr<Shared>& s, PendingDelivery first,
                      WriteSlot& slot);
  // Converts `from` into `to` (cleared for reuse); starts its span.
  void ConvertDelivery(PendingDelivery&& from, v1::Delivery* to,
                       WriteSlot& slot);
  // With spans on: adds a deliver span for `d` to slot.spans when its trace
  // is sampled, and names the span as parent in d's trace context.
  void StartDeliverSpan(v1::Delivery* d, absl::Time received, WriteSlot& slot);

  // Set by the constructor or Configure, before the subscription exists;
  // read-only afterwards (the subscription's first event is ordered after).
  core::AckMode mode_;
  std::string queue_name_;
  uint32_t prefetch_;
  uint32_t max_batch_;
  trace::SpanExporter* const spans_;
  // Written by OnSubscribed (subscription thread) before any delivery is
  // queued (under Shared::mu, which orders it before every reader); read by
  // the writing thread for spans.
  std::string subscription_id_;
  const std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
};

// Instantiated in stream_reactor.cc.
extern template class DeliveryStream<
    v1::StreamMessagesResponse,
    ::grpc::ServerWriteReactor<v1::StreamMessagesResponse>>;
extern template class DeliveryStream<
    v1::SubscribeResponse,
    ::grpc::ServerBidiReactor<v1::SubscribeRequest, v1::SubscribeResponse>>;

// StreamMessages.
class StreamReactor final
    : public DeliveryStream<
          v1::StreamMessagesResponse,
          ::grpc::ServerWriteReactor<v1::StreamMessagesResponse>> {
 public:
  using DeliveryStream::DeliveryStream;
};

}  // namespace amqpgw::grpc_api

#endif  // AMQPGW_SERVER_GRPC_STREAM_REACTOR_H_
