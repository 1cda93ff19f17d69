// amqp::Connection: one AMQP 0-9-1 connection, driven asynchronously. The
// interface core/ works with; RabbitConnection (rabbit_connection.h, over
// rabbitmq-c) is the real one, amqp/testing/fake_connection.h a scripted one
// for unit tests.
//
// Thread safety: none. A Connection belongs to one thread at a time and no
// other thread may call any method, including the destructor. It may change
// hands (the thread that opened it gives it to the thread that drives it)
// only through synchronisation that orders everything the first did before
// anything the second does (a mutex both take, a join).
//
// Usage: a ConnectionFactory opens the connection (connects and logs in,
// blocking, bounded by OpenOptions::connect_timeout). After that, methods
// are sent without waiting for their replies; replies and broker-initiated
// methods come back as Events from Read(), which never blocks. The owner
// polls fd() for input (checking HasBufferedInput() first, since the
// connection may hold complete frames already) and calls Read() until it
// returns false. Read() also sends and checks heartbeats, so the owner must
// call it at least every heartbeat()/2 even when idle.
//
// Any error from a send or from Read() means the connection is unusable: the
// owner should destroy it and open a new one. Data in Events is copied out of
// the connection's buffers, so Events stay valid after later calls.
#ifndef AMQPGW_SERVER_AMQP_CONNECTION_H_
#define AMQPGW_SERVER_AMQP_CONNECTION_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/amqp/broker_address.h"
#include "server/amqp/types.h"

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
    kBasicGetOk,     // a message from basic.get: `delivery`, `message_count`
    kBasicGetEmpty,  // basic.get found the queue empty
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
  // (message_count); kBasicGetOk (message_count: the messages still ready in
  // the queue after the one taken).
  std::string queue;
  uint32_t message_count = 0;
  uint32_t consumer_count = 0;

  // kConnectionBlocked.
  std::string blocked_reason;

  // kBasicDeliver, kBasicGetOk (consumer_tag empty).
  Delivery delivery;
  // kBasicReturn.
  ReturnedMessage returned;
};

const char* EventTypeName(Event::Type type);

class Connection {
 public:
  virtual ~Connection() = default;

  // The socket (or another pollable fd), for poll(). -1 once the connection
  // failed.
  virtual int fd() const = 0;
  // True when the connection already holds input that poll() on fd() cannot
  // see.
  virtual bool HasBufferedInput() const = 0;

  // Reads at most one complete event without blocking. Returns true with
  // *event filled, false when no complete event is available yet, or an
  // error when the connection is lost (UNAVAILABLE, with the reason: closed by
  // the broker with its reply, socket error, missed heartbeats).
  virtual absl::StatusOr<bool> Read(Event* event) = 0;

  // Senders. Each writes one method (and content) and returns at once; the
  // reply, if any, arrives as an Event. An error means the connection failed
  // unless status() is still OK: then nothing was sent (a field table or
  // properties that cannot be encoded) and the connection is still usable.
  virtual absl::Status OpenChannel(uint16_t channel) = 0;
  virtual absl::Status CloseChannel(uint16_t channel) = 0;
  virtual absl::Status ConfirmSelect(uint16_t channel) = 0;
  // basic.qos. `global` false: the prefetch of consumers started on the
  // channel afterwards; true: a limit for the whole channel, which RabbitMQ
  // 3.10 applies at once, also to running consumers, but only for classic
  // queues (a quorum or stream queue refuses basic.consume on such a
  // channel with 540 NOT_IMPLEMENTED, which closes the whole connection, and
  // ignores one set after basic.consume). prefetch_size is always 0:
  // RabbitMQ refuses any other value the same way (540).
  virtual absl::Status Qos(uint16_t channel, uint16_t prefetch_count,
                           bool global) = 0;
  virtual absl::Status Consume(uint16_t channel, const ConsumeArgs& args) = 0;
  virtual absl::Status Cancel(uint16_t channel,
                              absl::string_view consumer_tag) = 0;
  // basic.get: the reply is kBasicGetOk (with the message, which is unacked
  // on `channel` unless no_ack) or kBasicGetEmpty. RabbitMQ 3.10 closes the
  // whole connection (540 NOT_IMPLEMENTED) on basic.get from a stream queue.
  virtual absl::Status BasicGet(uint16_t channel, absl::string_view queue,
                                bool no_ack) = 0;
  virtual absl::Status Ack(uint16_t channel, uint64_t delivery_tag,
                           bool multiple) = 0;
  virtual absl::Status Nack(uint16_t channel, uint64_t delivery_tag,
                            bool multiple, bool requeue) = 0;
  // InvalidArgument (connection still usable) when the properties cannot be
  // encoded in one frame; any other error means the connection failed.
  virtual absl::Status Publish(uint16_t channel,
                               const OutgoingMessage& message) = 0;
  virtual absl::Status DeclareQueue(uint16_t channel,
                                    const QueueDeclareArgs& args) = 0;
  virtual absl::Status DeleteQueue(uint16_t channel, absl::string_view queue,
                                   bool if_unused, bool if_empty) = 0;
  virtual absl::Status PurgeQueue(uint16_t channel,
                                  absl::string_view queue) = 0;
  virtual absl::Status BindQueue(uint16_t channel, const BindArgs& args) = 0;
  virtual absl::Status UnbindQueue(uint16_t channel, const BindArgs& args) = 0;
  virtual absl::Status DeclareExchange(uint16_t channel,
                                       const ExchangeDeclareArgs& args) = 0;
  virtual absl::Status DeleteExchange(uint16_t channel,
                                      absl::string_view exchange,
                                      bool if_unused) = 0;

  // Batches writes: between Cork(true) and Cork(false) a run of publishes
  // is held and leaves together (one write on plain TCP, full segments on
  // TLS) instead of one write per message. Cork(false) sends what is held
  // at once; every Cork(true) must be followed by Cork(false) before the
  // owner waits for input. A write that fails there fails the connection
  // (status()). No effect once the connection failed.
  virtual void Cork(bool on) = 0;

  // Bytes held or written to the socket that the kernel has not sent yet:
  // the broker (or the network) takes them slower than they come. A write
  // waits once the socket's buffer is full, until the bytes are out (or the
  // socket fails), so the owner uses this to stop writing before that. 0
  // when unknown or once the connection failed.
  virtual size_t UnsentBytes() const = 0;

  // Sends connection.close and waits up to `timeout` for close-ok, discarding
  // other input. The connection is unusable afterwards.
  virtual void Close(absl::Duration timeout) = 0;

  // OK while usable; the reason once a send or read failed.
  virtual const absl::Status& status() const = 0;
  virtual const ServerInfo& server_info() const = 0;
  virtual const BrokerAddress& address() const = 0;
  // Negotiated values.
  virtual absl::Duration heartbeat() const = 0;
  virtual uint16_t channel_max() const = 0;
  virtual uint32_t frame_max() const = 0;
};

// Opens a connection to one broker: connects, logs in and negotiates limits,
// blocking for up to options.connect_timeout. Errors: UNAVAILABLE for network
// and protocol failures, saying at which step (TCP connect, TLS handshake,
// AMQP handshake, login, opening the vhost) and whether the broker did not
// answer in time or closed the connection; PERMISSION_DENIED for refused
// credentials or vhost; FAILED_PRECONDITION for unusable TLS files. The
// returned connection belongs to the calling thread (see Connection). Must be
// thread-safe: several ConnectionWorkers' helper threads may call one factory
// at the same time.
using ConnectionFactory =
    std::function<absl::StatusOr<std::unique_ptr<Connection>>(
        const BrokerAddress& address, const OpenOptions& options)>;

}  // namespace amqpgw::amqp

#endif  // AMQPGW_SERVER_AMQP_CONNECTION_H_
