#include "server/core/session.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/base/check.h"
#include "server/base/sync.h"
#include "spdlog/spdlog.h"

namespace amqpgw::core {

const char* SessionStateName(SessionState state) {
  switch (state) {
    case SessionState::kConnecting:
      return "CONNECTING";
    case SessionState::kReady:
      return "READY";
    case SessionState::kReconnecting:
      return "RECONNECTING";
    case SessionState::kDisconnected:
      return "DISCONNECTED";
  }
  return "?";
}

absl::Status Session::DisconnectedError() {
  return absl::FailedPreconditionError(
      "disconnected from the broker by a Disconnect call; call Connect");
}

std::string ConnectionName(absl::string_view instance_id) {
  return absl::StrCat("amqpgw ", instance_id);
}

Session::Session(SessionOptions options) : options_(std::move(options)) {
  auto make = [&](std::string name,
                  absl::Duration read_pause = absl::ZeroDuration()) {
    ConnectionWorker::Options o;
    o.name = std::move(name);
    o.read_pause = read_pause;
    o.brokers = options_.brokers;
    o.open = options_.open;
    o.open.connection_name = ConnectionName(options_.instance_id);
    o.factory = options_.connection_factory;
    o.backoff = options_.backoff;
    workers_.push_back(std::make_unique<ConnectionWorker>(
        o, [this] { OnWorkerStateChange(); }));
    return workers_.back().get();
  };
  control_ = make("control");
  for (int i = 0; i < std::max(1, options_.publisher_connections); ++i) {
    publisher_workers_.push_back(make(absl::StrCat("publisher-", i)));
  }
  std::vector<ConnectionWorker*> consumer_workers;
  for (int i = 0; i < std::max(1, options_.consumer_connections); ++i) {
    consumer_workers.push_back(
        make(absl::StrCat("consumer-", i), options_.consumer_read_pause));
  }
  Publisher::Options po;
  po.confirm_window = options_.confirm_window;
  for (ConnectionWorker* w : publisher_workers_) {
    publishers_.push_back(
        std::make_unique<Publisher>(w, po, &stats_, &pending_bytes_));
  }
  topology_ = std::make_unique<TopologyService>(
      control_,
      [this] {
        return enabled_.load() ? absl::OkStatus() : DisconnectedError();
      },
      options_.default_timeout);
  getter_ = std::make_unique<MessageGetter>(control_, [this] {
    return enabled_.load() ? absl::OkStatus() : DisconnectedError();
  });
  consumers_ =
      std::make_unique<ConsumerPool>(consumer_workers, options_.instance_id,
                                     &stats_, options_.seal_subscription_id);
  retrier_ = std::make_unique<Retrier>(
      [this](amqp::QueueDeclareArgs args, absl::Time deadline,
             absl::AnyInvocable<void(absl::Status) &&> done) {
        topology_->DeclareQueue(
            std::move(args), deadline,
            [done = std::move(done)](absl::StatusOr<QueueInfo> r) mutable {
              std::move(done)(r.status());
            },
            /*record=*/false);
      },
      [this](std::shared_ptr<PublishBatch> batch) {
        return Publish(std::move(batch));
      });
  consumers_->set_retrier(retrier_.get());
}

Session::~Session() {
  Stop();
  consumers_.reset();
  getter_.reset();
  topology_.reset();
  publishers_.clear();
  workers_.clear();
}

void Session::SetStateListener(std::function<void(SessionState)> listener) {
  listener_ = std::move(listener);
}

void Session::Start() {
  started_ = true;
  for (auto& w : workers_) w->Start();
  if (options_.connect_on_start) {
    Connect(absl::Now(), [](ConnectionInfo) {});
  }
}

void Session::Stop() {
  if (!started_) return;
  started_ = false;
  amqpgw::Notification done;
  // Not UNAVAILABLE: to the connections' observers that would be a loss to
  // recover from.
  DisconnectFor(absl::CancelledError("the daemon is shutting down"),
                [&](ConnectionInfo) { done.Notify(); });
  done.WaitForNotification();
  for (auto& w : workers_) w->Stop();
}

absl::Time Session::Deadline(absl::Time caller_deadline) const {
  absl::Time now = absl::Now();
  if (caller_deadline == absl::InfiniteFuture()) {
    return now + options_.default_timeout;
  }
  // Answer a little before the caller gives up, so that it gets the reason
  // (UNAVAILABLE "broker unreachable", "blocked", ...) rather than its own
  // library's bare DEADLINE_EXCEEDED.
  absl::Duration left = caller_deadline - now;
  absl::Duration margin = std::min(absl::Milliseconds(200), left / 10);
  return std::min(caller_deadline - margin, now + options_.default_timeout);
}

SessionState Session::ComputeState() const {
  if (!enabled_.load()) return SessionState::kDisconnected;
  for (const auto& w : workers_) {
    if (w->Snapshot().state != WorkerSnapshot::State::kConnected) {
      return ready_since_connect_ ? SessionState::kReconnecting
                                  : SessionState::kConnecting;
    }
  }
  return SessionState::kReady;
}

void Session::OnWorkerStateChange() {
  SessionState now;
  std::vector<Waiter> ready_waiters;
  {
    // Computed under the lock so that concurrent changes commit in order.
    amqpgw::MutexLock lock(&mu_);
    now = ComputeState();
    if (now == state_) return;
    if (now == SessionState::kReady) {
      // READY again without a Connect in between: a loss was recovered. (A
      // Connect after Disconnect starts afresh and is not a reconnect.)
      if (ready_since_connect_) {
        ++reconnects_;
        stats_.reconnects.fetch_add(1, std::memory_order_relaxed);
      }
      ready_since_connect_ = true;
      ready_since_ = absl::Now();
      ready_waiters.swap(waiters_);
    }
    state_ = now;
  }
  spdlog::info("session: {}", SessionStateName(now));
  if (listener_) listener_(now);
  if (!ready_waiters.empty()) {
    ConnectionInfo info = Info();
    for (Waiter& w : ready_waiters) std::move(w.done)(info);
  }
}

ConnectionInfo Session::Info() const {
  ConnectionInfo info;
  WorkerSnapshot control = control_->Snapshot();
  info.broker = control.broker;
  info.vhost = control.vhost;
  info.server = control.server;
  info.heartbeat = control.heartbeat;
  absl::Time last_error_time = absl::InfinitePast();
  for (const auto& w : workers_) {
    WorkerSnapshot s = w->Snapshot();
    if (!s.last_error.empty() && s.last_error_time > last_error_time) {
      last_error_time = s.last_error_time;
      // "publisher-0 connection: ...": which of the gateway's connections.
      info.last_error = absl::StrCat(w->name(), " connection: ", s.last_error);
    }
    if (s.blocked) {
      info.blocked = true;
      info.blocked_reason = s.blocked_reason;
    }
  }
  for (const auto& b : options_.brokers) info.brokers.push_back(b.HostPort());
  {
    amqpgw::MutexLock lock(&mu_);
    info.state = state_;
    info.reconnects = reconnects_;
    if (state_ == SessionState::kReady) info.connected_since = ready_since_;
  }
  return info;
}

void Session::Connect(absl::Time deadline,
                      absl::AnyInvocable<void(ConnectionInfo) &&> done) {
  {
    amqpgw::MutexLock lock(&mu_);
    if (transition_busy_) {
      deferred_.push_back([this, deadline, done = std::move(done)]() mutable {
        DoConnect(deadline, std::move(done));
      });
      return;
    }
  }
  DoConnect(deadline, std::move(done));
}

void Session::DoConnect(absl::Time deadline,
                        absl::AnyInvocable<void(ConnectionInfo) &&> done) {
  if (!enabled_.exchange(true)) {
    {
      amqpgw::MutexLock lock(&mu_);
      ready_since_connect_ = false;
    }
    spdlog::info("session: connecting to {}",
                 options_.brokers.front().Redacted());
    for (auto& w : workers_) w->Enable();
    OnWorkerStateChange();
  }
  uint64_t id;
  {
    amqpgw::MutexLock lock(&mu_);
    if (state_ == SessionState::kReady || deadline <= absl::Now()) {
      id = 0;
    } else {
      id = next_waiter_++;
      waiters_.push_back(Waiter{id, std::move(done)});
    }
  }
  if (id == 0) {
    std::move(done)(Info());
    return;
  }
  control_->Post([this, id, deadline] {
    control_->RunAt(deadline, [this, id] {
      AMQPGW_DCHECK(control_->InWorkerThread());
      absl::AnyInvocable<void(ConnectionInfo) &&> expired;
      {
        amqpgw::MutexLock lock(&mu_);
        for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
          if (it->id == id) {
            expired = std::move(it->done);
            waiters_.erase(it);
            break;
          }
        }
      }
      if (expired) std::move(expired)(Info());
    });
  });
}

void Session::Disconnect(absl::AnyInvocable<void(ConnectionInfo) &&> done) {
  DisconnectFor(DisconnectedError(), std::move(done));
}

void Session::DisconnectFor(absl::Status why,
                            absl::AnyInvocable<void(ConnectionInfo) &&> done) {
  {
    amqpgw::MutexLock lock(&mu_);
    if (transition_busy_) {
      deferred_.push_back(
          [this, why = std::move(why), done = std::move(done)]() mutable {
            DoDisconnect(std::move(why), std::move(done));
          });
      return;
    }
    transition_busy_ = true;
  }
  DoDisconnect(std::move(why), std::move(done));
}

void Session::DoDisconnect(absl::Status why,
                           absl::AnyInvocable<void(ConnectionInfo) &&> done) {
  {
    amqpgw::MutexLock lock(&mu_);
    transition_busy_ = true;
  }
  if (!enabled_.exchange(false)) {
    std::move(done)(Info());
    FinishTransition();
    return;
  }
  spdlog::info("session: disconnecting ({})", std::string(why.message()));
  OnWorkerStateChange();
  // Waiting Connect calls get the state as it is.
  std::vector<Waiter> waiters;
  {
    amqpgw::MutexLock lock(&mu_);
    waiters.swap(waiters_);
  }
  for (Waiter& w : waiters) std::move(w.done)(Info());

  consumers_->CancelAll(absl::UnavailableError(why.message()));
  // Publishers first (their confirms), then every connection.
  struct Progress {
    std::atomic<int> publishers;
    std::atomic<int> workers;
    absl::AnyInvocable<void(ConnectionInfo) &&> done;
  };
  auto progress = std::make_shared<Progress>();
  progress->publishers = static_cast<int>(publishers_.size());
  progress->workers = static_cast<int>(workers_.size());
  progress->done = std::move(done);
  auto close_all = [this, progress, why] {
    for (auto& w : workers_) {
      w->Disable(why, [this, progress] {
        if (--progress->workers > 0) return;
        std::move(progress->done)(Info());
        FinishTransition();
      });
    }
  };
  absl::Time drain_deadline = absl::Now() + options_.drain_timeout;
  for (auto& p : publishers_) {
    p->Drain(drain_deadline, why, [progress, close_all] {
      if (--progress->publishers == 0) close_all();
    });
  }
}

void Session::FinishTransition() {
  std::vector<absl::AnyInvocable<void() &&>> deferred;
  {
    amqpgw::MutexLock lock(&mu_);
    transition_busy_ = false;
    deferred.swap(deferred_);
  }
  for (auto& d : deferred) std::move(d)();
}

absl::Status Session::Publish(std::shared_ptr<PublishBatch> batch) {
  return Publish(std::move(batch), PickPublisher());
}

absl::Status Session::Publish(std::shared_ptr<PublishBatch> batch,
                              size_t publisher) {
  return Admit(std::move(batch), publisher, /*here=*/false);
}

absl::Status Session::PublishHere(std::shared_ptr<PublishBatch> batch,
                                  size_t publisher) {
  return Admit(std::move(batch), publisher, /*here=*/true);
}

void Session::RunOnPublisher(size_t publisher, EventLoop::Task task) {
  publishers_[publisher % publishers_.size()]->Run(std::move(task));
}

absl::Status Session::Admit(std::shared_ptr<PublishBatch> batch,
                            size_t publisher, bool here) {
  if (!enabled_.load()) return DisconnectedError();
  int64_t bytes = static_cast<int64_t>(batch->bytes());
  // (max_pending_bytes >= max_request_bytes: a batch alone always fits.)
  if (pending_bytes_.fetch_add(bytes) + bytes > options_.max_pending_bytes) {
    pending_bytes_.fetch_sub(bytes);
    return absl::ResourceExhaustedError(absl::StrCat(
        "the gateway already holds ", options_.max_pending_bytes >> 20,
        " MiB of messages waiting for the broker (--max_pending_bytes); retry "
        "later"));
  }
  Publisher* p = publishers_[publisher % publishers_.size()].get();
  stats_.published.fetch_add(batch->size(), std::memory_order_relaxed);
  uint64_t body_bytes = 0;
  for (size_t i = 0; i < batch->size(); ++i) {
    body_bytes += batch->message(i).body.size();
  }
  stats_.published_bytes.fetch_add(body_bytes, std::memory_order_relaxed);
  if (here) {
    p->PublishHere(std::move(batch));
  } else {
    p->Publish(std::move(batch));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<Subscription>> Session::Subscribe(
    SubscribeOptions options, SubscriptionSink* sink) {
  if (!enabled_.load()) return DisconnectedError();
  if (draining_.load()) {
    return absl::UnavailableError(
        "the gateway is shutting down: open the stream on another instance");
  }
  return consumers_->Subscribe(std::move(options), sink);
}

void Session::DrainStreams(absl::Duration timeout, const std::string& why) {
  {
    amqpgw::MutexLock lock(&drain_mu_);
    draining_.store(true);
    // Under the lock: a hook's stream cannot go (RemoveDrainHook waits).
    for (auto& [id, drain] : drain_hooks_) drain(why);
  }
  consumers_->DrainAll(timeout, why);
}

bool Session::WaitStreamsEnded(absl::Time deadline) {
  bool subscriptions = consumers_->WaitAllEnded(deadline);
  amqpgw::MutexLock lock(&drain_mu_);
  while (!drain_hooks_.empty()) {
    if (drain_hooks_empty_.WaitWithDeadline(&drain_mu_, deadline) &&
        !drain_hooks_.empty()) {
      return false;
    }
  }
  return subscriptions;
}

uint64_t Session::AddDrainHook(
    absl::AnyInvocable<void(const std::string& why)> drain) {
  amqpgw::MutexLock lock(&drain_mu_);
  if (draining_.load()) return 0;
  uint64_t id = next_drain_hook_++;
  drain_hooks_.emplace(id, std::move(drain));
  return id;
}

void Session::RemoveDrainHook(uint64_t id) {
  if (id == 0) return;
  amqpgw::MutexLock lock(&drain_mu_);
  drain_hooks_.erase(id);
  if (drain_hooks_.empty()) drain_hooks_empty_.SignalAll();
}

void Session::Ack(const std::string& subscription_id, std::vector<uint64_t> ids,
                  AckCommand action,
                  absl::AnyInvocable<void(absl::StatusOr<AckResult>) &&> done) {
  consumers_->Ack(subscription_id, std::move(ids), std::move(action),
                  std::move(done));
}

}  // namespace amqpgw::core
