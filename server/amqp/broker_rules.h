// What RabbitMQ refuses in a way that hurts more than the call that sent it,
// and the checks that keep such input away from the gateway's shared
// connections and channels.
//
// The gateway shares its AMQP connections between callers: a publisher
// connection has one confirm channel for everyone's messages, the control
// connection runs each topology call on a channel of its own, and a consumer
// connection gives each subscription a channel of its own. A broker error
// that closes a topology call's or a subscription's channel hurts only that
// call. One that closes the publish channel fails every message in flight on
// it. One that closes a connection (reply codes 501-505, 530, 540, 541) hurts
// every caller on it.
//
// Each input below was sent to RabbitMQ 3.10.8 by a throwaway client, one
// connection per input, to see what the broker closes (reading the broker's
// code, rabbit_channel, rabbit_amqqueue, rabbit_stream_queue,
// rabbit_direct_reply_to, rabbit_queue_master_location_misc, for the rest):
//
// The connection closes (the gateway refuses these with INVALID_ARGUMENT,
// unless noted):
//   - A NaN or infinite double anywhere in a field table: message headers,
//     queue, exchange, binding or consumer arguments, nested tables and
//     arrays included: 541 INTERNAL_ERROR, or the broker resets the socket.
//   - basic.publish to the default exchange with a routing key, or a CC or
//     BCC header entry, "amq.rabbitmq.reply-to.X.Y" (direct reply-to) unless
//     X decodes to a live channel of the cluster: 541. A well-formed key of a
//     node that has left crashes too, and each node name in a key becomes a
//     new atom of the broker (never freed). Refused: every routing key and
//     CC/BCC entry starting "amq.rabbitmq.reply-to." on the default exchange.
//   - queue.declare with x-queue-master-locator other than the string
//     "min-masters", "client-local" or "random" (classic queues): 541.
//   - queue.declare of a stream queue with x-max-age a string that does not
//     start with a digit ("" too): 541.
//   - basic.consume on a stream queue with x-stream-offset a string that is
//     not "first", "last", "next" and does not start with a digit; a double,
//     bool, decimal, void, table or array; or a byte array other than "first",
//     "last", "next": 541. Refused: anything but an integer, a timestamp, or
//     such a string.
//   - exchange.declare with an exchange type the broker does not have
//     ("x-nope", "DIRECT", a plugin's type with the plugin off): 503
//     COMMAND_INVALID. Refused FAILED_PRECONDITION after a check on a
//     connection of its own (core/exchange_types.h).
//   - A method larger than the negotiated frame_max (128 KiB; e.g. arguments
//     that large): the gateway's client library fails the send and the
//     gateway drops the connection. Refused: field tables above 64 KiB
//     encoded.
// The publish channel closes (refused: INVALID_ARGUMENT):
//   - user_id other than the connection's user: 406 PRECONDITION_FAILED
//     (checked in server/grpc against the users of --broker).
//   - reply_to exactly "amq.rabbitmq.reply-to" (there is no direct reply-to
//     consumer on the publishing channel): 406.
//   - A CC or BCC header that is not an array: 406 (entries of an array that
//     are not strings are ignored).
//   - An expiration that is not a non-negative integer, a delivery mode other
//     than 1 or 2: 406. Impossible through the API (a Duration, an enum).
// The publish channel closes, and the request alone cannot tell (the broker's
// state or permissions decide):
//   - 404 the exchange does not exist (the publisher checks an exchange it
//     has not seen with a passive declare on a side channel first); 403 the
//     exchange is internal, or the user may not write to it or to the topic;
//     406 a body larger than the broker's max_message_size (128 MiB by
//     default: keep --max_message_bytes below it).
// Only the caller's own channel closes (the broker's answer goes back to the
// caller): e.g. 406 for bad x-queue-type, x-max-length, x-overflow,
// x-queue-mode, x-max-priority, x-dead-letter-* values or quorum/stream
// properties, 406 for x-match values on headers bindings, 403 for "amq."
// names and the default exchange, 404 for missing queues and exchanges, 406
// for a consumer on a stream queue without prefetch. 540 NOT_IMPLEMENTED (a
// no-ack consumer on a stream queue) and 530 NOT_ALLOWED (a consumer tag used
// twice on one channel) close the connection, but the gateway always
// consumes with acks and gives each subscription its own channel.
//
// Thread safety: pure functions.
#ifndef AMQPGW_SERVER_AMQP_BROKER_RULES_H_
#define AMQPGW_SERVER_AMQP_BROKER_RULES_H_

#include <cmath>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "server/amqp/types.h"

namespace amqpgw::amqp {

// Largest field table (arguments, headers) the gateway sends, encoded.
inline constexpr size_t kMaxFieldTableBytes = 64 << 10;

// The exchange types every RabbitMQ broker has: direct, fanout, topic,
// headers (case-sensitive).
bool IsBuiltinExchangeType(absl::string_view type);

// True for a double the broker can decode (neither NaN nor infinite).
inline bool IsBrokerSafeDouble(double d) { return std::isfinite(d); }

// The path below `table` (e.g. `["a"][2]`) of its first NaN or infinite
// double, nullopt when there is none.
std::optional<std::string> FindNonFiniteDouble(const FieldTable& table);

// One part of a request the broker would refuse by closing a shared
// connection or channel. `field` is relative to what was checked:
// `["x-max-age"]` for arguments, `routing_key` or `properties.headers["CC"]`
// for a message.
struct Violation {
  std::string field;
  std::string problem;
};

// queue.declare arguments: x-queue-master-locator, x-max-age.
std::optional<Violation> CheckQueueArguments(const FieldTable& arguments);
// basic.consume arguments: x-stream-offset.
std::optional<Violation> CheckConsumerArguments(const FieldTable& arguments);
// A message for basic.publish: direct reply-to keys on the default exchange
// (routing key, CC and BCC entries), reply_to, CC and BCC types. Not user_id,
// which depends on the connection. Doubles are checked where the headers are
// built.
std::optional<Violation> CheckPublish(const OutgoingMessage& message);

}  // namespace amqpgw::amqp

#endif  // AMQPGW_SERVER_AMQP_BROKER_RULES_H_
