// RabbitConnection: the real amqp::Connection, over rabbitmq-c.
//
// Publishes on a plain TCP connection do not go through rabbitmq-c's send
// path: their frames are encoded in memory (PublishFrameEncoder) and a run
// of them leaves with one send() (see Cork); at most kMaxHeldBytes plus one
// frame are held, a larger body leaves in parts. Everything else, and every
// write on a TLS connection, is rabbitmq-c's. Held frames are written before
// any other send and before any read, so the broker sees frames in the order
// the owner made them.
//
// Thread safety: as amqp::Connection. rabbitmq-c keeps no thread-local
// state, so a connection opened on one thread may be handed to another
// (ConnectionWorker opens on a helper thread and reads on its own), never
// used by two at once.
#ifndef AMQPGW_SERVER_AMQP_RABBIT_CONNECTION_H_
#define AMQPGW_SERVER_AMQP_RABBIT_CONNECTION_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/amqp/broker_address.h"
#include "server/amqp/connection.h"

// rabbitmq-c's handle, kept opaque here.
struct amqp_connection_state_t_;

namespace amqpgw::amqp {
namespace internal {
class PublishFrameEncoder;
}  // namespace internal

class RabbitConnection final : public Connection {
 public:
  // Connects, logs in and negotiates limits (blocking, bounded by
  // options.connect_timeout). A ConnectionFactory; errors as documented
  // there.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(
      const BrokerAddress& address, const OpenOptions& options);

  ~RabbitConnection() override;
  RabbitConnection(const RabbitConnection&) = delete;
  RabbitConnection& operator=(const RabbitConnection&) = delete;

  int fd() const override;
  bool HasBufferedInput() const override;
  absl::StatusOr<bool> Read(Event* event) override;

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

  // Plain TCP: publishes made while corked are held in memory and written
  // with one send() at Cork(false) (or once kMaxHeldBytes are held). TLS:
  // TCP_CORK, so that the kernel holds partial segments while corked.
  void Cork(bool on) override;
  // SIOCOUTQNSD on the socket, plus the bytes held while corked.
  size_t UnsentBytes() const override;
  void Close(absl::Duration timeout) override;

  const absl::Status& status() const override { return broken_; }
  const ServerInfo& server_info() const override { return server_info_; }
  const BrokerAddress& address() const override { return address_; }
  absl::Duration heartbeat() const override { return heartbeat_; }
  uint16_t channel_max() const override { return channel_max_; }
  uint32_t frame_max() const override { return frame_max_; }

 private:
  struct PendingContent;

  // Held publish frames are written once this many bytes are held, corked
  // or not: a larger write saves nothing more.
  static constexpr size_t kMaxHeldBytes = 128 << 10;

  RabbitConnection(amqp_connection_state_t_* state,
                   const BrokerAddress& address);
  absl::Status Failed(int amqp_status, absl::string_view doing);
  // Writes the held frames (out_) to the socket, waiting for room for up to
  // write_timeout_. Fails the connection on a socket error or the timeout.
  absl::Status WriteHeld();
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
  // Plain TCP only (null on TLS): encodes publishes into out_.
  std::unique_ptr<internal::PublishFrameEncoder> encoder_;
  // Publish frames not yet written, and whether the owner is batching.
  std::string out_;
  bool corked_ = false;
  // How long WriteHeld waits for the socket to take bytes (the socket's
  // TCP_USER_TIMEOUT fails it first on a dead link).
  absl::Duration write_timeout_ = absl::Seconds(60);
};

}  // namespace amqpgw::amqp

#endif  // AMQPGW_SERVER_AMQP_RABBIT_CONNECTION_H_
