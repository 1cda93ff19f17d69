// One AMQP 0-9-1 connection over rabbitmq-c, driven asynchronously.
//
// Thread safety: none. A Connection, its socket and its channels belong to
// the one thread that created it (rabbitmq-c's rule); no other thread may
// call any method, including the destructor.
//
// Usage: Open() connects and logs in (blocking, bounded by
// OpenOptions::connect_timeout). After that, methods are sent without waiting
// for their replies; replies and broker-initiated methods come back as Events
// from Read(), which never blocks. The owner polls fd() for input (checking
// HasBufferedInput() first, since rabbitmq-c may hold complete frames already)
// and calls Read() until it returns false. Read() also sends and checks
// heartbeats, so the owner must call it at least every heartbeat()/2 even
// when idle.
//
// Any error from a send or from Read() means the connection is unusable: the
// owner should destroy it and open a new one. Data in Events is copied out of
// rabbitmq-c's buffers, so Events stay valid after later calls.
#ifndef AMQPGW_SERVER_AMQP_CONNECTION_H_
#define AMQPGW_SERVER_AMQP_CONNECTION_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/amqp/broker_address.h"
#include "server/amqp/types.h"

// rabbitmq-c's handle, kept opaque here.
struct amqp_connection_state_t_;

namespace amqpgw::amqp {

struct TlsOptions {
  // PEM file of CAs that sign the broker's certificate. Empty: system CAs.
  std::string ca_file;
  // Client certificate and key (PEM) for brokers that require them.
  std::string cert_file;
  std::string key_file;
  bool verify_peer = true;
  bool verify_hostname = true;
};

struct OpenOptions {
  // Shown by the broker (management UI, rabbitmqctl list_connections).
  std::string connection_name = "amqpgw";
  // Requested heartbeat; the broker may lower it. Zero disables heartbeats.
  absl::Duration heartbeat = absl::Seconds(10);
  // Bounds TCP connect, TLS handshake and login together.
  absl::Duration connect_timeout = absl::Seconds(5);
  uint32_t frame_max = 131072;
  uint16_t channel_max = 2047;
  TlsOptions tls;
};

// What the broker says about itself in connection.start.
struct ServerInfo {
  std::string product;
  std::string version;
  std::string platform;
  std::string cluster_name;
};

struct QueueDeclareArgs {
  std::string name;
  bool passive = false;
  bool durable = true;
  bool exclusive = false;
  bool auto_delete = false;
  FieldTable arguments;
};

struct ExchangeDeclareArgs {
  std::string name;
  std::string type = "direct";
  bool passive = false;
  bool durable = true;
  bool auto_delete = false;
  bool internal = false;
  FieldTable arguments;
};

struct BindArgs {
  std::string queue;
  std::string exchange;
  std::string routing_key;
  FieldTable arguments;
};

struct ConsumeArgs {
  std::string queue;
  std::string consumer_tag;
  bool no_ack = false;
  bool exclusive = false;
  FieldTable arguments;
};

// A method (with its content, for deliveries and returns) from the broker.
struct Event {
  enum class Type {
    kOther,  // a method the gateway does not use
    kChannelOpenOk,
    kChannelClose,  // broker closed the channel; close-ok was already sent
    kChannelCloseOk,
    kConfirmSelectOk,
    kBasicQosOk,
    kBasicConsumeOk,
    kBasicCancelOk,
    kBasicCancel,  // broker cancelled a consumer (queue deleted, failover)
    kBasicDeliver,
    kBasicAck,
    kBasicNack,
    kBasicReturn,
    kQueueDeclareOk,
    kQueueDeleteOk,
    kQueuePurgeOk,
    kQueueBindOk,
    kQueueUnbindOk,
    kExchangeDeclareOk,
    kExchangeDeleteOk,
    kConnectionBlocked,
    kConnectionUnblocked,
  };

  Type type = Type::kOther;
  uint16_t channel = 0;

  // kChannelClose.
  uint16_t reply_code = 0;
  std::string reply_text;
  uint16_t class_id = 0;
  uint16_t method_id = 0;

  // kBasicAck, kBasicNack.
  uint64_t delivery_tag = 0;
  bool multiple = false;

  // kBasicConsumeOk, kBasicCancelOk, kBasicCancel.
  std::string consumer_tag;

  // kQueueDeclareOk (queue, both counts), kQueueDeleteOk and kQueuePurgeOk
  // (message_count).
  std::string queue;
  uint32_t message_count = 0;
  uint32_t consumer_count = 0;

  // kConnectionBlocked.
  std::string blocked_reason;

  // kBasicDeliver.
  Delivery delivery;
  // kBasicReturn.
  ReturnedMessage returned;
};

const char* EventTypeName(Event::Type type);

class Connection {
 public:
  // Connects, logs in and negotiates limits. Errors: UNAVAILABLE for network
  // and protocol failures, saying at which step (TCP connect, TLS handshake,
  // AMQP handshake, login, opening the vhost) and whether the broker did not
  // answer in time or closed the connection; PERMISSION_DENIED for refused
  // credentials or vhost.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(
      const BrokerAddress& address, const OpenOptions& options);

  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // The socket, for poll(). -1 once the connection failed.
  int fd() const;
  // True when rabbitmq-c already holds input that poll() on fd() cannot see.
  bool HasBufferedInput() const;

  // Reads at most one complete event without blocking. Returns true with
  // *event filled, false when no complete event is available yet, or an
  // error when the connection is lost (UNAVAILABLE, with the reason: closed by
  // the broker with its reply, socket error, missed heartbeats).
  absl::StatusOr<bool> Read(Event* event);

  // Senders. Each writes one method (and content) and returns at once; the
  // reply, if any, arrives as an Event. An error means the connection failed.
  absl::Status OpenChannel(uint16_t channel);
  absl::Status CloseChannel(uint16_t channel);
  absl::Status ConfirmSelect(uint16_t channel);
  absl::Status Qos(uint16_t channel, uint16_t prefetch_count);
  absl::Status Consume(uint16_t channel, const ConsumeArgs& args);
  absl::Status Cancel(uint16_t channel, absl::string_view consumer_tag);
  absl::Status Ack(uint16_t channel, uint64_t delivery_tag, bool multiple);
  absl::Status Nack(uint16_t channel, uint64_t delivery_tag, bool multiple,
                    bool requeue);
  // InvalidArgument (connection still usable) when the properties cannot be
  // encoded in one frame; any other error means the connection failed.
  absl::Status Publish(uint16_t channel, const OutgoingMessage& message);
  absl::Status DeclareQueue(uint16_t channel, const QueueDeclareArgs& args);
  absl::Status DeleteQueue(uint16_t channel, absl::string_view queue,
                           bool if_unused, bool if_empty);
  absl::Status PurgeQueue(uint16_t channel, absl::string_view queue);
  absl::Status BindQueue(uint16_t channel, const BindArgs& args);
  absl::Status UnbindQueue(uint16_t channel, const BindArgs& args);
  absl::Status DeclareExchange(uint16_t channel,
                               const ExchangeDeclareArgs& args);
  absl::Status DeleteExchange(uint16_t channel, absl::string_view exchange,
                              bool if_unused);

  // Batches writes: between Cork(true) and Cork(false) the kernel holds
  // partial TCP segments (TCP_CORK), so that a run of publishes leaves in
  // full segments instead of one segment per message (rabbitmq-c writes each
  // message's body frame with its own send()). Cork(false) sends what is
  // held at once; every Cork(true) must be followed by Cork(false) before the
  // owner waits for input. No effect once the connection failed.
  void Cork(bool on);

  // Sends connection.close and waits up to `timeout` for close-ok, discarding
  // other input. The connection is unusable afterwards.
  void Close(absl::Duration timeout);

  // OK while usable; the reason once a send or read failed.
  const absl::Status& status() const { return broken_; }
  const ServerInfo& server_info() const { return server_info_; }
  const BrokerAddress& address() const { return address_; }
  // Negotiated values.
  absl::Duration heartbeat() const { return heartbeat_; }
  uint16_t channel_max() const { return channel_max_; }
  uint32_t frame_max() const { return frame_max_; }

 private:
  struct PendingContent;

  Connection(amqp_connection_state_t_* state, const BrokerAddress& address);
  absl::Status Failed(int amqp_status, absl::string_view doing);
  absl::Status SendMethod(uint16_t channel, uint32_t method_id, void* method,
                          absl::string_view doing);
  // Handles one frame; true when it completed an event.
  absl::StatusOr<bool> HandleFrame(const void* frame, Event* event);
  absl::StatusOr<bool> HandleMethod(uint16_t channel, uint32_t id,
                                    void* decoded, Event* event);

  amqp_connection_state_t_* state_;
  BrokerAddress address_;
  ServerInfo server_info_;
  absl::Duration heartbeat_;
  uint16_t channel_max_ = 0;
  uint32_t frame_max_ = 0;
  absl::Status broken_;
  // Deliveries and returns whose header or body frames are still to come.
  absl::flat_hash_map<uint16_t, std::unique_ptr<PendingContent>> pending_;
  // Scratch allocations (tables, properties) for one send, recycled after.
  struct Pool;
  std::unique_ptr<Pool> scratch_;
};

}  // namespace amqpgw::amqp

#endif  // AMQPGW_SERVER_AMQP_CONNECTION_H_
