#include "server/core/topology.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/amqp/reply.h"
#include "server/base/check.h"
#include "server/base/sync.h"
#include "spdlog/spdlog.h"

namespace amqpgw::core {

TopologyClient::TopologyClient(ConnectionWorker* worker, int max_channels)
    : worker_(worker), max_channels_(max_channels) {
  worker_->AddObserver(this);
}

TopologyClient::~TopologyClient() { worker_->RemoveObserver(this); }

void TopologyClient::Run(Request request) {
  worker_->Post([this, request = std::move(request)]() mutable {
    AMQPGW_DCHECK(worker_->InWorkerThread());
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
  AMQPGW_DCHECK(worker_->InWorkerThread());
  if (op->finished) return;
  op->finished = true;
  if (op->timer != 0) {
    worker_->CancelTimer(op->timer);
    op->timer = 0;
  }
  std::move(op->request.done)(std::move(result));
}

void TopologyClient::Pump() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
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
  AMQPGW_DCHECK(worker_->InWorkerThread());
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
  AMQPGW_DCHECK(worker_->InWorkerThread());
  worker_->ReleaseChannel(slot->channel);
  slots_.erase(std::remove_if(slots_.begin(), slots_.end(),
                              [slot](const std::unique_ptr<Slot>& s) {
                                return s.get() == slot;
                              }),
               slots_.end());
}

void TopologyClient::OnConnected() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  Pump();
}

void TopologyClient::OnDisconnected(const absl::Status& why) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
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

// --- TopologyService ---

namespace {

using Type = amqp::Event::Type;

QueueInfo ToQueueInfo(const amqp::Event& e) {
  return QueueInfo{e.queue, e.message_count, e.consumer_count};
}

}  // namespace

TopologyService::TopologyService(ConnectionWorker* worker, Gate gate,
                                 absl::Duration replay_timeout)
    : worker_(worker),
      gate_(std::move(gate)),
      replay_timeout_(replay_timeout),
      client_(worker) {
  worker_->AddObserver(this);
}

TopologyService::~TopologyService() { worker_->RemoveObserver(this); }

template <typename Result, typename OnReply>
void TopologyService::Run(std::string what, TopologyClient::Send send,
                          amqp::Event::Type expect, absl::Time deadline,
                          OnReply on_reply, Callback<Result> done) {
  absl::Status gate = gate_();
  if (!gate.ok()) {
    std::move(done)(std::move(gate));
    return;
  }
  TopologyClient::Request r;
  r.what = std::move(what);
  r.send = std::move(send);
  r.expect = expect;
  r.deadline = deadline;
  r.done = [on_reply = std::move(on_reply),
            done = std::move(done)](absl::StatusOr<amqp::Event> reply) mutable {
    if (!reply.ok()) return std::move(done)(reply.status());
    std::move(done)(on_reply(*reply));
  };
  client_.Run(std::move(r));
}

void TopologyService::DeclareQueue(amqp::QueueDeclareArgs args,
                                   absl::Time deadline,
                                   Callback<absl::StatusOr<QueueInfo>> done,
                                   bool record) {
  std::string what = args.name.empty()
                         ? std::string("declare a broker-named queue")
                         : absl::StrCat("declare queue '", args.name, "'");
  auto shared = std::make_shared<amqp::QueueDeclareArgs>(std::move(args));
  Run(
      std::move(what),
      [shared](amqp::Connection& c, uint16_t ch) {
        return c.DeclareQueue(ch, *shared);
      },
      Type::kQueueDeclareOk, deadline,
      [this, shared, record](const amqp::Event& e) {
        if (record) registry_.QueueDeclared(*shared);
        return ToQueueInfo(e);
      },
      std::move(done));
}

void TopologyService::InspectQueue(std::string name, absl::Time deadline,
                                   Callback<absl::StatusOr<QueueInfo>> done) {
  amqp::QueueDeclareArgs args;
  args.name = std::move(name);
  args.passive = true;
  std::string what = absl::StrCat("inspect queue '", args.name, "'");
  Run(
      std::move(what),
      [args](amqp::Connection& c, uint16_t ch) {
        return c.DeclareQueue(ch, args);
      },
      Type::kQueueDeclareOk, deadline, ToQueueInfo, std::move(done));
}

void TopologyService::DeleteQueue(std::string name, bool if_unused,
                                  bool if_empty, absl::Time deadline,
                                  Callback<absl::StatusOr<uint32_t>> done) {
  std::string what = absl::StrCat("delete queue '", name, "'");
  Run(
      std::move(what),
      [name, if_unused, if_empty](amqp::Connection& c, uint16_t ch) {
        return c.DeleteQueue(ch, name, if_unused, if_empty);
      },
      Type::kQueueDeleteOk, deadline,
      [this, name](const amqp::Event& e) {
        registry_.QueueDeleted(name);
        return e.message_count;
      },
      std::move(done));
}

void TopologyService::PurgeQueue(std::string name, absl::Time deadline,
                                 Callback<absl::StatusOr<uint32_t>> done) {
  std::string what = absl::StrCat("purge queue '", name, "'");
  Run(
      std::move(what),
      [name](amqp::Connection& c, uint16_t ch) {
        return c.PurgeQueue(ch, name);
      },
      Type::kQueuePurgeOk, deadline,
      [](const amqp::Event& e) { return e.message_count; }, std::move(done));
}

void TopologyService::DeclareExchange(amqp::ExchangeDeclareArgs args,
                                      absl::Time deadline,
                                      Callback<absl::Status> done) {
  std::string what = absl::StrCat(args.passive ? "check" : "declare",
                                  " exchange '", args.name, "'");
  auto shared = std::make_shared<amqp::ExchangeDeclareArgs>(std::move(args));
  Run(
      std::move(what),
      [shared](amqp::Connection& c, uint16_t ch) {
        return c.DeclareExchange(ch, *shared);
      },
      Type::kExchangeDeclareOk, deadline,
      [this, shared](const amqp::Event&) {
        registry_.ExchangeDeclared(*shared);
        return absl::OkStatus();
      },
      std::move(done));
}

void TopologyService::DeleteExchange(std::string name, bool if_unused,
                                     absl::Time deadline,
                                     Callback<absl::Status> done) {
  std::string what = absl::StrCat("delete exchange '", name, "'");
  Run(
      std::move(what),
      [name, if_unused](amqp::Connection& c, uint16_t ch) {
        return c.DeleteExchange(ch, name, if_unused);
      },
      Type::kExchangeDeleteOk, deadline,
      [this, name](const amqp::Event&) {
        registry_.ExchangeDeleted(name);
        return absl::OkStatus();
      },
      std::move(done));
}

void TopologyService::BindQueue(amqp::BindArgs args, absl::Time deadline,
                                Callback<absl::Status> done) {
  std::string what = absl::StrCat("bind queue '", args.queue, "' to exchange '",
                                  args.exchange, "'");
  auto shared = std::make_shared<amqp::BindArgs>(std::move(args));
  Run(
      std::move(what),
      [shared](amqp::Connection& c, uint16_t ch) {
        return c.BindQueue(ch, *shared);
      },
      Type::kQueueBindOk, deadline,
      [this, shared](const amqp::Event&) {
        registry_.Bound(*shared);
        return absl::OkStatus();
      },
      std::move(done));
}

void TopologyService::UnbindQueue(amqp::BindArgs args, absl::Time deadline,
                                  Callback<absl::Status> done) {
  std::string what = absl::StrCat("unbind queue '", args.queue,
                                  "' from exchange '", args.exchange, "'");
  auto shared = std::make_shared<amqp::BindArgs>(std::move(args));
  Run(
      std::move(what),
      [shared](amqp::Connection& c, uint16_t ch) {
        return c.UnbindQueue(ch, *shared);
      },
      Type::kQueueUnbindOk, deadline,
      [this, shared](const amqp::Event&) {
        registry_.Unbound(*shared);
        return absl::OkStatus();
      },
      std::move(done));
}

void TopologyService::OnConnected() {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  auto snapshot = std::make_shared<TopologyRegistry::Snapshot>(registry_.Get());
  size_t n = snapshot->exchanges.size() + snapshot->queues.size() +
             snapshot->bindings.size();
  if (n == 0) return;
  spdlog::info(
      "session: declaring {} recorded exchanges, queues and bindings again", n);
  Replay(std::move(snapshot), 0);
}

void TopologyService::Replay(
    std::shared_ptr<TopologyRegistry::Snapshot> snapshot, size_t step) {
  AMQPGW_DCHECK(worker_->InWorkerThread());
  // One at a time, in order: exchanges, queues, then bindings.
  size_t e = snapshot->exchanges.size(), q = snapshot->queues.size(),
         b = snapshot->bindings.size();
  if (step >= e + q + b || !gate_().ok()) return;
  TopologyClient::Request req;
  req.deadline = absl::Now() + replay_timeout_;
  req.done = [this, snapshot, step](absl::StatusOr<amqp::Event> r) mutable {
    if (!r.ok()) {
      spdlog::warn("session: re-declaring topology: {}",
                   std::string(r.status().message()));
    }
    Replay(std::move(snapshot), step + 1);
  };
  if (step < e) {
    const auto& args = snapshot->exchanges[step];
    req.what = absl::StrCat("re-declare exchange '", args.name, "'");
    req.expect = Type::kExchangeDeclareOk;
    req.send = [args](amqp::Connection& c, uint16_t ch) {
      return c.DeclareExchange(ch, args);
    };
  } else if (step < e + q) {
    const auto& args = snapshot->queues[step - e];
    req.what = absl::StrCat("re-declare queue '", args.name, "'");
    req.expect = Type::kQueueDeclareOk;
    req.send = [args](amqp::Connection& c, uint16_t ch) {
      return c.DeclareQueue(ch, args);
    };
  } else {
    const auto& args = snapshot->bindings[step - e - q];
    req.what = absl::StrCat("re-bind queue '", args.queue, "'");
    req.expect = Type::kQueueBindOk;
    req.send = [args](amqp::Connection& c, uint16_t ch) {
      return c.BindQueue(ch, args);
    };
  }
  client_.Run(std::move(req));
}

}  // namespace amqpgw::core
