// RabbitMQ management API answers (JSON, parsed with nlohmann-json) mapped
// to the plain structs of types.h. Fields the broker leaves out (no traffic
// yet, a queue type without them) keep their defaults; a body that is not
// the JSON shape expected is an error (errors.h, UnexpectedAnswer).
//
// Pure functions: any thread.
#ifndef AMQPGW_SERVER_MANAGEMENT_PARSE_H_
#define AMQPGW_SERVER_MANAGEMENT_PARSE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/management/types.h"

namespace amqpgw::management {

// GET /api/queues/VHOST?page=..., GET /api/exchanges/VHOST?page=... (the
// paged form: an object with `items`).
absl::StatusOr<Page<Queue>> ParseQueuePage(absl::string_view body);
absl::StatusOr<Page<Exchange>> ParseExchangePage(absl::string_view body);

// One queue (GET /api/queues/VHOST/NAME) and its consumers
// (consumer_details; connection_name and `own` are filled by
// NameConsumers).
struct QueueDetails {
  Queue queue;
  std::vector<Consumer> consumers;
};
absl::StatusOr<QueueDetails> ParseQueueDetails(absl::string_view body);

// GET /api/bindings/VHOST, /api/queues/VHOST/NAME/bindings,
// /api/exchanges/VHOST/NAME/bindings/source.
absl::StatusOr<std::vector<Binding>> ParseBindings(absl::string_view body);

// GET /api/vhosts/VHOST/connections?columns=name,user_provided_name: the
// broker's connection name -> the name the client gave it (connections
// without one are left out).
using ConnectionNames = std::vector<std::pair<std::string, std::string>>;
absl::StatusOr<ConnectionNames> ParseConnectionNames(absl::string_view body);

// Sets each consumer's connection_name from `names`, and `own` when that
// name starts with `own_prefix` (not empty).
void NameConsumers(const ConnectionNames& names, absl::string_view own_prefix,
                   std::vector<Consumer>* consumers);

// GET /api/queues/VHOST/NAME?columns=name (and exchanges): the object's
// name (it exists).
absl::StatusOr<std::string> ParseName(absl::string_view body);

// GET /api/whoami.
absl::StatusOr<User> ParseUser(absl::string_view body);

// The broker's {"error": ..., "reason": ...} of a refused request; both
// empty when the body is not such an object.
struct ErrorBody {
  std::string error;
  std::string reason;
};
ErrorBody ParseErrorBody(absl::string_view body);

// A regular expression matching names that start with `prefix` (the
// broker's PCRE flavour): "^" and `prefix` with every metacharacter
// escaped.
std::string PrefixRegex(absl::string_view prefix);

}  // namespace amqpgw::management

#endif  // AMQPGW_SERVER_MANAGEMENT_PARSE_H_
