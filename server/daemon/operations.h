// The operational side of the daemon, kept out of daemon.cc: gRPC server
// credentials from the --tls_* flags, warnings about risky deployments, and
// the metric families /metrics shows.
#ifndef AMQPGW_SERVER_DAEMON_OPERATIONS_H_
#define AMQPGW_SERVER_DAEMON_OPERATIONS_H_

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/core/session.h"
#include "server/daemon/config.h"
#include "server/metrics/prometheus.h"
#include "server/metrics/rpc_metrics.h"
#include "server/trace/otlp_exporter.h"

namespace amqpgw::daemon {

// TLS credentials when --tls_cert is set (requiring and verifying client
// certificates with --tls_client_ca), else insecure ones.
std::shared_ptr<::grpc::ServerCredentials> MakeServerCredentials(
    const Config& config);

// How this instance reaches the others to forward Acks: TLS when its own
// port has TLS (its certificate as the client's, peers verified against
// --tls_client_ca or else the system's CAs), else insecure.
std::shared_ptr<::grpc::ChannelCredentials> MakePeerCredentials(
    const Config& config);

// Logs a warning for each risk: a non-loopback gRPC or HTTP address without
// TLS or without tokens, an HTTP port made less protected than the gRPC
// port (--http_insecure), a non-loopback --metrics_listen (no tokens
// there), token/broker/key files other users may read, broker TLS flags
// without an amqps:// broker.
void WarnAboutRisks(const Config& config);

// Adds the daemon's families to `registry`: build info, RPC metrics, the
// session's counters, state and blocked flag, and span export counters.
// Everything passed must outlive the registry's use; `rpc` and `spans` may
// be null.
void RegisterDaemonMetrics(metrics::Registry& registry, core::Session* session,
                           const metrics::RpcMetrics* rpc,
                           const trace::OtlpHttpExporter* spans);

}  // namespace amqpgw::daemon

#endif  // AMQPGW_SERVER_DAEMON_OPERATIONS_H_
