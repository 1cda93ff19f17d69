// Topology on one ConnectionWorker (the session's control connection):
//   TopologyService   the API's operations (declare, inspect, delete, purge,
//                     bind, unbind), recorded in a TopologyRegistry and
//                     declared again after every reconnect
//   TopologyClient    runs each request on a channel of its own
//   TopologyRegistry  the record of what the gateway declared
#ifndef AMQPGW_SERVER_CORE_TOPOLOGY_H_
#define AMQPGW_SERVER_CORE_TOPOLOGY_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/amqp/connection.h"
#include "server/amqp/types.h"
#include "server/base/sync.h"
#include "server/core/connection_worker.h"

namespace amqpgw::core {

// Runs each request on a channel of its own (a pool of up to `max_channels`
// reused channels), so that a request the broker refuses (which closes its
// channel) never disturbs another, and a slow one (deleting a long queue)
// does not hold up the rest. State lives on the worker's thread; Run() may be
// called from any thread and `done` runs on the worker thread.
class TopologyClient : private ConnectionWorker::Observer {
 public:
  // Writes the request's method on `channel`.
  using Send = absl::AnyInvocable<absl::Status(amqp::Connection& conn,
                                               uint16_t channel)>;
  using Done = absl::AnyInvocable<void(absl::StatusOr<amqp::Event>) &&>;

  struct Request {
    // For messages: "declare queue 'orders'".
    std::string what;
    Send send;
    // The reply that completes the request.
    amqp::Event::Type expect;
    // Waits for a connection until then; fails UNAVAILABLE or
    // DEADLINE_EXCEEDED after.
    absl::Time deadline;
    Done done;
  };

  TopologyClient(ConnectionWorker* worker, int max_channels = 16);
  ~TopologyClient() override;

  void Run(Request request);

 private:
  struct Op {
    Request request;
    EventLoop::TimerId timer = 0;
    bool finished = false;
  };
  struct Slot : public ConnectionWorker::ChannelHandler {
    enum class State { kOpening, kIdle, kBusy };
    TopologyClient* owner = nullptr;
    uint16_t channel = 0;
    State state = State::kOpening;
    std::shared_ptr<Op> op;
    void OnChannelEvent(amqp::Event& event) override {
      owner->OnSlotEvent(this, event);
    }
  };

  void OnConnected() override;
  void OnDisconnected(const absl::Status& why) override;

  void Pump();
  void Finish(const std::shared_ptr<Op>& op,
              absl::StatusOr<amqp::Event> result);
  void OnSlotEvent(Slot* slot, amqp::Event& event);
  void RemoveSlot(Slot* slot);

  ConnectionWorker* const worker_;
  const int max_channels_;
  // Worker thread only.
  std::deque<std::shared_ptr<Op>> pending_;
  std::vector<std::unique_ptr<Slot>> slots_;
};

// What the gateway declared through its API, to declare again after a
// reconnect (a restarted broker loses non-durable entities; a failover node
// may lack them). Bounded: beyond `max_entries` of a kind, new ones are not
// recorded. Thread-safe.
class TopologyRegistry {
 public:
  explicit TopologyRegistry(size_t max_entries = 10000)
      : max_entries_(max_entries) {}

  void QueueDeclared(const amqp::QueueDeclareArgs& args)
      ABSL_LOCKS_EXCLUDED(mu_);
  void QueueDeleted(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  void ExchangeDeclared(const amqp::ExchangeDeclareArgs& args)
      ABSL_LOCKS_EXCLUDED(mu_);
  void ExchangeDeleted(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  void Bound(const amqp::BindArgs& args) ABSL_LOCKS_EXCLUDED(mu_);
  void Unbound(const amqp::BindArgs& args) ABSL_LOCKS_EXCLUDED(mu_);

  struct Snapshot {
    std::vector<amqp::ExchangeDeclareArgs> exchanges;
    std::vector<amqp::QueueDeclareArgs> queues;
    std::vector<amqp::BindArgs> bindings;
  };
  Snapshot Get() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const size_t max_entries_;
  mutable amqpgw::Mutex mu_;
  std::vector<amqp::ExchangeDeclareArgs> exchanges_ ABSL_GUARDED_BY(mu_);
  std::vector<amqp::QueueDeclareArgs> queues_ ABSL_GUARDED_BY(mu_);
  std::vector<amqp::BindArgs> bindings_ ABSL_GUARDED_BY(mu_);
};

// What queue.declare-ok says.
struct QueueInfo {
  std::string name;
  uint32_t message_count = 0;
  uint32_t consumer_count = 0;
};

// The API's topology operations on `worker`, and their replay.
//
// Each operation goes to the broker through a TopologyClient (a channel of
// its own) and fails at `deadline` (UNAVAILABLE while the broker is
// unreachable, DEADLINE_EXCEEDED when it does not answer). What succeeds is
// recorded in the registry (durable and non-exclusive declarations,
// bindings; deletions remove); after every reconnect (ConnectionWorker
// Observer: OnConnected) the recorded topology is declared again, one step
// at a time and in order: exchanges, then queues, then bindings (a binding
// needs both ends). A step the broker refuses is logged and skipped; the
// replay goes on with the next.
//
// Threads: the operations may be called from any thread and never block;
// `done` runs on the worker's thread. The replay runs on the worker's
// thread (checked). Construct and destroy while the worker's thread does
// not run, or on it.
class TopologyService : private ConnectionWorker::Observer {
 public:
  // OK while operations may go to the broker; else the error they fail with
  // at once (the session's after Disconnect). Also stops a running replay.
  // Called on any thread.
  using Gate = std::function<absl::Status()>;
  template <typename T>
  using Callback = absl::AnyInvocable<void(T) &&>;

  // `worker` must outlive the service. Each replay step waits for the
  // broker up to `replay_timeout`.
  TopologyService(ConnectionWorker* worker, Gate gate,
                  absl::Duration replay_timeout);
  ~TopologyService() override;
  TopologyService(const TopologyService&) = delete;
  TopologyService& operator=(const TopologyService&) = delete;

  // `record`: declare it again after a reconnect (false for the gateway's
  // own queues, such as retry delay queues, that expire by themselves).
  void DeclareQueue(amqp::QueueDeclareArgs args, absl::Time deadline,
                    Callback<absl::StatusOr<QueueInfo>> done,
                    bool record = true);
  // A passive declare: the queue's counts, NOT_FOUND if it does not exist.
  void InspectQueue(std::string name, absl::Time deadline,
                    Callback<absl::StatusOr<QueueInfo>> done);
  // `done` gets the number of messages deleted or purged.
  void DeleteQueue(std::string name, bool if_unused, bool if_empty,
                   absl::Time deadline,
                   Callback<absl::StatusOr<uint32_t>> done);
  void PurgeQueue(std::string name, absl::Time deadline,
                  Callback<absl::StatusOr<uint32_t>> done);
  void DeclareExchange(amqp::ExchangeDeclareArgs args, absl::Time deadline,
                       Callback<absl::Status> done);
  void DeleteExchange(std::string name, bool if_unused, absl::Time deadline,
                      Callback<absl::Status> done);
  void BindQueue(amqp::BindArgs args, absl::Time deadline,
                 Callback<absl::Status> done);
  void UnbindQueue(amqp::BindArgs args, absl::Time deadline,
                   Callback<absl::Status> done);

  // What will be declared again after a reconnect. Thread-safe.
  TopologyRegistry::Snapshot Recorded() const { return registry_.Get(); }

 private:
  // ConnectionWorker::Observer: starts the replay.
  void OnConnected() override;
  void OnDisconnected(const absl::Status& why) override {}
  // Runs replay step `step` of `snapshot`, then the next.
  void Replay(std::shared_ptr<TopologyRegistry::Snapshot> snapshot,
              size_t step);
  // One operation: `send` writes it, the `expect` reply completes it and
  // `on_reply` turns that reply into the result (recording it).
  template <typename Result, typename OnReply>
  void Run(std::string what, TopologyClient::Send send,
           amqp::Event::Type expect, absl::Time deadline, OnReply on_reply,
           Callback<Result> done);

  ConnectionWorker* const worker_;
  const Gate gate_;
  const absl::Duration replay_timeout_;
  TopologyRegistry registry_;
  // Registered with the worker before the service: on a reconnect its
  // channels are ready to take the replay.
  TopologyClient client_;
};

}  // namespace amqpgw::core

#endif  // AMQPGW_SERVER_CORE_TOPOLOGY_H_
