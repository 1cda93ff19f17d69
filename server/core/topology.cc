#include "server/core/topology.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/amqp/reply.h"
#include "server/base/sync.h"

namespace amqpgw::core {

TopologyClient::TopologyClient(ConnectionWorker* worker, int max_channels)
    : worker_(worker), max_channels_(max_channels) {
  worker_->AddObserver(this);
}

TopologyClient::~TopologyClient() { worker_->RemoveObserver(this); }

void TopologyClient::Run(Request request) {
  worker_->Post([this, request = std::move(request)]() mutable {
    auto op = std::make_shared<Op>();
    op->request = std::move(request);
    op->timer = worker_->RunAt(op->request.deadline, [this, op] {
      op->timer = 0;
      if (op->finished) return;
      if (!worker_->connected()) {
        std::string why = worker_->last_error().ok()
                              ? std::string("not connected yet")
                              : std::string(worker_->last_error().message());
        Finish(op, absl::UnavailableError(
                       absl::StrCat(op->request.what,
                                    ": broker unreachable within the "
                                    "deadline (",
                                    why, ")")));
      } else {
        Finish(op, absl::DeadlineExceededError(absl::StrCat(
                       op->request.what,
                       ": no reply from the broker before "
                       "the deadline; it may or may not have been applied")));
      }
    });
    pending_.push_back(std::move(op));
    Pump();
  });
}

void TopologyClient::Finish(const std::shared_ptr<Op>& op,
                            absl::StatusOr<amqp::Event> result) {
  if (op->finished) return;
  op->finished = true;
  if (op->timer != 0) {
    worker_->CancelTimer(op->timer);
    op->timer = 0;
  }
  std::move(op->request.done)(std::move(result));
}

void TopologyClient::Pump() {
  amqp::Connection* conn = worker_->connection();
  if (conn == nullptr) return;
  while (!pending_.empty()) {
    if (pending_.front()->finished) {
      pending_.pop_front();
      continue;
    }
    Slot* idle = nullptr;
    for (auto& s : slots_) {
      if (s->state == Slot::State::kIdle) {
        idle = s.get();
        break;
      }
    }
    if (idle == nullptr) {
      if (static_cast<int>(slots_.size()) < max_channels_) {
        auto slot = std::make_unique<Slot>();
        slot->owner = this;
        absl::StatusOr<uint16_t> ch = worker_->OpenChannel(slot.get());
        if (!ch.ok()) return;
        slot->channel = *ch;
        slots_.push_back(std::move(slot));
      }
      return;  // continues when a channel opens or frees up
    }
    std::shared_ptr<Op> op = std::move(pending_.front());
    pending_.pop_front();
    idle->op = op;
    idle->state = Slot::State::kBusy;
    absl::Status s = op->request.send(*conn, idle->channel);
    if (!s.ok() && conn->status().ok()) {
      // Rejected before anything was sent (e.g. a table too deep).
      idle->op = nullptr;
      idle->state = Slot::State::kIdle;
      Finish(op, s);
      continue;
    }
    if (!s.ok()) return;  // connection failed; OnDisconnected follows
  }
}

void TopologyClient::OnSlotEvent(Slot* slot, amqp::Event& event) {
  using Type = amqp::Event::Type;
  if (event.type == Type::kChannelOpenOk) {
    slot->state = Slot::State::kIdle;
    Pump();
    return;
  }
  if (event.type == Type::kChannelClose) {
    std::shared_ptr<Op> op = std::move(slot->op);
    RemoveSlot(slot);  // the broker closed it; a new one is opened on demand
    if (op != nullptr) {
      Finish(op, amqp::ReplyToStatus(event.reply_code, event.reply_text,
                                     op->request.what));
    }
    Pump();
    return;
  }
  if (slot->state != Slot::State::kBusy || slot->op == nullptr ||
      event.type != slot->op->request.expect) {
    return;
  }
  std::shared_ptr<Op> op = std::move(slot->op);
  slot->state = Slot::State::kIdle;
  Finish(op, std::move(event));
  Pump();
}

void TopologyClient::RemoveSlot(Slot* slot) {
  worker_->ReleaseChannel(slot->channel);
  slots_.erase(std::remove_if(slots_.begin(), slots_.end(),
                              [slot](const std::unique_ptr<Slot>& s) {
                                return s.get() == slot;
                              }),
               slots_.end());
}

void TopologyClient::OnConnected() { Pump(); }

void TopologyClient::OnDisconnected(const absl::Status& why) {
  std::vector<std::unique_ptr<Slot>> slots = std::move(slots_);
  slots_.clear();
  bool loss = why.code() == absl::StatusCode::kUnavailable;
  for (auto& slot : slots) {
    if (slot->op == nullptr) continue;
    Finish(slot->op,
           loss ? absl::UnavailableError(absl::StrCat(
                      slot->op->request.what,
                      ": the broker connection was "
                      "lost before the reply; it may or may not have been "
                      "applied (",
                      why.message(), ")"))
                : why);
  }
  if (!loss) {
    std::deque<std::shared_ptr<Op>> pending = std::move(pending_);
    pending_.clear();
    for (auto& op : pending) Finish(op, why);
  }
}

// --- TopologyRegistry ---

namespace {
bool SameBinding(const amqp::BindArgs& a, const amqp::BindArgs& b) {
  return a.queue == b.queue && a.exchange == b.exchange &&
         a.routing_key == b.routing_key && a.arguments == b.arguments;
}
}  // namespace

void TopologyRegistry::QueueDeclared(const amqp::QueueDeclareArgs& args) {
  if (args.name.empty() || args.passive || args.exclusive) return;
  amqpgw::MutexLock lock(&mu_);
  for (auto& q : queues_) {
    if (q.name == args.name) {
      q = args;
      return;
    }
  }
  if (queues_.size() < max_entries_) queues_.push_back(args);
}

void TopologyRegistry::QueueDeleted(const std::string& name) {
  amqpgw::MutexLock lock(&mu_);
  queues_.erase(std::remove_if(queues_.begin(), queues_.end(),
                               [&](const auto& q) { return q.name == name; }),
                queues_.end());
  bindings_.erase(
      std::remove_if(bindings_.begin(), bindings_.end(),
                     [&](const auto& b) { return b.queue == name; }),
      bindings_.end());
}

void TopologyRegistry::ExchangeDeclared(const amqp::ExchangeDeclareArgs& args) {
  if (args.name.empty() || args.passive) return;
  amqpgw::MutexLock lock(&mu_);
  for (auto& e : exchanges_) {
    if (e.name == args.name) {
      e = args;
      return;
    }
  }
  if (exchanges_.size() < max_entries_) exchanges_.push_back(args);
}

void TopologyRegistry::ExchangeDeleted(const std::string& name) {
  amqpgw::MutexLock lock(&mu_);
  exchanges_.erase(
      std::remove_if(exchanges_.begin(), exchanges_.end(),
                     [&](const auto& e) { return e.name == name; }),
      exchanges_.end());
  bindings_.erase(
      std::remove_if(bindings_.begin(), bindings_.end(),
                     [&](const auto& b) { return b.exchange == name; }),
      bindings_.end());
}

void TopologyRegistry::Bound(const amqp::BindArgs& args) {
  amqpgw::MutexLock lock(&mu_);
  for (const auto& b : bindings_) {
    if (SameBinding(b, args)) return;
  }
  if (bindings_.size() < max_entries_) bindings_.push_back(args);
}

void TopologyRegistry::Unbound(const amqp::BindArgs& args) {
  amqpgw::MutexLock lock(&mu_);
  bindings_.erase(
      std::remove_if(bindings_.begin(), bindings_.end(),
                     [&](const auto& b) { return SameBinding(b, args); }),
      bindings_.end());
}

TopologyRegistry::Snapshot TopologyRegistry::Get() const {
  amqpgw::MutexLock lock(&mu_);
  return Snapshot{exchanges_, queues_, bindings_};
}

}  // namespace amqpgw::core
