// A scripted amqp::Connection for unit tests of core/ (no broker, no
// network, no sleeps).
//
//   FakeBroker    the ConnectionFactory: scripts opens (fail, block until
//                 released or the connect timeout, succeed) and hands out a
//                 FakePeer for every connection it opens.
//   FakePeer      the broker's end of one connection, for the test: what the
//                 gateway sent, and what the broker does next (confirms,
//                 returns, deliveries, channel.close, connection.close, a
//                 lost socket, replies held back to model a slow broker).
//   FakeConnection the gateway's end (the amqp::Connection a
//                 ConnectionWorker owns); a thin view of its FakePeer.
//
// Like RabbitMQ, the peer answers channel.open, confirm.select, basic.qos,
// basic.consume, basic.cancel, channel.close and the queue and exchange
// methods at once (unless the test holds or refuses them), numbers publishes
// on a confirm channel 1, 2, ... and deliveries on a channel 1, 2, ..., and
// closes a channel with 406 when the gateway acks a delivery tag the channel
// does not have outstanding (what a stale ack would do to a real channel).
// It confirms nothing by itself unless Options::auto_confirm.
//
// Thread safety: FakePeer and FakeBroker are thread-safe (one mutex per
// peer): the test thread scripts while the worker thread reads and sends.
// The FakeConnection follows amqp::Connection's rule (one thread at a time).
// fd() is an eventfd, readable while events wait to be read, so the worker's
// EventLoop wakes when the test pushes an event. Waits (WaitUntil,
// WaitForPeer, ...) are woken by the change they wait for and bounded by a
// deadline; nothing sleeps.
#ifndef AMQPGW_SERVER_AMQP_TESTING_FAKE_CONNECTION_H_
#define AMQPGW_SERVER_AMQP_TESTING_FAKE_CONNECTION_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/amqp/broker_address.h"
#include "server/amqp/connection.h"
#include "server/amqp/types.h"
#include "server/base/sync.h"

namespace amqpgw::amqp::testing {

// How long waits in tests wait by default before they report failure.
inline constexpr absl::Duration kWaitTimeout = absl::Seconds(10);

// One method the gateway sent, as the peer recorded it.
struct Sent {
  enum class Kind {
    kChannelOpen,
    kChannelClose,
    kConfirmSelect,
    kQos,
    kConsume,
    kCancel,
    kAck,
    kNack,
    kPublish,
    kQueueDeclare,
    kQueueDelete,
    kQueuePurge,
    kQueueBind,
    kQueueUnbind,
    kExchangeDeclare,
    kExchangeDelete,
    kBasicGet,
  };
  Kind kind;
  uint16_t channel = 0;
  // kPublish: the message and its confirm sequence number (0 on a channel
  // not in confirm mode).
  OutgoingMessage message;
  uint64_t seq = 0;
  // kAck, kNack.
  uint64_t delivery_tag = 0;
  // kBasicGet (the queue is in `name`).
  bool no_ack = false;
  bool multiple = false;
  bool requeue = false;
  // kQos.
  uint16_t prefetch = 0;
  bool global = false;
  // kCancel: the consumer tag; kQueueDelete, kQueuePurge, kBasicGet: the
  // queue;
  // kExchangeDelete: the exchange; kQueueDeclare, kExchangeDeclare: the
  // name from the arguments.
  std::string name;
  bool if_unused = false;
  bool if_empty = false;
  QueueDeclareArgs queue;
  ExchangeDeclareArgs exchange;
  BindArgs bind;
  ConsumeArgs consume;
};

const char* SentKindName(Sent::Kind kind);

// A message in one of the fake broker's queues (FakePeer::AddMessages).
struct QueuedMessage {
  std::string body;
  bool redelivered = false;
  Properties properties;
};

class FakePeer {
 public:
  struct Options {
    uint16_t channel_max = 2047;
    uint32_t frame_max = 131072;
    ServerInfo server{"RabbitMQ", "3.10.8-fake", "Erlang/OTP", "fake"};
    // Ack every publish on a confirm channel as soon as it is sent.
    bool auto_confirm = false;
  };

  FakePeer(BrokerAddress address, std::string connection_name, Options options);
  ~FakePeer();
  FakePeer(const FakePeer&) = delete;
  FakePeer& operator=(const FakePeer&) = delete;

  const BrokerAddress& address() const { return address_; }
  // OpenOptions::connection_name the gateway gave ("amqpgw x publisher-0").
  const std::string& connection_name() const { return connection_name_; }

  // --- What the gateway did. ---
  std::vector<Sent> sent() const ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<Sent> sent(Sent::Kind kind) const ABSL_LOCKS_EXCLUDED(mu_);
  size_t count(Sent::Kind kind) const ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until `condition` holds for everything sent so far (re-evaluated
  // after every change of the peer); false at the timeout.
  bool WaitUntil(const std::function<bool(const std::vector<Sent>&)>& condition,
                 absl::Duration timeout = kWaitTimeout)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until at least `n` methods of `kind` were sent.
  bool WaitForCount(Sent::Kind kind, size_t n,
                    absl::Duration timeout = kWaitTimeout)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until every event pushed so far was read by the gateway.
  bool WaitUntilRead(absl::Duration timeout = kWaitTimeout)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The channel of the last `kind` sent (0 if none): the confirm channel is
  // channel_of(kConfirmSelect).
  uint16_t channel_of(Sent::Kind kind) const ABSL_LOCKS_EXCLUDED(mu_);
  // Channels open now (opened by the gateway, not closed by either side).
  std::set<uint16_t> open_channels() const ABSL_LOCKS_EXCLUDED(mu_);
  // True once the gateway called Close() (a graceful connection.close).
  bool closed_by_gateway() const ABSL_LOCKS_EXCLUDED(mu_);
  // True once the FakeConnection was destroyed.
  bool destroyed() const ABSL_LOCKS_EXCLUDED(mu_);
  bool WaitForDestroyed(absl::Duration timeout = kWaitTimeout)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Delivery tags handed out on `channel` and neither acked, nacked nor
  // requeued, in order.
  std::vector<uint64_t> unacked(uint16_t channel) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // Delivery tags the broker took back (nack/reject with requeue, or the
  // channel or connection closed with them unacked), in the order it put
  // them back: (channel, tag) pairs.
  std::vector<std::pair<uint16_t, uint64_t>> requeued() const
      ABSL_LOCKS_EXCLUDED(mu_);

  // --- Queues for basic.get. ---
  // Appends messages to `queue` (created empty if new). A queue the test
  // added answers a passive queue.declare with its count and basic.get with
  // its first message (held unacked on the channel, put back in front in
  // order, redelivered, when nacked with requeue or when the channel or the
  // connection closes); basic.get of any other queue is get-empty.
  void AddMessages(const std::string& queue,
                   std::vector<QueuedMessage> messages)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The messages ready in `queue` now, in order (not those taken and
  // unacked).
  std::vector<QueuedMessage> queue(const std::string& name) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // --- What the broker does. Each pushes an event the gateway reads. ---
  // basic.ack / basic.nack on a confirm channel for sequence number `seq`.
  void Confirm(uint16_t channel, uint64_t seq, bool multiple = false)
      ABSL_LOCKS_EXCLUDED(mu_);
  void NackPublish(uint16_t channel, uint64_t seq, bool multiple = false)
      ABSL_LOCKS_EXCLUDED(mu_);
  // basic.return of the publish with sequence number `seq` (its exchange,
  // routing key, properties and body), reply 312 NO_ROUTE by default.
  void Return(uint16_t channel, uint64_t seq, uint16_t reply_code = 312,
              std::string reply_text = "NO_ROUTE") ABSL_LOCKS_EXCLUDED(mu_);
  // basic.deliver to the consumer on `channel`; returns its delivery tag.
  uint64_t Deliver(uint16_t channel, std::string body, bool redelivered = false,
                   Properties properties = {}) ABSL_LOCKS_EXCLUDED(mu_);
  // basic.cancel of the consumer on `channel` (queue deleted).
  void CancelConsumer(uint16_t channel) ABSL_LOCKS_EXCLUDED(mu_);
  // channel.close from the broker (the fake has "sent" close-ok), naming
  // the method it refuses by class and method id (0: none).
  void CloseChannel(uint16_t channel, uint16_t reply_code,
                    std::string reply_text, uint16_t class_id = 0,
                    uint16_t method_id = 0) ABSL_LOCKS_EXCLUDED(mu_);
  // connection.blocked / connection.unblocked.
  void Block(std::string reason) ABSL_LOCKS_EXCLUDED(mu_);
  void Unblock() ABSL_LOCKS_EXCLUDED(mu_);
  // connection.close from the broker: the gateway's next read fails with
  // UNAVAILABLE "closed by the broker (code text)" carrying the code
  // (BrokerCloseCode), after the events pushed before it.
  void CloseConnection(uint16_t reply_code, std::string reply_text)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The socket fails: the next read (after the events pushed before) and
  // every send from then on fail with UNAVAILABLE `why`.
  void Drop(std::string why = "connection reset by peer")
      ABSL_LOCKS_EXCLUDED(mu_);
  // Any event, as is.
  void Push(Event event) ABSL_LOCKS_EXCLUDED(mu_);

  // --- How the broker answers. ---
  // While held, the replies to `kind` wait (a slow broker) until
  // ReleaseHeld() pushes them, in the order they were due.
  void Hold(Sent::Kind kind) ABSL_LOCKS_EXCLUDED(mu_);
  void ReleaseHeld() ABSL_LOCKS_EXCLUDED(mu_);
  // The next `count` methods of `kind` (naming `name`, when not empty: the
  // queue or exchange) are refused: the broker closes their channel with
  // `reply_code` and `reply_text` instead of answering.
  void Refuse(Sent::Kind kind, uint16_t reply_code, std::string reply_text,
              std::string name = "", int count = 1) ABSL_LOCKS_EXCLUDED(mu_);
  void set_auto_confirm(bool on) ABSL_LOCKS_EXCLUDED(mu_);
  // What the gateway's end reports as written but not sent yet
  // (Connection::UnsentBytes): a broker or link that stopped taking bytes.
  void set_unsent_bytes(size_t bytes) ABSL_LOCKS_EXCLUDED(mu_);
  size_t unsent_bytes() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  friend class FakeConnection;
  struct Refusal {
    Sent::Kind kind;
    std::string name;
    uint16_t reply_code;
    std::string reply_text;
    int count;
  };
  struct ChannelState {
    bool confirm = false;
    uint64_t next_seq = 1;
    uint64_t next_delivery_tag = 1;
    std::string consumer_tag;
    std::vector<uint64_t> unacked;  // ascending
    // Messages taken by basic.get and not settled: tag -> (queue, message).
    std::map<uint64_t, std::pair<std::string, QueuedMessage>> gotten;
  };
  // An event, or the failure of the connection at that point.
  using Inbound = std::variant<Event, absl::Status>;

  // Gateway side (FakeConnection), on the owning thread.
  absl::Status Record(Sent sent) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<bool> Read(Event* event) ABSL_LOCKS_EXCLUDED(mu_);
  bool HasBufferedInput() const ABSL_LOCKS_EXCLUDED(mu_);
  int fd() const ABSL_LOCKS_EXCLUDED(mu_);
  void Close() ABSL_LOCKS_EXCLUDED(mu_);
  void Destroyed() ABSL_LOCKS_EXCLUDED(mu_);
  // Read by the owning thread only, which is also the only writer
  // (under mu_, so that the test's reads under mu_ are ordered).
  const absl::Status& status() const ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return broken_;
  }

  void PushLocked(Inbound in) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The connection fails with `why` (first failure wins).
  void Fail(const absl::Status& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Reply(Sent::Kind kind, Event event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Answer(const Sent& sent) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The broker drops `channel`: its unacked deliveries are requeued.
  void ForgetChannel(uint16_t channel) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Settle(uint16_t channel, uint64_t tag, bool multiple, bool requeue)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Changed() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Puts the basic.get messages of `channel` with tags in `tags` back in
  // front of their queues, in order, redelivered (or drops them: acked).
  void SettleGotten(ChannelState& channel, const std::vector<uint64_t>& tags,
                    bool requeue) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const BrokerAddress address_;
  const std::string connection_name_;
  const Options options_;
  int event_fd_ = -1;

  mutable amqpgw::Mutex mu_;
  amqpgw::CondVar changed_;
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
  // Drop(): every send fails with it from now on.
  absl::Status dropped_ ABSL_GUARDED_BY(mu_);
  bool auto_confirm_ ABSL_GUARDED_BY(mu_);
  size_t unsent_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_by_gateway_ ABSL_GUARDED_BY(mu_) = false;
  bool destroyed_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<Sent> sent_ ABSL_GUARDED_BY(mu_);
  std::deque<Inbound> inbound_ ABSL_GUARDED_BY(mu_);
  std::map<uint16_t, ChannelState> channels_ ABSL_GUARDED_BY(mu_);
  std::set<Sent::Kind> held_kinds_ ABSL_GUARDED_BY(mu_);
  std::vector<Event> held_ ABSL_GUARDED_BY(mu_);
  std::vector<Refusal> refusals_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<uint16_t, uint64_t>> requeued_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::deque<QueuedMessage>> queues_ ABSL_GUARDED_BY(mu_);
  uint64_t next_generated_ ABSL_GUARDED_BY(mu_) = 1;
};

// The gateway's end of a FakePeer.
class FakeConnection final : public Connection {
 public:
  explicit FakeConnection(std::shared_ptr<FakePeer> peer);
  ~FakeConnection() override;

  int fd() const override { return peer_->fd(); }
  bool HasBufferedInput() const override { return peer_->HasBufferedInput(); }
  absl::StatusOr<bool> Read(Event* event) override {
    return peer_->Read(event);
  }
  absl::Status OpenChannel(uint16_t channel) override;
  absl::Status CloseChannel(uint16_t channel) override;
  absl::Status ConfirmSelect(uint16_t channel) override;
  absl::Status Qos(uint16_t channel, uint16_t prefetch_count,
                   bool global) override;
  absl::Status Consume(uint16_t channel, const ConsumeArgs& args) override;
  absl::Status Cancel(uint16_t channel,
                      absl::string_view consumer_tag) override;
  absl::Status BasicGet(uint16_t channel, absl::string_view queue,
                        bool no_ack) override;
  absl::Status Ack(uint16_t channel, uint64_t delivery_tag,
                   bool multiple) override;
  absl::Status Nack(uint16_t channel, uint64_t delivery_tag, bool multiple,
                    bool requeue) override;
  absl::Status Publish(uint16_t channel,
                       const OutgoingMessage& message) override;
  absl::Status DeclareQueue(uint16_t channel,
                            const QueueDeclareArgs& args) override;
  absl::Status DeleteQueue(uint16_t channel, absl::string_view queue,
                           bool if_unused, bool if_empty) override;
  absl::Status PurgeQueue(uint16_t channel, absl::string_view queue) override;
  absl::Status BindQueue(uint16_t channel, const BindArgs& args) override;
  absl::Status UnbindQueue(uint16_t channel, const BindArgs& args) override;
  absl::Status DeclareExchange(uint16_t channel,
                               const ExchangeDeclareArgs& args) override;
  absl::Status DeleteExchange(uint16_t channel, absl::string_view exchange,
                              bool if_unused) override;
  void Cork(bool on) override {}
  size_t UnsentBytes() const override { return peer_->unsent_bytes(); }
  void Close(absl::Duration timeout) override { peer_->Close(); }

  const absl::Status& status() const override { return peer_->status(); }
  const ServerInfo& server_info() const override {
    return peer_->options_.server;
  }
  const BrokerAddress& address() const override { return peer_->address(); }
  absl::Duration heartbeat() const override { return absl::ZeroDuration(); }
  uint16_t channel_max() const override { return peer_->options_.channel_max; }
  uint32_t frame_max() const override { return peer_->options_.frame_max; }

 private:
  const std::shared_ptr<FakePeer> peer_;
};

// The ConnectionFactory of a fake broker cluster: every address is a node.
// Thread-safe; must outlive the workers using its factory (or their Stop()).
class FakeBroker {
 public:
  FakeBroker() : state_(std::make_shared<State>()) {}
  ~FakeBroker();

  // For ConnectionWorker::Options::factory / SessionOptions.
  ConnectionFactory factory();

  // Options of the peers opened from now on.
  void set_peer_options(FakePeer::Options options);
  // Runs on every new peer before its connection reaches the gateway (on
  // the opening thread): scripts what the broker does from its first
  // method on (Refuse, Hold).
  void set_on_open(std::function<void(FakePeer&)> on_open);
  // The next `count` opens of `host_port` fail with `status` (-1: all).
  void FailOpens(const std::string& host_port, absl::Status status,
                 int count = -1);
  // Opens of `host_port` succeed again.
  void ClearFailures(const std::string& host_port);
  // Opens of `host_port` block (a node that never answers the SYN) until
  // Unblock(host_port) or their connect timeout, which fails them
  // UNAVAILABLE like an unreachable node.
  void BlockOpens(const std::string& host_port);
  void Unblock(const std::string& host_port);

  // host:port of every open attempt so far, in order.
  std::vector<std::string> attempts() const;
  // Waits until `n` attempts were made, or `n` of them are blocked now.
  bool WaitForAttempts(size_t n, absl::Duration timeout = kWaitTimeout);
  bool WaitForBlocked(size_t n, absl::Duration timeout = kWaitTimeout);
  // Every connection opened so far, in order.
  std::vector<std::shared_ptr<FakePeer>> peers() const;
  // The `n`-th (0-based) connection opened whose connection name ends with
  // `name_suffix` (a worker's name: "control", "publisher-0"); waits for it.
  std::shared_ptr<FakePeer> WaitForPeer(const std::string& name_suffix,
                                        size_t n = 0,
                                        absl::Duration timeout = kWaitTimeout);

 private:
  struct State {
    amqpgw::Mutex mu;
    amqpgw::CondVar changed;
    FakePeer::Options peer_options ABSL_GUARDED_BY(mu);
    std::function<void(FakePeer&)> on_open ABSL_GUARDED_BY(mu);
    std::map<std::string, std::pair<absl::Status, int>> failures
        ABSL_GUARDED_BY(mu);
    std::set<std::string> blocked ABSL_GUARDED_BY(mu);
    size_t blocked_now ABSL_GUARDED_BY(mu) = 0;
    bool shutting_down ABSL_GUARDED_BY(mu) = false;
    std::vector<std::string> attempts ABSL_GUARDED_BY(mu);
    std::vector<std::shared_ptr<FakePeer>> peers ABSL_GUARDED_BY(mu);
  };
  static absl::StatusOr<std::unique_ptr<Connection>> Open(
      const std::shared_ptr<State>& state, const BrokerAddress& address,
      const OpenOptions& options);

  const std::shared_ptr<State> state_;
};

}  // namespace amqpgw::amqp::testing

#endif  // AMQPGW_SERVER_AMQP_TESTING_FAKE_CONNECTION_H_
