// The daemon: the broker session, the gRPC server (amqpgw.v1.Gateway,
// grpc.health.v1.Health, reflection), the HTTP server (grpc-web and the
// browser view) and their orderly shutdown; and the operational parts: TLS,
// caller tokens, metrics (the registry, and --metrics_listen), span export.
//
// Thread safety: Start, Shutdown and Wait may be called from different
// threads (Shutdown typically from a signal-waiting thread), each once.
#ifndef AMQPGW_SERVER_DAEMON_DAEMON_H_
#define AMQPGW_SERVER_DAEMON_DAEMON_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>

#include "absl/status/status.h"
#include "server/base/sync.h"
#include "server/core/exchange_types.h"
#include "server/core/session.h"
#include "server/daemon/options.h"
#include "server/grpc/auth.h"
#include "server/grpc/gateway_service.h"
#include "server/metrics/prometheus.h"
#include "server/metrics/rpc_metrics.h"
#include "server/trace/otlp_exporter.h"
#include "server/web/web_server.h"

namespace amqpgw::daemon {

class MetricsServer;

class Daemon {
 public:
  explicit Daemon(Options options);
  ~Daemon();

  // Validates options, starts the session and binds the gRPC port, then the
  // HTTP port (unless --http_listen is empty).
  absl::Status Start();
  // Health NOT_SERVING, new grpc-web calls refused, streams ended
  // (UNAVAILABLE); grpc-web calls end first (they travel through the
  // in-process channel that the gRPC shutdown closes), then gRPC shuts down,
  // both within --shutdown_grace; the HTTP port closes; confirms drained,
  // connections closed, threads joined. Idempotent.
  void Shutdown();
  // Returns once Shutdown() completed.
  void Wait();

  // The bound gRPC port (useful with port 0).
  int grpc_port() const { return grpc_port_; }
  // The bound HTTP port; 0 when --http_listen is empty.
  int http_port() const { return web_ == nullptr ? 0 : web_->port(); }
  // The HTTP server, after Start (nullptr when --http_listen is empty).
  // Other layers add plain GET endpoints with web()->AddHandler(path, ...),
  // e.g. /metrics.
  web::WebServer* web() { return web_.get(); }
  std::shared_ptr<::grpc::Channel> InProcessChannel();
  core::Session& session() { return *session_; }
  const Options& options() const { return options_; }
  // Prometheus text for GET /metrics (any thread, after Start). The HTTP
  // port's server and --metrics_listen both serve it.
  std::string RenderMetrics() const { return metrics_.Render(); }
  // The --metrics_listen port (0 when off).
  int metrics_port() const;

 private:
  void SetServing(bool serving);

  const Options options_;
  // Declared before the session, service and server, which use them.
  metrics::Registry metrics_;
  std::unique_ptr<metrics::RpcMetrics> rpc_metrics_;
  std::unique_ptr<trace::OtlpHttpExporter> spans_;
  std::unique_ptr<grpc_api::Authorizer> authorizer_;
  std::unique_ptr<MetricsServer> metrics_server_;
  std::unique_ptr<core::ExchangeTypes> exchange_types_;
  std::unique_ptr<core::Session> session_;
  std::unique_ptr<grpc_api::GatewayService> service_;
  std::unique_ptr<::grpc::Server> server_;
  std::unique_ptr<web::WebServer> web_;
  std::atomic<::grpc::HealthCheckServiceInterface*> health_{nullptr};
  int grpc_port_ = 0;
  std::atomic<bool> shutting_down_{false};
  amqpgw::Notification stopped_;
};

// Runs the daemon until SIGINT or SIGTERM; returns the process exit code.
int RunDaemon(const Options& options);

// Configures spdlog on stderr at `level`, as readable text or (`format`
// "json") one JSON object a line: ts, level, logger, thread, msg. gRPC's own
// log lines go through it too.
void InitLogging(const std::string& level, const std::string& format = "text");

}  // namespace amqpgw::daemon

#endif  // AMQPGW_SERVER_DAEMON_DAEMON_H_
