#include "server/core/connection_worker.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/amqp/rabbit_connection.h"
#include "server/base/check.h"
#include "server/base/sync.h"
#include "spdlog/spdlog.h"

namespace amqpgw::core {

ConnectionWorker::ConnectionWorker(Options options,
                                   std::function<void()> on_state_change)
    : options_(std::move(options)),
      factory_(options_.factory
                   ? options_.factory
                   : amqp::ConnectionFactory(&amqp::RabbitConnection::Open)),
      on_state_change_(std::move(on_state_change)),
      loop_(options_.name),
      backoff_(options_.backoff) {
  amqpgw::MutexLock lock(&mu_);
  if (!options_.brokers.empty()) {
    snapshot_.broker = options_.brokers[0].HostPort();
    snapshot_.vhost = options_.brokers[0].vhost;
  }
}

ConnectionWorker::~ConnectionWorker() { Stop(); }

void ConnectionWorker::Start() { loop_.Start(this); }

void ConnectionWorker::Stop() {
  AMQPGW_DCHECK(!InWorkerThread());
  loop_.Stop();
  // A helper still inside the factory finishes its attempt (bounded by the
  // connect timeout); what it opened is dropped below.
  if (opener_.joinable()) opener_.join();
  // Both threads are gone: this thread owns the connections now.
  conn_.reset();
  amqpgw::MutexLock lock(&open_mu_);
  opened_.reset();
}

void ConnectionWorker::Post(EventLoop::Task task) {
  loop_.Post([this, task = std::move(task)]() mutable {
    std::move(task)();
    CheckConnection();
  });
}

EventLoop::TimerId ConnectionWorker::RunAfter(absl::Duration delay,
                                              absl::AnyInvocable<void()> fn) {
  return RunAt(absl::Now() + delay, std::move(fn));
}

EventLoop::TimerId ConnectionWorker::RunAt(absl::Time when,
                                           absl::AnyInvocable<void()> fn) {
  AMQPGW_DCHECK(InWorkerThread());
  return loop_.RunAt(when, [this, fn = std::move(fn)]() mutable {
    fn();
    CheckConnection();
  });
}

void ConnectionWorker::Enable() {
  loop_.Post([this] {
    if (enabled_) return;
    enabled_ = true;
    ever_connected_ = false;
    backoff_.Reset();
    UpdateSnapshot([](WorkerSnapshot& s) {
      s.state = WorkerSnapshot::State::kConnecting;
    });
    ScheduleConnect(absl::ZeroDuration());
  });
}

void ConnectionWorker::Disable(absl::Status why,
                               absl::AnyInvocable<void() &&> done) {
  loop_.Post([this, why = std::move(why), done = std::move(done)]() mutable {
    enabled_ = false;
    if (connect_timer_ != 0) {
      loop_.Cancel(connect_timer_);
      connect_timer_ = 0;
    }
    bool had_connection = conn_ != nullptr;
    if (conn_ != nullptr) {
      conn_->Close(options_.close_timeout);
      conn_.reset();
      spdlog::info("{}: closed the connection to {} ({})", options_.name,
                   options_.brokers[current_broker_].HostPort(),
                   std::string(why.message()));
    }
    std::fill(handlers_.begin(), handlers_.end(), nullptr);
    open_channels_ = 0;
    free_channels_.clear();
    next_channel_ = 1;
    blocked_ = false;
    UpdateSnapshot([](WorkerSnapshot& s) {
      s.state = WorkerSnapshot::State::kIdle;
      s.blocked = false;
      s.blocked_reason.clear();
    });
    if (had_connection) {
      std::vector<Observer*> observers = observers_;
      for (Observer* o : observers) o->OnDisconnected(why);
    }
    std::move(done)();
  });
}

WorkerSnapshot ConnectionWorker::Snapshot() const {
  amqpgw::MutexLock lock(&mu_);
  return snapshot_;
}

void ConnectionWorker::UpdateSnapshot(
    absl::AnyInvocable<void(WorkerSnapshot&)> update) {
  {
    amqpgw::MutexLock lock(&mu_);
    update(snapshot_);
  }
  if (on_state_change_) on_state_change_();
}

void ConnectionWorker::AddObserver(Observer* observer) {
  AMQPGW_DCHECK(loop_.InLoopThreadOrStopped());
  observers_.push_back(observer);
}

void ConnectionWorker::RemoveObserver(Observer* observer) {
  AMQPGW_DCHECK(loop_.InLoopThreadOrStopped());
  observers_.erase(std::remove(observers_.begin(), observers_.end(), observer),
                   observers_.end());
}

absl::StatusOr<uint16_t> ConnectionWorker::OpenChannel(
    ChannelHandler* handler) {
  AMQPGW_DCHECK(InWorkerThread());
  if (conn_ == nullptr)
    return last_error_.ok() ? absl::UnavailableError("not connected")
                            : last_error_;
  uint16_t ch;
  if (!free_channels_.empty()) {
    ch = free_channels_.back();
    free_channels_.pop_back();
  } else if (next_channel_ <= conn_->channel_max()) {
    ch = next_channel_++;
  } else {
    return absl::ResourceExhaustedError(absl::StrCat(
        "all ", conn_->channel_max(), " channels of the gateway's ",
        options_.name, " connection to the broker are in use"));
  }
  if (handlers_.size() <= ch) handlers_.resize(ch + 1, nullptr);
  handlers_[ch] = handler;
  ++open_channels_;
  absl::Status s = conn_->OpenChannel(ch);
  if (!s.ok()) return s;
  return ch;
}

void ConnectionWorker::ReleaseChannel(uint16_t channel) {
  AMQPGW_DCHECK(InWorkerThread());
  if (channel >= handlers_.size() || handlers_[channel] == nullptr) return;
  handlers_[channel] = nullptr;
  --open_channels_;
  free_channels_.push_back(channel);
}

int ConnectionWorker::io_fd() {
  AMQPGW_DCHECK(InWorkerThread());
  return conn_ ? conn_->fd() : -1;
}

bool ConnectionWorker::HasBufferedInput() {
  AMQPGW_DCHECK(InWorkerThread());
  return conn_ != nullptr && conn_->HasBufferedInput();
}

absl::Duration ConnectionWorker::TickInterval() {
  AMQPGW_DCHECK(InWorkerThread());
  if (conn_ == nullptr || conn_->heartbeat() <= absl::ZeroDuration()) {
    return absl::InfiniteDuration();
  }
  return conn_->heartbeat() / 4;
}

void ConnectionWorker::OnIo() {
  AMQPGW_DCHECK(InWorkerThread());
  last_read_events_ = 0;
  // Bounded so that posted work is not starved by a busy socket.
  for (int n = 0; n < 2048 && conn_ != nullptr; ++n) {
    absl::StatusOr<bool> got = conn_->Read(&event_);
    if (!got.ok()) {
      Lose(got.status());
      break;
    }
    if (!*got) break;
    ++last_read_events_;
    Dispatch(event_);
    CheckConnection();
    if (conn_ == nullptr) break;
    // Nothing left in rabbitmq-c's buffer: another read would only find the
    // socket empty (a recv and a poll for nothing). The loop polls the
    // socket next and calls again when more arrives. When a read pause will
    // follow, the loop leaves the socket alone for a while, so read on
    // until it is empty (one recv for nothing per pause): else a pause
    // would let through at most one buffer (128 KiB) per pause.
    if (!conn_->HasBufferedInput() &&
        ReadPauseAfter(last_read_events_, read_window_, options_.read_pause) ==
            absl::ZeroDuration()) {
      break;
    }
  }
  EndRead();
}

void ConnectionWorker::EndRead() {
  AMQPGW_DCHECK(InWorkerThread());
  // Handlers are looked up again: one may have released its channel since
  // its event (and a lost connection released them all).
  for (uint16_t ch : read_channels_) {
    read_marked_[ch] = false;
    if (ch < handlers_.size() && handlers_[ch] != nullptr) {
      handlers_[ch]->OnReadDone();
    }
  }
  read_channels_.clear();
}

void ConnectionWorker::Dispatch(amqp::Event& event) {
  AMQPGW_DCHECK(InWorkerThread());
  using Type = amqp::Event::Type;
  if (event.type == Type::kConnectionBlocked ||
      event.type == Type::kConnectionUnblocked) {
    blocked_ = event.type == Type::kConnectionBlocked;
    std::string reason = blocked_ ? event.blocked_reason : "";
    if (blocked_) {
      spdlog::warn("{}: broker blocked publishing: {}", options_.name, reason);
    } else {
      spdlog::info("{}: broker unblocked publishing", options_.name);
    }
    UpdateSnapshot([&](WorkerSnapshot& s) {
      s.blocked = blocked_;
      s.blocked_reason = reason;
    });
    std::vector<Observer*> observers = observers_;
    for (Observer* o : observers) o->OnBlocked(blocked_, reason);
    return;
  }
  if (event.channel < handlers_.size() && handlers_[event.channel] != nullptr) {
    if (read_marked_.size() <= event.channel) {
      read_marked_.resize(event.channel + 1, false);
    }
    if (!read_marked_[event.channel]) {
      read_marked_[event.channel] = true;
      read_channels_.push_back(event.channel);
    }
    handlers_[event.channel]->OnChannelEvent(event);
  }
}

void ConnectionWorker::CheckConnection() {
  AMQPGW_DCHECK(InWorkerThread());
  if (conn_ != nullptr && !conn_->status().ok()) Lose(conn_->status());
}

void ConnectionWorker::ScheduleConnect(absl::Duration delay) {
  AMQPGW_DCHECK(InWorkerThread());
  if (connect_timer_ != 0) loop_.Cancel(connect_timer_);
  connect_timer_ = loop_.RunAfter(delay, [this] {
    connect_timer_ = 0;
    TryConnect();
  });
}

void ConnectionWorker::TryConnect() {
  AMQPGW_DCHECK(InWorkerThread());
  if (!enabled_ || conn_ != nullptr || opening_) return;
  round_tried_ = 0;
  StartOpen(next_broker_ % options_.brokers.size());
}

void ConnectionWorker::StartOpen(size_t index) {
  AMQPGW_DCHECK(InWorkerThread());
  const amqp::BrokerAddress& address = options_.brokers[index];
  UpdateSnapshot([&](WorkerSnapshot& s) {
    s.state = WorkerSnapshot::State::kConnecting;
    s.broker = address.HostPort();
    s.vhost = address.vhost;
  });
  amqp::OpenOptions open = options_.open;
  open.connection_name = absl::StrCat(open.connection_name, " ", options_.name);
  // The last helper posted OnOpened() as its last act: it has ended or is
  // about to.
  if (opener_.joinable()) opener_.join();
  opening_ = true;
  opening_index_ = index;
  opener_ = std::thread([this, address, open = std::move(open)] {
    absl::StatusOr<std::unique_ptr<amqp::Connection>> c =
        factory_(address, open);
    {
      // From here on the connection is the worker's (class comment).
      amqpgw::MutexLock lock(&open_mu_);
      opened_ = std::move(c);
    }
    loop_.Post([this] { OnOpened(); });
  });
}

void ConnectionWorker::OnOpened() {
  AMQPGW_DCHECK(InWorkerThread());
  if (!opening_) return;
  opening_ = false;
  absl::StatusOr<std::unique_ptr<amqp::Connection>> c =
      absl::UnknownError("no connection");
  {
    amqpgw::MutexLock lock(&open_mu_);
    if (opened_.has_value()) c = *std::move(opened_);
    opened_.reset();
  }
  const size_t index = opening_index_;
  const amqp::BrokerAddress& address = options_.brokers[index];
  if (!enabled_) {
    // Disable() came while it opened.
    if (c.ok()) (*c)->Close(options_.close_timeout);
    return;
  }
  if (c.ok()) {
    Adopt(index, *std::move(c));
    return;
  }
  last_error_ = c.status();
  spdlog::warn("{}: cannot connect to {}: {}", options_.name,
               address.Redacted(), std::string(c.status().message()));
  UpdateSnapshot([&](WorkerSnapshot& s) {
    s.last_error = std::string(c.status().message());
    s.last_error_time = absl::Now();
  });
  const size_t n = options_.brokers.size();
  if (++round_tried_ < n) {
    StartOpen((index + 1) % n);
    return;
  }
  absl::Duration delay = backoff_.Next();
  UpdateSnapshot(
      [](WorkerSnapshot& s) { s.state = WorkerSnapshot::State::kRetryWait; });
  spdlog::info("{}: next connection attempt in {}", options_.name,
               absl::FormatDuration(absl::Trunc(delay, absl::Milliseconds(1))));
  ScheduleConnect(delay);
}

void ConnectionWorker::Adopt(size_t index,
                             std::unique_ptr<amqp::Connection> conn) {
  AMQPGW_DCHECK(InWorkerThread());
  const amqp::BrokerAddress& address = options_.brokers[index];
  conn_ = std::move(conn);
  current_broker_ = index;
  next_broker_ = index;
  connected_at_ = absl::Now();
  blocked_ = false;
  bool reconnect = ever_connected_;
  ever_connected_ = true;
  handlers_.assign(static_cast<size_t>(conn_->channel_max()) + 1, nullptr);
  open_channels_ = 0;
  free_channels_.clear();
  next_channel_ = 1;
  spdlog::info("{}: connected to {} ({} {}, heartbeat {})", options_.name,
               address.Redacted(), conn_->server_info().product,
               conn_->server_info().version,
               absl::FormatDuration(conn_->heartbeat()));
  UpdateSnapshot([&](WorkerSnapshot& s) {
    s.state = WorkerSnapshot::State::kConnected;
    s.server = conn_->server_info();
    s.connected_since = absl::Now();
    s.heartbeat = conn_->heartbeat();
    s.blocked = false;
    s.blocked_reason.clear();
    if (reconnect) ++s.reconnects;
  });
  std::vector<Observer*> observers = observers_;
  for (Observer* o : observers) {
    if (conn_ == nullptr) break;  // lost again inside a callback
    o->OnConnected();
  }
  CheckConnection();
}

void ConnectionWorker::Lose(absl::Status why) {
  AMQPGW_DCHECK(InWorkerThread());
  if (conn_ == nullptr) return;
  spdlog::warn("{}: lost the connection to {}: {}", options_.name,
               options_.brokers[current_broker_].HostPort(),
               std::string(why.message()));
  conn_.reset();
  last_error_ = why;
  std::fill(handlers_.begin(), handlers_.end(), nullptr);
  open_channels_ = 0;
  blocked_ = false;
  // Try the next node first: the one we lost may be down.
  next_broker_ = (current_broker_ + 1) % options_.brokers.size();
  UpdateSnapshot([&](WorkerSnapshot& s) {
    s.state = WorkerSnapshot::State::kRetryWait;
    s.last_error = std::string(why.message());
    s.last_error_time = absl::Now();
    s.blocked = false;
    s.blocked_reason.clear();
  });
  std::vector<Observer*> observers = observers_;
  for (Observer* o : observers) o->OnDisconnected(why);
  if (!enabled_) return;
  // A connection that lived a while is retried at once; one that failed
  // right after opening (a node still starting, a flapping link) backs off.
  absl::Duration delay = absl::ZeroDuration();
  if (absl::Now() - connected_at_ < absl::Seconds(5)) {
    delay = backoff_.Next();
  } else {
    backoff_.Reset();
  }
  ScheduleConnect(delay);
}

}  // namespace amqpgw::core
