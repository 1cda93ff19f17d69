// The daemon's configuration, filled from flags (and their AMQPGW_*
// environment twins) by server/main.cc.
#ifndef AMQPGW_SERVER_DAEMON_OPTIONS_H_
#define AMQPGW_SERVER_DAEMON_OPTIONS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/session.h"

namespace amqpgw::daemon {

struct Options {
  // gRPC listen address, host:port. Port 0 picks a free one.
  std::string listen = "127.0.0.1:50051";
  // Comma-separated amqp:// or amqps:// URIs, tried in order on failover.
  std::string broker = "amqp://guest:guest@127.0.0.1:5672/";
  absl::Duration heartbeat = absl::Seconds(10);
  absl::Duration connect_timeout = absl::Seconds(5);
  absl::Duration reconnect_initial_delay = absl::Milliseconds(100);
  absl::Duration reconnect_max_delay = absl::Seconds(10);
  int64_t max_message_bytes = 4 << 20;
  int64_t max_request_bytes = 64 << 20;
  int64_t confirm_window = 1024;
  int64_t max_pending_bytes = int64_t{256} << 20;
  absl::Duration publish_timeout = absl::Seconds(30);
  absl::Duration shutdown_grace = absl::Seconds(10);
  int64_t publisher_connections = 1;
  int64_t consumer_connections = 2;
  // Prefix of subscription ids; default "<hostname>:<listen port>".
  std::string instance_id;
  bool connect_on_start = true;
  std::string log_level = "info";
};

// Checks every value; the error names the flag and says what is allowed.
absl::Status ValidateOptions(const Options& options);

// The session's configuration (broker URIs parsed).
absl::StatusOr<core::SessionOptions> ToSessionOptions(const Options& options);

}  // namespace amqpgw::daemon

#endif  // AMQPGW_SERVER_DAEMON_OPTIONS_H_
