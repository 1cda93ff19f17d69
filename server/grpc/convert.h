// Conversions between the API (amqpgw.v1 protos) and AMQP values, with the
// validation that makes bad input an INVALID_ARGUMENT naming its field: the
// API's own limits, and everything RabbitMQ would answer by closing a
// connection or channel that other callers share (server/amqp/broker_rules.h
// lists what was checked against the broker, and why).
#ifndef AMQPGW_SERVER_GRPC_CONVERT_H_
#define AMQPGW_SERVER_GRPC_CONVERT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "amqpgw/v1/gateway.pb.h"
#include "google/protobuf/map.h"
#include "server/amqp/types.h"
#include "server/base/utf8.h"
#include "server/core/session.h"
#include "server/core/subscription.h"

namespace amqpgw::grpc_api {

// Limits on what callers send, and what the gateway adds to their messages.
struct Limits {
  size_t max_message_bytes = 4 << 20;
  size_t max_batch_messages = 10000;
  // Encoded size of a message's properties and headers (one AMQP frame).
  size_t max_properties_bytes = 64 << 10;
  // The users of the configured brokers (--broker). A message's user_id must
  // be empty or one of them: the broker refuses any other by closing the
  // publishing channel. Empty: user_id is not checked.
  std::vector<std::string> broker_users;
  // Most messages a PublishStream may have read and not yet answered
  // (--confirm_window).
  uint32_t max_stream_in_flight = 1024;
  // A message without a message_id gets a new UUID (--default_message_id);
  // else it is published without one.
  bool default_message_id = false;
};

using ProtoTable = google::protobuf::Map<std::string, v1::FieldValue>;

// --- API -> AMQP. `field` names the field in error messages. ---

// A queue, exchange or routing key: at most 255 bytes of UTF-8.
absl::Status ValidateName(absl::string_view field, absl::string_view value,
                          bool allow_empty = true);
absl::StatusOr<amqp::FieldTable> ToAmqpTable(const ProtoTable& table,
                                             absl::string_view field);
absl::StatusOr<amqp::Properties> ToAmqpProperties(
    const v1::MessageProperties& properties, absl::string_view field,
    const Limits& limits);
// Validates the request; sets persistent delivery unless TRANSIENT,
// mandatory unless allow_unroutable, and, with limits.default_message_id, a
// new UUID as message_id when the caller set none.
absl::StatusOr<amqp::OutgoingMessage> ToOutgoingMessage(
    const v1::PublishRequest& request, absl::string_view field,
    const Limits& limits);
// The same for a request the caller owns: its body is moved, not copied
// (the request is left without one).
absl::StatusOr<amqp::OutgoingMessage> ToOutgoingMessage(
    v1::PublishRequest&& request, absl::string_view field,
    const Limits& limits);

absl::StatusOr<amqp::QueueDeclareArgs> ToQueueDeclareArgs(
    const v1::DeclareQueueRequest& request);
// A custom_type that is not built in (amqp::IsBuiltinExchangeType) is
// passed on: the caller must check that the broker has it
// (core::ExchangeTypes) before sending.
absl::StatusOr<amqp::ExchangeDeclareArgs> ToExchangeDeclareArgs(
    const v1::DeclareExchangeRequest& request);
template <typename BindRequest>
absl::StatusOr<amqp::BindArgs> ToBindArgs(const BindRequest& request);
// StreamMessagesRequest.offset (and SubscribeStart's): the x-stream-offset
// value; INVALID_ARGUMENT naming offset.<field>.
absl::StatusOr<amqp::FieldValue> ToStreamOffset(const v1::StreamOffset& offset);
absl::StatusOr<core::SubscribeOptions> ToSubscribeOptions(
    const v1::StreamMessagesRequest& request);
// Subscribe's first request: always core::AckMode::kClient.
absl::StatusOr<core::SubscribeOptions> ToSubscribeOptions(
    const v1::SubscribeStart& request);
inline constexpr absl::Duration kDefaultDrainTimeout = absl::Seconds(30);
inline constexpr absl::Duration kMaxDrainTimeout = absl::Hours(1);
// SubscribeStart.drain_timeout: unset is kDefaultDrainTimeout.
absl::StatusOr<absl::Duration> ToDrainTimeout(
    const v1::SubscribeStart& request);
absl::StatusOr<core::AckAction> ToAckAction(const v1::AckRequest& request);
absl::StatusOr<core::AckAction> ToAckAction(v1::AckRequest::Action action);
// GetMessagesRequest.count's range.
inline constexpr uint32_t kMaxGetMessages = 1000;
absl::StatusOr<core::GetRequest> ToGetRequest(
    const v1::GetMessagesRequest& request);
// The action with RETRY's retry_delay and the error text.
// AckRequest or SubscribeAck.
template <typename AckMessage>
absl::StatusOr<core::AckCommand> ToAckCommand(const AckMessage& request);
// StreamMessagesRequest (and Subscribe) retry_policy and dead_letter.
absl::StatusOr<core::RetryOptions> ToRetryOptions(
    const v1::RetryPolicy& policy, bool has_policy,
    const v1::DeadLetter& dead_letter, bool has_dead_letter, core::AckMode mode,
    const std::string& queue);
// A Duration of RETRY (0 .. 24h); INVALID_ARGUMENT naming `field`.
absl::StatusOr<absl::Duration> ToRetryDuration(
    absl::string_view field, const google::protobuf::Duration& d);

// --- AMQP -> API. Strings that are not valid UTF-8 become bytes_value
// (headers) or get U+FFFD replacements (other fields). ---

void ToProtoTable(const amqp::FieldTable& table, ProtoTable* out);
void ToProtoProperties(const amqp::Properties& properties,
                       v1::MessageProperties* out);
void ToProtoDelivery(core::StreamDelivery&& delivery, v1::Delivery* out);
// A GetMessages message: delivery_id 0, delivery_attempt from the message.
void ToProtoDelivery(amqp::Delivery&& delivery, v1::Delivery* out);
void ToProtoConnectionInfo(const core::ConnectionInfo& info,
                           v1::ConnectionInfo* out);
void ToProtoCounters(const core::CountersSnapshot& counters, v1::Counters* out);
// One message's outcome: code 0 with publish_time when `status` is OK,
// else the code and error (`out` may be reused: every field is set or
// cleared).
void ToProtoPublishResult(const absl::Status& status, absl::Time confirmed_at,
                          const std::string& message_id,
                          v1::PublishResult* out);

// The gateway's own message rates over a recent window (GetStatus).
struct RecentRates {
  absl::Duration window = absl::ZeroDuration();
  double published = 0;
  double confirmed = 0;
  double delivered = 0;
  double acked = 0;
};
void ToProtoRates(const RecentRates& rates, v1::MessageRates* out);

// Helpers shared with tests.
void SetTimestamp(absl::Time t, google::protobuf::Timestamp* out);

}  // namespace amqpgw::grpc_api

#endif  // AMQPGW_SERVER_GRPC_CONVERT_H_
