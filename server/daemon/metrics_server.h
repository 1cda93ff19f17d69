// A small HTTP server for GET /metrics (--metrics_listen), for deployments
// without the grpc-web HTTP port, or that scrape on a private address. The
// same HTTP server as the HTTP port (web::HttpServer: deadlines, strict
// framing), with two worker threads; the render function runs on them. It
// asks for no token: bind it where only the scraper can reach it.
//
// Thread safety: Start, Stop and port from the daemon's threads.
#ifndef AMQPGW_SERVER_DAEMON_METRICS_SERVER_H_
#define AMQPGW_SERVER_DAEMON_METRICS_SERVER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace amqpgw::web {
class HttpServer;
}

namespace amqpgw::daemon {

class MetricsServer {
 public:
  // Binds `host_port` (port 0: a free one) and serves `render()` at
  // /metrics. `render` must stay valid until Stop().
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& host_port, std::function<std::string()> render);
  ~MetricsServer();

  int port() const { return port_; }
  // Stops serving and joins the threads. Idempotent.
  void Stop();

 private:
  MetricsServer() = default;
  std::unique_ptr<web::HttpServer> server_;
  int port_ = 0;
};

}  // namespace amqpgw::daemon

#endif  // AMQPGW_SERVER_DAEMON_METRICS_SERVER_H_
