// The daemon: the broker session, the gRPC server (amqpgw.v1.Gateway,
// grpc.health.v1.Health, reflection), the HTTP server (grpc-web, the browser
// view, extra GET handlers such as /metrics) and their orderly shutdown.
//
// Thread safety: Start, Shutdown and Wait may be called from different
// threads (Shutdown typically from a signal-waiting thread), each once.
#ifndef AMQPGW_SERVER_DAEMON_DAEMON_H_
#define AMQPGW_SERVER_DAEMON_DAEMON_H_

#include <atomic>
#include <memory>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "server/core/session.h"
#include "server/daemon/options.h"
#include "server/grpc/gateway_service.h"
#include "server/web/web_server.h"

namespace amqpgw::daemon {

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

 private:
  void SetServing(bool serving);

  const Options options_;
  std::unique_ptr<core::Session> session_;
  std::unique_ptr<grpc_api::GatewayService> service_;
  std::unique_ptr<::grpc::Server> server_;
  std::unique_ptr<web::WebServer> web_;
  std::atomic<::grpc::HealthCheckServiceInterface*> health_{nullptr};
  int grpc_port_ = 0;
  std::atomic<bool> shutting_down_{false};
  absl::Notification stopped_;
};

// Runs the daemon until SIGINT or SIGTERM; returns the process exit code.
int RunDaemon(const Options& options);

// Configures spdlog on stderr at `level`.
void InitLogging(const std::string& level);

}  // namespace amqpgw::daemon

#endif  // AMQPGW_SERVER_DAEMON_DAEMON_H_
