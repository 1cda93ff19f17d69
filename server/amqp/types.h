// Plain C++ values for AMQP 0-9-1 data: field tables, message properties and
// messages. No rabbitmq-c types appear here, so every layer may use them;
// server/amqp/*.cc converts them to and from rabbitmq-c's structures.
#ifndef AMQPGW_SERVER_AMQP_TYPES_H_
#define AMQPGW_SERVER_AMQP_TYPES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace amqpgw::amqp {

// Deepest nesting of tables and arrays the gateway accepts or produces.
inline constexpr int kMaxTableDepth = 16;

struct FieldValue;

// An AMQP field table. Entry order is kept as received.
using FieldTable = std::vector<std::pair<std::string, FieldValue>>;
using FieldArray = std::vector<FieldValue>;

struct Void {
  bool operator==(const Void&) const { return true; }
};
// AMQP 'x' byte array, kept apart from UTF-8 strings.
struct Bytes {
  std::string data;
  bool operator==(const Bytes& o) const { return data == o.data; }
};
// AMQP 'T': seconds since the Unix epoch.
struct Timestamp {
  uint64_t seconds = 0;
  bool operator==(const Timestamp& o) const { return seconds == o.seconds; }
};
// AMQP 'D': value / 10^scale.
struct Decimal {
  uint8_t scale = 0;
  uint32_t value = 0;
  bool operator==(const Decimal& o) const {
    return scale == o.scale && value == o.value;
  }
};

// One value of a field table. Integers of every AMQP width arrive as int64_t
// and floats as double; strings ('S') as std::string.
struct FieldValue {
  using Variant = std::variant<Void, bool, int64_t, double, std::string, Bytes,
                               Timestamp, Decimal, FieldTable, FieldArray>;
  Variant value;

  FieldValue() = default;
  template <typename T, typename = std::enable_if_t<
                            !std::is_same_v<std::decay_t<T>, FieldValue>>>
  FieldValue(T&& v) : value(std::forward<T>(v)) {}  // NOLINT: implicit

  bool operator==(const FieldValue& o) const { return value == o.value; }
  bool operator!=(const FieldValue& o) const { return !(*this == o); }
};

// AMQP basic properties. An unset optional is an absent property.
struct Properties {
  std::optional<std::string> content_type;
  std::optional<std::string> content_encoding;
  std::optional<FieldTable> headers;
  std::optional<uint8_t> delivery_mode;  // 1 transient, 2 persistent
  std::optional<uint8_t> priority;
  std::optional<std::string> correlation_id;
  std::optional<std::string> reply_to;
  std::optional<std::string> expiration;  // milliseconds, as text
  std::optional<std::string> message_id;
  std::optional<uint64_t> timestamp;  // seconds
  std::optional<std::string> type;
  std::optional<std::string> user_id;
  std::optional<std::string> app_id;
  std::optional<std::string> cluster_id;

  bool operator==(const Properties& o) const;
};

// A message to publish.
struct OutgoingMessage {
  std::string exchange;
  std::string routing_key;
  bool mandatory = true;
  Properties properties;
  std::string body;
};

// A message delivered by basic.deliver, copied out of rabbitmq-c's buffers.
struct Delivery {
  std::string consumer_tag;
  uint64_t delivery_tag = 0;
  bool redelivered = false;
  std::string exchange;
  std::string routing_key;
  Properties properties;
  std::string body;
};

// A mandatory message the broker could not route (basic.return).
struct ReturnedMessage {
  uint16_t reply_code = 0;
  std::string reply_text;
  std::string exchange;
  std::string routing_key;
  Properties properties;
  std::string body;
};

// Looks up a header; nullptr when absent.
const FieldValue* FindField(const FieldTable& table, std::string_view key);

// The header where the gateway's RETRY copies count the deliveries of the
// copies before them (server/core/retry.h).
inline constexpr char kAttemptHeader[] = "x-amqpgw-attempt";

// How many times `delivery` was delivered (1 for a first delivery), RETRY
// copies included: kAttemptHeader (deliveries of earlier copies) plus this
// copy's own, from the x-delivery-count header where the queue keeps one
// (quorum queues: absent or 0 on the first delivery; + 1), else 1, or 2
// when redelivered.
uint32_t DeliveryAttempt(const Delivery& delivery);

// The consumer argument that says where a consumer of a stream queue starts,
// and the header with each delivery's offset in the stream.
inline constexpr char kStreamOffsetKey[] = "x-stream-offset";

// The offset of a delivery from a stream queue (its x-stream-offset header,
// an integer >= 0); nullopt for other queues' deliveries.
std::optional<int64_t> DeliveryStreamOffset(const Delivery& delivery);

}  // namespace amqpgw::amqp

#endif  // AMQPGW_SERVER_AMQP_TYPES_H_
