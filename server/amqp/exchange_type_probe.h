// Asks a broker whether it has an exchange type, on a connection of the
// probe's own that the broker is allowed to close.
#ifndef AMQPGW_SERVER_AMQP_EXCHANGE_TYPE_PROBE_H_
#define AMQPGW_SERVER_AMQP_EXCHANGE_TYPE_PROBE_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/amqp/broker_address.h"
#include "server/amqp/connection.h"

namespace amqpgw::amqp {

// True when the broker at `address` has exchange type `type`, false when it
// has not. Opens a connection (named "amqpgw exchange type check"), sends
// exchange.declare of the default exchange ("") with that type and closes
// the connection. RabbitMQ checks the type before anything else: a type it
// does not have closes the connection (503 COMMAND_INVALID), one it has gets
// 403 ACCESS_REFUSED for the default exchange (closing only the probe's
// channel). Nothing is declared and no permission is needed.
//
// Blocks: connecting (bounded by options.connect_timeout), then up to
// `timeout` for the answer. UNAVAILABLE when the broker could not be asked
// or gave another answer. Any thread; the connection lives and dies inside
// the call.
absl::StatusOr<bool> ProbeExchangeType(const BrokerAddress& address,
                                       OpenOptions options,
                                       absl::string_view type,
                                       absl::Duration timeout);

}  // namespace amqpgw::amqp

#endif  // AMQPGW_SERVER_AMQP_EXCHANGE_TYPE_PROBE_H_
