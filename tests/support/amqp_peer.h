// An independent AMQP client for tests (rabbitmq-c's blocking API, its own
// decoding): checks what the gateway really put on the broker.
#ifndef AMQPGW_TESTS_SUPPORT_AMQP_PEER_H_
#define AMQPGW_TESTS_SUPPORT_AMQP_PEER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct amqp_connection_state_t_;

namespace amqpgw::testing {

// A message read with basic.get. Properties are rendered as text; headers
// as "<AMQP type char>:<value>", e.g. "l:5", "S:text", "t:1", "d:1.5",
// "x:<hex>", "T:<seconds>", "D:<scale>,<value>", "V:", "F:{k=...,...}",
// "A:[...]".
struct PeerMessage {
  std::string body;
  std::string exchange;
  std::string routing_key;
  bool redelivered = false;
  std::map<std::string, std::string> properties;  // set ones only
  std::map<std::string, std::string> headers;
};

class AmqpPeer {
 public:
  // `connection_name`, when given, is sent as the connection_name client
  // property (what the management API shows as the connection's name).
  static absl::StatusOr<std::unique_ptr<AmqpPeer>> Connect(
      int port, const std::string& connection_name = "");
  ~AmqpPeer();

  absl::Status DeclareQueue(const std::string& name, bool durable = true);
  absl::Status DeclareExchange(const std::string& name,
                               const std::string& type);
  absl::Status Bind(const std::string& queue, const std::string& exchange,
                    const std::string& routing_key);
  // basic.qos `prefetch` and basic.consume: the broker delivers up to
  // `prefetch` messages, which stay unacknowledged (this peer never reads
  // them) until it closes.
  absl::Status Consume(const std::string& queue, uint16_t prefetch,
                       const std::string& consumer_tag);
  absl::Status DeleteQueue(const std::string& name);
  absl::Status Publish(const std::string& exchange,
                       const std::string& routing_key, const std::string& body,
                       bool persistent = true);
  // basic.get (acknowledged); nullopt when the queue is empty.
  absl::StatusOr<std::optional<PeerMessage>> Get(const std::string& queue);
  absl::StatusOr<uint32_t> MessageCount(const std::string& queue);
  absl::StatusOr<uint32_t> ConsumerCount(const std::string& queue);

 private:
  explicit AmqpPeer(amqp_connection_state_t_* conn) : conn_(conn) {}
  absl::Status Check(const char* what);
  amqp_connection_state_t_* conn_;
};

}  // namespace amqpgw::testing

#endif  // AMQPGW_TESTS_SUPPORT_AMQP_PEER_H_
