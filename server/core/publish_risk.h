// What can make RabbitMQ close a publishing channel, and which message did.
//
// RabbitMQ checks each basic.publish before routing it: the message size
// (max_message_size), write permission on the exchange, that the exchange
// exists and is not internal, the expiration and user_id properties, a
// direct reply-to, and topic permissions on the routing key. A failed check
// closes the whole channel (403, 404, 406). The channel handles its
// publishes in order: the ones before the refused message were checked and
// routed, the ones after it are discarded, and the confirms still owed are
// dropped with the channel.
//
// Risk keys name what one message's checks depend on beyond the message
// itself: its exchange (with the routing key once the exchange has refused
// one routing key: topic permissions), its user_id, a direct reply-to. The
// Publisher sends a message alone on its channel until each of its keys has
// been confirmed once ("proven"), so that a refusal hits no other caller's
// message; a refusal that comes anyway (the exchange deleted or a permission
// changed since) is pinned on a message with ParseRefusal().
//
// Pure functions and values; no threads involved.
#ifndef AMQPGW_SERVER_CORE_PUBLISH_RISK_H_
#define AMQPGW_SERVER_CORE_PUBLISH_RISK_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "server/amqp/types.h"

namespace amqpgw::core {

// The reply_to that asks for RabbitMQ's direct reply-to: the broker refuses
// it (406) on a channel that does not consume from it, as the gateway's.
inline constexpr absl::string_view kDirectReplyTo = "amq.rabbitmq.reply-to";

// Calls `fn(key)` for each risk key of `m`, built in `*scratch` (reused, so
// that the publishing path allocates nothing per message). `per_routing_key`
// holds the exchanges that refused a routing key: their key includes the
// routing key. Stops and returns false as soon as `fn` does.
bool ForEachRiskKey(const amqp::OutgoingMessage& m,
                    const absl::flat_hash_set<std::string>& per_routing_key,
                    std::string* scratch,
                    absl::FunctionRef<bool(const std::string&)> fn);

// The risk keys of `m`, as ForEachRiskKey visits them.
std::vector<std::string> RiskKeys(
    const amqp::OutgoingMessage& m,
    const absl::flat_hash_set<std::string>& per_routing_key);

// A channel.close the broker sent for a basic.publish, read from its reply
// text: what was refused.
struct Refusal {
  enum class Kind {
    kUnknown,     // the text names nothing the gateway can match
    kExchange,    // 404 no exchange, 403 internal, 403 write permission
    kTopic,       // 403 topic permission: exchange + routing key
    kUserId,      // 406 user_id differs from the connection's user
    kReplyTo,     // 406 direct reply-to without a consumer
    kExpiration,  // 406 invalid expiration
    kSize,        // 406 message larger than the broker's max_message_size
  };
  Kind kind = Kind::kUnknown;
  std::string exchange;  // kExchange, kTopic ("" for the default exchange)
  std::string value;     // kTopic: routing key; kUserId, kExpiration
  size_t size = 0;       // kSize: the refused message's size
  size_t max_size = 0;   // kSize: the broker's limit

  // Whether `m` is a message this refusal describes.
  bool Matches(const amqp::OutgoingMessage& m) const;
  // The risk key of `m` the refusal is about ("" for kUnknown and kSize).
  std::string Key(
      const amqp::OutgoingMessage& m,
      const absl::flat_hash_set<std::string>& per_routing_key) const;
};

// Parses RabbitMQ's reply text ("ACCESS_REFUSED - cannot publish to internal
// exchange 'x' in vhost '/'", ...). Kind::kUnknown when it is none of the
// above.
Refusal ParseRefusal(absl::string_view reply_text);

}  // namespace amqpgw::core

#endif  // AMQPGW_SERVER_CORE_PUBLISH_RISK_H_
