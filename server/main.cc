// amqpgwd: RabbitMQ behind gRPC. Parses flags into daemon::Options and runs.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/daemon/daemon.h"
#include "server/daemon/options.h"

namespace {
const amqpgw::daemon::Options kDefaults;
}  // namespace

ABSL_FLAG(std::string, listen, kDefaults.listen,
          "gRPC listen address, host:port (port 0 picks a free port)");
ABSL_FLAG(std::string, broker, kDefaults.broker,
          "RabbitMQ node(s): comma-separated amqp:// or amqps:// URIs, tried "
          "in order on failover");
ABSL_FLAG(absl::Duration, heartbeat, kDefaults.heartbeat,
          "AMQP heartbeat to request (0 disables); a dead broker is noticed "
          "after about two intervals");
ABSL_FLAG(absl::Duration, connect_timeout, kDefaults.connect_timeout,
          "bound on TCP connect + login to one broker node");
ABSL_FLAG(absl::Duration, reconnect_initial_delay,
          kDefaults.reconnect_initial_delay,
          "first wait between reconnect rounds (doubles, with jitter)");
ABSL_FLAG(absl::Duration, reconnect_max_delay, kDefaults.reconnect_max_delay,
          "longest wait between reconnect rounds");
ABSL_FLAG(int64_t, max_message_bytes, kDefaults.max_message_bytes,
          "largest message body accepted");
ABSL_FLAG(int64_t, max_request_bytes, kDefaults.max_request_bytes,
          "largest gRPC request (a whole PublishBatch)");
ABSL_FLAG(int64_t, confirm_window, kDefaults.confirm_window,
          "most messages sent and not yet confirmed, per publisher connection");
ABSL_FLAG(int64_t, max_pending_bytes, kDefaults.max_pending_bytes,
          "most message bytes held while waiting for the broker, over all "
          "callers; beyond it Publish answers RESOURCE_EXHAUSTED");
ABSL_FLAG(absl::Duration, publish_timeout, kDefaults.publish_timeout,
          "how long calls without a deadline wait for the broker");
ABSL_FLAG(absl::Duration, shutdown_grace, kDefaults.shutdown_grace,
          "on SIGTERM/SIGINT, how long calls in flight may finish");
ABSL_FLAG(int64_t, publisher_connections, kDefaults.publisher_connections,
          "AMQP connections (each with its own thread) for publishing");
ABSL_FLAG(int64_t, consumer_connections, kDefaults.consumer_connections,
          "AMQP connections (each with its own thread) carrying streams, one "
          "channel per stream");
ABSL_FLAG(std::string, instance_id, kDefaults.instance_id,
          "this instance's name in subscription ids (default "
          "<hostname>:<port>)");
ABSL_FLAG(bool, connect_on_start, kDefaults.connect_on_start,
          "connect to the broker at start-up (else wait for Connect)");
ABSL_FLAG(std::string, log_level, kDefaults.log_level,
          "trace, debug, info, warn or error");

namespace {

// Every flag has an environment twin, AMQPGW_<NAME>; the command line wins.
constexpr const char* kFlagNames[] = {
    "listen",          "broker",
    "heartbeat",       "connect_timeout",
    "reconnect_initial_delay", "reconnect_max_delay",
    "max_message_bytes", "max_request_bytes",
    "confirm_window",  "max_pending_bytes", "publish_timeout",
    "shutdown_grace",  "publisher_connections",
    "consumer_connections", "instance_id",
    "connect_on_start", "log_level",
};

void ApplyEnvironment() {
  for (const char* name : kFlagNames) {
    std::string env = "AMQPGW_" + absl::AsciiStrToUpper(name);
    const char* value = std::getenv(env.c_str());
    if (value == nullptr) continue;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    std::string error;
    if (flag == nullptr || !flag->ParseFrom(value, &error)) {
      std::fprintf(stderr, "amqpgwd: %s: %s\n", env.c_str(), error.c_str());
      std::exit(2);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, so every absl::Mutex::Lock (gRPC's
  // locks included: grpc_core::Mutex is an absl::Mutex) runs the debug-mode
  // deadlock detector: a global graph of lock nodes under a global lock, and
  // a stack trace per acquisition. It cost a large share of the daemon's CPU
  // per call (bench/, perf: GraphCycles::GetId, UpdateStackTrace). Tests keep
  // it on; the daemon turns it off before any lock is taken.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(
      "RabbitMQ behind gRPC.\n\n"
      "  amqpgwd --broker=amqp://guest:guest@127.0.0.1:5672/ "
      "--listen=127.0.0.1:50051\n\n"
      "Every flag can also be set as AMQPGW_<FLAG> in the environment.");
  ApplyEnvironment();
  absl::ParseCommandLine(argc, argv);

  amqpgw::daemon::Options o;
  o.listen = absl::GetFlag(FLAGS_listen);
  o.broker = absl::GetFlag(FLAGS_broker);
  o.heartbeat = absl::GetFlag(FLAGS_heartbeat);
  o.connect_timeout = absl::GetFlag(FLAGS_connect_timeout);
  o.reconnect_initial_delay = absl::GetFlag(FLAGS_reconnect_initial_delay);
  o.reconnect_max_delay = absl::GetFlag(FLAGS_reconnect_max_delay);
  o.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  o.max_request_bytes = absl::GetFlag(FLAGS_max_request_bytes);
  o.confirm_window = absl::GetFlag(FLAGS_confirm_window);
  o.max_pending_bytes = absl::GetFlag(FLAGS_max_pending_bytes);
  o.publish_timeout = absl::GetFlag(FLAGS_publish_timeout);
  o.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  o.publisher_connections = absl::GetFlag(FLAGS_publisher_connections);
  o.consumer_connections = absl::GetFlag(FLAGS_consumer_connections);
  o.instance_id = absl::GetFlag(FLAGS_instance_id);
  o.connect_on_start = absl::GetFlag(FLAGS_connect_on_start);
  o.log_level = absl::GetFlag(FLAGS_log_level);

  absl::Status s = amqpgw::daemon::ValidateOptions(o);
  if (!s.ok()) {
    std::fprintf(stderr, "amqpgwd: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  amqpgw::daemon::InitLogging(o.log_level);
  return amqpgw::daemon::RunDaemon(o);
}
