// Broker addresses: parsing amqp:// and amqps:// URIs.
#ifndef AMQPGW_SERVER_AMQP_BROKER_ADDRESS_H_
#define AMQPGW_SERVER_AMQP_BROKER_ADDRESS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace amqpgw::amqp {

// One broker node. The password never leaves this struct: ToString() and
// Redacted() omit it.
struct BrokerAddress {
  bool tls = false;
  std::string host;
  int port = 5672;
  std::string vhost = "/";
  std::string user = "guest";
  std::string password = "guest";

  // "host:port".
  std::string HostPort() const;
  // "amqp://user@host:port/vhost" with the vhost percent-encoded.
  std::string Redacted() const;
};

// Parses one URI: amqp[s]://[user[:password]@]host[:port][/vhost].
// Userinfo and vhost are percent-decoded; an absent or empty vhost is "/".
// Port defaults to 5672 (amqp) or 5671 (amqps). IPv6 hosts in brackets.
absl::StatusOr<BrokerAddress> ParseBrokerUri(absl::string_view uri);

// Parses a comma-separated list of URIs (at least one).
absl::StatusOr<std::vector<BrokerAddress>> ParseBrokerList(
    absl::string_view uris);

}  // namespace amqpgw::amqp

#endif  // AMQPGW_SERVER_AMQP_BROKER_ADDRESS_H_
