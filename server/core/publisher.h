// Publisher: confirmed publishing on one ConnectionWorker.
//
// All state lives on the worker's thread. Callers on any thread hand over a
// PublishBatch (one Publish or PublishBatch RPC) with Publish(); the batch's
// `done` callback runs on the worker thread once every message has a result.
//
// How a message travels:
//  - It waits in a FIFO until the confirm channel is open, the broker does not
//    block publishing, and fewer than `confirm_window` messages are
//    unconfirmed. The window is shared by all callers, so concurrent unary
//    Publish calls are pipelined like a batch.
//  - Before the first message to an exchange the gateway has not seen, a
//    passive exchange.declare on a second channel checks that it exists. A
//    missing exchange fails only the messages addressed to it (NOT_FOUND)
//    instead of closing the confirm channel under everybody's messages.
//  - Isolation: a message some of whose risk keys (publish_risk.h: its
//    exchange, a user_id, a direct reply-to) have never been confirmed, or a
//    suspect (below), is sent alone: once nothing else is unconfirmed, and
//    nothing follows it until it is settled. A refusal (internal exchange,
//    no write permission, ...) then closes the channel under that message
//    only. A confirm proves its keys; later messages with proven keys are
//    pipelined. A key stays proven across channels and connections until a
//    refusal names it.
//  - It is published (mandatory unless allow_unroutable) and tracked by its
//    confirm sequence number. basic.ack completes it OK; basic.nack with
//    RESOURCE_EXHAUSTED; a basic.return before the ack with
//    FAILED_PRECONDITION "NO_ROUTE". OK only ever follows a confirm.
//  - The broker closes the confirm channel (OnConfirmChannelClosed): the
//    refused message is the only one in flight (isolated), or the first in
//    flight that the reply text describes (RabbitMQ checks a channel's
//    publishes in order). It fails with the broker's error and is never
//    sent again; the others are published again: those after it were
//    discarded by the broker, those before it were routed but their confirms
//    died with the channel (so they may arrive twice: at-least-once, as
//    after a lost connection). When nothing can be pinned, every message in
//    flight becomes a suspect.
//  - The connection is lost before the confirm: the message goes back to the
//    front of the FIFO (order kept) and is published again after
//    reconnecting: at-least-once. When the broker closed the connection with
//    an error (connection.close other than 320 CONNECTION_FORCED: a message
//    it could not handle, say), the messages in flight become suspects; a
//    suspect in flight at a second such close (alone, being isolated) is
//    failed, not sent a third time (poison).
//  - Bounded writes: a message is written only while less than
//    kMaxUnsentBytes wait unsent in the socket. A connection's writes do not
//    return before every byte is out: they poll the socket inside the call
//    (rabbitmq-c's until two heartbeat intervals pass with nothing received,
//    the gateway's own publish writes for two heartbeat intervals). A broker
//    that stops reading but not sending (a memory alarm) would otherwise hold
//    the worker thread, its timers and its heartbeats, inside one write until
//    the kernel gives up on the closed window (TCP_USER_TIMEOUT, two
//    heartbeats): 20 s and more with the default heartbeat.
//  - At the batch deadline (the call's deadline, capped by the daemon's
//    --publish_timeout), a message without a result completes with
//    DEADLINE_EXCEEDED "outcome unknown: ..." when some write of it may have
//    reached the broker (it may still be confirmed, or be in a queue), and
//    with UNAVAILABLE "... not published" when it was never written.
#ifndef AMQPGW_SERVER_CORE_PUBLISHER_H_
#define AMQPGW_SERVER_CORE_PUBLISHER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/amqp/types.h"
#include "server/core/connection_worker.h"
#include "server/core/stats.h"

namespace amqpgw::core {

// The messages of one call and, once done, their results. Shared between the
// caller and the publisher's thread; results are written only there.
class PublishBatch {
 public:
  struct Result {
    absl::Status status;
    absl::Time confirmed_at = absl::InfinitePast();
    // When the message was last written to the broker (InfinitePast if it
    // never was).
    absl::Time sent_at = absl::InfinitePast();
    // The broker settled it (basic.ack or basic.nack), and on_broker_settled
    // counted it, before `status` was set. False when the gateway settled
    // it (refused before sending, expired, drained, cancelled).
    bool settled_by_broker = false;
  };
  using Done = absl::AnyInvocable<void(PublishBatch& batch) &&>;

  PublishBatch(std::vector<amqp::OutgoingMessage> messages, absl::Time deadline,
               Done done);

  size_t size() const { return messages_.size(); }
  // Bodies and headers, roughly: what the batch holds in memory.
  size_t bytes() const { return bytes_; }
  const amqp::OutgoingMessage& message(size_t i) const { return messages_[i]; }
  // Valid inside `done`.
  const Result& result(size_t i) const { return results_[i]; }
  absl::Time deadline() const { return deadline_; }
  // When the batch was made (the call's hand-off to the session).
  absl::Time created_at() const { return created_at_; }
  // Asked on the publisher's thread before each message is sent: true means
  // the caller gave up (the gRPC call was cancelled), and the message is not
  // sent but completed with CANCELLED. Called only while the batch has
  // unfinished messages, i.e. before `done`. Set before handing the batch to
  // the session.
  void set_cancelled(absl::AnyInvocable<bool() const> cancelled) {
    cancelled_ = std::move(cancelled);
  }
  // Called on the publisher's thread as soon as message `index` has its
  // result, before `done` (which follows the last): for a caller answering
  // each message on its own (PublishStream). Set before handing the batch
  // to the session.
  using OnResult = absl::AnyInvocable<void(PublishBatch& batch, size_t index)>;
  void set_on_result(OnResult on_result) { on_result_ = std::move(on_result); }
  // Called on the publisher's thread when a confirm the broker sent settles
  // `count` of the batch's messages, before their on_result calls. The
  // publisher writes what is queued right after, so a caller that keeps a
  // window of messages at the broker refills it here (Publisher::
  // PublishHere) as soon as the confirm is read, as a rabbitmq-c client
  // does, instead of after a window's worth of answers. Those messages'
  // results then have settled_by_broker set. Set before handing the batch
  // to the session.
  using OnBrokerSettled =
      absl::AnyInvocable<void(PublishBatch& batch, size_t count)>;
  void set_on_broker_settled(OnBrokerSettled on_broker_settled) {
    on_broker_settled_ = std::move(on_broker_settled);
  }

 private:
  friend class Publisher;
  enum class State : uint8_t { kQueued, kSent, kDone };

  std::vector<amqp::OutgoingMessage> messages_;
  size_t bytes_ = 0;
  std::vector<Result> results_;
  std::vector<State> state_;
  // Per message: 1 once a write of it may have reached the broker (its
  // outcome is unknown without a confirm); the closes nothing could pin on
  // one message that it was in flight at (a suspect when > 0).
  std::vector<uint8_t> reached_;
  std::vector<uint8_t> suspect_;
  size_t remaining_;
  absl::Time deadline_;
  const absl::Time created_at_ = absl::Now();
  absl::AnyInvocable<bool() const> cancelled_;
  OnResult on_result_;
  OnBrokerSettled on_broker_settled_;
  Done done_;
  EventLoop::TimerId timer_ = 0;
};

class Publisher : private ConnectionWorker::Observer {
 public:
  struct Options {
    // Most messages sent and not yet confirmed.
    uint32_t confirm_window = 1024;
  };

  // A message is written only while fewer bytes than this wait unsent in
  // the socket (amqp::Connection::UnsentBytes), checked every
  // kUnsentCheckBytes written and before every message of at least that
  // size.
  static constexpr size_t kMaxUnsentBytes = 1 << 20;
  static constexpr size_t kUnsentCheckBytes = 64 << 10;
  // A refusal the broker gave for a risk key fails later messages with the
  // same key at once, for this long, instead of sending each alone to be
  // refused again (and closing the channel each time).
  static constexpr absl::Duration kRefusalMemory = absl::Seconds(1);

  // `worker`, `stats` and `pending_bytes` must outlive the publisher.
  // `pending_bytes` is decreased by a batch's bytes() when it completes.
  // Construct and destroy while the worker's thread is not running, or on it.
  Publisher(ConnectionWorker* worker, Options options, Stats* stats,
            std::atomic<int64_t>* pending_bytes);
  ~Publisher() override;

  // Thread-safe. Queues every message of the batch.
  void Publish(std::shared_ptr<PublishBatch> batch);
  // The same, on the worker thread, from a task of its own (Run) or from a
  // batch's on_broker_settled, never from inside its other callbacks:
  // queues at once, without a hop.
  void PublishHere(std::shared_ptr<PublishBatch> batch);
  // Thread-safe. Runs `task` on the worker thread.
  void Run(EventLoop::Task task) { worker_->Post(std::move(task)); }
  // Thread-safe. Fails queued messages with `why`, waits until the in-flight
  // ones are confirmed (or `deadline`), then runs `done` on the worker thread.
  // Publishing resumes at the next connection.
  void Drain(absl::Time deadline, absl::Status why,
             absl::AnyInvocable<void() &&> done);

 private:
  struct Item {
    std::shared_ptr<PublishBatch> batch;
    uint32_t index;
  };
  struct InFlight {
    Item item;
    bool settled = false;
    bool returned = false;
    // Sent alone (isolation): nothing else was unconfirmed.
    bool isolated = false;
    // The message's reached_ flag before this write.
    bool reached_before = false;
    absl::Status return_status;
  };
  // A message a confirm settled, between leaving inflight_ and Complete.
  struct Settled {
    Item item;
    absl::Status status;
  };
  struct Refused {
    absl::Status status;
    absl::Time until;
  };
  enum class ChannelState { kClosed, kOpening, kSelecting, kReady };

  // Routes a channel's events to the publisher.
  class Channel : public ConnectionWorker::ChannelHandler {
   public:
    Channel(Publisher* p, bool confirm) : p_(p), confirm_(confirm) {}
    void OnChannelEvent(amqp::Event& event) override {
      if (confirm_) {
        p_->OnConfirmChannelEvent(event);
      } else {
        p_->OnCheckChannelEvent(event);
      }
    }

   private:
    Publisher* p_;
    bool confirm_;
  };

  // ConnectionWorker::Observer.
  void OnConnected() override;
  void OnDisconnected(const absl::Status& why) override;
  void OnBlocked(bool blocked, const std::string& reason) override;

  void Enqueue(std::shared_ptr<PublishBatch> batch);
  // Publishes queued messages while the confirm window has room.
  void Flush();
  void SendQueued(amqp::Connection* conn);
  // Flush() once the tasks posted so far have run.
  void ScheduleFlush();
  void Complete(const std::shared_ptr<PublishBatch>& batch, size_t index,
                absl::Status status);
  void Expire(const std::shared_ptr<PublishBatch>& batch);
  absl::Status ExpiredStatus(const PublishBatch& batch, size_t index) const;
  // The answer for a message some write of which may have reached the
  // broker, when the gateway stops waiting for its confirm: `why` says why.
  static absl::Status OutcomeUnknown(absl::string_view why);
  // Whether `m` must be sent alone; fails it (true, `*failed` set) when the
  // broker refused one of its keys within kRefusalMemory.
  bool NeedsIsolation(const PublishBatch& b, size_t index,
                      absl::Status* failed);
  // Whether the socket takes `m` without making the worker wait; else
  // arranges a later Flush.
  bool HasRoomToWrite(amqp::Connection* conn, const amqp::OutgoingMessage& m);
  void MarkProven(const amqp::OutgoingMessage& m);
  void OpenConfirmChannel();
  void OpenCheckChannel();
  void OnConfirmChannelEvent(amqp::Event& event);
  void OnCheckChannelEvent(amqp::Event& event);
  void OnConfirmChannelClosed(const amqp::Event& event);
  void Settle(uint64_t tag, bool multiple, bool ack);
  void OnReturn(const amqp::ReturnedMessage& returned);
  // Moves the unconfirmed messages back to the front of the queue, in
  // order, for a lost connection; with `suspicious` (the broker closed it
  // with an error) they become suspects, and a suspect already fails.
  void RequeueAfterLoss(const absl::Status& why, bool suspicious);
  // The unconfirmed messages of inflight_, in order.
  std::vector<InFlight*> Unsettled();
  void ClearInFlight();
  // Fails every message of queue_ with `why`, or with OutcomeUnknown where
  // a write of it may have reached the broker before a lost connection or
  // channel; empties queue_.
  void FailQueued(const absl::Status& why);
  bool IsKnownExchange(const std::string& name) const;
  void MaybeFinishDrain();

  ConnectionWorker* const worker_;
  const Options options_;
  Stats* const stats_;
  std::atomic<int64_t>* const pending_bytes_;
  Channel confirm_handler_{this, true};
  Channel check_handler_{this, false};

  // Worker thread only.
  std::deque<Item> queue_;
  std::deque<InFlight> inflight_;
  size_t unsettled_ = 0;           // entries of inflight_ not settled
  std::vector<Settled> settling_;  // Settle's buffer, kept for its capacity
  // The one unsettled message was sent alone: nothing is sent until it is
  // settled.
  bool isolating_ = false;
  uint64_t next_seq_ = 1;
  ChannelState confirm_state_ = ChannelState::kClosed;
  ChannelState check_state_ = ChannelState::kClosed;
  uint16_t confirm_ch_ = 0;
  uint16_t check_ch_ = 0;
  std::string checking_;  // exchange being checked, empty when none
  absl::flat_hash_set<std::string> known_exchanges_;
  // Risk keys confirmed at least once (publish_risk.h).
  absl::flat_hash_set<std::string> proven_;
  // Exchanges that refused one routing key (topic permissions).
  absl::flat_hash_set<std::string> per_routing_key_;
  // Risk keys the broker refused lately (kRefusalMemory).
  absl::flat_hash_map<std::string, Refused> refused_;
  // The broker's max_message_size, once a refusal told it.
  size_t broker_max_size_ = SIZE_MAX;
  std::string key_scratch_;  // ForEachRiskKey's buffer
  size_t written_since_check_ = 0;
  EventLoop::TimerId write_timer_ = 0;
  absl::Duration write_retry_ = absl::ZeroDuration();
  bool blocked_ = false;
  bool flush_scheduled_ = false;
  std::string blocked_reason_;
  bool draining_ = false;
  absl::Status drain_status_;
  absl::AnyInvocable<void() &&> drain_done_;
  EventLoop::TimerId drain_timer_ = 0;
};

}  // namespace amqpgw::core

#endif  // AMQPGW_SERVER_CORE_PUBLISHER_H_
