// The Subscribe reactor: a bidirectional stream whose first request starts a
// CLIENT-mode subscription and whose later requests acknowledge its
// deliveries, answered in-stream and in order.
#ifndef AMQPGW_SERVER_GRPC_SUBSCRIBE_REACTOR_H_
#define AMQPGW_SERVER_GRPC_SUBSCRIBE_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "amqpgw/v1/gateway.pb.h"
#include "server/base/sync.h"
#include "server/core/session.h"
#include "server/grpc/stream_reactor.h"
#include "server/trace/span.h"

namespace amqpgw::grpc_api {

// Writes go through DeliveryStream (its lifetime and thread rules hold:
// deleted in OnDone after Finish, which follows the subscription's OnEnd).
//
// Reads: one at a time, into `request_`, each started by the reaction of
// the one before (OnReadDone) or, when kMaxPendingAckResults ack results
// wait to be written (a caller that sends acks and reads nothing), by the
// write that brings them back below that (OnAckResultWritten). So the ack
// results the gateway holds for a stream are bounded, as its deliveries are
// (prefetch, max_outstanding_bytes).
//
// A read that fails is the caller half-closing (or the call ending: then
// OnCancel also comes): the subscription drains (core::Subscription::Drain).
// Acks go to the subscription's worker thread, which answers them in the
// order they came; their results are queued from there (WorkerPush).
class SubscribeReactor final
    : public DeliveryStream<v1::SubscribeResponse,
                            ::grpc::ServerBidiReactor<v1::SubscribeRequest,
                                                      v1::SubscribeResponse>> {
 public:
  // Ack results that may wait to be written before reading stops.
  static constexpr int kMaxPendingAckResults = 64;

  // `session` must outlive the reactor; `deadline`: the call's (through
  // Session::Deadline), for the first subscribe. `spans` as DeliveryStream.
  SubscribeReactor(core::Session* session, absl::Time deadline,
                   trace::SpanExporter* spans);

  // Starts reading the first request. Call once, from the handler.
  void Start();

  // ::grpc::ServerBidiReactor.
  void OnReadDone(bool ok) override;
  // core::SubscriptionSink.
  void OnSummary(const core::SubscriptionCounts& counts) override;

 private:
  void OnAckResultWritten() override;
  // The first request: subscribes.
  void StartSubscription();
  // A later request: hands the ack to the subscription.
  void HandleAck(const std::shared_ptr<core::Subscription>& subscription);
  // Starts the next read unless too many ack results wait.
  void ReadNext();

  core::Session* const session_;
  const absl::Time deadline_;

  // The read path's (one read at a time, each started after the last one's
  // reaction has used these).
  v1::SubscribeRequest request_;
  bool started_ = false;
  absl::Duration drain_timeout_;

  amqpgw::Mutex mu_;
  // Ack requests handed to the subscription whose results are not written.
  int pending_ack_results_ ABSL_GUARDED_BY(mu_) = 0;
  // A read is due once pending_ack_results_ drops below the limit.
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace amqpgw::grpc_api

#endif  // AMQPGW_SERVER_GRPC_SUBSCRIBE_REACTOR_H_
