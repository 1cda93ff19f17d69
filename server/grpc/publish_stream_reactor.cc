#include "server/grpc/publish_stream_reactor.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/grpc/gateway_service.h"
#include "server/grpc/status.h"
#include "server/grpc/tracing.h"

namespace amqpgw::grpc_api {

PublishStreamReactor::PublishStreamReactor(::grpc::CallbackServerContext* ctx,
                                           core::Session* session,
                                           const Limits& limits,
                                           trace::SpanExporter* spans)
    : ctx_(ctx),
      session_(session),
      limits_(limits),
      spans_(spans),
      caller_trace_(TraceContextFromMetadata(*ctx)),
      call_deadline_(CallDeadline(ctx)),
      publisher_(session->PickPublisher()) {}

void PublishStreamReactor::Start() {
  drain_hook_ =
      session_->AddDrainHook([this](const std::string& why) { Drain(why); });
  if (drain_hook_ == 0) {
    FinishNow(ToGrpcStatus(absl::UnavailableError(
        "the gateway is shutting down: open the stream again")));
    return;
  }
  std::shared_ptr<Shared> s = shared_;
  {
    amqpgw::MutexLock lock(&s->mu);
    s->reading = true;
  }
  StartRead(&request_);
}

void PublishStreamReactor::FinishNow(const ::grpc::Status& status) {
  std::shared_ptr<Shared> s = shared_;
  {
    amqpgw::MutexLock lock(&s->mu);
    s->finished = true;
  }
  Finish(status);
}

void PublishStreamReactor::OnReadDone(bool ok) {
  std::shared_ptr<Shared> s = shared_;
  bool drained = false;
  if (ok) {
    amqpgw::MutexLock lock(&s->mu);
    drained = s->draining.has_value() || s->finished;
  }
  if (ok && !drained) HandleRequest(s);
  Actions actions;
  {
    amqpgw::MutexLock lock(&s->mu);
    s->reading = false;
    if (!ok) s->read_closed = true;  // half-close, or the call is over
    Claim(*s, &actions);
  }
  Act(std::move(actions));
}

void PublishStreamReactor::HandleRequest(const std::shared_ptr<Shared>& s) {
  ++position_;
  const uint64_t sequence =
      request_.sequence() != 0 ? request_.sequence() : position_;
  if (first_read_) {
    first_read_ = false;
    const uint32_t cap = std::max<uint32_t>(1, limits_.max_stream_in_flight);
    const uint32_t asked = request_.max_in_flight();
    amqpgw::MutexLock lock(&s->mu);
    s->max_in_flight = std::min(asked == 0 ? kDefaultMaxInFlight : asked, cap);
    s->max_answers = std::clamp<uint32_t>(request_.max_answers_per_response(),
                                          1, kMaxAnswers);
  }
  {
    amqpgw::MutexLock lock(&s->mu);
    ++s->outstanding;
  }
  if (!request_.has_message()) {
    Deliver(s, Answer{sequence,
                      absl::InvalidArgumentError(
                          "message: must be set (the message to publish)"),
                      std::string(), absl::Now()});
    return;
  }
  absl::StatusOr<amqp::OutgoingMessage> m = ToOutgoingMessage(
      std::move(*request_.mutable_message()), "message", limits_);
  if (!m.ok()) {
    Deliver(s, Answer{sequence, m.status(), std::string(), absl::Now()});
    return;
  }
  // Trace headers only for a caller that sent a trace context, or when
  // spans are recorded (PublishTracing::Inject would add nothing else).
  std::unique_ptr<PublishTracing> spans;
  if (caller_trace_.has_value() || spans_ != nullptr) {
    PublishTracing tracing(caller_trace_, spans_, "PublishStream");
    tracing.Inject(0, *m);
    if (tracing.recording()) {
      spans = std::make_unique<PublishTracing>(std::move(tracing));
    }
  }
  std::string id = m->properties.message_id.value_or(std::string());
  bool post;
  {
    amqpgw::MutexLock lock(&s->mu);
    s->staged_bytes += m->body.size() + 256;
    s->staged.push_back(
        Staged{sequence, std::move(id), *std::move(m), std::move(spans)});
    post = ClaimHandOff(*s);
  }
  if (post) {
    // The task runs before Finish: the staged message is outstanding, so
    // the stream is not finished and `this` is alive.
    session_->RunOnPublisher(publisher_, [this, s] { HandOff(s); });
  }
}

void PublishStreamReactor::HandOff(const std::shared_ptr<Shared>& s) {
  // Posted only with something staged and room in the window, and nothing
  // else takes from `staged`: at least one message moves, so the stream
  // cannot finish before the last PublishStaged below.
  std::vector<Staged> staged;
  Actions actions;
  {
    amqpgw::MutexLock lock(&s->mu);
    s->handoff_posted = false;
    size_t room = s->max_in_flight - std::min(s->max_in_flight, s->at_broker);
    size_t n = std::min(room, s->staged.size());
    staged.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      s->staged_bytes -= s->staged.front().message.body.size() + 256;
      staged.push_back(std::move(s->staged.front()));
      s->staged.pop_front();
    }
    s->at_broker += static_cast<uint32_t>(n);
    // Room to read ahead again (a full read-ahead stopped the reads).
    Claim(*s, &actions);
  }
  Act(std::move(actions));
  if (staged.empty()) return;  // (see above; `this` may be gone)
  // Batches of at most max_message_bytes (or one message), so that each
  // fits --max_pending_bytes as a lone message does. Until the last one is
  // handed over, its messages are outstanding: `this` is alive.
  const size_t max_bytes = limits_.max_message_bytes;
  size_t begin = 0;
  while (begin < staged.size()) {
    size_t end = begin;
    size_t bytes = 0;
    do {
      bytes += staged[end].message.body.size() + 256;
      ++end;
    } while (end < staged.size() &&
             bytes + staged[end].message.body.size() + 256 <= max_bytes);
    const bool last = end == staged.size();
    PublishStaged(s, staged, begin, end);
    if (last) return;  // `this` may be gone
    begin = end;
  }
}

void PublishStreamReactor::PublishStaged(const std::shared_ptr<Shared>& s,
                                         std::vector<Staged>& staged,
                                         size_t begin, size_t end) {
  // What each message's answer needs, by its index in the batch; shared by
  // the batch's callback and this function (it answers a refused batch).
  struct Pending {
    uint64_t sequence;
    std::string message_id;
    std::unique_ptr<PublishTracing> spans;
  };
  auto pending = std::make_shared<std::vector<Pending>>();
  pending->reserve(end - begin);
  std::vector<amqp::OutgoingMessage> messages;
  messages.reserve(end - begin);
  for (size_t k = begin; k < end; ++k) {
    Staged& one = staged[k];
    messages.push_back(std::move(one.message));
    pending->push_back(
        Pending{one.sequence, std::move(one.message_id), std::move(one.spans)});
  }
  auto batch = std::make_shared<core::PublishBatch>(
      std::move(messages), session_->Deadline(call_deadline_),
      [](core::PublishBatch&) {});
  // Both run on the publisher's thread before Finish (the stream is not
  // finished while a message is outstanding): the first when a confirm
  // settles messages of the batch, the second once each has its result.
  batch->set_on_broker_settled(
      [this, s](core::PublishBatch&, size_t count) { LeftBroker(s, count); });
  batch->set_on_result([this, s, pending](core::PublishBatch& b, size_t i) {
    Pending& p = (*pending)[i];
    const core::PublishBatch::Result& r = b.result(i);
    if (p.spans != nullptr) p.spans->Finish(r);
    // (LeftBroker has already counted what the broker settled.)
    Deliver(
        s,
        Answer{p.sequence, r.status, std::move(p.message_id), r.confirmed_at},
        /*leaves_window=*/!r.settled_by_broker);
  });
  batch->set_cancelled(
      [s] { return s->cancelled.load(std::memory_order_relaxed); });
  absl::Status st = session_->PublishHere(std::move(batch), publisher_);
  if (!st.ok()) {
    // Refused as a whole (shutting down, --max_pending_bytes): every
    // message gets the answer a unary Publish would.
    absl::Time now = absl::Now();
    for (Pending& p : *pending) {
      Deliver(s, Answer{p.sequence, st, std::string(), now},
              /*leaves_window=*/true);
    }
  }
}

void PublishStreamReactor::LeftBroker(const std::shared_ptr<Shared>& s,
                                      size_t count) {
  bool hand_off;
  {
    amqpgw::MutexLock lock(&s->mu);
    s->at_broker -= static_cast<uint32_t>(count);
    hand_off = ClaimHandOff(*s);
  }
  // Room in the window: the staged messages are handed over now, on this
  // thread, and the publisher writes them before it answers the `count`
  // messages. Those are not answered yet, so `this` is alive.
  if (hand_off) HandOff(s);
}

void PublishStreamReactor::Deliver(const std::shared_ptr<Shared>& s,
                                   Answer answer, bool leaves_window) {
  Actions actions;
  bool post = false;
  {
    amqpgw::MutexLock lock(&s->mu);
    if (s->broken) {
      --s->outstanding;  // nobody to tell
    } else {
      s->answers.push_back(std::move(answer));
    }
    if (leaves_window) {
      --s->at_broker;
      // Room in the window: the staged messages follow at once (these
      // answers come on the publisher thread, so the task runs in the same
      // pass of its loop, without a wake-up).
      post = ClaimHandOff(*s);
    }
    Claim(*s, &actions);
  }
  // Posted before Act: a staged message is outstanding, so Act cannot
  // finish the stream, and `this` is alive when the task runs.
  if (post) session_->RunOnPublisher(publisher_, [this, s] { HandOff(s); });
  Act(std::move(actions));
}

void PublishStreamReactor::OnWriteDone(bool ok) {
  std::shared_ptr<Shared> s = shared_;
  Actions actions;
  {
    amqpgw::MutexLock lock(&s->mu);
    s->idle = std::move(s->in_flight);
    s->outstanding -= s->writing_answers;
    s->writing_answers = 0;
    if (!ok && !s->broken) {
      s->broken = true;
      s->cancelled.store(true, std::memory_order_relaxed);
      s->outstanding -= static_cast<uint32_t>(s->answers.size());
      s->answers.clear();
    }
    Claim(*s, &actions);
  }
  Act(std::move(actions));
}

void PublishStreamReactor::OnCancel() {
  std::shared_ptr<Shared> s = shared_;
  Actions actions;
  {
    amqpgw::MutexLock lock(&s->mu);
    s->cancelled.store(true, std::memory_order_relaxed);
    if (!s->broken) {
      s->broken = true;
      s->outstanding -= static_cast<uint32_t>(s->answers.size());
      s->answers.clear();
    }
    Claim(*s, &actions);
  }
  Act(std::move(actions));
}

void PublishStreamReactor::Drain(const std::string& why) {
  std::shared_ptr<Shared> s = shared_;
  Actions actions;
  {
    amqpgw::MutexLock lock(&s->mu);
    s->draining =
        absl::UnavailableError(absl::StrCat(why, ": open the stream again"));
    Claim(*s, &actions);
  }
  Act(std::move(actions));
}

void PublishStreamReactor::OnDone() {
  session_->RemoveDrainHook(drain_hook_);
  delete this;
}

bool PublishStreamReactor::ClaimHandOff(Shared& s) {
  if (s.handoff_posted || s.staged.empty() || s.at_broker >= s.max_in_flight) {
    return false;
  }
  s.handoff_posted = true;
  return true;
}

void PublishStreamReactor::Claim(Shared& s, Actions* out) {
  if (s.finished) return;
  const uint64_t window = s.max_in_flight;
  if (!s.reading && !s.read_closed && !s.broken && !s.draining.has_value() &&
      s.staged.size() < window && s.staged_bytes < kMaxReadAheadBytes &&
      s.outstanding < 3 * window) {
    s.reading = true;
    out->read = true;
  }
  if (s.idle != nullptr && !s.answers.empty()) {
    out->slot = std::move(s.idle);
    const size_t n = std::min<size_t>(s.max_answers, s.answers.size());
    out->answers.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      out->answers.push_back(std::move(s.answers.front()));
      s.answers.pop_front();
    }
    s.writing_answers = static_cast<uint32_t>(n);
    out->batched = s.max_answers > 1;
    out->more = !s.answers.empty();
  }
  // Draining, a read still under way does not hold Finish back (the
  // caller may send nothing more); its message, if any, is dropped.
  const bool draining = s.draining.has_value() && !s.read_closed;
  if (!out->read && out->slot == nullptr && s.idle != nullptr &&
      (!s.reading || draining) && s.outstanding == 0 &&
      (s.read_closed || s.broken || draining)) {
    s.finished = true;
    out->finish = true;
    out->end_status =
        s.broken ? absl::CancelledError(
                       "the stream was cancelled or broke; answers still "
                       "owed were dropped")
        : draining ? *s.draining
                   : absl::OkStatus();
  }
}

void PublishStreamReactor::Act(Actions a) {
  if (a.read) StartRead(&request_);
  if (a.slot != nullptr) {
    v1::PublishStreamResponse* r = a.slot.get();
    if (!a.batched) {
      const Answer& one = a.answers.front();
      r->set_sequence(one.sequence);
      ToProtoPublishResult(one.status, one.confirmed_at, one.message_id,
                           r->mutable_result());
    } else {
      // The slot is reused: RepeatedPtrField keeps the cleared elements.
      r->clear_answers();
      for (const Answer& one : a.answers) {
        v1::PublishStreamAnswer* out = r->add_answers();
        out->set_sequence(one.sequence);
        ToProtoPublishResult(one.status, one.confirmed_at, one.message_id,
                             out->mutable_result());
      }
    }
    {
      std::shared_ptr<Shared> s = shared_;
      amqpgw::MutexLock lock(&s->mu);
      s->in_flight = std::move(a.slot);
    }
    ::grpc::WriteOptions options;
    // More answers queued: gRPC may hold this one for the next write's
    // flush (fewer frames and system calls for a burst of confirms).
    if (a.more) options.set_buffer_hint();
    StartWrite(r, options);
  }
  if (a.finish) {
    Finish(ToGrpcStatus(a.end_status));  // `this` may go now
  }
}

}  // namespace amqpgw::grpc_api
