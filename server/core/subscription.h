// Subscriptions: queues read as streams, with at-least-once delivery.
//
// Design: a few consumer connections (ConnectionWorkers), each owned by one
// thread, carry one channel per subscription. A new subscription goes to the
// connection with the fewest. Many streams therefore share a handful of
// threads and sockets, and one slow stream costs only its own window: the
// broker never has more than `prefetch` unacknowledged messages in flight
// per channel, and the gateway acknowledges only once a message was handed
// to gRPC (AUTO), taken for sending (NONE) or acked by the caller (CLIENT),
// so its buffer per stream is bounded by the prefetch.
//
// Byte budget: the broker counts messages, not bytes (RabbitMQ does not
// implement basic.qos prefetch_size), so the outstanding deliveries of a
// stream (sent by the broker, not yet acknowledged to it) are also bounded
// in bytes, by `max_outstanding_bytes`:
//  - the consumer prefetch is at most the budget divided by the largest
//    message seen on the subscription so far, and by kAssumedMessageBytes
//    before any (1024 messages with the defaults): what the broker may send
//    at once keeps the budget for messages up to that size;
//  - once messages come larger than that, or the outstanding ones reach the
//    budget, a channel-wide basic.qos (global=true) narrows the window to
//    budget / average size (and at most the outstanding count while they
//    fill the budget: nothing more until acks). RabbitMQ applies it at once
//    to the running consumer of a classic queue; quorum and stream queues
//    ignore it (they refuse basic.consume on a channel that has one, with
//    540, which closes the connection: so it is never set before
//    basic.consume), and for them the bound is the consumer prefetch alone
//    until the stream subscribes again (after a reconnect) with the sizes
//    seen.
//
// Stream queues: RabbitMQ does not requeue on a stream, and keeps no position
// for AMQP 0-9-1 consumers; a consumer starts where x-stream-offset says. So
// that a lost connection neither replays the stream from the original start
// nor leaves a gap, every later subscribe starts from the offset after the
// last one the caller had: in AUTO and NONE the last delivery handed over
// (HandedOver); in CLIENT the first delivery not settled by the caller, or
// the last delivered + 1 when all are (unacked deliveries come again, as on
// other queues).
//
// Delivery ids: the gateway numbers deliveries 1, 2, 3, ... per subscription.
// Broker delivery tags belong to one channel; when a connection is lost the
// subscription enters a new generation on a new channel, and ids from before
// are stale: an Ack for them is reported stale and never touches a newer
// delivery.
#ifndef AMQPGW_SERVER_CORE_SUBSCRIPTION_H_
#define AMQPGW_SERVER_CORE_SUBSCRIPTION_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/amqp/types.h"
#include "server/base/sync.h"
#include "server/core/connection_worker.h"
#include "server/core/retry.h"
#include "server/core/stats.h"

namespace amqpgw::core {

enum class AckMode { kAuto, kClient, kNone };
enum class AckAction { kAck, kRequeue, kReject, kRetry };

// An Ack's action and what RETRY (or REQUEUE under a retry policy) needs
// (server/core/retry.h).
struct AckCommand {
  AckCommand(AckAction action = AckAction::kAck)  // NOLINT: implicit
      : action(action) {}
  AckAction action;
  // RETRY: the delay; unset: the subscription's retry policy chooses.
  std::optional<absl::Duration> retry_delay;
  // Why processing failed: x-amqpgw-error of a dead-lettered message.
  std::string error;
};

// The default byte budget of a stream's outstanding deliveries.
inline constexpr uint64_t kDefaultMaxOutstandingBytes = 64 << 20;
// The message size a byte budget assumes before any delivery came.
inline constexpr uint64_t kAssumedMessageBytes = 64 << 10;

struct SubscribeOptions {
  std::string queue;
  uint16_t prefetch = 100;
  // Bytes of deliveries outstanding (not yet acknowledged to the broker) at
  // most, give or take one message (see "Byte budget" above); at least one
  // message is always let through.
  uint64_t max_outstanding_bytes = kDefaultMaxOutstandingBytes;
  AckMode ack_mode = AckMode::kAuto;
  uint64_t max_messages = 0;  // 0: unlimited
  std::string consumer_tag;   // empty: generated
  bool exclusive = false;
  amqp::FieldTable arguments;
  // Stream queues: where the consumer starts (x-stream-offset: "first",
  // "last", "next", an offset or a timestamp); replaces an x-stream-offset
  // in `arguments`. Set: a delivery without an offset (the queue is not a
  // stream, on a broker that ignores the argument there) ends the
  // subscription FAILED_PRECONDITION, as RabbitMQ's refusal (406) does.
  std::optional<amqp::FieldValue> stream_offset;
  // RETRY and REQUEUE (CLIENT mode; needs the pool's Retrier).
  RetryOptions retry;
  // The first subscribe waits for a connection until then.
  absl::Time subscribe_deadline = absl::InfiniteFuture();
};

struct StreamDelivery {
  uint64_t delivery_id = 0;
  uint32_t delivery_attempt = 1;
  // Stream queues: the message's offset (amqp::DeliveryStreamOffset).
  std::optional<int64_t> stream_offset;
  // The message, unless `retained` holds it.
  amqp::Delivery message;
  // CLIENT mode with a Retrier: the message, shared with the subscription,
  // which keeps it until it is settled (for RETRY) instead of copying it;
  // `message` is empty then. Read-only on every thread.
  std::shared_ptr<const amqp::Delivery> retained;

  const amqp::Delivery& get() const {
    return retained != nullptr ? *retained : message;
  }
};

struct AckResult {
  uint32_t applied = 0;
  // The ids applied, ascending.
  std::vector<uint64_t> applied_ids;
  std::vector<uint64_t> stale_ids;
  // RETRY (and REQUEUE under a retry policy): ids whose copy was not
  // confirmed, ascending; they stay unacknowledged. `failure` says why (the
  // first failure; OK when none).
  std::vector<uint64_t> failed_ids;
  absl::Status failure;
};

// What became of a subscription's deliveries, for its end. Every delivery
// given to the sink is counted once more when it is settled:
// delivered = acked + rejected + requeued at the end.
struct SubscriptionCounts {
  uint64_t delivered = 0;
  // Acked by the caller (CLIENT) or by the gateway (AUTO, NONE).
  uint64_t acked = 0;
  uint64_t rejected = 0;
  // Requeued by the caller, and every delivery still unacknowledged when its
  // channel closed or its connection was lost (the broker requeues those).
  uint64_t requeued = 0;
};

// Where a subscription's events go (the gRPC stream). Called on the
// subscription's worker thread, never concurrently, and never after OnEnd.
class SubscriptionSink {
 public:
  virtual ~SubscriptionSink() = default;
  virtual void OnSubscribed(const std::string& subscription_id,
                            const std::string& consumer_tag) = 0;
  virtual void OnDelivery(StreamDelivery delivery) = 0;
  // The read that brought one or more OnDelivery calls is over: a sink that
  // held them back, to write several at once, writes them now. Comes after
  // each such read unless OnPaused or OnEnd came first.
  virtual void OnDeliveriesRead() {}
  // The connection was lost. Deliveries the sink still buffers will be
  // redelivered by the broker: the sink should drop them.
  virtual void OnPaused(const std::string& why) = 0;
  virtual void OnResumed() = 0;
  // The gateway is stopping this stream gracefully (Drain with a reason:
  // the daemon is shutting down): no more deliveries; acks of what was
  // delivered are applied until the drain ends.
  virtual void OnDraining(const std::string& why) {}
  // Comes just before OnEnd, with the subscription's final counts.
  virtual void OnSummary(const SubscriptionCounts& counts) {}
  // The last call. The sink may be destroyed once it returns.
  virtual void OnEnd(const absl::Status& status) = 0;
};

class ConsumerPool;
class Subscription;

// The subscriptions on one consumer connection; forwards its connection
// events to them. Worker thread only, but for `load`.
class ConsumerHost : public ConnectionWorker::Observer {
 public:
  explicit ConsumerHost(ConnectionWorker* worker) : worker(worker) {}
  void OnConnected() override;
  void OnDisconnected(const absl::Status& why) override;
  // Worker thread. Place and remove subscriptions; the worker learns the
  // sum of their prefetch windows (ConnectionWorker::set_read_window).
  void Add(std::shared_ptr<Subscription> subscription);
  void Remove(Subscription* subscription);

  ConnectionWorker* const worker;
  // Subscriptions placed here (any thread reads it to place new ones).
  std::atomic<int> load{0};

 private:
  absl::flat_hash_map<Subscription*, std::shared_ptr<Subscription>>
      subscriptions_;
  int64_t window_ = 0;  // sum of the subscriptions' prefetch
};

// One stream's consumer. Created by ConsumerPool::Subscribe; its state lives
// on its worker's thread. Thread-safe entry points: HandedOver, Cancel, Drain,
// Ack.
class Subscription : public std::enable_shared_from_this<Subscription>,
                     private ConnectionWorker::ChannelHandler {
 public:
  Subscription(ConsumerPool* pool, ConsumerHost* host, std::string id,
               SubscribeOptions options, SubscriptionSink* sink, Stats* stats);
  ~Subscription() override;

  const std::string& id() const { return id_; }
  AckMode ack_mode() const { return options_.ack_mode; }
  uint16_t prefetch() const { return options_.prefetch; }
  const std::string& queue() const { return options_.queue; }

  // AUTO: deliveries up to `delivery_id` were accepted by gRPC for sending.
  // NONE: taken for sending. Acknowledged to the broker in batches.
  void HandedOver(uint64_t delivery_id);
  // Ends the stream with `why` (client cancelled, shutdown): cancels the
  // consumer by closing its channel, so unacked messages are requeued.
  void Cancel(absl::Status why);
  // A graceful stop (CLIENT mode; the caller half-closed a Subscribe): the
  // consumer is cancelled (basic.cancel) and nothing more goes to the sink;
  // acks of the outstanding deliveries are still applied until none is left
  // or `timeout` passes, then the channel is closed (the broker requeues
  // the rest) and the stream ends OK. In AUTO and NONE mode, and before the
  // consumer is running, the same as Cancel(OK). `why` non-empty (not the
  // caller's wish: shutdown): the sink hears it first (OnDraining), and the
  // stream ends UNAVAILABLE(why) instead of OK.
  void Drain(absl::Duration timeout, std::string why = "");
  // CLIENT mode acknowledgement; `done` runs on the worker thread.
  // RETRY (and REQUEUE under a retry policy) answer once the copies are
  // confirmed (server/core/retry.h).
  void Ack(std::vector<uint64_t> delivery_ids, AckCommand action,
           absl::AnyInvocable<void(absl::StatusOr<AckResult>) &&> done);

 private:
  friend class ConsumerPool;
  friend class ConsumerHost;
  enum class State {
    kWaiting,     // for a connection
    kOpening,     // channel.open sent
    kQos,         // basic.qos sent
    kConsuming,   // basic.consume sent
    kActive,      // receiving deliveries
    kCancelling,  // max_messages reached, basic.cancel sent
    kDraining,    // Drain: basic.cancel sent, acks applied until the timer
    kClosing,     // channel.close sent; ends when close-ok arrives
    kEnded,
  };

  // Worker thread.
  void Start();
  void OnConnected();
  void OnConnectionLost(const absl::Status& why);
  void OnChannelEvent(amqp::Event& event) override;
  void OnReadDone() override;
  void OpenChannel();
  void OnDeliver(amqp::Delivery& d);
  void OnChannelClosedByBroker(const amqp::Event& event);
  void StartDrain(absl::Duration timeout, const std::string& why);
  // Whether acks apply to this channel's deliveries now.
  bool Live() const {
    return state_ == State::kActive || state_ == State::kCancelling ||
           state_ == State::kDraining;
  }
  // Acks (multiple=true) what was handed over, in batches unless `all`.
  void AckHandedOver(bool all = false);
  // Stream queues: forgets the offsets of deliveries handed over (AUTO,
  // NONE), remembering the last as last_offset_.
  void PruneHandedOffsets();
  // The arguments of the next basic.consume: the caller's, with
  // x-stream-offset the typed start or, once the caller had deliveries of a
  // stream, the offset after them (see "Stream queues" above).
  amqp::FieldTable ConsumeArguments();
  // The consumer prefetch (basic.qos global=false) for the next consume.
  uint16_t ConsumerPrefetch() const;
  // Whether the byte budget needs a channel-wide window.
  bool NeedsWindow() const;
  // The byte-budget window the outstanding deliveries call for now.
  uint16_t DesiredWindow() const;
  // Sends basic.qos global=true when the window should change.
  void UpdateWindow();
  // Forgets the outstanding deliveries (their channel is gone: the broker
  // requeues them, counted in counts_.requeued).
  void ResetOutstanding();
  void DoAck(std::vector<uint64_t> ids, AckCommand action,
             absl::AnyInvocable<void(absl::StatusOr<AckResult>) &&> done);
  // The retry hook of DoAck: RETRY, and REQUEUE under a retry policy.
  void DoRetry(std::vector<uint64_t> ids, AckCommand action,
               absl::AnyInvocable<void(absl::StatusOr<AckResult>) &&> done);
  // Whether deliveries handed over up to `handed` should be acked now, given
  // the last one received and the one acked up to (ids or tags, all in the
  // same numbering). Pure: HandedOver asks it on gRPC's thread, AckHandedOver
  // on the worker's.
  bool AckDue(uint64_t handed, uint64_t received, uint64_t acked) const;
  void MaybeComplete();
  void Close(absl::Status status);
  void End(absl::Status status);
  bool HasChannel() const {
    return state_ != State::kWaiting && state_ != State::kEnded;
  }

  ConsumerPool* const pool_;
  ConsumerHost* const host_;
  ConnectionWorker* const worker_;
  const std::string id_;
  const SubscribeOptions options_;
  SubscriptionSink* const sink_;
  Stats* const stats_;

  std::atomic<uint64_t> handed_{0};
  std::atomic<bool> handed_task_pending_{false};
  // Written by the worker thread, read by HandedOver to decide whether an
  // ack is due: the last delivery id given to the sink, and the id acked up
  // to (AUTO/NONE; gen_base_ after a lost channel).
  std::atomic<uint64_t> received_id_{0};
  std::atomic<uint64_t> acked_id_{0};
  // Deliveries acked in one basic.ack (AckDue): a quarter of the window in
  // use. Written by the worker thread.
  std::atomic<uint64_t> ack_batch_{1};

  // Worker thread only.
  State state_ = State::kWaiting;
  uint16_t channel_ = 0;
  std::string consumer_tag_;
  bool ever_subscribed_ = false;
  uint64_t next_id_ = 1;
  uint64_t gen_base_ = 0;        // ids <= gen_base_ are from lost channels
  uint64_t acked_upto_tag_ = 0;  // AUTO/NONE, this channel
  uint64_t delivered_ = 0;       // counted toward max_messages
  uint64_t completed_ = 0;       // acked or settled by the caller
  // CLIENT: tags of this channel not yet settled by the caller -> bytes.
  absl::btree_map<uint64_t, uint64_t> unacked_;
  // AUTO/NONE: bytes of the deliveries after acked_upto_tag_, in tag order.
  std::deque<uint64_t> unacked_sizes_;
  // Bytes of the deliveries outstanding on this channel (byte budget).
  uint64_t outstanding_bytes_ = 0;
  // Average and largest message size seen (byte budget).
  uint64_t average_bytes_ = kAssumedMessageBytes;
  uint64_t largest_bytes_ = 0;
  // The consumer prefetch this channel consumes with (ConsumerPrefetch()
  // when it was opened), and the channel-wide window last sent
  // (basic.qos global=true; 0: none).
  uint16_t consumer_prefetch_ = 0;
  uint16_t window_ = 0;
  absl::Status end_status_;
  EventLoop::TimerId subscribe_timer_ = 0;
  EventLoop::TimerId retry_timer_ = 0;
  EventLoop::TimerId drain_timer_ = 0;
  // How a drain ends the stream: OK when the caller asked for it, else
  // (the daemon shutting down) UNAVAILABLE so that callers open it again.
  absl::Status drain_end_ = absl::OkStatus();
  SubscriptionCounts counts_;
  int resubscribe_retries_ = 0;
  bool delivered_in_read_ = false;  // OnDeliver since the last OnReadDone
  // CLIENT with a Retrier: this channel's unsettled deliveries (tag ->
  // message and attempt), kept for RETRY; bounded like unacked_. The
  // message is shared with the sink's StreamDelivery, not copied.
  struct Retained {
    std::shared_ptr<const amqp::Delivery> message;
    uint32_t attempt = 1;
  };
  absl::flat_hash_map<uint64_t, Retained> retained_;
  // Counts lost channels: a copy confirmed after its channel was lost acks
  // nothing (the broker redelivers the original).
  uint64_t generation_ = 0;
  // RETRY copies not yet settled: a drain waits for them too.
  int retries_in_flight_ = 0;
  // Stream queues: the offsets of the deliveries the caller does not have
  // for sure yet (AUTO, NONE: not handed over; CLIENT: not settled), by
  // delivery id, across channels until the next subscribe; the last offset
  // the caller had (AUTO, NONE: handed over; CLIENT: delivered); where the
  // next subscribe starts (unset: where the caller said).
  absl::btree_map<uint64_t, int64_t> pending_offsets_;
  std::optional<int64_t> last_offset_;
  std::optional<int64_t> resume_offset_;
  absl::BitGen random_;  // retry jitter
};

// The consumer connections and the subscriptions on them.
class ConsumerPool {
 public:
  // `workers` and `stats` must outlive the pool. Construct before the workers
  // start. `seal_id`: as SessionOptions::seal_subscription_id.
  ConsumerPool(
      std::vector<ConnectionWorker*> workers, std::string instance_id,
      Stats* stats,
      std::function<std::string(const std::string& id)> seal_id = nullptr);
  ~ConsumerPool();

  // Thread-safe. Starts a subscription; its events go to `sink`, which must
  // stay valid until OnEnd.
  std::shared_ptr<Subscription> Subscribe(SubscribeOptions options,
                                          SubscriptionSink* sink);

  // Thread-safe. Routes an Ack to its subscription; `done` runs on a worker
  // thread (or at once for lookup errors).
  void Ack(const std::string& subscription_id, std::vector<uint64_t> ids,
           AckCommand action,
           absl::AnyInvocable<void(absl::StatusOr<AckResult>) &&> done);

  // Where RETRY copies go; set before the first Subscribe, must outlive the
  // pool. Without one, RETRY fails FAILED_PRECONDITION.
  void set_retrier(Retrier* retrier) { retrier_ = retrier; }
  Retrier* retrier() const { return retrier_; }

  // Thread-safe. Ends every subscription with `why`.
  void CancelAll(const absl::Status& why);
  // Thread-safe. Drains every subscription (Subscription::Drain), telling
  // each sink `why`.
  void DrainAll(absl::Duration timeout, const std::string& why);
  // Thread-safe (not on a worker thread). Waits until no subscription is
  // left or `deadline`; true when none is left.
  bool WaitAllEnded(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);

  size_t active() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  friend class Subscription;
  // Worker thread of the subscription: forgets it.
  void Remove(Subscription* subscription);

  const std::string instance_id_;
  Stats* const stats_;
  const std::function<std::string(const std::string& id)> seal_id_;
  std::vector<std::unique_ptr<ConsumerHost>> hosts_;
  Retrier* retrier_ = nullptr;

  mutable amqpgw::Mutex mu_;
  absl::flat_hash_map<std::string, std::weak_ptr<Subscription>> by_id_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace amqpgw::core

#endif  // AMQPGW_SERVER_CORE_SUBSCRIPTION_H_
