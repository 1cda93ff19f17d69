// ConnectionWorker: one AMQP connection and the one thread that owns it.
//
// The worker's thread (an EventLoop) is the only thread that touches the
// amqp::Connection once it is open. Users of the connection (Publisher,
// Subscriptions, TopologyClient) live on that thread too: they are called
// back there (Observer, ChannelHandler, posted tasks, timers) and may call the
// "worker thread only" methods from those callbacks (checked by
// AMQPGW_DCHECK in debug, sanitizer and unit-test builds). Other threads hand
// work over with Post().
//
// The worker connects when enabled, tries the configured brokers in order
// (starting after the node it lost), waits with exponential backoff and
// jitter between full rounds, and reports every state change through the
// callback given at construction.
//
// Opening never blocks the worker's thread: each attempt (one broker) runs
// the blocking ConnectionFactory on a helper thread of its own, one attempt
// at a time, while the worker goes on running tasks and timers. The helper
// stores its result in `opened_` under `open_mu_` and posts OnOpened(); the
// worker thread takes the result out under the same mutex. That mutex is the
// hand-off: the helper never touches the connection after storing it, the
// worker never before taking it, so the connection is used by one thread at
// a time (amqp::Connection's rule). A connection that opens after Disable()
// is closed on arrival. Stop() joins a helper still inside the factory
// (at most OpenOptions::connect_timeout).
#ifndef AMQPGW_SERVER_CORE_CONNECTION_WORKER_H_
#define AMQPGW_SERVER_CORE_CONNECTION_WORKER_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/amqp/broker_address.h"
#include "server/amqp/connection.h"
#include "server/base/check.h"
#include "server/base/sync.h"
#include "server/core/backoff.h"
#include "server/core/event_loop.h"

namespace amqpgw::core {

// A consistent copy of a worker's state, for status reporting.
struct WorkerSnapshot {
  enum class State { kIdle, kConnecting, kConnected, kRetryWait };
  State state = State::kIdle;
  std::string broker;  // host:port of the current or last node
  std::string vhost;
  amqp::ServerInfo server;
  absl::Time connected_since = absl::InfinitePast();
  uint64_t reconnects = 0;
  std::string last_error;
  absl::Time last_error_time = absl::InfinitePast();
  absl::Duration heartbeat;
  bool blocked = false;
  std::string blocked_reason;
};

class ConnectionWorker : private EventLoop::IoSource {
 public:
  struct Options {
    // Thread name and part of the connection name the broker shows.
    std::string name = "amqp";
    std::vector<amqp::BrokerAddress> brokers;
    amqp::OpenOptions open;
    // Opens each connection, on a helper thread. Empty: the real one,
    // amqp::RabbitConnection::Open. Unit tests pass a fake.
    amqp::ConnectionFactory factory;
    BackoffPolicy backoff;
    // How long a graceful close waits for the broker's close-ok.
    absl::Duration close_timeout = absl::Seconds(2);
    // EventLoop::IoSource::ReadPause: the longest wait, after a read that
    // found many events, before the socket is read again (zero: never
    // wait). See ReadPauseAfter().
    absl::Duration read_pause = absl::ZeroDuration();
  };

  // A read that found fewer events than this is not followed by a pause:
  // a connection whose streams have fewer messages in flight than this
  // (prefetch 1, say) would otherwise wait for each delivery.
  static constexpr int kReadPauseMinEvents = 16;
  // A pause lasts at most this long per message of the connection's
  // prefetch windows (set_read_window), so that it never holds back small
  // windows: during a pause the broker sends only what the windows still
  // allow, and with this bound the windows allow at least 500,000 msg/s.
  static constexpr absl::Duration kReadPausePerWindowMessage =
      absl::Microseconds(2);
  // The pause after a read that dispatched `events` events on a connection
  // whose streams' prefetch windows add up to `window` messages.
  static absl::Duration ReadPauseAfter(int events, int64_t window,
                                       absl::Duration read_pause) {
    if (events < kReadPauseMinEvents) return absl::ZeroDuration();
    return std::min(read_pause, window * kReadPausePerWindowMessage);
  }

  // Receives the events of one channel. Worker thread.
  class ChannelHandler {
   public:
    virtual ~ChannelHandler() = default;
    virtual void OnChannelEvent(amqp::Event& event) = 0;
    // Once at the end of a read that gave this handler one or more events
    // (unless it released its channel meanwhile): work that is cheaper per
    // read than per event (a consumer's gRPC write of several deliveries)
    // goes here.
    virtual void OnReadDone() {}
  };

  // Connection lifecycle. Worker thread.
  class Observer {
   public:
    virtual ~Observer() = default;
    // connection() is usable; open channels now.
    virtual void OnConnected() = 0;
    // The connection is gone and every channel with it; `why` says why
    // (UNAVAILABLE for a loss, the Disable() status for a requested close).
    virtual void OnDisconnected(const absl::Status& why) = 0;
    // connection.blocked / connection.unblocked.
    virtual void OnBlocked(bool blocked, const std::string& reason) {}
  };

  // `on_state_change` runs on the worker thread after every state change.
  ConnectionWorker(Options options, std::function<void()> on_state_change);
  ~ConnectionWorker() override;
  ConnectionWorker(const ConnectionWorker&) = delete;
  ConnectionWorker& operator=(const ConnectionWorker&) = delete;

  // Starts the thread, idle until Enable(). Not thread-safe with Stop().
  void Start();
  // Drops the connection (without connection.close, without notifying
  // observers) and joins the thread and a helper still opening. Not from
  // the worker thread.
  void Stop();

  // Thread-safe.
  void Post(EventLoop::Task task);
  void Enable();
  // Closes the connection gracefully; observers see OnDisconnected(why).
  // `done` runs on the worker thread afterwards.
  void Disable(absl::Status why, absl::AnyInvocable<void() &&> done);
  WorkerSnapshot Snapshot() const ABSL_LOCKS_EXCLUDED(mu_);
  const std::string& name() const { return options_.name; }

  // --- Worker thread only (checked). ---
  bool InWorkerThread() const { return loop_.InLoopThread(); }
  // Null unless connected.
  amqp::Connection* connection() {
    AMQPGW_DCHECK(InWorkerThread());
    return conn_.get();
  }
  bool connected() const {
    AMQPGW_DCHECK(InWorkerThread());
    return conn_ != nullptr;
  }
  bool enabled() const {
    AMQPGW_DCHECK(InWorkerThread());
    return enabled_;
  }
  bool blocked() const {
    AMQPGW_DCHECK(InWorkerThread());
    return blocked_;
  }
  // The last connection error (for messages to callers).
  const absl::Status& last_error() const {
    AMQPGW_DCHECK(InWorkerThread());
    return last_error_;
  }
  // Also before Start() and after Stop() (users register while the worker
  // thread does not run yet).
  void AddObserver(Observer* observer);
  void RemoveObserver(Observer* observer);
  // Allocates a channel number for `handler` and sends channel.open; the
  // handler then sees kChannelOpenOk (or kChannelClose).
  absl::StatusOr<uint16_t> OpenChannel(ChannelHandler* handler);
  // Frees the number after channel.close-ok or a broker channel.close.
  void ReleaseChannel(uint16_t channel);
  size_t open_channels() const {
    AMQPGW_DCHECK(InWorkerThread());
    return open_channels_;
  }
  // The sum of the prefetch windows of the consumers on this connection
  // (ReadPauseAfter); zero, the default, means no read pause.
  void set_read_window(int64_t messages) {
    AMQPGW_DCHECK(InWorkerThread());
    read_window_ = messages;
  }
  // Timers that also notice a connection that failed during `fn`.
  EventLoop::TimerId RunAfter(absl::Duration delay,
                              absl::AnyInvocable<void()> fn);
  EventLoop::TimerId RunAt(absl::Time when, absl::AnyInvocable<void()> fn);
  void CancelTimer(EventLoop::TimerId id) {
    AMQPGW_DCHECK(InWorkerThread());
    loop_.Cancel(id);
  }

 private:
  // EventLoop::IoSource.
  int io_fd() override;
  bool HasBufferedInput() override;
  void OnIo() override;
  absl::Duration TickInterval() override;
  absl::Duration ReadPause() override {
    return ReadPauseAfter(last_read_events_, read_window_, options_.read_pause);
  }

  // Starts a round over the brokers unless connected or opening.
  void TryConnect();
  // Opens options_.brokers[index] on a helper thread (opener_).
  void StartOpen(size_t index);
  // The helper finished: takes its result (opened_) and adopts the
  // connection, tries the next broker, or waits for the next round.
  void OnOpened();
  void Adopt(size_t index, std::unique_ptr<amqp::Connection> conn);
  void ScheduleConnect(absl::Duration delay);
  // Drops a failed connection, notifies observers, schedules a reconnect.
  void Lose(absl::Status why);
  // Lose()s the connection if a send failed during the last callback.
  void CheckConnection();
  void Dispatch(amqp::Event& event);
  // Tells the handlers of read_channels_ OnReadDone; clears it.
  void EndRead();
  void UpdateSnapshot(absl::AnyInvocable<void(WorkerSnapshot&)> update)
      ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  const amqp::ConnectionFactory factory_;
  std::function<void()> on_state_change_;
  EventLoop loop_;

  mutable amqpgw::Mutex mu_;
  WorkerSnapshot snapshot_ ABSL_GUARDED_BY(mu_);

  // The hand-off from the helper thread (see the class comment): written
  // by the helper when its factory call returns, taken by OnOpened().
  amqpgw::Mutex open_mu_;
  std::optional<absl::StatusOr<std::unique_ptr<amqp::Connection>>> opened_
      ABSL_GUARDED_BY(open_mu_);

  // Worker thread only (and Stop(), once the worker thread is gone).
  // The helper of the current or last attempt; joined before the next
  // starts (it has finished by then: its last act is the post of
  // OnOpened()).
  std::thread opener_;
  bool opening_ = false;      // an attempt runs; OnOpened() is due
  size_t opening_index_ = 0;  // the broker it opens
  size_t round_tried_ = 0;    // brokers tried in this round
  std::unique_ptr<amqp::Connection> conn_;
  bool enabled_ = false;
  bool blocked_ = false;
  bool ever_connected_ = false;
  absl::Status last_error_;
  Backoff backoff_;
  size_t next_broker_ = 0;
  size_t current_broker_ = 0;
  absl::Time connected_at_ = absl::InfinitePast();
  EventLoop::TimerId connect_timer_ = 0;
  std::vector<Observer*> observers_;
  std::vector<ChannelHandler*> handlers_;  // index = channel number
  size_t open_channels_ = 0;
  std::vector<uint16_t> free_channels_;
  uint16_t next_channel_ = 1;
  amqp::Event event_;  // reused for every read
  // Events the last OnIo() dispatched (ReadPause).
  int last_read_events_ = 0;
  // Channels given an event by the current OnIo(), each once (marked by
  // channel number in read_marked_), for EndRead.
  std::vector<uint16_t> read_channels_;
  std::vector<bool> read_marked_;
  int64_t read_window_ = 0;  // set_read_window
};

}  // namespace amqpgw::core

#endif  // AMQPGW_SERVER_CORE_CONNECTION_WORKER_H_
