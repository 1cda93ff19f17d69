// The daemon: the broker session, the gRPC server (amqpgw.v1.Gateway,
// grpc.health.v1.Health, reflection), the HTTP server (grpc-web, the
// browser view, /metrics) and their orderly shutdown; and the operational
// parts: TLS, caller tokens, metrics (the registry, and --metrics_listen),
// span export, SIGHUP reloads.
//
// Start builds every component into one Components object, in dependency
// order; if a step fails, Start returns and that object's destructor takes
// down what was built, in reverse order (as TensorFlow Serving's
// Server::BuildAndStart does): no step is undone by hand.
//
// Thread safety: Start, Shutdown and Wait may be called from different
// threads (Shutdown typically from a signal-waiting thread), each once.
// Reload from one thread at a time (the signal thread), after Start.
#ifndef AMQPGW_SERVER_DAEMON_DAEMON_H_
#define AMQPGW_SERVER_DAEMON_DAEMON_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/base/sync.h"
#include "server/core/exchange_types.h"
#include "server/core/session.h"
#include "server/daemon/config.h"
#include "server/daemon/options.h"
#include "server/web/web_server.h"

namespace amqpgw::daemon {

class Daemon {
 public:
  explicit Daemon(std::shared_ptr<const Config> config);
  ~Daemon();

  // Starts the session and binds the gRPC port (refusing a port another
  // process listens on: no SO_REUSEPORT), then --metrics_listen and the
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

  // SIGHUP: applies what `next` changes among the reloadable flags (the log
  // level; the token file's content, re-read) and logs each change; other
  // flags that differ are logged as waiting for a restart.
  void Reload(const Config& next);

  // The bound gRPC port (useful with port 0).
  int grpc_port() const { return grpc_port_; }
  // The bound HTTP port; 0 when --http_listen is empty.
  int http_port() const;
  // The HTTP server, after Start (nullptr when --http_listen is empty).
  // Other layers add plain GET endpoints with web()->AddHandler(path, ...).
  web::WebServer* web();
  std::shared_ptr<::grpc::Channel> InProcessChannel();
  core::Session& session();
  const Options& options() const { return config_->options(); }
  const Config& config() const { return *config_; }
  // Prometheus text for GET /metrics (any thread, after Start). The HTTP
  // port's server and --metrics_listen both serve it.
  std::string RenderMetrics() const;
  // The --metrics_listen port (0 when off).
  int metrics_port() const;

 private:
  struct Components;

  void SetServing(bool serving);
  // GET /metrics on the HTTP port: with --auth_tokens, a token of any role.
  web::HttpResponse MetricsPage(const web::HttpRequest& request) const;

  const std::shared_ptr<const Config> config_;
  // Everything Start built; null before Start and after a failed Start.
  std::unique_ptr<Components> parts_;
  std::atomic<::grpc::HealthCheckServiceInterface*> health_{nullptr};
  int grpc_port_ = 0;
  std::atomic<bool> shutting_down_{false};
  amqpgw::Notification stopped_;
  // The log level in force (Reload only).
  std::string log_level_;
};

// Runs the daemon until SIGINT or SIGTERM; returns the process exit code.
// On SIGHUP calls `reload` (which re-reads the command line's flag files
// and the files they name) and hands the result to Daemon::Reload; when it
// fails, logs why and keeps the configuration in force.
int RunDaemon(std::shared_ptr<const Config> config,
              std::function<absl::StatusOr<std::shared_ptr<const Config>>()>
                  reload = nullptr);

// Configures spdlog on stderr at `level`, as readable text or (`format`
// "json") one JSON object a line: ts, level, logger, thread, msg. gRPC's own
// log lines go through it too.
void InitLogging(const std::string& level, const std::string& format = "text");
// Changes the level of the logger InitLogging made.
void SetLogLevel(const std::string& level);

}  // namespace amqpgw::daemon

#endif  // AMQPGW_SERVER_DAEMON_DAEMON_H_
