// Retry with delay and dead-lettering after N attempts, on RabbitMQ's own
// mechanisms: nothing is kept by the gateway, so every instance behind a load
// balancer behaves the same and a gateway that dies loses nothing.
//
// RETRY of a delivery from queue Q with delay D:
//  1. the gateway declares the delay queue "amqpgw.retry.<Q>.<D in ms>"
//     (durable, x-message-ttl D, x-dead-letter-exchange "" and
//     x-dead-letter-routing-key Q, x-expires D + 1 h so that an unused one
//     disappears; declared again at least every 10 minutes while in use,
//     which renews its lease),
//  2. publishes a copy of the message there through the session's Publisher
//     (publisher confirms, mandatory, the Publisher's isolation rules): every
//     property and header kept, x-delivery-count dropped, and the header
//     x-amqpgw-attempt set to the deliveries so far,
//  3. acks the original only once the copy is confirmed. A crash, a lost
//     channel or a refused copy in between leaves the original unacked (the
//     broker redelivers it): a duplicate at worst, never a loss.
// When D passes, the broker dead-letters the copy back into Q.
//
// Dead letter: once a delivery reached the policy's max_attempts, a RETRY or
// REQUEUE publishes a copy to the subscription's dead-letter target
// (confirmed; headers x-amqpgw-reason, x-amqpgw-queue, x-amqpgw-attempt,
// x-amqpgw-error) and then acks the original; without a target it rejects
// the original (requeue=false), so the queue's own dead-letter exchange, if
// any, takes it.
//
// Threads: the free functions are pure. Retrier is thread-safe; its `done`
// callbacks run on the control or a publisher worker thread and must not
// block.
#ifndef AMQPGW_SERVER_CORE_RETRY_H_
#define AMQPGW_SERVER_CORE_RETRY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/amqp/connection.h"
#include "server/amqp/types.h"
#include "server/base/sync.h"
#include "server/core/publisher.h"

namespace amqpgw::core {

// Longest retry delay (RETRY's retry_delay, a policy's max_backoff).
inline constexpr absl::Duration kMaxRetryDelay = absl::Hours(24);
// Longest error text a dead-lettered message carries (x-amqpgw-error).
inline constexpr size_t kMaxRetryErrorBytes = 1024;
// Headers the gateway writes.
using amqp::kAttemptHeader;  // x-amqpgw-attempt
inline constexpr char kReasonHeader[] = "x-amqpgw-reason";
inline constexpr char kQueueHeader[] = "x-amqpgw-queue";
inline constexpr char kErrorHeader[] = "x-amqpgw-error";
// The reason a dead-lettered message carries.
inline constexpr char kReasonMaxAttempts[] = "max_attempts";
// The delay queues' lease beyond their delay (x-expires = delay + this), and
// how often the gateway declares a delay queue in use again.
inline constexpr absl::Duration kDelayQueueLease = absl::Hours(1);
inline constexpr absl::Duration kDelayQueueRedeclare = absl::Minutes(10);

// StreamMessagesRequest.retry_policy.
struct RetryPolicy {
  // Deliveries at most; the one that reaches it is dead-lettered instead of
  // retried. 0: no limit.
  uint32_t max_attempts = 0;
  absl::Duration initial_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Minutes(10);
  double multiplier = 2.0;
  // 0..1: the delay is drawn from [d * (1 - jitter), d].
  double jitter = 0;
};

// StreamMessagesRequest.dead_letter.
struct DeadLetterTarget {
  std::string exchange;
  // Empty: the message's original routing key.
  std::string routing_key;
};

// What a subscription does on RETRY and REQUEUE.
struct RetryOptions {
  // Set: REQUEUE is a delayed retry, RETRY without a delay uses it.
  std::optional<RetryPolicy> policy;
  std::optional<DeadLetterTarget> dead_letter;
};

// delivery_attempt: amqp::DeliveryAttempt (counts kAttemptHeader).

// "amqpgw.retry.<queue>.<delay ms>".
std::string DelayQueueName(absl::string_view queue, absl::Duration delay);
// INVALID_ARGUMENT naming `field` when the delay queues of `queue` would
// exceed AMQP's 255 bytes (queues of more than 233 bytes).
absl::Status CheckRetryQueue(absl::string_view field, absl::string_view queue);
// INVALID_ARGUMENT naming `field` unless 0 <= delay <= kMaxRetryDelay.
absl::Status CheckRetryDelay(absl::string_view field, absl::Duration delay);
// INVALID_ARGUMENT naming the field ("retry_policy.multiplier", ...).
absl::Status CheckRetryPolicy(const RetryPolicy& policy);

// The policy's delay after delivery `attempt` failed: initial_backoff *
// multiplier^(attempt-1), at most max_backoff, jittered with `random01`
// (uniform in [0, 1)), then rounded to two significant digits in
// milliseconds (bounds the number of delay queues jitter makes).
absl::Duration PolicyDelay(const RetryPolicy& policy, uint32_t attempt,
                           double random01);

amqp::QueueDeclareArgs DelayQueueArgs(absl::string_view queue,
                                      absl::Duration delay);
// The copy that goes to the delay queue; `attempt`: deliveries so far.
amqp::OutgoingMessage RetryCopy(const amqp::Delivery& d,
                                absl::string_view queue, absl::Duration delay,
                                uint32_t attempt);
// The copy that goes to the dead-letter target.
amqp::OutgoingMessage DeadLetterCopy(const amqp::Delivery& d,
                                     const DeadLetterTarget& target,
                                     absl::string_view queue, uint32_t attempt,
                                     absl::string_view error);

// Whether a channel.close is RabbitMQ's consumer_timeout (406 "delivery
// acknowledgement on channel N timed out").
bool IsConsumerTimeout(uint16_t reply_code, absl::string_view reply_text);
// FAILED_PRECONDITION naming the delivery (0: unknown) that stayed
// unacknowledged past the broker's consumer_timeout and how to raise it.
absl::Status ConsumerTimeoutStatus(absl::string_view queue,
                                   uint64_t delivery_id,
                                   absl::string_view reply_text);

// Declares delay queues and publishes copies, confirmed. Shared by the
// session's subscriptions (one per session).
class Retrier {
 public:
  using Done = absl::AnyInvocable<void(absl::Status) &&>;
  // Declares a queue without recording it for replay; `done` on any thread.
  using Declare =
      std::function<void(amqp::QueueDeclareArgs args, absl::Time deadline,
                         absl::AnyInvocable<void(absl::Status) &&> done)>;
  // Session::Publish.
  using Publish = std::function<absl::Status(std::shared_ptr<PublishBatch>)>;

  Retrier(Declare declare, Publish publish)
      : declare_(std::move(declare)), publish_(std::move(publish)) {}

  // Copies `d` to the delay queue of `queue` for `delay` (declaring it when
  // needed); `done` gets OK once the broker confirmed the copy.
  void Retry(const amqp::Delivery& d, const std::string& queue,
             absl::Duration delay, uint32_t attempt, absl::Time deadline,
             Done done);
  // Copies `d` to `target`; `done` gets OK once confirmed.
  void DeadLetter(const amqp::Delivery& d, const DeadLetterTarget& target,
                  const std::string& queue, uint32_t attempt,
                  absl::string_view error, absl::Time deadline, Done done);

 private:
  void PublishOne(amqp::OutgoingMessage m, absl::Time deadline,
                  std::string delay_queue, Done done);

  const Declare declare_;
  const Publish publish_;
  amqpgw::Mutex mu_;
  // Delay queues -> when the gateway last declared them.
  absl::flat_hash_map<std::string, absl::Time> declared_ ABSL_GUARDED_BY(mu_);
};

}  // namespace amqpgw::core

#endif  // AMQPGW_SERVER_CORE_RETRY_H_
