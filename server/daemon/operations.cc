#include "server/daemon/operations.h"

#include <grpcpp/security/server_credentials.h>
#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "server/core/stats.h"
#include "spdlog/spdlog.h"

namespace amqpgw::daemon {
namespace {

void WarnIfOthersCanRead(const char* flag, const std::string& path) {
  struct stat st;
  if (path.empty() || stat(path.c_str(), &st) != 0) return;
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    spdlog::warn("--{}: '{}' is readable by other users; chmod 600 it", flag,
                 path);
  }
}

// A port bound beyond loopback without TLS or without tokens: one warning,
// the same words for every port.
void WarnIfExposed(const std::string& listen, bool tls,
                   absl::string_view tls_flags, bool tokens) {
  if (IsLoopbackListen(listen) || (tls && tokens)) return;
  spdlog::warn("listening on {} (not loopback) without {}{}{}: {}", listen,
               tls ? "" : absl::StrCat("TLS (", tls_flags, ")"),
               !tls && !tokens ? " and without " : "",
               tokens ? "" : "caller authentication (--auth_tokens)",
               tokens ? "traffic, tokens included, crosses the network in clear"
                      : "anyone who can reach this address can use the broker "
                        "through the gateway");
}

}  // namespace

std::shared_ptr<::grpc::ServerCredentials> MakeServerCredentials(
    const Config& config) {
  if (config.grpc_cert_pem().empty()) {
    return ::grpc::InsecureServerCredentials();
  }
  ::grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back(
      {config.grpc_key_pem(), config.grpc_cert_pem()});
  if (!config.grpc_client_ca_pem().empty()) {
    ssl.pem_root_certs = config.grpc_client_ca_pem();
    ssl.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  } else {
    ssl.client_certificate_request = GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
  }
  return ::grpc::SslServerCredentials(ssl);
}

std::shared_ptr<::grpc::ChannelCredentials> MakePeerCredentials(
    const Config& config) {
  if (config.grpc_cert_pem().empty()) {
    return ::grpc::InsecureChannelCredentials();
  }
  ::grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = config.grpc_client_ca_pem();
  ssl.pem_private_key = config.grpc_key_pem();
  ssl.pem_cert_chain = config.grpc_cert_pem();
  return ::grpc::SslCredentials(ssl);
}

void WarnAboutRisks(const Config& config) {
  const Options& o = config.options();
  const bool tokens = !o.auth_tokens.empty();
  WarnIfExposed(o.listen, !o.tls_cert.empty(), "--tls_cert, --tls_key", tokens);
  if (!o.http_listen.empty()) {
    const bool http_tls = config.http_tls() != nullptr;
    WarnIfExposed(o.http_listen, http_tls, "--http_tls_cert, --http_tls_key",
                  tokens);
    const bool http_client_certs =
        http_tls && config.http_tls()->requires_client_certificate();
    if (o.http_insecure && ((!o.tls_cert.empty() && !http_tls) ||
                            (!o.tls_client_ca.empty() && !http_client_certs))) {
      spdlog::warn(
          "--http_insecure: the HTTP port {} serves every RPC {} while the "
          "gRPC port requires {}",
          o.http_listen,
          http_tls ? "without client certificates" : "over plain HTTP",
          o.tls_client_ca.empty() ? "TLS" : "TLS and client certificates");
    }
  }
  if (!o.metrics_listen.empty() && !IsLoopbackListen(o.metrics_listen)) {
    spdlog::warn(
        "--metrics_listen {} (not loopback) serves /metrics to anyone who can "
        "reach it, without TLS or tokens",
        o.metrics_listen);
  }
  WarnIfOthersCanRead("auth_tokens", o.auth_tokens);
  WarnIfOthersCanRead("broker_file", o.broker_file);
  WarnIfOthersCanRead("peer_secret_file", o.peer_secret_file);
  WarnIfOthersCanRead("tls_key", o.tls_key);
  WarnIfOthersCanRead("http_tls_key", o.http_tls_key);
  WarnIfOthersCanRead("broker_tls_key", o.broker_tls_key);
  WarnIfOthersCanRead("management_password_file", o.management_password_file);
  bool any_tls_flag = !o.broker_tls_ca.empty() || !o.broker_tls_cert.empty();
  bool any_amqps = false;
  for (const auto& b : config.session().brokers) any_amqps |= b.tls;
  if (any_tls_flag && !any_amqps) {
    spdlog::warn(
        "--broker_tls_* flags are set but no broker URI is amqps://; they "
        "have no effect");
  }
}

void RegisterDaemonMetrics(metrics::Registry& registry, core::Session* session,
                           const metrics::RpcMetrics* rpc,
                           const trace::OtlpHttpExporter* spans) {
  registry.Add([session](metrics::TextWriter& w) {
    w.Family("amqpgw_build_info", "gauge",
             "Always 1; the labels say which amqpgwd this is.");
    w.Sample(
        "amqpgw_build_info",
        {{"version", AMQPGW_VERSION}, {"instance_id", session->instance_id()}},
        1);
  });
  if (rpc != nullptr) {
    registry.Add([rpc](metrics::TextWriter& w) { rpc->Collect(w); });
  }
  registry.Add([session](metrics::TextWriter& w) {
    core::CountersSnapshot c = session->Counters();
#define AMQPGW_COUNTER_METRIC(name, kind, metric, help) \
  w.kind(metric, help, static_cast<double>(c.name));
    AMQPGW_COUNTERS(AMQPGW_COUNTER_METRIC)
#undef AMQPGW_COUNTER_METRIC
    const core::Stats& stats = session->stats();
    stats.publish_queued.Collect(
        w, "amqpgw_publish_queued_seconds",
        "Per message the broker answered: from the call's hand-off to the "
        "broker session to the message's last write to the broker (the "
        "gateway's own share of a publish).");
    stats.publish_confirm.Collect(
        w, "amqpgw_publish_confirm_seconds",
        "Per message the broker answered: from its last write to the broker "
        "to the broker's confirm, nack or return (the broker's share).");
    core::ConnectionInfo info = session->Info();
    w.Family("amqpgw_session_state", "gauge",
             "1 for the broker session's current state, 0 for the others.");
    for (core::SessionState s :
         {core::SessionState::kConnecting, core::SessionState::kReady,
          core::SessionState::kReconnecting,
          core::SessionState::kDisconnected}) {
      w.Sample("amqpgw_session_state", {{"state", core::SessionStateName(s)}},
               info.state == s ? 1 : 0);
    }
    w.Gauge("amqpgw_broker_blocked",
            "1 while the broker blocks publishing (memory or disk alarm).",
            info.blocked ? 1 : 0);
  });
  registry.Add([spans](metrics::TextWriter& w) {
    trace::OtlpHttpExporter::Counters c;
    if (spans != nullptr) c = spans->counters();
    w.Counter("amqpgw_trace_spans_exported_total",
              "Spans the OTLP collector accepted.", c.exported);
    w.Counter("amqpgw_trace_spans_dropped_total",
              "Spans dropped because the export queue was full.", c.dropped);
    w.Counter("amqpgw_trace_spans_failed_total",
              "Spans lost because the collector refused or did not answer.",
              c.failed);
  });
}

}  // namespace amqpgw::daemon
