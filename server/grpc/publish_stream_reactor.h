// The PublishStream reactor: reads messages from one bidirectional gRPC
// stream, validates each as a unary Publish would, publishes them in
// core::PublishBatches (each message isolated and retried exactly as a
// unary Publish: the publisher treats every message of a batch on its own),
// and writes each message's result back, tagged with its sequence, as soon
// as the publisher settles it (PublishBatch::set_on_result).
//
// Hand-off: a message read waits in Shared::staged; the first one staged
// posts a task to the stream's publisher thread (Session::RunOnPublisher),
// which takes everything staged by the time it runs into one batch (of at
// most max_message_bytes, or one message, so that it fits
// --max_pending_bytes as a lone message would) and queues it there
// (Session::PublishHere). Messages read while the publisher
// thread is busy therefore travel together, in one hop and one batch
// (timer, bookkeeping) instead of one each, and keep their order.
//
// Flow control: at most max_in_flight messages are handed to the publisher
// and not yet settled (waiting for the broker's confirm). The reactor reads
// ahead: up to max_in_flight more (and at most kMaxReadAheadBytes of them)
// wait staged, so that when a confirm settles k messages the publisher
// thread hands k staged ones over at once (LeftBroker, from the batch's
// on_broker_settled) and writes them before it makes the k answers, as a
// rabbitmq-c client refills its confirm window, instead of waiting for k
// reads one after another. Beyond that, or while
// 3 * max_in_flight messages are read and not yet answered (answers
// waiting for their write), the reactor issues no next read, so gRPC's
// flow control holds the caller. One write is in flight at a time.
//
// Shutdown: Start registers the stream with the session
// (core::Session::AddDrainHook). On DrainStreams it reads nothing more
// (a message whose read was already under way is dropped, neither
// published nor answered), answers every message in flight, and then ends
// UNAVAILABLE "<why>: open the stream again" (OK if the caller had
// half-closed). A stream opened once the drain began is refused so.
//
// Lifetime: created by the handler; deletes itself in OnDone, which gRPC
// calls after Finish. Finish is called once, when nothing is outstanding: no
// read or write in flight, every message read answered (or, once the
// stream broke, its result dropped), and the reading side over (half-close,
// cancel) or the stream broken. So every batch's done callback runs before
// Finish, while `this` is alive.
//
// Threads: gRPC reactions (OnReadDone, OnWriteDone, OnCancel, OnDone) run on
// gRPC's threads; batch results arrive on a publisher's worker thread.
// Neither blocks: each takes Shared::mu briefly to update the counts and to
// claim the next action (a read, a write or Finish), then acts outside the
// lock. Reads are one at a time, so the request object and `this`'s
// read-side members belong to the thread in OnReadDone.
#ifndef AMQPGW_SERVER_GRPC_PUBLISH_STREAM_REACTOR_H_
#define AMQPGW_SERVER_GRPC_PUBLISH_STREAM_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "amqpgw/v1/gateway.pb.h"
#include "server/base/sync.h"
#include "server/core/session.h"
#include "server/grpc/convert.h"
#include "server/grpc/tracing.h"
#include "server/trace/span.h"
#include "server/trace/trace_context.h"

namespace amqpgw::grpc_api {

class PublishStreamReactor
    : public ::grpc::ServerBidiReactor<v1::PublishStreamRequest,
                                       v1::PublishStreamResponse> {
 public:
  // max_in_flight when the first request leaves it 0.
  static constexpr uint32_t kDefaultMaxInFlight = 256;
  // Most bytes read ahead (staged beyond the broker's window), roughly:
  // the reactor reads no further once this much is staged.
  static constexpr size_t kMaxReadAheadBytes = 1 << 20;
  // Most answers per response (max_answers_per_response is lowered to it).
  static constexpr uint32_t kMaxAnswers = 1024;

  // `session`, `limits` and `spans` (null: no spans) must outlive the
  // reactor. Call Start() or FinishNow() next.
  PublishStreamReactor(::grpc::CallbackServerContext* ctx,
                       core::Session* session, const Limits& limits,
                       trace::SpanExporter* spans);

  // Registers the stream's drain hook and issues the first read (or ends
  // the stream UNAVAILABLE when the gateway is shutting down).
  void Start();
  // Ends the stream at once, before any read (authorization failed).
  void FinishNow(const ::grpc::Status& status);

  // ::grpc::ServerBidiReactor.
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // One message's outcome, waiting to be written.
  struct Answer {
    uint64_t sequence = 0;
    absl::Status status;
    std::string message_id;
    absl::Time confirmed_at;
  };
  // A message read and validated, waiting for the hand-off.
  struct Staged {
    uint64_t sequence = 0;
    std::string message_id;
    amqp::OutgoingMessage message;
    // Its spans (null when none are recorded).
    std::unique_ptr<PublishTracing> spans;
  };
  // What a thread claimed under Shared::mu and does after unlocking.
  struct Actions {
    bool read = false;
    // A write: the slot (this thread's until it puts it in
    // Shared::in_flight) and the answers to fill it with (one unless the
    // stream asked for more per response).
    std::unique_ptr<v1::PublishStreamResponse> slot;
    std::vector<Answer> answers;
    bool batched = false;  // in `answers` (max_answers_per_response > 1)
    bool more = false;     // answers queued behind these: buffer hint
    bool finish = false;
    absl::Status end_status;  // with finish
  };

  // State shared by gRPC's threads and the publishers'. Each entry point
  // holds a reference while it runs, so the mutex outlives a thread that
  // unlocks it after another has called Finish.
  struct Shared {
    amqpgw::Mutex mu;
    // Messages read and not yet answered (written or dropped).
    uint32_t outstanding ABSL_GUARDED_BY(mu) = 0;
    // Of those, the ones handed to the publisher and not yet settled: at
    // most max_in_flight.
    uint32_t at_broker ABSL_GUARDED_BY(mu) = 0;
    uint32_t max_in_flight ABSL_GUARDED_BY(mu) = kDefaultMaxInFlight;
    // Answers per response (max_answers_per_response, 1..kMaxAnswers); 1
    // fills `sequence` and `result`, more fill `answers`.
    uint32_t max_answers ABSL_GUARDED_BY(mu) = 1;
    // How many answers the write under way carries.
    uint32_t writing_answers ABSL_GUARDED_BY(mu) = 0;
    std::deque<Answer> answers ABSL_GUARDED_BY(mu);
    // Messages read, not yet handed to the publisher, in order, and their
    // bytes (bodies + 256 each); a hand-off task is posted while
    // `handoff_posted`.
    std::deque<Staged> staged ABSL_GUARDED_BY(mu);
    size_t staged_bytes ABSL_GUARDED_BY(mu) = 0;
    bool handoff_posted ABSL_GUARDED_BY(mu) = false;
    bool reading ABSL_GUARDED_BY(mu) = false;
    // The response of a write is in `idle` while no write is under way; a
    // thread that claims a write takes it out, fills it as its only owner
    // and puts it in `in_flight` before StartWrite; OnWriteDone takes it
    // back (the hand-off StreamReactor's WriteSlot describes).
    std::unique_ptr<v1::PublishStreamResponse> idle ABSL_GUARDED_BY(mu) =
        std::make_unique<v1::PublishStreamResponse>();
    std::unique_ptr<v1::PublishStreamResponse> in_flight ABSL_GUARDED_BY(mu);
    // The caller half-closed (or the read failed): no more reads.
    bool read_closed ABSL_GUARDED_BY(mu) = false;
    // A write failed or the call was cancelled: answers are dropped.
    bool broken ABSL_GUARDED_BY(mu) = false;
    bool finished ABSL_GUARDED_BY(mu) = false;
    // The gateway shuts down (Drain): no more reads; ends with this once
    // everything read is answered.
    std::optional<absl::Status> draining ABSL_GUARDED_BY(mu);
    ::grpc::Status end_status ABSL_GUARDED_BY(mu);
    // Read by the publishers before sending each message (CANCELLED then).
    std::atomic<bool> cancelled{false};
  };

  // The session's drain hook (see "Shutdown" above).
  void Drain(const std::string& why);
  // Publishes the message just read (or answers its error).
  void HandleRequest(const std::shared_ptr<Shared>& s);
  // The publisher thread's hand-off task: publishes what is staged, as far
  // as the window has room, as one batch. Its last use of `this` is to
  // answer the messages.
  void HandOff(const std::shared_ptr<Shared>& s);
  // Publishes staged[begin, end) as one batch on the publisher thread, and
  // answers them all when the session refuses it. Touches `this` last to
  // answer.
  void PublishStaged(const std::shared_ptr<Shared>& s,
                     std::vector<Staged>& staged, size_t begin, size_t end);
  // The publisher thread's, from a batch's on_broker_settled: `count`
  // messages handed over are no longer at the broker, which frees room in
  // the window; hands the staged messages over at once (HandOff).
  void LeftBroker(const std::shared_ptr<Shared>& s, size_t count);
  // Queues `answer` (from any thread) and acts on it. `leaves_window`: the
  // message was handed over and the gateway, not the broker, settled it
  // (LeftBroker counts those the broker settled), which frees room in the
  // window for the staged messages.
  void Deliver(const std::shared_ptr<Shared>& s, Answer answer,
               bool leaves_window = false);
  // Under s.mu: true when a hand-off should run now (something is staged,
  // the window has room, and none is posted or running), and marks it
  // posted; the caller then runs or posts HandOff.
  static bool ClaimHandOff(Shared& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // Under s.mu: claims the next read, write or Finish that the state allows.
  static void Claim(Shared& s, Actions* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // Does what Claim claimed. Touches `this` only for those actions, and
  // Finish is its last.
  void Act(Actions actions);

  ::grpc::CallbackServerContext* const ctx_;
  core::Session* const session_;
  const Limits& limits_;
  trace::SpanExporter* const spans_;
  const std::optional<trace::TraceContext> caller_trace_;
  // The call's deadline (InfiniteFuture when none).
  const absl::Time call_deadline_;
  // All of this stream's batches go to one publisher connection: in order.
  const size_t publisher_;
  // core::Session::AddDrainHook's id; set in Start, removed in OnDone.
  uint64_t drain_hook_ = 0;

  // Read side: the thread in OnReadDone only (reads are one at a time).
  v1::PublishStreamRequest request_;
  uint64_t position_ = 0;
  bool first_read_ = true;

  const std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
};

}  // namespace amqpgw::grpc_api

#endif  // AMQPGW_SERVER_GRPC_PUBLISH_STREAM_REACTOR_H_
