// Topology RPCs (declare, inspect, delete, purge, bind) on one
// ConnectionWorker, and the record of what the gateway declared so that it
// can be declared again after a reconnect.
#ifndef AMQPGW_SERVER_CORE_TOPOLOGY_H_
#define AMQPGW_SERVER_CORE_TOPOLOGY_H_

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/amqp/connection.h"
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

}  // namespace amqpgw::core

#endif  // AMQPGW_SERVER_CORE_TOPOLOGY_H_
