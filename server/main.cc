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
ABSL_FLAG(absl::Duration, consumer_read_pause, kDefaults.consumer_read_pause,
          "after a read that found 16 or more deliveries, a consumer "
          "connection waits up to this long (at most 2us per message of its "
          "streams' prefetch windows) before reading again, so that busy "
          "streams' deliveries travel in batches (fewer wake-ups, more "
          "throughput, up to this much latency); smaller reads are never "
          "followed by a pause; 0 reads at once; at most 100ms");
ABSL_FLAG(std::string, instance_id, kDefaults.instance_id,
          "this instance's name in subscription ids (default "
          "<hostname>:<port>)");
ABSL_FLAG(bool, connect_on_start, kDefaults.connect_on_start,
          "connect to the broker at start-up (else wait for Connect)");
ABSL_FLAG(std::string, log_level, kDefaults.log_level,
          "trace, debug, info, warn or error");
ABSL_FLAG(std::string, log_format, kDefaults.log_format,
          "text (readable) or json (one object a line: ts, level, logger, "
          "thread, msg)");
ABSL_FLAG(std::string, metrics_listen, kDefaults.metrics_listen,
          "host:port serving Prometheus metrics at /metrics (empty: off)");
ABSL_FLAG(std::string, otlp_endpoint, kDefaults.otlp_endpoint,
          "OpenTelemetry collector for spans, OTLP/HTTP JSON, e.g. "
          "http://127.0.0.1:4318 (empty: no spans)");
ABSL_FLAG(std::string, tls_cert, kDefaults.tls_cert,
          "PEM certificate (chain) for gRPC over TLS");
ABSL_FLAG(std::string, tls_key, kDefaults.tls_key,
          "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, kDefaults.tls_client_ca,
          "PEM CA bundle: require client certificates signed by it (mutual "
          "TLS)");
ABSL_FLAG(std::string, auth_tokens, kDefaults.auth_tokens,
          "file of '<token> <role>' lines (roles publish, consume, admin): "
          "callers must send 'authorization: Bearer <token>' (empty: no "
          "authentication)");
ABSL_FLAG(std::string, broker_file, kDefaults.broker_file,
          "file holding the broker URI(s), instead of --broker, so the "
          "password is in neither the process list nor the environment");
ABSL_FLAG(std::string, broker_tls_ca, kDefaults.broker_tls_ca,
          "PEM CA bundle for amqps:// brokers (default: the system's)");
ABSL_FLAG(std::string, broker_tls_cert, kDefaults.broker_tls_cert,
          "PEM client certificate for amqps:// brokers that require one");
ABSL_FLAG(std::string, broker_tls_key, kDefaults.broker_tls_key,
          "PEM private key of --broker_tls_cert");
ABSL_FLAG(bool, broker_tls_verify_hostname,
          kDefaults.broker_tls_verify_hostname,
          "check that an amqps:// broker's certificate names its host");
ABSL_FLAG(std::string, http_listen, kDefaults.http_listen,
          "HTTP address for grpc-web and the browser view, host:port (port 0 "
          "picks a free port); empty disables it");
ABSL_FLAG(std::string, cors_origins, kDefaults.cors_origins,
          "comma-separated origins (https://host[:port]) allowed to call "
          "grpc-web cross-origin; * allows any site (see docs/browser.md); "
          "same-origin needs nothing");
ABSL_FLAG(std::string, web_root, kDefaults.web_root,
          "serve the browser view from this folder instead of the copy "
          "built into the binary (development)");
ABSL_FLAG(int64_t, http_max_connections, kDefaults.http_max_connections,
          "most HTTP connections served at once, one thread each (an open "
          "grpc-web stream holds one); more wait");

namespace {

// Every flag has an environment twin, AMQPGW_<NAME>; the command line wins.
constexpr const char* kFlagNames[] = {
    "listen",
    "broker",
    "heartbeat",
    "connect_timeout",
    "reconnect_initial_delay",
    "reconnect_max_delay",
    "max_message_bytes",
    "max_request_bytes",
    "confirm_window",
    "max_pending_bytes",
    "publish_timeout",
    "shutdown_grace",
    "publisher_connections",
    "consumer_connections",
    "consumer_read_pause",
    "instance_id",
    "connect_on_start",
    "log_level",
    // Operating it.
    "log_format",
    "metrics_listen",
    "otlp_endpoint",
    "tls_cert",
    "tls_key",
    "tls_client_ca",
    "auth_tokens",
    "broker_file",
    "broker_tls_ca",
    "broker_tls_cert",
    "broker_tls_key",
    "broker_tls_verify_hostname",
    // grpc-web and the browser view.
    "http_listen",
    "cors_origins",
    "web_root",
    "http_max_connections",
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
      "--listen=127.0.0.1:50051 --http_listen=127.0.0.1:8080\n\n"
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
  o.consumer_read_pause = absl::GetFlag(FLAGS_consumer_read_pause);
  o.instance_id = absl::GetFlag(FLAGS_instance_id);
  o.connect_on_start = absl::GetFlag(FLAGS_connect_on_start);
  o.log_level = absl::GetFlag(FLAGS_log_level);
  o.log_format = absl::GetFlag(FLAGS_log_format);
  o.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  o.otlp_endpoint = absl::GetFlag(FLAGS_otlp_endpoint);
  o.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  o.tls_key = absl::GetFlag(FLAGS_tls_key);
  o.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  o.auth_tokens = absl::GetFlag(FLAGS_auth_tokens);
  o.broker_file = absl::GetFlag(FLAGS_broker_file);
  o.broker_tls_ca = absl::GetFlag(FLAGS_broker_tls_ca);
  o.broker_tls_cert = absl::GetFlag(FLAGS_broker_tls_cert);
  o.broker_tls_key = absl::GetFlag(FLAGS_broker_tls_key);
  o.broker_tls_verify_hostname =
      absl::GetFlag(FLAGS_broker_tls_verify_hostname);
  o.http_listen = absl::GetFlag(FLAGS_http_listen);
  o.cors_origins = absl::GetFlag(FLAGS_cors_origins);
  o.web_root = absl::GetFlag(FLAGS_web_root);
  o.http_max_connections = absl::GetFlag(FLAGS_http_max_connections);

  absl::Status s = amqpgw::daemon::ValidateOptions(o);
  if (!s.ok()) {
    std::fprintf(stderr, "amqpgwd: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  amqpgw::daemon::InitLogging(o.log_level, o.log_format);
  return amqpgw::daemon::RunDaemon(o);
}
