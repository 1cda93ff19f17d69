#include "server/daemon/metrics_server.h"

#include <httplib.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/metrics/prometheus.h"

namespace amqpgw::daemon {

MetricsServer::MetricsServer() : server_(std::make_unique<httplib::Server>()) {}

MetricsServer::~MetricsServer() { Stop(); }

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& host_port, std::function<std::string()> render) {
  size_t colon = host_port.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(host_port.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--metrics_listen: want host:port, got '", host_port, "'"));
  }
  std::string host = host_port.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) host = "0.0.0.0";

  std::unique_ptr<MetricsServer> m(new MetricsServer());
  m->server_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  m->server_->Get("/metrics",
                  [render = std::move(render)](const httplib::Request&,
                                               httplib::Response& res) {
                    res.set_content(render(), metrics::kContentType);
                  });
  m->server_->Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("amqpgw: metrics at /metrics\n", "text/plain");
  });
  if (port == 0) {
    m->port_ = m->server_->bind_to_any_port(host);
  } else if (m->server_->bind_to_port(host, port)) {
    m->port_ = port;
  } else {
    m->port_ = -1;
  }
  if (m->port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("--metrics_listen: cannot listen on ", host_port,
                     " (address in use or not local?)"));
  }
  httplib::Server* server = m->server_.get();
  std::atomic<bool>* done = &m->done_;
  m->thread_ = std::thread([server, done] {
    server->listen_after_bind();
    done->store(true);
  });
  return m;
}

void MetricsServer::Stop() {
  if (!thread_.joinable()) return;
  // httplib's stop() does nothing before the accept loop runs: wait
  // (bounded) for it, unless the loop already ended.
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!server_->is_running() && !done_.load() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  server_->stop();
  thread_.join();
}

}  // namespace amqpgw::daemon
