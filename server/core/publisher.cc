#include "server/core/publisher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/amqp/reply.h"
#include "server/base/check.h"
#include "server/core/publish_risk.h"
#include "spdlog/spdlog.h"

namespace amqpgw::core {
namespace {

// Exchanges every RabbitMQ vhost has.
bool IsStandardExchange(const std::string& name) {
  return name.empty() || name == "amq.direct" || name == "amq.fanout" ||
         name == "amq.topic" || name == "amq.headers" || name == "amq.match";
}

// basic.publish, as channel.close names the method it refused.
constexpr uint16_t kBasicClass = 60;
constexpr uint16_t kBasicPublishMethod = 40;

// Caps on what the publisher remembers about keys.
constexpr size_t kMaxRememberedKeys = 100000;

// The first write-retry delay while the socket holds kMaxUnsentBytes, and
// the longest (the delay doubles meanwhile; a confirm also retries).
constexpr absl::Duration kFirstWriteRetry = absl::Milliseconds(1);
constexpr absl::Duration kMaxWriteRetry = absl::Milliseconds(50);

std::string Destination(const amqp::OutgoingMessage& m) {
  return m.exchange.empty()
             ? std::string("publish to the default exchange")
             : absl::StrCat("publish to exchange '", m.exchange, "'");
}

absl::Status ReturnStatus(const amqp::ReturnedMessage& r) {
  if (r.reply_code == amqp::kNoRoute) {
    std::string where =
        r.exchange.empty()
            ? absl::StrCat("no queue named '", r.routing_key,
                           "' exists (the default exchange routes by queue "
                           "name)")
            : absl::StrCat("no queue is bound to exchange '", r.exchange,
                           "' for routing key '", r.routing_key, "'");
    return absl::FailedPreconditionError(absl::StrCat(
        "NO_ROUTE: ", where,
        "; declare and bind a queue, or set allow_unroutable to let the "
        "broker drop such messages"));
  }
  return amqp::ReplyToStatus(r.reply_code, r.reply_text,
                             "the broker returned the message");
}

}  // namespace

PublishBatch::PublishBatch(std::vector<amqp::OutgoingMessage> messages,
                           absl::Time deadline, Done done)
    : messages_(std::move(messages)),
      results_(messages_.size()),
      state_(messages_.size(), State::kQueued),
      reached_(messages_.size(), 0),
      suspect_(messages_.size(), 0),
      remaining_(messages_.size()),
      deadline_(deadline),
      done_(std::move(done)) {
  for (const amqp::OutgoingMessage& m : messages_) {
    bytes_ += m.body.size() + m.exchange.size() + m.routing_key.size() + 256;
  }
}

Publisher::Publisher(ConnectionWorker* worker, Options options, Stats* stats,
                     std::atomic<int64_t>* pending_bytes)
    : worker_(worker),
      options_(options),
      stats_(stats),
      pending_bytes_(pending_bytes) {
  worker_->AddObserver(this);
}

Publisher::~Publisher() { worker_->RemoveObserver(this); }

void Publisher::Publish(std::shared_ptr<PublishBatch> batch) {
  worker_->Post([this, batch = std::move(batch)]() mutable {
    Enqueue(std::move(batch));
  });
}

void Publisher::PublishHere(std::shared_ptr<PublishBatch> batch) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  Enqueue(std::move(batch));
}

absl::Status Publisher::OutcomeUnknown(absl::string_view why) {
  return absl::DeadlineExceededError(absl::StrCat(
      "outcome unknown: ", why, "; it may or may not have been published"));
}

void Publisher::Drain(absl::Time deadline, absl::Status why,
                      absl::AnyInvocable<void() &&> done) {
  worker_->Post(
      [this, deadline, why = std::move(why), done = std::move(done)]() mutable {
        AMQPGW_DCHECK(worker_->InWorkerThread());
        draining_ = true;
        drain_status_ = why;
        FailQueued(why);
        drain_done_ = std::move(done);
        drain_timer_ = worker_->RunAt(deadline, [this] {
          drain_timer_ = 0;
          for (InFlight& f : inflight_) {
            Complete(f.item.batch, f.item.index,
                     OutcomeUnknown(absl::StrCat(
                         drain_status_.message(),
                         "; the broker did not confirm the message in time")));
          }
          MaybeFinishDrain();
        });
        MaybeFinishDrain();
      });
}

void Publisher::MaybeFinishDrain() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (!draining_ || !drain_done_) return;
  for (const InFlight& f : inflight_) {
    if (!f.settled &&
        f.item.batch->state_[f.item.index] != PublishBatch::State::kDone) {
      return;
    }
  }
  if (drain_timer_ != 0) worker_->CancelTimer(drain_timer_);
  drain_timer_ = 0;
  std::move(drain_done_)();
  drain_done_ = nullptr;
}

void Publisher::Enqueue(std::shared_ptr<PublishBatch> batch) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (draining_) {
    for (size_t i = 0; i < batch->size(); ++i) {
      Complete(batch, i, drain_status_);
    }
    return;
  }
  if (batch->size() == 0) {
    pending_bytes_->fetch_sub(static_cast<int64_t>(batch->bytes_));
    std::move(batch->done_)(*batch);
    return;
  }
  batch->timer_ = worker_->RunAt(batch->deadline_, [this, batch] {
    batch->timer_ = 0;
    Expire(batch);
  });
  for (size_t i = 0; i < batch->size(); ++i) {
    queue_.push_back(Item{batch, static_cast<uint32_t>(i)});
  }
  ScheduleFlush();
}

void Publisher::ScheduleFlush() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  // Runs after the tasks already posted: concurrent unary Publish calls that
  // arrive together are sent by one Flush, in one corked write.
  if (flush_scheduled_) return;
  flush_scheduled_ = true;
  worker_->Post([this] {
    flush_scheduled_ = false;
    Flush();
  });
}

void Publisher::Complete(const std::shared_ptr<PublishBatch>& batch,
                         size_t index, absl::Status status) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  PublishBatch& b = *batch;
  if (b.state_[index] == PublishBatch::State::kDone) return;
  b.state_[index] = PublishBatch::State::kDone;
  b.results_[index].status = std::move(status);
  b.results_[index].confirmed_at = absl::Now();
  if (b.on_result_) b.on_result_(b, index);
  if (--b.remaining_ > 0) return;
  if (b.timer_ != 0) {
    worker_->CancelTimer(b.timer_);  // drops the timer's reference too
    b.timer_ = 0;
  }
  pending_bytes_->fetch_sub(static_cast<int64_t>(b.bytes_));
  if (b.done_) std::move(b.done_)(b);
  b.done_ = nullptr;
}

absl::Status Publisher::ExpiredStatus(const PublishBatch& b,
                                      size_t index) const {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  bool in_flight = b.state_[index] == PublishBatch::State::kSent;
  if (in_flight && blocked_) {
    // RabbitMQ blocks a connection when it next publishes during an alarm:
    // this message may be the one that met it, and may still be confirmed.
    return OutcomeUnknown(absl::StrCat(
        "the message was sent, then the broker began blocking publishers (",
        blocked_reason_,
        ") before confirming it; RabbitMQ may still route and confirm it "
        "when the alarm clears"));
  }
  if (in_flight) {
    return OutcomeUnknown(
        "the message was sent but the broker did not confirm it before the "
        "deadline");
  }
  if (b.reached_[index] != 0) {
    if (!worker_->connected()) {
      std::string why = worker_->last_error().ok()
                            ? std::string("not connected")
                            : std::string(worker_->last_error().message());
      return OutcomeUnknown(absl::StrCat(
          "the message was sent, the broker connection was lost before its "
          "confirm, and the broker was not reachable again before the "
          "deadline (",
          why, ")"));
    }
    return OutcomeUnknown(
        "the message was sent before a lost connection or a closed channel "
        "and could not be sent again before the deadline");
  }
  if (!worker_->connected()) {
    std::string why = worker_->last_error().ok()
                          ? std::string("not connected yet")
                          : std::string(worker_->last_error().message());
    return absl::UnavailableError(
        absl::StrCat("broker unreachable within the deadline (", why,
                     "); the message was not published"));
  }
  if (blocked_) {
    return absl::UnavailableError(absl::StrCat(
        "the broker is blocking publishers (", blocked_reason_,
        "); publishing resumes when its memory or disk alarm clears; the "
        "message was not published"));
  }
  return absl::UnavailableError(
      "the message could not be sent before the deadline (the broker "
      "confirmed earlier messages too slowly); the message was not "
      "published");
}

void Publisher::Expire(const std::shared_ptr<PublishBatch>& batch) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  for (size_t i = 0; i < batch->size(); ++i) {
    if (batch->state_[i] != PublishBatch::State::kDone) {
      Complete(batch, i, ExpiredStatus(*batch, i));
    }
  }
}

bool Publisher::IsKnownExchange(const std::string& name) const {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  return IsStandardExchange(name) || known_exchanges_.contains(name);
}

bool Publisher::NeedsIsolation(const PublishBatch& b, size_t index,
                               absl::Status* failed) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  const amqp::OutgoingMessage& m = b.messages_[index];
  bool isolate = b.suspect_[index] > 0;
  ForEachRiskKey(
      m, per_routing_key_, &key_scratch_, [&](const std::string& key) {
        if (!refused_.empty()) {
          auto it = refused_.find(key);
          if (it != refused_.end()) {
            absl::Time now = absl::Now();
            if (now < it->second.until) {
              *failed = absl::Status(
                  it->second.status.code(),
                  absl::StrCat(it->second.status.message(),
                               " (refused by the broker for another message ",
                               absl::FormatDuration(absl::Trunc(
                                   kRefusalMemory - (it->second.until - now),
                                   absl::Milliseconds(1))),
                               " ago; not sent)"));
              return false;
            }
            refused_.erase(it);
          }
        }
        if (!proven_.contains(key)) isolate = true;
        return true;
      });
  return isolate;
}

void Publisher::MarkProven(const amqp::OutgoingMessage& m) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (proven_.size() >= kMaxRememberedKeys) proven_.clear();
  ForEachRiskKey(m, per_routing_key_, &key_scratch_,
                 [&](const std::string& key) {
                   proven_.insert(key);
                   return true;
                 });
}

bool Publisher::HasRoomToWrite(amqp::Connection* conn,
                               const amqp::OutgoingMessage& m) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (written_since_check_ < kUnsentCheckBytes &&
      m.body.size() < kUnsentCheckBytes) {
    written_since_check_ += m.body.size() + 256;
    return true;
  }
  if (conn->UnsentBytes() < kMaxUnsentBytes) {
    written_since_check_ = m.body.size();
    write_retry_ = absl::ZeroDuration();
    return true;
  }
  // The broker (or the link) takes bytes slower than they come: writing
  // more would park this thread inside rabbitmq-c. Confirms arrive as the
  // broker reads (Settle flushes); the timer covers a broker that reads
  // without confirming yet.
  if (write_timer_ == 0) {
    write_retry_ = write_retry_ == absl::ZeroDuration()
                       ? kFirstWriteRetry
                       : std::min(write_retry_ * 2, kMaxWriteRetry);
    write_timer_ = worker_->RunAfter(write_retry_, [this] {
      write_timer_ = 0;
      Flush();
    });
  }
  return false;
}

void Publisher::Flush() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (confirm_state_ != ChannelState::kReady || blocked_) return;
  if (queue_.empty() || inflight_.size() >= options_.confirm_window) return;
  amqp::Connection* conn = worker_->connection();
  if (queue_.size() == 1) {
    // One message's frames leave in one write (one segment) anyway: on TLS
    // corking would only cost two system calls.
    SendQueued(conn);
    return;
  }
  // Everything this Flush publishes leaves in full TCP segments, at once
  // when it returns: fewer segments for the broker to read and fewer
  // wake-ups on both sides.
  conn->Cork(true);
  SendQueued(conn);
  conn->Cork(false);
}

void Publisher::SendQueued(amqp::Connection* conn) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  while (!queue_.empty() && inflight_.size() < options_.confirm_window) {
    if (isolating_) return;  // resumes when the isolated message is settled
    Item& item = queue_.front();
    PublishBatch& b = *item.batch;
    if (b.state_[item.index] == PublishBatch::State::kDone) {
      queue_.pop_front();
      continue;
    }
    if (b.cancelled_ && b.cancelled_()) {
      Complete(item.batch, item.index,
               absl::CancelledError("the client cancelled the call before "
                                    "the message was sent; not published"));
      queue_.pop_front();
      continue;
    }
    const amqp::OutgoingMessage& m = b.messages_[item.index];
    if (m.body.size() > broker_max_size_) {
      Complete(item.batch, item.index,
               absl::FailedPreconditionError(absl::StrCat(
                   "body: ", m.body.size(),
                   " bytes is more than the broker's max_message_size (",
                   broker_max_size_,
                   " bytes, which it refused for another message); not "
                   "sent")));
      queue_.pop_front();
      continue;
    }
    if (!IsKnownExchange(m.exchange)) {
      if (checking_.empty() && check_state_ == ChannelState::kReady) {
        checking_ = m.exchange;
        amqp::ExchangeDeclareArgs args;
        args.name = m.exchange;
        args.passive = true;
        conn->DeclareExchange(check_ch_, args).IgnoreError();
      }
      return;  // resumes when the check answers
    }
    absl::Status refused;
    bool isolate = NeedsIsolation(b, item.index, &refused);
    if (!refused.ok()) {
      Complete(item.batch, item.index, std::move(refused));
      queue_.pop_front();
      continue;
    }
    // Alone: once everything sent before it is settled.
    if (isolate && unsettled_ > 0) return;
    if (!HasRoomToWrite(conn, m)) return;
    absl::Status s = conn->Publish(confirm_ch_, m);
    if (!s.ok()) {
      if (!conn->status().ok()) return;  // connection failed: worker recovers
      Complete(item.batch, item.index, s);  // this message cannot be encoded
      queue_.pop_front();
      continue;
    }
    b.state_[item.index] = PublishBatch::State::kSent;
    b.results_[item.index].sent_at = absl::Now();
    InFlight f;
    f.isolated = isolate;
    f.reached_before = b.reached_[item.index] != 0;
    b.reached_[item.index] = 1;
    f.item = std::move(item);
    inflight_.push_back(std::move(f));
    queue_.pop_front();
    ++next_seq_;
    ++unsettled_;
    stats_->unconfirmed.fetch_add(1, std::memory_order_relaxed);
    if (isolate) isolating_ = true;
  }
}

void Publisher::OnConnected() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  draining_ = false;
  broker_max_size_ = SIZE_MAX;  // another node may have another limit
  OpenConfirmChannel();
  OpenCheckChannel();
}

void Publisher::OpenConfirmChannel() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  absl::StatusOr<uint16_t> ch = worker_->OpenChannel(&confirm_handler_);
  if (!ch.ok()) return;  // the connection is failing; OnDisconnected follows
  confirm_ch_ = *ch;
  confirm_state_ = ChannelState::kOpening;
}

void Publisher::OpenCheckChannel() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  absl::StatusOr<uint16_t> ch = worker_->OpenChannel(&check_handler_);
  if (!ch.ok()) return;
  check_ch_ = *ch;
  check_state_ = ChannelState::kOpening;
}

std::vector<Publisher::InFlight*> Publisher::Unsettled() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  std::vector<InFlight*> open;
  open.reserve(unsettled_);
  for (InFlight& f : inflight_) {
    if (!f.settled) open.push_back(&f);
  }
  return open;
}

void Publisher::ClearInFlight() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  stats_->unconfirmed.fetch_sub(static_cast<int64_t>(unsettled_),
                                std::memory_order_relaxed);
  inflight_.clear();
  unsettled_ = 0;
  isolating_ = false;
}

void Publisher::FailQueued(const absl::Status& why) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  for (Item& item : queue_) {
    bool reached = item.batch->reached_[item.index] != 0;
    Complete(item.batch, item.index,
             reached ? OutcomeUnknown(absl::StrCat(
                           why.message(),
                           "; the message was sent before a lost "
                           "connection or channel and not confirmed"))
                     : why);
  }
  queue_.clear();
}

void Publisher::OnDisconnected(const absl::Status& why) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  confirm_state_ = ChannelState::kClosed;
  check_state_ = ChannelState::kClosed;
  checking_.clear();
  blocked_ = false;
  if (write_timer_ != 0) {
    worker_->CancelTimer(write_timer_);
    write_timer_ = 0;
  }
  written_since_check_ = 0;
  if (why.code() == absl::StatusCode::kUnavailable) {
    // A loss: unconfirmed messages go out again after reconnecting.
    int code = amqp::BrokerCloseCode(why);
    RequeueAfterLoss(why, code != 0 && code != amqp::kConnectionForced);
  } else {
    // A requested close (Disconnect): nothing waits for a connection.
    for (InFlight* f : Unsettled()) {
      Complete(f->item.batch, f->item.index,
               OutcomeUnknown(absl::StrCat(
                   why.message(),
                   "; the message was sent and the connection closed "
                   "before its confirm")));
    }
    ClearInFlight();
    FailQueued(why);
  }
  MaybeFinishDrain();
}

void Publisher::OnBlocked(bool blocked, const std::string& reason) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  blocked_ = blocked;
  blocked_reason_ = reason;
  if (!blocked) Flush();
}

void Publisher::RequeueAfterLoss(const absl::Status& why, bool suspicious) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  std::deque<Item> retry;
  for (InFlight* f : Unsettled()) {
    PublishBatch& b = *f->item.batch;
    size_t i = f->item.index;
    if (b.state_[i] == PublishBatch::State::kDone) continue;
    if (suspicious && b.suspect_[i]++ > 0) {
      // In flight at two closes the broker could not be blamed for, the
      // second time alone: the broker cannot handle this message.
      spdlog::warn(
          "publisher: {} failed: the broker closed the connection twice "
          "while it was in flight",
          Destination(b.messages_[i]));
      Complete(f->item.batch, i,
               absl::InvalidArgumentError(absl::StrCat(
                   "the broker closed the connection each of the two times "
                   "this message was sent, the second time with no other "
                   "message in flight (",
                   why.message(),
                   "): it cannot handle the message (a header value, say); "
                   "not sent again, and it may or may not have been "
                   "published")));
      continue;
    }
    b.state_[i] = PublishBatch::State::kQueued;
    retry.push_back(std::move(f->item));
  }
  ClearInFlight();
  queue_.insert(queue_.begin(), std::make_move_iterator(retry.begin()),
                std::make_move_iterator(retry.end()));
}

void Publisher::OnConfirmChannelEvent(amqp::Event& event) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  using Type = amqp::Event::Type;
  amqp::Connection* conn = worker_->connection();
  switch (event.type) {
    case Type::kChannelOpenOk:
      confirm_state_ = ChannelState::kSelecting;
      conn->ConfirmSelect(confirm_ch_).IgnoreError();
      break;
    case Type::kConfirmSelectOk:
      confirm_state_ = ChannelState::kReady;
      next_seq_ = 1;
      Flush();
      break;
    case Type::kBasicAck:
      Settle(event.delivery_tag, event.multiple, /*ack=*/true);
      break;
    case Type::kBasicNack:
      Settle(event.delivery_tag, event.multiple, /*ack=*/false);
      break;
    case Type::kBasicReturn:
      OnReturn(event.returned);
      break;
    case Type::kChannelClose:
      OnConfirmChannelClosed(event);
      break;
    default:
      break;
  }
}

void Publisher::OnConfirmChannelClosed(const amqp::Event& event) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  spdlog::warn("publisher: broker closed the confirm channel: {} {}",
               event.reply_code, event.reply_text);
  worker_->ReleaseChannel(confirm_ch_);
  confirm_state_ = ChannelState::kClosed;
  std::vector<InFlight*> open = Unsettled();
  // Pin the close on one message: RabbitMQ refuses a basic.publish before
  // routing it and handles a channel's publishes in order, so the refused
  // one is the first in flight that the reply describes, or the only one in
  // flight.
  size_t culprit = open.size();
  Refusal refusal;
  if (event.class_id == kBasicClass && event.method_id == kBasicPublishMethod &&
      !open.empty()) {
    refusal = ParseRefusal(event.reply_text);
    for (size_t k = 0; k < open.size(); ++k) {
      const InFlight& f = *open[k];
      if (refusal.Matches(f.item.batch->messages_[f.item.index])) {
        culprit = k;
        break;
      }
    }
    if (culprit == open.size() && open.size() == 1) culprit = 0;
  }
  std::deque<Item> retry;
  for (size_t k = 0; k < open.size(); ++k) {
    InFlight& f = *open[k];
    PublishBatch& b = *f.item.batch;
    size_t i = f.item.index;
    if (b.state_[i] == PublishBatch::State::kDone) continue;
    const amqp::OutgoingMessage& m = b.messages_[i];
    if (k == culprit) {
      absl::Status cause = amqp::ReplyToStatus(
          event.reply_code, event.reply_text, Destination(m));
      // Later messages with the refused key go alone again, and for a
      // moment fail at once; a topic refusal makes the exchange's keys
      // per routing key; a missing exchange is checked again.
      if (refusal.kind == Refusal::Kind::kTopic) {
        if (per_routing_key_.size() >= kMaxRememberedKeys) {
          per_routing_key_.clear();
        }
        per_routing_key_.insert(m.exchange);
      }
      std::string key = refusal.Key(m, per_routing_key_);
      if (key.empty() && f.isolated) {
        // The text named nothing, but the message was alone: every key of
        // it is in doubt.
        for (const std::string& k2 : RiskKeys(m, per_routing_key_)) {
          proven_.erase(k2);
        }
      } else if (!key.empty()) {
        proven_.erase(key);
        if (event.reply_code != amqp::kNotFound) {
          if (refused_.size() >= kMaxRememberedKeys) refused_.clear();
          refused_[key] = Refused{cause, absl::Now() + kRefusalMemory};
        }
      }
      if (refusal.kind == Refusal::Kind::kSize) {
        broker_max_size_ = refusal.max_size;
      }
      if (event.reply_code == amqp::kNotFound)
        known_exchanges_.erase(m.exchange);
      Complete(f.item.batch, i, std::move(cause));
      continue;
    }
    if (culprit == open.size()) {
      // Nothing pins the close on one message: each becomes a suspect, sent
      // alone from now on (so the next close is pinned); one closed on twice
      // fails.
      if (b.suspect_[i]++ > 0) {
        Complete(f.item.batch, i,
                 amqp::ReplyToStatus(
                     event.reply_code, event.reply_text,
                     absl::StrCat(Destination(m),
                                  " (the broker closed the channel each "
                                  "of the two times this message was "
                                  "sent; not sent again)")));
        continue;
      }
    } else if (k > culprit) {
      // Discarded by the broker unseen: this write published nothing.
      b.reached_[i] = f.reached_before ? 1 : 0;
    }
    b.state_[i] = PublishBatch::State::kQueued;
    retry.push_back(std::move(f.item));
  }
  ClearInFlight();
  queue_.insert(queue_.begin(), std::make_move_iterator(retry.begin()),
                std::make_move_iterator(retry.end()));
  OpenConfirmChannel();
  MaybeFinishDrain();
}

void Publisher::OnCheckChannelEvent(amqp::Event& event) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  using Type = amqp::Event::Type;
  switch (event.type) {
    case Type::kChannelOpenOk:
      check_state_ = ChannelState::kReady;
      Flush();
      break;
    case Type::kExchangeDeclareOk:
      if (known_exchanges_.size() >= kMaxRememberedKeys) {
        known_exchanges_.clear();
      }
      known_exchanges_.insert(checking_);
      checking_.clear();
      Flush();
      break;
    case Type::kChannelClose: {
      worker_->ReleaseChannel(check_ch_);
      check_state_ = ChannelState::kClosed;
      absl::Status cause;
      if (event.reply_code == amqp::kNotFound) {
        cause = absl::NotFoundError(absl::StrCat(
            "exchange '", checking_,
            "' does not exist; declare it first (DeclareExchange) or publish "
            "to an existing one"));
      } else {
        cause = amqp::ReplyToStatus(
            event.reply_code, event.reply_text,
            absl::StrCat("publish to exchange '", checking_, "'"));
      }
      std::string exchange = std::move(checking_);
      checking_.clear();
      for (auto it = queue_.begin(); it != queue_.end();) {
        if (it->batch->messages_[it->index].exchange == exchange) {
          bool reached = it->batch->reached_[it->index] != 0;
          Complete(it->batch, it->index,
                   reached ? OutcomeUnknown(absl::StrCat(
                                 "the message was sent before a lost "
                                 "connection or channel and not confirmed, "
                                 "and cannot be sent again: ",
                                 cause.message()))
                           : cause);
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
      OpenCheckChannel();
      break;
    }
    default:
      break;
  }
}

void Publisher::Settle(uint64_t tag, bool multiple, bool ack) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  uint64_t front = next_seq_ - inflight_.size();
  if (tag < front || tag >= next_seq_) return;
  const absl::Time now = absl::Now();
  // Taken out of settling_ for the duration: the callbacks below may
  // publish, never settle, but the buffer must not change under the loops.
  std::vector<Settled> settled;
  settled.swap(settling_);
  auto take = [&](InFlight& f) {
    if (f.settled) return;
    f.settled = true;
    --unsettled_;
    stats_->unconfirmed.fetch_sub(1, std::memory_order_relaxed);
    PublishBatch& b = *f.item.batch;
    const absl::Time sent_at = b.results_[f.item.index].sent_at;
    stats_->publish_queued.Observe(sent_at - b.created_at_);
    stats_->publish_confirm.Observe(now - sent_at);
    if (f.isolated) {
      // The broker took it (a nack or a return too: its checks passed).
      isolating_ = false;
      MarkProven(b.messages_[f.item.index]);
    }
    absl::Status status;
    if (!ack) {
      stats_->nacked.fetch_add(1, std::memory_order_relaxed);
      status = absl::ResourceExhaustedError(
          "the broker refused the message (basic.nack): a queue it routes to "
          "may be full with x-overflow=reject-publish, or the broker could "
          "not store it");
    } else if (f.returned) {
      status = f.return_status;
    } else {
      stats_->confirmed.fetch_add(1, std::memory_order_relaxed);
    }
    if (b.state_[f.item.index] != PublishBatch::State::kDone) {
      b.results_[f.item.index].settled_by_broker = true;
    }
    settled.push_back(Settled{f.item, std::move(status)});
  };
  if (multiple) {
    for (uint64_t k = 0; k <= tag - front; ++k) take(inflight_[k]);
  } else {
    take(inflight_[tag - front]);
  }
  while (!inflight_.empty() && inflight_.front().settled) inflight_.pop_front();
  // The confirm has freed room: each batch hears how many of its messages
  // left the broker's hands (a caller keeping a window there refills it),
  // and what is queued is written now, before the answers are made.
  for (size_t i = 0; i < settled.size();) {
    PublishBatch& b = *settled[i].item.batch;
    size_t count = 0;
    for (; i < settled.size() && settled[i].item.batch.get() == &b; ++i) {
      if (b.results_[settled[i].item.index].settled_by_broker) ++count;
    }
    if (count > 0 && b.on_broker_settled_) b.on_broker_settled_(b, count);
  }
  Flush();
  for (Settled& one : settled) {
    Complete(one.item.batch, one.item.index, std::move(one.status));
  }
  settled.clear();  // the last references to finished batches go here
  settling_.swap(settled);
  MaybeFinishDrain();
}

void Publisher::OnReturn(const amqp::ReturnedMessage& r) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  stats_->returned.fetch_add(1, std::memory_order_relaxed);
  // basic.return carries no sequence number; it comes just before the ack of
  // its message. Match the oldest unsettled message with the same id,
  // exchange, routing key and body, or, when none has that body, the oldest
  // with the same id, exchange and routing key. (Messages need no
  // message_id for this: without one, two messages alike in all of these
  // are also routed alike, unless bindings change between them.)
  const std::string* id =
      r.properties.message_id ? &*r.properties.message_id : nullptr;
  InFlight* first = nullptr;
  for (InFlight& f : inflight_) {
    if (f.settled || f.returned) continue;
    const amqp::OutgoingMessage& m = f.item.batch->messages_[f.item.index];
    if (m.exchange != r.exchange || m.routing_key != r.routing_key) continue;
    const auto& mid = m.properties.message_id;
    if ((id == nullptr) != !mid.has_value()) continue;
    if (id != nullptr && *id != *mid) continue;
    if (m.body == r.body) {
      first = &f;
      break;
    }
    if (first == nullptr) first = &f;
  }
  if (first == nullptr) return;
  first->returned = true;
  first->return_status = ReturnStatus(r);
}

}  // namespace amqpgw::core
