// A small HTTP server for GET /metrics (--metrics_listen), for deployments
// without the grpc-web HTTP port. cpp-httplib with two worker threads; the
// render function runs on them.
//
// Thread safety: Start, Stop and port from the daemon's threads.
#ifndef AMQPGW_SERVER_DAEMON_METRICS_SERVER_H_
#define AMQPGW_SERVER_DAEMON_METRICS_SERVER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace httplib {
class Server;
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
  MetricsServer();
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::atomic<bool> done_{false};  // the accept loop returned
  int port_ = 0;
};

}  // namespace amqpgw::daemon

#endif  // AMQPGW_SERVER_DAEMON_METRICS_SERVER_H_
