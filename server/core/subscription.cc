#include "server/core/subscription.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/amqp/reply.h"
#include "server/base/check.h"
#include "server/base/quote.h"
#include "server/base/sync.h"
#include "server/core/ids.h"
#include "spdlog/spdlog.h"

namespace amqpgw::core {
namespace {

constexpr int kMaxResubscribeRetries = 20;
constexpr absl::Duration kResubscribeRetryDelay = absl::Milliseconds(500);

// An offset on a queue that is not a stream: RabbitMQ refuses the argument
// (classic and quorum queues in 3.10, 406) or, where it ignores it, the
// first delivery comes without an offset (`detail` says which).
absl::Status NotAStreamError(const std::string& queue,
                             absl::string_view detail) {
  return absl::FailedPreconditionError(absl::StrCat(
      "offset: queue '", queue,
      "' is not a stream queue; offsets (offset, or the x-stream-offset "
      "argument) apply to queues declared with x-queue-type \"stream\" only (",
      detail, ")"));
}

}  // namespace

// --- ConsumerHost ---

void ConsumerHost::OnConnected() {
  AMQPGW_DCHECK(worker->InWorkerThread());
  std::vector<std::shared_ptr<Subscription>> subs;
  subs.reserve(subscriptions_.size());
  for (auto& [ptr, sub] : subscriptions_) subs.push_back(sub);
  for (auto& sub : subs) sub->OnConnected();
}

void ConsumerHost::OnDisconnected(const absl::Status& why) {
  AMQPGW_DCHECK(worker->InWorkerThread());
  std::vector<std::shared_ptr<Subscription>> subs;
  subs.reserve(subscriptions_.size());
  for (auto& [ptr, sub] : subscriptions_) subs.push_back(sub);
  for (auto& sub : subs) sub->OnConnectionLost(why);
}

void ConsumerHost::Add(std::shared_ptr<Subscription> subscription) {
  AMQPGW_DCHECK(worker->InWorkerThread());
  window_ += subscription->prefetch();
  worker->set_read_window(window_);
  Subscription* key = subscription.get();
  subscriptions_[key] = std::move(subscription);
}

void ConsumerHost::Remove(Subscription* subscription) {
  AMQPGW_DCHECK(worker->InWorkerThread());
  auto it = subscriptions_.find(subscription);
  if (it == subscriptions_.end()) return;
  window_ -= subscription->prefetch();
  worker->set_read_window(window_);
  subscriptions_.erase(it);  // may be the last reference to `subscription`
}

// --- Subscription ---

Subscription::Subscription(ConsumerPool* pool, ConsumerHost* host,
                           std::string id, SubscribeOptions options,
                           SubscriptionSink* sink, Stats* stats)
    : pool_(pool),
      host_(host),
      worker_(host->worker),
      id_(std::move(id)),
      options_(std::move(options)),
      sink_(sink),
      stats_(stats) {}

Subscription::~Subscription() = default;

void Subscription::Start() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (options_.subscribe_deadline != absl::InfiniteFuture()) {
    subscribe_timer_ = worker_->RunAt(options_.subscribe_deadline, [this] {
      subscribe_timer_ = 0;
      if (ever_subscribed_ || state_ == State::kEnded) return;
      std::string why = worker_->last_error().ok()
                            ? std::string("not connected yet")
                            : std::string(worker_->last_error().message());
      Close(absl::UnavailableError(absl::StrCat(
          "could not subscribe to queue '", options_.queue,
          "' before the deadline: broker unreachable (", why, ")")));
    });
  }
  if (worker_->connected()) OpenChannel();
}

void Subscription::OnConnected() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (state_ == State::kWaiting) OpenChannel();
}

void Subscription::OpenChannel() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  absl::StatusOr<uint16_t> ch = worker_->OpenChannel(this);
  if (!ch.ok()) {
    if (ch.status().code() == absl::StatusCode::kResourceExhausted) {
      // Every consumer connection is as full (streams go to the least
      // loaded one): more streams need more connections or instances.
      End(absl::ResourceExhaustedError(absl::StrCat(
          ch.status().message(),
          ": this gateway holds at most one stream per channel on each of "
          "its consumer connections; start it with more "
          "--consumer_connections, or open the stream on another instance")));
    }
    return;  // otherwise the connection is failing; we resubscribe after
  }
  channel_ = *ch;
  state_ = State::kOpening;
}

void Subscription::OnConnectionLost(const absl::Status& why) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (state_ == State::kEnded) return;
  channel_ = 0;
  // The broker requeues what this channel had unacked: a new generation.
  gen_base_ = next_id_ - 1;
  ResetOutstanding();
  acked_upto_tag_ = 0;
  acked_id_.store(gen_base_, std::memory_order_release);
  delivered_ = completed_;
  if (retry_timer_ != 0) {
    worker_->CancelTimer(retry_timer_);
    retry_timer_ = 0;
  }
  if (state_ == State::kClosing || state_ == State::kDraining) {
    // Draining: the broker requeues what was outstanding; the drain is over.
    absl::Status status =
        state_ == State::kDraining ? absl::OkStatus() : end_status_;
    state_ = State::kWaiting;
    End(status);
    return;
  }
  state_ = State::kWaiting;
  if (why.code() != absl::StatusCode::kUnavailable) {
    // Disconnect: the stream ends.
    End(absl::UnavailableError(why.message()));
    return;
  }
  if (ever_subscribed_) sink_->OnPaused(std::string(why.message()));
}

void Subscription::OnChannelEvent(amqp::Event& event) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  using Type = amqp::Event::Type;
  amqp::Connection* conn = worker_->connection();
  switch (event.type) {
    case Type::kChannelOpenOk: {
      if (state_ != State::kOpening) return;
      state_ = State::kQos;
      // Never a channel-wide window before basic.consume: a quorum or
      // stream queue refuses to be consumed on such a channel with 540
      // NOT_IMPLEMENTED, which closes the whole connection.
      consumer_prefetch_ = ConsumerPrefetch();
      conn->Qos(channel_, consumer_prefetch_, /*global=*/false).IgnoreError();
      ack_batch_.store(std::max<uint64_t>(1, consumer_prefetch_ / 4));
      return;
    }
    case Type::kBasicQosOk: {
      if (state_ != State::kQos) return;
      amqp::ConsumeArgs args;
      args.queue = options_.queue;
      args.consumer_tag =
          consumer_tag_.empty() ? options_.consumer_tag : consumer_tag_;
      args.exclusive = options_.exclusive;
      args.arguments = ConsumeArguments();
      state_ = State::kConsuming;
      absl::Status s = conn->Consume(channel_, args);
      if (!s.ok() && conn->status().ok()) Close(s);
      return;
    }
    case Type::kBasicConsumeOk:
      if (state_ != State::kConsuming) return;
      consumer_tag_ = event.consumer_tag;
      state_ = State::kActive;
      resubscribe_retries_ = 0;
      if (subscribe_timer_ != 0) {
        worker_->CancelTimer(subscribe_timer_);
        subscribe_timer_ = 0;
      }
      if (!ever_subscribed_) {
        ever_subscribed_ = true;
        sink_->OnSubscribed(id_, consumer_tag_);
      } else {
        spdlog::info("subscription {}: resumed on queue '{}'", id_,
                     options_.queue);
        sink_->OnResumed();
      }
      // Acks handed over while we were away belong to the old generation.
      AckHandedOver();
      return;
    case Type::kBasicDeliver:
      OnDeliver(event.delivery);
      return;
    case Type::kBasicCancel:
      // The broker cancelled us: queue deleted, or its node went away.
      Close(absl::AbortedError(absl::StrCat(
          "the broker cancelled the consumer of queue '", options_.queue,
          "': the queue was deleted or became unavailable")));
      return;
    case Type::kBasicCancelOk:
      return;  // we asked (max_messages); completion follows the acks
    case Type::kChannelClose:
      OnChannelClosedByBroker(event);
      return;
    case Type::kChannelCloseOk:
      worker_->ReleaseChannel(channel_);
      channel_ = 0;
      state_ = State::kWaiting;
      End(end_status_);
      return;
    default:
      return;
  }
}

void Subscription::OnDeliver(amqp::Delivery& d) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (state_ != State::kActive && state_ != State::kCancelling) return;
  if (options_.max_messages > 0 && delivered_ >= options_.max_messages) {
    return;  // in flight when we cancelled; requeued when the channel closes
  }
  std::optional<int64_t> offset = amqp::DeliveryStreamOffset(d);
  if (!offset.has_value() && options_.stream_offset.has_value()) {
    // A broker that ignores x-stream-offset on other queues (RabbitMQ 3.10
    // refuses it): say so rather than pass on a queue read from its head.
    // The delivery, never passed on, goes back to the queue when the
    // channel closes.
    Close(NotAStreamError(options_.queue,
                          "its deliveries carry no x-stream-offset"));
    return;
  }
  StreamDelivery out;
  out.delivery_id = next_id_++;
  out.delivery_attempt = amqp::DeliveryAttempt(d);
  out.stream_offset = offset;
  uint64_t tag = out.delivery_id - gen_base_;
  if (tag != d.delivery_tag) {
    // Never expected (one consumer per channel numbers deliveries 1, 2, ...);
    // refuse to guess which message an ack would hit.
    spdlog::error("subscription {}: delivery tag {} where {} was expected", id_,
                  d.delivery_tag, tag);
    Close(absl::InternalError("delivery tags out of sequence"));
    return;
  }
  ++delivered_;
  ++counts_.delivered;
  if (offset.has_value()) {
    pending_offsets_[out.delivery_id] = *offset;
    if (options_.ack_mode == AckMode::kClient) last_offset_ = *offset;
  }
  uint64_t bytes = d.body.size() + 256;  // + properties, roughly
  outstanding_bytes_ += bytes;
  average_bytes_ = (average_bytes_ * 7 + bytes) / 8;
  largest_bytes_ = std::max(largest_bytes_, bytes);
  stats_->delivered.fetch_add(1, std::memory_order_relaxed);
  stats_->delivered_bytes.fetch_add(d.body.size(), std::memory_order_relaxed);
  if (options_.ack_mode == AckMode::kClient) {
    unacked_[tag] = bytes;
    if (pool_->retrier() != nullptr) {
      // Kept for a RETRY the caller may never ask for: shared with the
      // sink (moved once, read-only), not copied per delivery.
      out.retained = std::make_shared<const amqp::Delivery>(std::move(d));
      retained_[tag] = Retained{out.retained, out.delivery_attempt};
    }
  } else {
    unacked_sizes_.push_back(bytes);
  }
  if (out.retained == nullptr) out.message = std::move(d);
  // Before the sink sees it: HandedOver(id) must find id <= received_id_.
  received_id_.store(out.delivery_id, std::memory_order_release);
  sink_->OnDelivery(std::move(out));
  delivered_in_read_ = true;
  if (options_.max_messages > 0 && delivered_ >= options_.max_messages &&
      state_ == State::kActive) {
    state_ = State::kCancelling;
    worker_->connection()->Cancel(channel_, consumer_tag_).IgnoreError();
  }
}

void Subscription::OnReadDone() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (!delivered_in_read_) return;
  delivered_in_read_ = false;
  UpdateWindow();
  if (state_ != State::kEnded) sink_->OnDeliveriesRead();
}

uint16_t Subscription::ConsumerPrefetch() const {
  uint64_t prefetch = options_.prefetch;
  if (options_.max_messages > 0 && options_.max_messages < prefetch) {
    prefetch = options_.max_messages;
  }
  // What the broker may send at once keeps the byte budget for messages up
  // to the largest seen so far (or assumed before any).
  uint64_t size = std::max(largest_bytes_, kAssumedMessageBytes);
  prefetch = std::min(prefetch, options_.max_outstanding_bytes / size);
  return static_cast<uint16_t>(std::max<uint64_t>(1, prefetch));
}

bool Subscription::NeedsWindow() const {
  // Messages larger than the consumer prefetch was sized for.
  return uint64_t{consumer_prefetch_} * average_bytes_ >
             options_.max_outstanding_bytes ||
         outstanding_bytes_ >= options_.max_outstanding_bytes;
}

uint16_t Subscription::DesiredWindow() const {
  uint64_t count = options_.ack_mode == AckMode::kClient
                       ? unacked_.size()
                       : unacked_sizes_.size();
  uint64_t window =
      options_.max_outstanding_bytes / std::max<uint64_t>(1, average_bytes_);
  if (outstanding_bytes_ >= options_.max_outstanding_bytes) {
    // Full (sizes vary: the average may say there is room): nothing more
    // until acks bring the count below this.
    window = std::min(window, count);
  }
  return static_cast<uint16_t>(std::clamp<uint64_t>(
      window, 1, std::max<uint16_t>(1, consumer_prefetch_)));
}

void Subscription::UpdateWindow() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (state_ != State::kActive && state_ != State::kCancelling) return;
  if (window_ == 0 && !NeedsWindow()) return;
  uint16_t want = DesiredWindow();
  // Tighten at once; widen in steps of a quarter, so that a steady stream
  // does not send a basic.qos per read.
  if (want >= window_ && want <= window_ + window_ / 4) return;
  window_ = want;
  ack_batch_.store(std::max<uint64_t>(1, window_ / 4));
  // Channel-wide (global): RabbitMQ applies it at once to the running
  // consumer of a classic queue; a quorum or stream queue ignores it (the
  // consumer prefetch bounds those).
  worker_->connection()->Qos(channel_, window_, /*global=*/true).IgnoreError();
}

void Subscription::ResetOutstanding() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  counts_.requeued += options_.ack_mode == AckMode::kClient
                          ? unacked_.size()
                          : unacked_sizes_.size();
  unacked_.clear();
  unacked_sizes_.clear();
  retained_.clear();
  ++generation_;
  outstanding_bytes_ = 0;
  window_ = 0;
}

void Subscription::OnChannelClosedByBroker(const amqp::Event& event) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  // The worker tells no OnReadDone to a released channel: deliveries of
  // this read go to the stream now, as they would have without the close.
  OnReadDone();
  worker_->ReleaseChannel(channel_);
  channel_ = 0;
  State was = state_;
  state_ = State::kWaiting;
  // The oldest delivery still unacknowledged (consumer_timeout names it).
  uint64_t oldest = 0;
  if (!unacked_.empty()) {
    oldest = unacked_.begin()->first + gen_base_;
  } else if (!unacked_sizes_.empty()) {
    oldest = acked_upto_tag_ + 1 + gen_base_;
  }
  // The broker requeues this channel's unacked messages.
  gen_base_ = next_id_ - 1;
  ResetOutstanding();
  acked_upto_tag_ = 0;
  acked_id_.store(gen_base_, std::memory_order_release);
  delivered_ = completed_;
  if (was == State::kClosing) {
    End(end_status_);
    return;
  }
  if (was == State::kDraining) {
    // The broker requeued what was outstanding: the drain is over.
    End(absl::OkStatus());
    return;
  }
  if (ever_subscribed_ &&
      IsConsumerTimeout(event.reply_code, event.reply_text)) {
    absl::Status timeout =
        ConsumerTimeoutStatus(options_.queue, oldest, event.reply_text);
    if (!options_.retry.policy.has_value()) {
      End(timeout);
      return;
    }
    // With a retry policy the caller chose to go on: subscribe again (the
    // broker requeued the unacknowledged deliveries) and say why.
    spdlog::warn("subscription {}: {}; subscribing again", id_,
                 std::string(timeout.message()));
    sink_->OnPaused(std::string(timeout.message()));
    if (worker_->connected()) OpenChannel();
    return;
  }
  std::string context =
      absl::StrCat("consume from queue '", options_.queue, "'");
  absl::Status status =
      amqp::ReplyToStatus(event.reply_code, event.reply_text, context);
  if ((event.reply_code == amqp::kAccessRefused ||
       event.reply_code == amqp::kResourceLocked) &&
      absl::StrContains(event.reply_text, "exclusive")) {
    status = absl::FailedPreconditionError(
        absl::StrCat(context, ": ", event.reply_text));
  }
  if (amqp::IsStreamOffsetRefusal(event.reply_code, event.reply_text)) {
    status = NotAStreamError(options_.queue, event.reply_text);
  }
  if (ever_subscribed_ && event.reply_code == amqp::kNotFound &&
      resubscribe_retries_ < kMaxResubscribeRetries) {
    // After a failover the queue may be declared again shortly (topology
    // replay); keep the stream paused and try again.
    ++resubscribe_retries_;
    retry_timer_ = worker_->RunAfter(kResubscribeRetryDelay, [this] {
      retry_timer_ = 0;
      if (state_ == State::kWaiting && worker_->connected()) OpenChannel();
    });
    return;
  }
  if (ever_subscribed_ && event.reply_code == amqp::kNotFound) {
    status = absl::AbortedError(absl::StrCat(
        "queue '", options_.queue, "' no longer exists: ", event.reply_text));
  }
  End(status);
}

void Subscription::HandedOver(uint64_t delivery_id) {
  uint64_t prev = handed_.load(std::memory_order_relaxed);
  while (delivery_id > prev &&
         !handed_.compare_exchange_weak(prev, delivery_id)) {
  }
  // Wake the worker only when AckHandedOver would ack: a wake-up per
  // delivery cost more than the delivery's own work (perf of amqpgwd under
  // `amqpgw-bench stream`).
  // Skipping is safe: every id up to received_id_ is handed over later (or
  // its stream ends, or its channel was lost), and the last one is caught up.
  uint64_t acked = acked_id_.load(std::memory_order_acquire);
  if (delivery_id <= acked) return;  // acked, or from a lost channel
  if (!AckDue(delivery_id, received_id_.load(std::memory_order_acquire),
              acked)) {
    return;
  }
  if (handed_task_pending_.exchange(true)) return;
  worker_->Post([self = shared_from_this()] {
    self->handed_task_pending_.store(false);
    self->AckHandedOver();
  });
}

bool Subscription::AckDue(uint64_t handed, uint64_t received,
                          uint64_t acked) const {
  // Batched acks (multiple=true): one per quarter of the prefetch window
  // while gRPC lags behind the broker, as a careful AMQP consumer does; at
  // once when gRPC has caught up with every delivery received (nothing to
  // batch with, and nothing stays unacked behind an idle stream). Fewer ack
  // frames for the broker (and this thread) to process.
  uint64_t batch = ack_batch_.load(std::memory_order_relaxed);
  return handed >= received || handed - acked >= batch;
}

void Subscription::PruneHandedOffsets() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  uint64_t handed = handed_.load();
  while (!pending_offsets_.empty() &&
         pending_offsets_.begin()->first <= handed) {
    last_offset_ = pending_offsets_.begin()->second;
    pending_offsets_.erase(pending_offsets_.begin());
  }
}

amqp::FieldTable Subscription::ConsumeArguments() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (options_.ack_mode != AckMode::kClient) PruneHandedOffsets();
  std::optional<int64_t> from;
  if (options_.ack_mode == AckMode::kClient && !pending_offsets_.empty()) {
    // The first delivery the caller had not settled comes again.
    for (const auto& [id, offset] : pending_offsets_) {
      from = std::min(from.value_or(offset), offset);
    }
  } else if (last_offset_.has_value()) {
    from = *last_offset_ + 1;
  }
  // What was not handed over (or settled) comes again from `from`; until
  // the caller has more, a later subscribe starts there too.
  pending_offsets_.clear();
  last_offset_.reset();
  if (from.has_value()) resume_offset_ = from;
  amqp::FieldTable args = options_.arguments;
  std::optional<amqp::FieldValue> start = options_.stream_offset;
  if (resume_offset_.has_value()) start = amqp::FieldValue(*resume_offset_);
  if (start.has_value()) {
    args.erase(std::remove_if(args.begin(), args.end(),
                              [](const auto& entry) {
                                return entry.first == amqp::kStreamOffsetKey;
                              }),
               args.end());
    args.emplace_back(amqp::kStreamOffsetKey, *std::move(start));
  }
  return args;
}

void Subscription::AckHandedOver(bool all) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (options_.ack_mode == AckMode::kClient) return;
  if (!pending_offsets_.empty()) PruneHandedOffsets();
  if (state_ != State::kActive && state_ != State::kCancelling) return;
  uint64_t handed = handed_.load();
  if (handed <= gen_base_) return;  // from a lost channel
  uint64_t tag = handed - gen_base_;
  if (tag <= acked_upto_tag_) return;
  uint64_t received_tag = next_id_ - 1 - gen_base_;
  if (!all && !AckDue(tag, received_tag, acked_upto_tag_)) return;
  worker_->connection()->Ack(channel_, tag, /*multiple=*/true).IgnoreError();
  uint64_t n = tag - acked_upto_tag_;
  for (uint64_t k = 0; k < n && !unacked_sizes_.empty(); ++k) {
    outstanding_bytes_ -= unacked_sizes_.front();
    unacked_sizes_.pop_front();
  }
  acked_upto_tag_ = tag;
  acked_id_.store(handed, std::memory_order_release);
  completed_ += n;
  counts_.acked += n;
  stats_->acked.fetch_add(n, std::memory_order_relaxed);
  UpdateWindow();
  MaybeComplete();
}

void Subscription::Cancel(absl::Status why) {
  worker_->Post(
      [self = shared_from_this(), why = std::move(why)] { self->Close(why); });
}

void Subscription::Drain(absl::Duration timeout, std::string why) {
  worker_->Post([self = shared_from_this(), timeout, why = std::move(why)] {
    self->StartDrain(timeout, why);
  });
}

void Subscription::StartDrain(absl::Duration timeout, const std::string& why) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (!why.empty() &&
      (state_ == State::kActive || state_ == State::kCancelling)) {
    sink_->OnDraining(why);
    // Not the caller's wish: the end says to open the stream again.
    drain_end_ = absl::UnavailableError(
        absl::StrCat(why, ": open the stream again (on another instance)"));
  }
  switch (state_) {
    case State::kActive:
    case State::kCancelling:
      if (options_.ack_mode != AckMode::kClient) break;
      if (state_ == State::kActive) {
        worker_->connection()->Cancel(channel_, consumer_tag_).IgnoreError();
      }
      // Deliveries the broker sent before its cancel-ok are not passed on:
      // they stay unacknowledged and are requeued when the channel closes.
      state_ = State::kDraining;
      drain_timer_ = worker_->RunAfter(timeout, [this] {
        drain_timer_ = 0;
        if (state_ == State::kDraining) Close(drain_end_);
      });
      MaybeComplete();
      return;
    case State::kDraining:
    case State::kClosing:
    case State::kEnded:
      return;
    default:
      break;
  }
  // Nothing outstanding to wait for (or AUTO, NONE): stop now.
  Close(drain_end_);
}

void Subscription::Ack(
    std::vector<uint64_t> ids, AckCommand action,
    absl::AnyInvocable<void(absl::StatusOr<AckResult>) &&> done) {
  worker_->Post([self = shared_from_this(), ids = std::move(ids), action,
                 done = std::move(done)]() mutable {
    self->DoAck(std::move(ids), std::move(action), std::move(done));
  });
}

void Subscription::DoAck(
    std::vector<uint64_t> ids, AckCommand action,
    absl::AnyInvocable<void(absl::StatusOr<AckResult>) &&> done) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (state_ == State::kEnded) {
    std::move(done)(absl::NotFoundError(
        absl::StrCat("subscription '", id_,
                     "' has ended; its unacknowledged messages "
                     "were returned to the queue")));
    return;
  }
  if (options_.ack_mode != AckMode::kClient) {
    std::move(done)(absl::FailedPreconditionError(absl::StrCat(
        "subscription '", id_, "' uses ack_mode ",
        options_.ack_mode == AckMode::kAuto ? "AUTO" : "NONE",
        ": the gateway acknowledges its messages; Ack applies to CLIENT "
        "streams")));
    return;
  }
  for (uint64_t id : ids) {
    if (id == 0 || id >= next_id_) {
      std::move(done)(absl::InvalidArgumentError(absl::StrCat(
          "delivery_ids: ", id, " was never delivered on subscription '", id_,
          "' (delivered so far: 1..", next_id_ - 1, ")")));
      return;
    }
  }
  if (action.action == AckAction::kRetry ||
      (action.action == AckAction::kRequeue && options_.retry.policy)) {
    DoRetry(std::move(ids), std::move(action), std::move(done));
    return;
  }
  AckResult result;
  std::vector<uint64_t> tags;
  bool live = Live();
  for (uint64_t id : ids) {
    auto it =
        live && id > gen_base_ ? unacked_.find(id - gen_base_) : unacked_.end();
    if (it == unacked_.end()) {
      result.stale_ids.push_back(id);
      continue;
    }
    result.applied_ids.push_back(id);
    outstanding_bytes_ -= it->second;
    unacked_.erase(it);
    retained_.erase(id - gen_base_);
    pending_offsets_.erase(id);
    tags.push_back(id - gen_base_);
  }
  if (!tags.empty()) {
    std::sort(tags.begin(), tags.end());
    amqp::Connection* conn = worker_->connection();
    // One frame when the tags are exactly everything unacked up to the last.
    bool contiguous = unacked_.empty() || unacked_.begin()->first > tags.back();
    auto send = [&](uint64_t tag, bool multiple) {
      if (action.action == AckAction::kAck) {
        conn->Ack(channel_, tag, multiple).IgnoreError();
      } else {
        conn->Nack(channel_, tag, multiple,
                   action.action == AckAction::kRequeue)
            .IgnoreError();
      }
    };
    if (contiguous) {
      send(tags.back(), true);
    } else {
      for (uint64_t tag : tags) send(tag, false);
    }
    auto n = tags.size();
    switch (action.action) {
      case AckAction::kRetry:  // DoRetry
      case AckAction::kAck:
        stats_->acked.fetch_add(n, std::memory_order_relaxed);
        counts_.acked += n;
        break;
      case AckAction::kRequeue:
        stats_->requeued.fetch_add(n, std::memory_order_relaxed);
        counts_.requeued += n;
        break;
      case AckAction::kReject:
        stats_->rejected.fetch_add(n, std::memory_order_relaxed);
        counts_.rejected += n;
        break;
    }
    completed_ += n;
    result.applied = static_cast<uint32_t>(n);
    std::sort(result.applied_ids.begin(), result.applied_ids.end());
    UpdateWindow();
  }
  std::move(done)(std::move(result));
  MaybeComplete();
}

void Subscription::DoRetry(
    std::vector<uint64_t> ids, AckCommand action,
    absl::AnyInvocable<void(absl::StatusOr<AckResult>) &&> done) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  Retrier* retrier = pool_->retrier();
  if (retrier == nullptr) {
    std::move(done)(absl::FailedPreconditionError(
        "action: RETRY is not available on this gateway (no retrier)"));
    return;
  }
  const std::optional<RetryPolicy>& policy = options_.retry.policy;
  if (!action.retry_delay.has_value() && !policy.has_value()) {
    std::move(done)(absl::InvalidArgumentError(
        "retry_delay: required for RETRY when the subscription has no "
        "retry_policy"));
    return;
  }
  if (absl::Status s = CheckRetryQueue("action", options_.queue); !s.ok()) {
    std::move(done)(s);
    return;
  }
  // Settled by the caller now (a second Ack of these ids is stale); the
  // originals stay unacked at the broker until their copies are confirmed.
  struct Job {
    uint64_t id;
    uint64_t tag;
    uint64_t bytes;
    Retained retained;
  };
  struct Shared {
    size_t remaining = 0;
    AckResult result;
    absl::AnyInvocable<void(absl::StatusOr<AckResult>) &&> done;
  };
  auto shared = std::make_shared<Shared>();
  shared->done = std::move(done);
  std::vector<Job> jobs;
  bool live = Live();
  for (uint64_t id : ids) {
    uint64_t tag = id - gen_base_;
    auto it = live && id > gen_base_ ? unacked_.find(tag) : unacked_.end();
    auto kept = retained_.find(tag);
    if (it == unacked_.end() || kept == retained_.end()) {
      shared->result.stale_ids.push_back(id);
      continue;
    }
    jobs.push_back(Job{id, tag, it->second, std::move(kept->second)});
    unacked_.erase(it);
    retained_.erase(kept);
  }
  if (jobs.empty()) {
    std::move(shared->done)(std::move(shared->result));
    return;
  }
  shared->remaining = jobs.size();
  retries_in_flight_ += static_cast<int>(jobs.size());
  const uint64_t generation = generation_;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  auto self = shared_from_this();
  for (Job& one : jobs) {
    auto job = std::make_shared<Job>(std::move(one));
    const uint32_t attempt = job->retained.attempt;
    const bool exhausted = policy.has_value() && policy->max_attempts > 0 &&
                           attempt >= policy->max_attempts;
    // Runs on the worker thread once the copy's fate is known: acks the
    // original (OK) or gives it back to the caller (error).
    auto finish = [self, shared, generation, job](absl::Status s,
                                                  AckAction applied) mutable {
      Subscription* sub = self.get();
      --sub->retries_in_flight_;
      bool same = sub->generation_ == generation && sub->Live();
      if (!same) {
        // The channel is gone: the broker requeued the original (with a
        // confirmed copy: a duplicate).
        ++sub->counts_.requeued;
      }
      if (s.ok()) {
        sub->pending_offsets_.erase(job->id);  // settled
        if (same) {
          amqp::Connection* conn = sub->worker_->connection();
          if (applied == AckAction::kReject) {
            conn->Nack(sub->channel_, job->tag, false, /*requeue=*/false)
                .IgnoreError();
          } else {
            conn->Ack(sub->channel_, job->tag, false).IgnoreError();
          }
          sub->outstanding_bytes_ -= job->bytes;
          ++sub->completed_;
          ++(applied == AckAction::kRetry ? sub->counts_.requeued
                                          : sub->counts_.rejected);
        }
        // Counted once: a retry as requeued, a dead letter as rejected.
        (applied == AckAction::kRetry ? sub->stats_->requeued
                                      : sub->stats_->rejected)
            .fetch_add(1, std::memory_order_relaxed);
        ++shared->result.applied;
        shared->result.applied_ids.push_back(job->id);
      } else {
        if (same) {
          sub->unacked_[job->tag] = job->bytes;
          sub->retained_[job->tag] = std::move(job->retained);
        }
        shared->result.failed_ids.push_back(job->id);
        if (shared->result.failure.ok()) {
          shared->result.failure = absl::Status(
              s.code(),
              absl::StrCat("delivery ", job->id, " stays unacknowledged (ack, ",
                           "requeue or retry it again): ", s.message()));
        }
      }
      if (--shared->remaining > 0) return;
      std::sort(shared->result.applied_ids.begin(),
                shared->result.applied_ids.end());
      std::sort(shared->result.failed_ids.begin(),
                shared->result.failed_ids.end());
      std::move(shared->done)(std::move(shared->result));
      sub->UpdateWindow();
      sub->MaybeComplete();
    };
    auto on_worker = [self, finish = std::move(finish)](
                         AckAction applied, absl::Status s) mutable {
      self->worker_->Post(
          [finish = std::move(finish), applied, s = std::move(s)]() mutable {
            finish(std::move(s), applied);
          });
    };
    const amqp::Delivery& message = *job->retained.message;
    if (exhausted && !options_.retry.dead_letter.has_value()) {
      // The queue's own dead-letter exchange (if any) takes it.
      on_worker(AckAction::kReject, absl::OkStatus());
    } else if (exhausted) {
      retrier->DeadLetter(
          message, *options_.retry.dead_letter, options_.queue, attempt,
          action.error, deadline,
          [on_worker = std::move(on_worker)](absl::Status s) mutable {
            on_worker(AckAction::kAck, std::move(s));
          });
    } else {
      absl::Duration delay =
          action.retry_delay.has_value()
              ? *action.retry_delay
              : PolicyDelay(*policy, attempt,
                            absl::Uniform<double>(random_, 0.0, 1.0));
      retrier->Retry(
          message, options_.queue, delay, attempt, deadline,
          [on_worker = std::move(on_worker)](absl::Status s) mutable {
            on_worker(AckAction::kRetry, std::move(s));
          });
    }
  }
}

void Subscription::MaybeComplete() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (state_ == State::kDraining && unacked_.empty() &&
      retries_in_flight_ == 0) {
    Close(drain_end_);  // every outstanding delivery was settled
    return;
  }
  if (options_.max_messages == 0 || completed_ < options_.max_messages) return;
  if (state_ != State::kActive && state_ != State::kCancelling) return;
  Close(absl::OkStatus());
}

void Subscription::Close(absl::Status status) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  switch (state_) {
    case State::kEnded:
    case State::kClosing:
      return;
    case State::kWaiting:
      End(std::move(status));
      return;
    default:
      // Closing the channel cancels the consumer and requeues its unacked
      // messages at once: first ack those gRPC already took (AUTO, NONE),
      // which batching may have held back.
      AckHandedOver(/*all=*/true);
      if (state_ == State::kEnded || state_ == State::kClosing) return;
      end_status_ = std::move(status);
      state_ = State::kClosing;
      worker_->connection()->CloseChannel(channel_).IgnoreError();
      return;
  }
}

void Subscription::End(absl::Status status) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (state_ == State::kEnded) return;
  auto self = shared_from_this();  // the pool may hold the last reference
  if (channel_ != 0) {
    worker_->ReleaseChannel(channel_);
    channel_ = 0;
  }
  state_ = State::kEnded;
  if (subscribe_timer_ != 0) worker_->CancelTimer(subscribe_timer_);
  if (retry_timer_ != 0) worker_->CancelTimer(retry_timer_);
  if (drain_timer_ != 0) worker_->CancelTimer(drain_timer_);
  subscribe_timer_ = retry_timer_ = drain_timer_ = 0;
  ResetOutstanding();  // counted as requeued: the channel is gone
  pool_->Remove(this);
  sink_->OnSummary(counts_);
  sink_->OnEnd(status);
}

// --- ConsumerPool ---

ConsumerPool::ConsumerPool(
    std::vector<ConnectionWorker*> workers, std::string instance_id,
    Stats* stats, std::function<std::string(const std::string& id)> seal_id)
    : instance_id_(std::move(instance_id)),
      stats_(stats),
      seal_id_(std::move(seal_id)) {
  for (ConnectionWorker* w : workers) {
    hosts_.push_back(std::make_unique<ConsumerHost>(w));
    w->AddObserver(hosts_.back().get());
  }
}

ConsumerPool::~ConsumerPool() {
  for (auto& h : hosts_) h->worker->RemoveObserver(h.get());
}

std::shared_ptr<Subscription> ConsumerPool::Subscribe(SubscribeOptions options,
                                                      SubscriptionSink* sink) {
  ConsumerHost* host = hosts_.front().get();
  for (auto& h : hosts_) {
    if (h->load.load() < host->load.load()) host = h.get();
  }
  host->load.fetch_add(1);
  std::string random = SecureRandomHex(16);
  std::string id = absl::StrCat(instance_id_, "/", random);
  if (seal_id_) id = seal_id_(id);
  if (options.consumer_tag.empty()) {
    options.consumer_tag = absl::StrCat("amqpgw-", random.substr(0, 12));
  }
  auto sub = std::make_shared<Subscription>(this, host, id, std::move(options),
                                            sink, stats_);
  {
    amqpgw::MutexLock lock(&mu_);
    by_id_[id] = sub;
  }
  stats_->active_streams.fetch_add(1, std::memory_order_relaxed);
  host->worker->Post([host, sub] {
    host->Add(sub);
    sub->Start();
  });
  return sub;
}

void ConsumerPool::Remove(Subscription* subscription) {
  AMQPGW_DCHECK(subscription->worker_->InWorkerThread());
  {
    amqpgw::MutexLock lock(&mu_);
    by_id_.erase(subscription->id());
  }
  ConsumerHost* host = subscription->host_;
  host->load.fetch_sub(1);
  stats_->active_streams.fetch_sub(1, std::memory_order_relaxed);
  host->Remove(subscription);
}

void ConsumerPool::Ack(
    const std::string& subscription_id, std::vector<uint64_t> ids,
    AckCommand action,
    absl::AnyInvocable<void(absl::StatusOr<AckResult>) &&> done) {
  size_t slash = subscription_id.rfind('/');
  if (slash != std::string::npos &&
      subscription_id.substr(0, slash) != instance_id_) {
    std::move(done)(absl::FailedPreconditionError(absl::StrCat(
        "subscription ", QuoteInput(subscription_id),
        " belongs to gateway instance ",
        QuoteInput(subscription_id.substr(0, slash)), ", not '", instance_id_,
        "'; send the Ack to the instance that holds the stream")));
    return;
  }
  std::shared_ptr<Subscription> sub;
  {
    amqpgw::MutexLock lock(&mu_);
    auto it = by_id_.find(subscription_id);
    if (it != by_id_.end()) sub = it->second.lock();
  }
  if (sub == nullptr) {
    std::move(done)(absl::NotFoundError(absl::StrCat(
        "no subscription ", QuoteInput(subscription_id),
        " on this gateway: the stream "
        "ended (its unacknowledged messages went back to the queue) or never "
        "existed")));
    return;
  }
  sub->Ack(std::move(ids), std::move(action), std::move(done));
}

void ConsumerPool::CancelAll(const absl::Status& why) {
  std::vector<std::shared_ptr<Subscription>> subs;
  {
    amqpgw::MutexLock lock(&mu_);
    for (auto& [id, weak] : by_id_) {
      if (auto s = weak.lock()) subs.push_back(std::move(s));
    }
  }
  for (auto& s : subs) s->Cancel(why);
}

void ConsumerPool::DrainAll(absl::Duration timeout, const std::string& why) {
  std::vector<std::shared_ptr<Subscription>> subs;
  {
    amqpgw::MutexLock lock(&mu_);
    for (auto& [id, weak] : by_id_) {
      if (auto s = weak.lock()) subs.push_back(std::move(s));
    }
  }
  for (auto& s : subs) s->Drain(timeout, why);
}

bool ConsumerPool::WaitAllEnded(absl::Time deadline) {
  amqpgw::MutexLock lock(&mu_);
  return mu_.AwaitWithDeadline(
      absl::Condition(
          +[](absl::flat_hash_map<std::string, std::weak_ptr<Subscription>>*
                  m) { return m->empty(); },
          &by_id_),
      deadline);
}

size_t ConsumerPool::active() const {
  amqpgw::MutexLock lock(&mu_);
  return by_id_.size();
}

}  // namespace amqpgw::core
