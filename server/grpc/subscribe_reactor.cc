#include "server/grpc/subscribe_reactor.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/grpc/convert.h"
#include "server/grpc/status.h"

namespace amqpgw::grpc_api {

SubscribeReactor::SubscribeReactor(core::Session* session, absl::Time deadline,
                                   trace::SpanExporter* spans)
    : DeliveryStream(core::AckMode::kClient, "", 0, 1, spans),
      session_(session),
      deadline_(deadline) {}

void SubscribeReactor::Start() { StartRead(&request_); }

void SubscribeReactor::OnReadDone(bool ok) {
  if (!started_) {
    started_ = true;
    if (!ok) {
      // Closed (or cancelled) before its first request: nothing to undo.
      FinishNow(ToGrpcStatus(absl::InvalidArgumentError(
          "start: the stream ended before its first request")));
      return;
    }
    StartSubscription();
    return;
  }
  std::shared_ptr<core::Subscription> sub = subscription();
  if (sub == nullptr) return;  // ended: the stream is finishing
  if (!ok) {
    // The caller half-closed: a graceful stop. (When the call was
    // cancelled instead, OnCancel cancels the subscription too, which
    // requeues everything at once whichever comes first.)
    sub->Drain(drain_timeout_);
    return;
  }
  if (request_.has_stop()) {
    sub->Drain(drain_timeout_);
    ReadNext();
    return;
  }
  HandleAck(sub);
}

void SubscribeReactor::StartSubscription() {
  if (!request_.has_start()) {
    FinishNow(ToGrpcStatus(absl::InvalidArgumentError(
        "start: the first request of a Subscribe stream must carry `start` "
        "(the subscription); acks come in later requests")));
    return;
  }
  absl::StatusOr<core::SubscribeOptions> options =
      ToSubscribeOptions(request_.start());
  absl::StatusOr<absl::Duration> drain = ToDrainTimeout(request_.start());
  if (!options.ok() || !drain.ok()) {
    FinishNow(ToGrpcStatus(!options.ok() ? options.status() : drain.status()));
    return;
  }
  drain_timeout_ = *drain;
  Configure(core::AckMode::kClient, options->queue, options->prefetch,
            std::max(1u, request_.start().max_batch()));
  options->subscribe_deadline = deadline_;
  absl::StatusOr<std::shared_ptr<core::Subscription>> sub =
      session_->Subscribe(*std::move(options), this);
  if (!sub.ok()) {
    FinishNow(ToGrpcStatus(sub.status()));
    return;
  }
  Attach(*std::move(sub));
  ReadNext();
}

void SubscribeReactor::HandleAck(
    const std::shared_ptr<core::Subscription>& sub) {
  absl::Status invalid;
  if (!request_.has_ack()) {
    invalid = absl::InvalidArgumentError(
        "ack: every request after the first must carry `ack` or `stop`");
  } else if (request_.ack().delivery_ids_size() == 0 ||
             request_.ack().delivery_ids_size() > 65535) {
    invalid = absl::InvalidArgumentError(
        absl::StrCat("ack.delivery_ids: give 1 to 65535 ids, got ",
                     request_.ack().delivery_ids_size()));
  }
  absl::StatusOr<core::AckCommand> action = ToAckCommand(request_.ack());
  if (invalid.ok() && !action.ok()) {
    invalid = absl::InvalidArgumentError(
        absl::StrCat("ack.", action.status().message()));
  }
  if (!invalid.ok()) {
    // Ends the stream with `invalid`; what is unacknowledged is requeued.
    sub->Cancel(std::move(invalid));
    return;
  }
  {
    amqpgw::MutexLock lock(&mu_);
    ++pending_ack_results_;
  }
  std::vector<uint64_t> ids(request_.ack().delivery_ids().begin(),
                            request_.ack().delivery_ids().end());
  v1::AckRequest::Action proto_action = request_.ack().action();
  if (proto_action == v1::AckRequest::ACTION_UNSPECIFIED) {
    proto_action = v1::AckRequest::ACK;
  }
  // Runs on the subscription's worker thread, in the order of the requests.
  sub->Ack(std::move(ids), *std::move(action),
           [push = WorkerPush(), sub,
            proto_action](absl::StatusOr<core::AckResult> r) mutable {
             if (!r.ok()) {
               // An id never delivered on this stream ends it; after the
               // subscription's end there is nobody left to answer.
               if (r.status().code() == absl::StatusCode::kInvalidArgument) {
                 sub->Cancel(r.status());
               }
               return;
             }
             v1::SubscribeResponse event;
             v1::SubscribeAckResult* out = event.mutable_ack();
             out->set_action(proto_action);
             for (uint64_t id : r->applied_ids) out->add_applied_ids(id);
             for (uint64_t id : r->stale_ids) out->add_stale_ids(id);
             for (uint64_t id : r->failed_ids) out->add_failed_ids(id);
             if (!r->failure.ok()) {
               out->set_error(std::string(r->failure.message()));
             }
             push(std::move(event));
           });
  ReadNext();
}

void SubscribeReactor::ReadNext() {
  {
    amqpgw::MutexLock lock(&mu_);
    if (pending_ack_results_ >= kMaxPendingAckResults) {
      read_paused_ = true;
      return;
    }
  }
  StartRead(&request_);
}

void SubscribeReactor::OnAckResultWritten() {
  bool resume = false;
  {
    amqpgw::MutexLock lock(&mu_);
    --pending_ack_results_;
    if (read_paused_ && pending_ack_results_ < kMaxPendingAckResults) {
      read_paused_ = false;
      resume = true;
    }
  }
  if (resume) StartRead(&request_);
}

void SubscribeReactor::OnSummary(const core::SubscriptionCounts& counts) {
  v1::SubscribeResponse event;
  v1::SubscribeSummary* out = event.mutable_summary();
  out->set_delivered(counts.delivered);
  out->set_acked(counts.acked);
  out->set_rejected(counts.rejected);
  out->set_requeued(counts.requeued);
  PushEvent(std::move(event));
}

}  // namespace amqpgw::grpc_api
