// Session: the gateway's broker session.
//
// Owns the AMQP connections, each with its own thread (ConnectionWorker):
//   - control:     topology RPCs (TopologyService: declare, delete, purge,
//                  bind, and their replay after reconnects) and GetMessages
//                  (MessageGetter); never
//                  publishes, so a broker blocking publishers does not stop it
//   - publisher-N: confirmed publishing (Publisher)
//   - consumer-N:  subscriptions, one channel each (ConsumerPool)
// The session keeps the connection lifecycle (Connect, Disconnect, the
// aggregate state) and routes calls to the publishers, the consumers and
// the topology service. It is READY when all connections are.
//
// Every public method is thread-safe and non-blocking except Start() and
// Stop(); callbacks run on a worker thread and must not block. Calls made
// after Disconnect() fail with FAILED_PRECONDITION until Connect(). Calls made
// while reconnecting wait for the connection until their deadline.
#ifndef AMQPGW_SERVER_CORE_SESSION_H_
#define AMQPGW_SERVER_CORE_SESSION_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/amqp/broker_address.h"
#include "server/amqp/connection.h"
#include "server/base/sync.h"
#include "server/core/backoff.h"
#include "server/core/connection_worker.h"
#include "server/core/get_messages.h"
#include "server/core/publisher.h"
#include "server/core/retry.h"
#include "server/core/stats.h"
#include "server/core/subscription.h"
#include "server/core/topology.h"

namespace amqpgw::core {

struct SessionOptions {
  std::vector<amqp::BrokerAddress> brokers;
  amqp::OpenOptions open;
  // Opens every connection (ConnectionWorker::Options::factory). Empty: the
  // real one, amqp::RabbitConnection::Open.
  amqp::ConnectionFactory connection_factory;
  BackoffPolicy backoff;
  int publisher_connections = 1;
  int consumer_connections = 2;
  // ConnectionWorker::Options::read_pause of the consumer connections.
  absl::Duration consumer_read_pause = absl::ZeroDuration();
  uint32_t confirm_window = 1024;
  // Most bytes of messages accepted and not yet answered, over all callers;
  // beyond it Publish answers RESOURCE_EXHAUSTED instead of buffering more.
  int64_t max_pending_bytes = int64_t{256} << 20;
  // How long calls without a deadline wait for the broker.
  absl::Duration default_timeout = absl::Seconds(30);
  // How long Disconnect waits for outstanding confirms.
  absl::Duration drain_timeout = absl::Seconds(5);
  // Prefix of subscription ids; says which instance holds a stream.
  std::string instance_id = "amqpgw";
  // Appends routing to a new subscription id ("<instance_id>/<random>"),
  // e.g. where other instances can forward its Acks
  // (grpc_api::AckRouter::Seal). The result must not add a '/'. Empty: ids
  // stay as they are. Called on any thread.
  std::function<std::string(const std::string& id)> seal_subscription_id;
  bool connect_on_start = true;
};

enum class SessionState { kConnecting, kReady, kReconnecting, kDisconnected };

// The name the session's AMQP connections give the broker, before the
// worker's own ("amqpgw <instance_id> consumer-0"): how the gateway's own
// connections are told apart in the broker's management API.
std::string ConnectionName(absl::string_view instance_id);

const char* SessionStateName(SessionState state);

struct ConnectionInfo {
  SessionState state = SessionState::kDisconnected;
  std::string broker;  // host:port of the control connection's node
  std::string vhost;
  amqp::ServerInfo server;
  absl::Time connected_since = absl::InfinitePast();
  uint64_t reconnects = 0;
  std::string last_error;
  absl::Duration heartbeat;
  bool blocked = false;
  std::string blocked_reason;
  std::vector<std::string> brokers;  // host:port, failover order
};

class Session {
 public:
  explicit Session(SessionOptions options);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Called on any thread whenever the aggregate state changes. Set before
  // Start(); must not block.
  void SetStateListener(std::function<void(SessionState)> listener);

  // Starts the threads and, with connect_on_start, connecting.
  void Start();
  // Disconnects (draining confirms, ending streams) and joins every thread.
  // Blocks for at most drain_timeout plus the close timeouts.
  void Stop();

  // Starts the session if disconnected; `done` gets the state when READY or
  // at `deadline`, whichever is first.
  void Connect(absl::Time deadline,
               absl::AnyInvocable<void(ConnectionInfo) &&> done);
  // Drains publishers, ends streams with UNAVAILABLE, closes connections.
  void Disconnect(absl::AnyInvocable<void(ConnectionInfo) &&> done);

  ConnectionInfo Info() const;
  CountersSnapshot Counters() const { return stats_.Snapshot(); }
  // The live counters and latency histograms (read from any thread).
  const Stats& stats() const { return stats_; }
  const std::string& instance_id() const { return options_.instance_id; }
  bool enabled() const { return enabled_.load(); }
  // When to give up on a call: shortly before the caller's deadline (so the
  // caller receives the reason), or after default_timeout when it has none.
  absl::Time Deadline(absl::Time caller_deadline) const;

  // Publishes a batch; its done callback gets every result. Fails (and then
  // `done` is not called) with FAILED_PRECONDITION after Disconnect,
  // RESOURCE_EXHAUSTED when max_pending_bytes are already waiting.
  absl::Status Publish(std::shared_ptr<PublishBatch> batch);
  // The same on the publisher connection `publisher` (from PickPublisher),
  // for a caller whose successive batches must keep their order (a
  // PublishStream): one connection publishes its batches in order.
  absl::Status Publish(std::shared_ptr<PublishBatch> batch, size_t publisher);
  // Thread-safe. Runs `task` on the thread of publisher connection
  // `publisher`: a caller that feeds one publisher gathers there what
  // arrived until then into one batch, and hands it over with PublishHere
  // (one hop for all of them instead of one per message: PublishStream).
  void RunOnPublisher(size_t publisher, EventLoop::Task task);
  // Publish(batch, publisher), called from a RunOnPublisher task of the
  // same `publisher`, or from a batch's on_broker_settled there: queues the
  // batch without another hop.
  absl::Status PublishHere(std::shared_ptr<PublishBatch> batch,
                           size_t publisher);
  // The next publisher connection, round robin; any value is valid.
  size_t PickPublisher() { return next_publisher_.fetch_add(1); }

  // Declare, inspect, delete, purge, bind and unbind, on the control
  // connection; they fail with FAILED_PRECONDITION after Disconnect.
  TopologyService& topology() { return *topology_; }

  // GetMessages (basic.get, then requeue or ack) on the control connection,
  // a channel per call; fails with FAILED_PRECONDITION after Disconnect.
  void GetMessages(GetRequest request, MessageGetter::Done done) {
    getter_->Get(std::move(request), std::move(done));
  }

  // Starts a subscription; events go to `sink` until its OnEnd.
  absl::StatusOr<std::shared_ptr<Subscription>> Subscribe(
      SubscribeOptions options, SubscriptionSink* sink);
  void Ack(const std::string& subscription_id, std::vector<uint64_t> ids,
           AckCommand action,
           absl::AnyInvocable<void(absl::StatusOr<AckResult>) &&> done);
  // Ends every open stream with `why` (shutdown).
  void CancelStreams(const absl::Status& why) { consumers_->CancelAll(why); }
  // Graceful shutdown, first step: new streams are refused UNAVAILABLE,
  // open ones drain (Subscription::Drain with `why`) within `timeout`, and
  // every registered drain hook (AddDrainHook) is called with `why`.
  void DrainStreams(absl::Duration timeout, const std::string& why);
  // Waits until every stream has ended (subscriptions, and every drain hook
  // removed) or `deadline`; true when all have.
  bool WaitStreamsEnded(absl::Time deadline);
  // Streams that are not subscriptions (PublishStream) and must wind down on
  // shutdown too: `drain` is called once, by DrainStreams, with its `why`,
  // under the registry's lock (so never after RemoveDrainHook returned): it
  // must not block nor call AddDrainHook/RemoveDrainHook. Returns the hook's
  // id for RemoveDrainHook, or 0 without registering it once DrainStreams
  // was called (the caller refuses its stream UNAVAILABLE). Any thread.
  uint64_t AddDrainHook(absl::AnyInvocable<void(const std::string& why)> drain);
  // Removes hook `id` (0: nothing); waits for its call if one is under way.
  // Any thread.
  void RemoveDrainHook(uint64_t id);

 private:
  struct Waiter {
    uint64_t id;
    absl::AnyInvocable<void(ConnectionInfo) &&> done;
  };

  void OnWorkerStateChange();
  SessionState ComputeState() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DoConnect(absl::Time deadline,
                 absl::AnyInvocable<void(ConnectionInfo) &&> done);
  // Disconnect, with `why` for the log, the streams and the calls it ends.
  void DisconnectFor(absl::Status why,
                     absl::AnyInvocable<void(ConnectionInfo) &&> done);
  void DoDisconnect(absl::Status why,
                    absl::AnyInvocable<void(ConnectionInfo) &&> done);
  // Runs the next Connect/Disconnect deferred while one was in progress.
  void FinishTransition();
  static absl::Status DisconnectedError();
  // Publish's checks and counts, then hands the batch to the publisher
  // (`here`: on its thread, from a RunOnPublisher task).
  absl::Status Admit(std::shared_ptr<PublishBatch> batch, size_t publisher,
                     bool here);

  const SessionOptions options_;
  Stats stats_;
  std::vector<std::unique_ptr<ConnectionWorker>> workers_;  // all of them
  ConnectionWorker* control_ = nullptr;
  std::vector<ConnectionWorker*> publisher_workers_;
  std::vector<std::unique_ptr<Publisher>> publishers_;
  std::unique_ptr<TopologyService> topology_;
  std::unique_ptr<MessageGetter> getter_;
  std::unique_ptr<ConsumerPool> consumers_;
  std::unique_ptr<Retrier> retrier_;  // RETRY copies (server/core/retry.h)
  std::atomic<uint64_t> next_publisher_{0};
  std::atomic<int64_t> pending_bytes_{0};
  std::atomic<bool> enabled_{false};
  // DrainStreams was called: Subscribe refuses new streams.
  std::atomic<bool> draining_{false};
  // Drain hooks (AddDrainHook) of the streams that are not subscriptions.
  amqpgw::Mutex drain_mu_;
  amqpgw::CondVar drain_hooks_empty_;
  uint64_t next_drain_hook_ ABSL_GUARDED_BY(drain_mu_) = 1;
  absl::flat_hash_map<uint64_t,
                      absl::AnyInvocable<void(const std::string& why)>>
      drain_hooks_ ABSL_GUARDED_BY(drain_mu_);
  std::function<void(SessionState)> listener_;
  bool started_ = false;

  mutable amqpgw::Mutex mu_;
  SessionState state_ ABSL_GUARDED_BY(mu_) = SessionState::kDisconnected;
  absl::Time ready_since_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // READY at least once since the last Connect: a loss is RECONNECTING.
  bool ready_since_connect_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t reconnects_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_waiter_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  bool transition_busy_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<absl::AnyInvocable<void() &&>> deferred_ ABSL_GUARDED_BY(mu_);
};

}  // namespace amqpgw::core

#endif  // AMQPGW_SERVER_CORE_SESSION_H_
