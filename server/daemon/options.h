// The daemon's flag values, one field per flag of the flag table
// (flags.h: names, help, environment twins, checks); the defaults are
// written here. Config (config.h) is what the daemon runs with: these
// values validated once, and the files they name read once.
#ifndef AMQPGW_SERVER_DAEMON_OPTIONS_H_
#define AMQPGW_SERVER_DAEMON_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

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
  // Give each published message without a message_id a new UUID.
  bool default_message_id = false;
  int64_t max_pending_bytes = int64_t{256} << 20;
  absl::Duration publish_timeout = absl::Seconds(30);
  absl::Duration shutdown_grace = absl::Seconds(10);
  int64_t publisher_connections = 1;
  int64_t consumer_connections = 2;
  // After a consumer connection's thread has read many deliveries at once
  // (ConnectionWorker::kReadPauseMinEvents), it waits up to this long
  // (ConnectionWorker::ReadPauseAfter: at most 2 us per message of its
  // streams' prefetch windows) before reading again, so that deliveries
  // arriving meanwhile travel on in one batch (fewer thread wake-ups per
  // delivery). Zero: read as soon as data arrives.
  absl::Duration consumer_read_pause = absl::Milliseconds(2);
  // Prefix of subscription ids; default "<hostname>:<listen port>".
  std::string instance_id;
  // Ack forwarding between instances (grpc_api::AckRouter): where the
  // others reach this one's gRPC port, and the file of the secret they all
  // share. Both or neither.
  std::string advertise_address;
  std::string peer_secret_file;
  bool connect_on_start = true;
  std::string log_level = "info";

  // --- Operating it: logs, metrics, tracing, TLS, authentication. ---
  // "text" (readable) or "json" (one object a line).
  std::string log_format = "text";
  // host:port serving GET /metrics (Prometheus); empty: off.
  std::string metrics_listen;
  // OTLP/HTTP collector, e.g. http://127.0.0.1:4318; empty: no spans.
  std::string otlp_endpoint;
  // gRPC server TLS (PEM files); with tls_client_ca, mutual TLS.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // Bearer tokens with roles ("<token> <role>" lines); empty: no auth.
  std::string auth_tokens;
  // A file with the broker URIs (comma- or newline-separated, # comments),
  // so the password is in neither the process list nor the environment.
  // Takes the place of `broker` when set.
  std::string broker_file;
  // amqps:// brokers: CA bundle (empty: system CAs), client certificate and
  // key (PEM), and whether the certificate must name the host.
  std::string broker_tls_ca;
  std::string broker_tls_cert;
  std::string broker_tls_key;
  bool broker_tls_verify_hostname = true;
  // HTTP address (grpc-web, the browser view, extra GET handlers),
  // host:port; port 0 picks a free one; empty disables the HTTP server.
  std::string http_listen = "127.0.0.1:8080";
  // Comma-separated origins ("https://app.example.com", "*" for any) that
  // may call grpc-web cross-origin. Same-origin needs no entry.
  std::string cors_origins;
  // Serve the browser view from this folder instead of the embedded copy.
  std::string web_root;
  // Most HTTP requests served at once (one thread each).
  int64_t http_max_connections = 1024;
  // HTTPS on the HTTP port: certificate chain and key (PEM files); empty:
  // --tls_cert and --tls_key. Client certificates signed by
  // http_tls_client_ca are required; empty: --tls_client_ca.
  std::string http_tls_cert;
  std::string http_tls_key;
  std::string http_tls_client_ca;
  // Serve the HTTP port with only its own --http_tls_* flags, even when
  // that is less than the gRPC port requires (logged as a warning).
  bool http_insecure = false;
  // Deadlines for an HTTP request's head (from its first byte) and body
  // (from the end of its head).
  absl::Duration http_header_timeout = absl::Seconds(10);
  absl::Duration http_body_timeout = absl::Seconds(30);

  // --- Listing the broker: RabbitMQ's management HTTP API. ---
  // http(s)://host:port/; empty: http://<broker host>:15672/, tried once the
  // session is up. https uses the --broker_tls_* trust.
  std::string management_url;
  // Its user, and a file holding the password; empty: those of the (first)
  // broker URI.
  std::string management_user;
  std::string management_password_file;
};

// --cors_origins as a list (empty entries dropped).
std::vector<std::string> CorsOrigins(const Options& options);

// The whole file; the error names `flag`.
absl::StatusOr<std::string> ReadFileForFlag(absl::string_view flag,
                                            const std::string& path);

// True for addresses only this machine can reach: 127.0.0.0/8, ::1,
// localhost.
bool IsLoopbackListen(absl::string_view host_port);

// The HTTP port's TLS files after the defaults (--tls_* when the
// --http_tls_* flags are empty, unless --http_insecure).
struct HttpTlsFiles {
  std::string cert;  // empty: plain HTTP
  std::string key;
  std::string client_ca;  // empty: no client certificates
  // The flags they came from, for messages.
  std::string cert_flag = "http_tls_cert";
  std::string key_flag = "http_tls_key";
  std::string client_ca_flag = "http_tls_client_ca";
};
HttpTlsFiles EffectiveHttpTls(const Options& options);

}  // namespace amqpgw::daemon

#endif  // AMQPGW_SERVER_DAEMON_OPTIONS_H_
