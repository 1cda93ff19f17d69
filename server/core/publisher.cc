#include "server/core/publisher.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/amqp/reply.h"
#include "server/base/check.h"
#include "spdlog/spdlog.h"

namespace amqpgw::core {
namespace {

// Exchanges every RabbitMQ vhost has.
bool IsStandardExchange(const std::string& name) {
  return name.empty() || name == "amq.direct" || name == "amq.fanout" ||
         name == "amq.topic" || name == "amq.headers" || name == "amq.match";
}

// The exchange a channel error names ("no exchange 'x' in vhost '/'",
// "access to exchange 'x' in vhost '/' refused ..."), or "".
std::string BlamedExchange(absl::string_view text) {
  constexpr absl::string_view kMarker = "exchange '";
  size_t start = text.find(kMarker);
  if (start == absl::string_view::npos) return "";
  start += kMarker.size();
  size_t end = text.find("' in vhost", start);
  if (end == absl::string_view::npos) return "";
  return std::string(text.substr(start, end - start));
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
      attempts_(messages_.size(), 0),
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

void Publisher::Drain(absl::Time deadline, absl::Status why,
                      absl::AnyInvocable<void() &&> done) {
  worker_->Post(
      [this, deadline, why = std::move(why), done = std::move(done)]() mutable {
        AMQPGW_DCHECK(worker_->InWorkerThread());
        draining_ = true;
        drain_status_ = why;
        for (Item& item : queue_) Complete(item.batch, item.index, why);
        queue_.clear();
        drain_done_ = std::move(done);
        drain_timer_ = worker_->RunAt(deadline, [this] {
          drain_timer_ = 0;
          for (InFlight& f : inflight_) {
            Complete(f.item.batch, f.item.index,
                     absl::UnavailableError(absl::StrCat(
                         drain_status_.message(),
                         "; the broker did not confirm the message in time, it "
                         "may or may not have been published")));
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
  if (--b.remaining_ > 0) return;
  if (b.timer_ != 0) {
    worker_->CancelTimer(b.timer_);  // drops the timer's reference too
    b.timer_ = 0;
  }
  pending_bytes_->fetch_sub(static_cast<int64_t>(b.bytes_));
  if (b.done_) std::move(b.done_)(b);
  b.done_ = nullptr;
}

absl::Status Publisher::ExpiredStatus(bool sent) const {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (!worker_->connected()) {
    std::string why = worker_->last_error().ok()
                          ? std::string("not connected yet")
                          : std::string(worker_->last_error().message());
    return absl::UnavailableError(absl::StrCat(
        "broker unreachable within the deadline (", why, ")",
        sent ? "; the message was sent but not confirmed, it may or may not "
               "have been published"
             : "; the message was not published"));
  }
  if (blocked_) {
    return absl::UnavailableError(absl::StrCat(
        "the broker is blocking publishers (", blocked_reason_,
        "); publishing resumes when its memory or disk alarm clears"));
  }
  if (sent) {
    return absl::DeadlineExceededError(
        "no confirm from the broker before the deadline; the message may or "
        "may not have been published");
  }
  return absl::DeadlineExceededError(
      "the message could not be sent before the deadline (the gateway's "
      "confirm window stayed full)");
}

void Publisher::Expire(const std::shared_ptr<PublishBatch>& batch) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  for (size_t i = 0; i < batch->size(); ++i) {
    bool sent = batch->state_[i] == PublishBatch::State::kSent;
    if (batch->state_[i] != PublishBatch::State::kDone) {
      Complete(batch, i, ExpiredStatus(sent));
    }
  }
}

bool Publisher::IsKnownExchange(const std::string& name) const {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  return IsStandardExchange(name) || known_exchanges_.contains(name);
}

void Publisher::Flush() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (confirm_state_ != ChannelState::kReady || blocked_) return;
  if (queue_.empty() || inflight_.size() >= options_.confirm_window) return;
  amqp::Connection* conn = worker_->connection();
  if (queue_.size() == 1) {
    // rabbitmq-c sends one message's frames as one segment (MSG_MORE):
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
    absl::Status s = conn->Publish(confirm_ch_, m);
    if (!s.ok()) {
      if (!conn->status().ok()) return;  // connection failed: worker recovers
      Complete(item.batch, item.index, s);  // this message cannot be encoded
      queue_.pop_front();
      continue;
    }
    b.state_[item.index] = PublishBatch::State::kSent;
    if (b.record_send_times_) b.results_[item.index].sent_at = absl::Now();
    InFlight f;
    f.item = std::move(item);
    inflight_.push_back(std::move(f));
    queue_.pop_front();
    ++next_seq_;
    stats_->unconfirmed.fetch_add(1, std::memory_order_relaxed);
  }
}

void Publisher::OnConnected() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  draining_ = false;
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

void Publisher::OnDisconnected(const absl::Status& why) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  confirm_state_ = ChannelState::kClosed;
  check_state_ = ChannelState::kClosed;
  checking_.clear();
  blocked_ = false;
  if (why.code() == absl::StatusCode::kUnavailable) {
    // A loss: unconfirmed messages go out again after reconnecting.
    Requeue("", why, /*count_attempt=*/false);
  } else {
    // A requested close (Disconnect): nothing waits for a connection.
    for (InFlight& f : inflight_) {
      if (!f.settled) {
        stats_->unconfirmed.fetch_sub(1, std::memory_order_relaxed);
        Complete(f.item.batch, f.item.index, why);
      }
    }
    inflight_.clear();
    for (Item& item : queue_) Complete(item.batch, item.index, why);
    queue_.clear();
  }
  MaybeFinishDrain();
}

void Publisher::OnBlocked(bool blocked, const std::string& reason) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  blocked_ = blocked;
  blocked_reason_ = reason;
  if (!blocked) Flush();
}

void Publisher::Requeue(const std::string& blame_exchange,
                        const absl::Status& cause, bool count_attempt) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  std::deque<Item> retry;
  for (InFlight& f : inflight_) {
    if (f.settled) continue;
    stats_->unconfirmed.fetch_sub(1, std::memory_order_relaxed);
    PublishBatch& b = *f.item.batch;
    size_t i = f.item.index;
    if (b.state_[i] == PublishBatch::State::kDone) continue;
    bool blamed =
        !blame_exchange.empty() && b.messages_[i].exchange == blame_exchange;
    if (blamed ||
        (count_attempt && ++b.attempts_[i] >= options_.max_attempts)) {
      Complete(f.item.batch, i, cause);
      continue;
    }
    b.state_[i] = PublishBatch::State::kQueued;
    retry.push_back(std::move(f.item));
  }
  inflight_.clear();
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
    case Type::kChannelClose: {
      // The broker refused something on the confirm channel (an exchange
      // deleted since it was checked, a permission). Blame the exchange it
      // names; republish the others on a new channel.
      spdlog::warn("publisher: broker closed the confirm channel: {} {}",
                   event.reply_code, event.reply_text);
      worker_->ReleaseChannel(confirm_ch_);
      confirm_state_ = ChannelState::kClosed;
      known_exchanges_.clear();
      std::string blamed = BlamedExchange(event.reply_text);
      absl::Status cause =
          amqp::ReplyToStatus(event.reply_code, event.reply_text, "publish");
      Requeue(blamed, cause, /*count_attempt=*/blamed.empty());
      OpenConfirmChannel();
      MaybeFinishDrain();
      break;
    }
    default:
      break;
  }
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
      if (known_exchanges_.size() >= 100000) known_exchanges_.clear();
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
          Complete(it->batch, it->index, cause);
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
  auto settle = [&](InFlight& f) {
    if (f.settled) return;
    f.settled = true;
    stats_->unconfirmed.fetch_sub(1, std::memory_order_relaxed);
    if (!ack) {
      stats_->nacked.fetch_add(1, std::memory_order_relaxed);
      Complete(f.item.batch, f.item.index,
               absl::ResourceExhaustedError(
                   "the broker refused the message (basic.nack): a queue "
                   "it routes to may be full with x-overflow=reject-publish, "
                   "or the broker could not store it"));
    } else if (f.returned) {
      Complete(f.item.batch, f.item.index, f.return_status);
    } else {
      stats_->confirmed.fetch_add(1, std::memory_order_relaxed);
      Complete(f.item.batch, f.item.index, absl::OkStatus());
    }
  };
  if (multiple) {
    for (uint64_t k = 0; k <= tag - front; ++k) settle(inflight_[k]);
  } else {
    settle(inflight_[tag - front]);
  }
  while (!inflight_.empty() && inflight_.front().settled) inflight_.pop_front();
  Flush();
  MaybeFinishDrain();
}

void Publisher::OnReturn(const amqp::ReturnedMessage& r) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  stats_->returned.fetch_add(1, std::memory_order_relaxed);
  // basic.return carries no sequence number; it comes just before the ack of
  // its message. Match the oldest unsettled message with the same id,
  // exchange and routing key.
  const std::string* id =
      r.properties.message_id ? &*r.properties.message_id : nullptr;
  for (InFlight& f : inflight_) {
    if (f.settled || f.returned) continue;
    const amqp::OutgoingMessage& m = f.item.batch->messages_[f.item.index];
    if (m.exchange != r.exchange || m.routing_key != r.routing_key) continue;
    const auto& mid = m.properties.message_id;
    if ((id == nullptr) != !mid.has_value()) continue;
    if (id != nullptr && *id != *mid) continue;
    f.returned = true;
    f.return_status = ReturnStatus(r);
    return;
  }
}

}  // namespace amqpgw::core
