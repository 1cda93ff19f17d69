#include "server/core/get_messages.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/amqp/codec.h"
#include "server/amqp/reply.h"
#include "server/base/check.h"

namespace amqpgw::core {

namespace {

size_t MessageBytes(const amqp::Delivery& d) {
  absl::StatusOr<std::string> props = amqp::EncodeProperties(d.properties);
  return d.body.size() + (props.ok() ? props->size() : 0) + d.exchange.size() +
         d.routing_key.size();
}

}  // namespace

MessageGetter::MessageGetter(ConnectionWorker* worker, Gate gate,
                             int max_channels)
    : worker_(worker),
      gate_(std::move(gate)),
      max_channels_(static_cast<size_t>(std::max(1, max_channels))) {
  worker_->AddObserver(this);
}

MessageGetter::~MessageGetter() { worker_->RemoveObserver(this); }

void MessageGetter::Get(GetRequest request, Done done) {
  if (absl::Status gate = gate_(); !gate.ok()) {
    std::move(done)(std::move(gate));
    return;
  }
  auto op = std::make_shared<Op>();
  op->owner = this;
  op->what = absl::StrCat("get messages from queue '", request.queue, "'");
  op->request = std::move(request);
  op->done = std::move(done);
  worker_->Post([this, op = std::move(op)]() mutable {
    AMQPGW_DCHECK(worker_->InWorkerThread());
    op->timer =
        worker_->RunAt(op->request.deadline, [this, op] { OnDeadline(op); });
    pending_.push_back(std::move(op));
    Pump();
  });
}

void MessageGetter::OnDeadline(const std::shared_ptr<Op>& op) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  op->timer = 0;
  if (op->finished) return;
  if (op->step == Op::Step::kWaiting) {
    std::string why = worker_->last_error().ok()
                          ? std::string("not connected yet")
                          : std::string(worker_->last_error().message());
    Finish(op.get(), absl::UnavailableError(absl::StrCat(
                         op->what, ": broker unreachable within the deadline (",
                         why, ")")));
    return;
  }
  Finish(op.get(),
         absl::DeadlineExceededError(absl::StrCat(
             op->what, ": no answer from the broker before the deadline; ",
             op->ack_sent
                 ? "the ack was sent: the messages may or may not have been "
                   "removed"
                 : "nothing was removed (the broker puts back what the "
                   "gateway took when it closes the channel)")));
  // The channel is closed once it is open; close-ok frees it.
  op->abandoned = true;
  if (op->step == Op::Step::kInspecting || op->step == Op::Step::kGetting) {
    CloseChannel(op.get());
  }
}

void MessageGetter::Pump() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (worker_->connection() == nullptr) return;
  while (!pending_.empty() && active_.size() < max_channels_) {
    std::shared_ptr<Op> op = std::move(pending_.front());
    pending_.pop_front();
    if (op->finished) continue;
    absl::StatusOr<uint16_t> ch = worker_->OpenChannel(op.get());
    if (!ch.ok()) {
      pending_.push_front(std::move(op));
      return;  // no channel number free, or the connection failed
    }
    op->channel = *ch;
    op->step = Op::Step::kOpening;
    active_.push_back(std::move(op));
  }
}

void MessageGetter::OnEvent(Op* op, amqp::Event& event) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  using Type = amqp::Event::Type;
  amqp::Connection* conn = worker_->connection();
  if (event.type == Type::kChannelClose) {
    // Refused by the broker (the queue does not exist, no permission, an
    // exclusive queue of another connection). It puts back what the channel
    // had unacked.
    worker_->ReleaseChannel(op->channel);
    absl::Status s =
        amqp::ReplyToStatus(event.reply_code, event.reply_text, op->what);
    Finish(op, s);
    Remove(op);
    return;
  }
  if (event.type == Type::kChannelCloseOk) {
    worker_->ReleaseChannel(op->channel);
    Finish(op, std::move(op->result));
    Remove(op);
    return;
  }
  if (conn == nullptr || op->step == Op::Step::kClosing) return;
  switch (event.type) {
    case Type::kChannelOpenOk: {
      if (op->abandoned) {
        CloseChannel(op);
        return;
      }
      amqp::QueueDeclareArgs args;
      args.name = op->request.queue;
      args.passive = true;
      op->step = Op::Step::kInspecting;
      if (absl::Status s = conn->DeclareQueue(op->channel, args); !s.ok()) {
        SendFailed(op, s);
      }
      return;
    }
    case Type::kQueueDeclareOk:
      if (op->step != Op::Step::kInspecting) return;
      op->result.message_count = event.message_count;
      if (event.message_count == 0) {
        // Empty, or a stream queue (never basic.get there: see the header).
        Settle(op);
        return;
      }
      op->step = Op::Step::kGetting;
      if (absl::Status s = conn->BasicGet(op->channel, op->request.queue,
                                          /*no_ack=*/false);
          !s.ok()) {
        SendFailed(op, s);
      }
      return;
    case Type::kBasicGetOk: {
      if (op->step != Op::Step::kGetting) return;
      op->last_tag = event.delivery.delivery_tag;
      op->bytes += MessageBytes(event.delivery);
      op->result.message_count = event.message_count;
      op->result.messages.push_back(std::move(event.delivery));
      if (op->result.messages.size() >= op->request.count ||
          op->bytes >= kMaxBytes || event.message_count == 0) {
        Settle(op);
        return;
      }
      if (absl::Status s = conn->BasicGet(op->channel, op->request.queue,
                                          /*no_ack=*/false);
          !s.ok()) {
        SendFailed(op, s);
      }
      return;
    }
    case Type::kBasicGetEmpty:
      if (op->step != Op::Step::kGetting) return;
      op->result.message_count = 0;
      Settle(op);
      return;
    default:
      return;
  }
}

void MessageGetter::Settle(Op* op) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  amqp::Connection* conn = worker_->connection();
  if (op->request.ack && op->last_tag != 0) {
    if (absl::Status s =
            conn->Ack(op->channel, op->last_tag, /*multiple=*/true);
        !s.ok()) {
      SendFailed(op, s);
      return;
    }
    op->ack_sent = true;
  }
  // Without ack, the close puts the messages back in their places.
  CloseChannel(op);
}

void MessageGetter::CloseChannel(Op* op) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  amqp::Connection* conn = worker_->connection();
  if (conn == nullptr) return;
  op->step = Op::Step::kClosing;
  if (absl::Status s = conn->CloseChannel(op->channel); !s.ok()) {
    SendFailed(op, s);
  }
}

void MessageGetter::SendFailed(Op* op, const absl::Status& s) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  amqp::Connection* conn = worker_->connection();
  if (conn != nullptr && conn->status().ok() &&
      op->step != Op::Step::kClosing) {
    // Nothing was sent and the connection is fine: give up the call.
    Finish(op, s);
    op->abandoned = true;
    CloseChannel(op);
  }
  // Otherwise the connection failed: OnDisconnected ends the call.
}

void MessageGetter::Finish(Op* op, absl::StatusOr<GetResult> result) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (op->finished) return;
  op->finished = true;
  if (op->timer != 0) {
    worker_->CancelTimer(op->timer);
    op->timer = 0;
  }
  std::move(op->done)(std::move(result));
}

void MessageGetter::Remove(Op* op) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  // Keep it alive until this returns: the caller is inside its handler.
  std::shared_ptr<Op> keep;
  for (auto it = active_.begin(); it != active_.end(); ++it) {
    if (it->get() == op) {
      keep = std::move(*it);
      active_.erase(it);
      break;
    }
  }
  worker_->Post([keep = std::move(keep)] {});
  Pump();
}

void MessageGetter::OnConnected() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  Pump();
}

void MessageGetter::OnDisconnected(const absl::Status& why) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  std::vector<std::shared_ptr<Op>> active = std::move(active_);
  active_.clear();
  for (auto& op : active) {
    Finish(op.get(),
           absl::UnavailableError(absl::StrCat(
               op->what, ": the broker connection was lost before the answer (",
               why.message(), "); ",
               op->ack_sent ? "the ack was sent: the messages may or may not "
                              "have been removed"
                            : "nothing was removed")));
  }
  if (why.code() != absl::StatusCode::kUnavailable) {
    // Disconnect: the calls still waiting fail with its reason.
    std::deque<std::shared_ptr<Op>> pending = std::move(pending_);
    pending_.clear();
    for (auto& op : pending) Finish(op.get(), why);
  }
}

}  // namespace amqpgw::core
