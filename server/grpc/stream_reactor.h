// The StreamMessages reactor: a SubscriptionSink that writes a
// subscription's events to one gRPC server stream.
#ifndef AMQPGW_SERVER_GRPC_STREAM_REACTOR_H_
#define AMQPGW_SERVER_GRPC_STREAM_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "amqpgw/v1/gateway.pb.h"
#include "server/base/sync.h"
#include "server/core/session.h"
#include "server/trace/span.h"

namespace amqpgw::grpc_api {

// Lifetime: created by the handler; deletes itself in OnDone, which gRPC
// calls after Finish. Finish is called only after the subscription's OnEnd,
// the last call the subscription makes into this sink.
//
// Threads: Sink methods run on the subscription's worker thread; gRPC
// reactions (OnWriteDone, OnCancel, OnDone) on gRPC's threads. The queue is
// shared under mu_. At most `prefetch` deliveries wait in it, because the
// broker sends no more than that many unacknowledged messages and the
// gateway acknowledges (AUTO, NONE) only once a message leaves the queue.
//
// Deliveries wait in the queue until the subscription's read that brought
// them is over (OnDeliveriesRead), or a write in progress completes. With
// max_batch >= 1 a write takes the deliveries waiting at the front of the
// queue, up to max_batch of them and until they reach kMaxBatchBytes
// encoded; it never waits for more.
//
// Tracing: each delivery's `trace_context` comes from its AMQP headers. With
// a span exporter, a delivery of a sampled trace also gets a "deliver" span
// (CONSUMER: from the broker's basic.deliver reaching the gateway to gRPC
// accepting the message for sending), and the caller's trace_context names
// that span as parent.
class StreamReactor
    : public ::grpc::ServerWriteReactor<v1::StreamMessagesResponse>,
      public core::SubscriptionSink {
 public:
  // A batch closes once its deliveries reach this many bytes encoded.
  static constexpr size_t kMaxBatchBytes = 1 << 20;

  // `max_batch`: 0 writes each delivery alone as a `delivery` event, else
  // `batch` events of up to that many. `spans`: null when spans are off;
  // else must outlive the reactor.
  StreamReactor(core::AckMode mode, std::string queue, uint32_t prefetch,
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
  void OnEnd(const absl::Status& status) override;

  // ::grpc::ServerWriteReactor.
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // A delivery waiting to be written; `received` is set only with spans.
  struct PendingDelivery {
    core::StreamDelivery delivery;
    absl::Time received;
  };
  using Item = std::variant<v1::StreamMessagesResponse, PendingDelivery>;

  // State shared by the subscription's thread and gRPC's. Each entry point
  // holds a reference while it runs: once a thread unlocks, another may
  // Finish and OnDone may delete the reactor, but never the mutex under a
  // thread still unlocking it.
  struct Shared {
    amqpgw::Mutex mu;
    std::shared_ptr<core::Subscription> subscription ABSL_GUARDED_BY(mu);
    std::deque<Item> queue ABSL_GUARDED_BY(mu);
    bool writing ABSL_GUARDED_BY(mu) = false;
    bool ended ABSL_GUARDED_BY(mu) = false;
    bool finished ABSL_GUARDED_BY(mu) = false;
    ::grpc::Status end_status ABSL_GUARDED_BY(mu);
  };

  void Push(Item item);
  // Starts the next write, or Finish once the queue is empty and the
  // subscription ended. Touches `this` only while it holds the write (or to
  // call Finish, as its last action).
  void Pump(const std::shared_ptr<Shared>& s);
  // Converts `first` and, with max_batch_ >= 1, the deliveries queued behind
  // it into current_; sets current_delivery_id_ to the last one's id.
  void TakeDeliveries(const std::shared_ptr<Shared>& s, PendingDelivery first);
  // Converts `from` into `to` (cleared for reuse); starts its span.
  void ConvertDelivery(PendingDelivery&& from, v1::Delivery* to);
  // With spans on: adds a deliver span for `d` to current_spans_ when its
  // trace is sampled, and names the span as parent in d's trace context.
  void StartDeliverSpan(v1::Delivery* d, absl::Time received);

  const core::AckMode mode_;
  const std::string queue_name_;
  const uint32_t prefetch_;
  const uint32_t max_batch_;
  trace::SpanExporter* const spans_;
  // Written by OnSubscribed (subscription thread) before any delivery;
  // read by the writing thread for spans.
  std::string subscription_id_;
  const std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
  // The response being written: owned by the thread that set `writing`
  // until StartWrite, then read by gRPC until OnWriteDone. Its Delivery
  // messages are cleared and reused by the next write, not freed.
  v1::StreamMessagesResponse current_;
  // The id of current_'s last delivery; 0 for other events.
  uint64_t current_delivery_id_ = 0;
  // The deliver spans of current_, ended in OnWriteDone. Same ownership as
  // current_; OnWriteDone takes them under shared_->mu.
  std::vector<trace::Span> current_spans_;
};

}  // namespace amqpgw::grpc_api

#endif  // AMQPGW_SERVER_GRPC_STREAM_REACTOR_H_
