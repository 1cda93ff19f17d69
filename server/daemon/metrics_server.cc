#include "server/daemon/metrics_server.h"

#include "absl/strings/str_cat.h"
#include "server/metrics/prometheus.h"
#include "server/web/http_server.h"

namespace amqpgw::daemon {

MetricsServer::~MetricsServer() { Stop(); }

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& host_port, std::function<std::string()> render) {
  web::HttpServer::Options o;
  o.listen = host_port;
  o.max_active = 2;
  o.max_waiting = 64;
  o.limits.max_body_bytes = 64 * 1024;
  auto handler = [render = std::move(render)](web::HttpExchange& exchange) {
    const web::HttpRequest& req = exchange.request();
    web::HttpResponse r;
    if (req.method != "GET" && req.method != "HEAD") {
      r.status = 405;
      r.headers.emplace_back("Allow", "GET, HEAD");
      r.body = "GET /metrics\n";
    } else if (req.path == "/metrics") {
      r.content_type = metrics::kContentType;
      r.body = render();
    } else if (req.path == "/") {
      r.body = "amqpgw: metrics at /metrics\n";
    } else {
      r.status = 404;
      r.body = "not found (metrics at /metrics)\n";
    }
    exchange.Respond(r);
  };
  std::unique_ptr<MetricsServer> m(new MetricsServer());
  m->server_ =
      std::make_unique<web::HttpServer>(std::move(o), std::move(handler));
  absl::Status s = m->server_->Start();
  if (!s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat("--metrics_listen: ", s.message()));
  }
  m->port_ = m->server_->port();
  return m;
}

void MetricsServer::Stop() {
  if (server_ != nullptr) server_->Stop();
}

}  // namespace amqpgw::daemon
