#include "server/daemon/config.h"

#include <unistd.h>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/amqp/broker_address.h"
#include "server/base/host_port.h"
#include "server/daemon/flags.h"

namespace amqpgw::daemon {
namespace {

absl::Status Bad(absl::string_view flag, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", what));
}

// The broker URI list: the lines of --broker_file (comments and blank lines
// skipped), else --broker.
absl::StatusOr<std::vector<amqp::BrokerAddress>> Brokers(const Options& o) {
  std::string uris = o.broker;
  absl::string_view flag = "broker";
  if (!o.broker_file.empty()) {
    flag = "broker_file";
    absl::StatusOr<std::string> text =
        ReadFileForFlag("broker_file", o.broker_file);
    if (!text.ok()) return text.status();
    std::vector<std::string> lines;
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (line.empty() || line[0] == '#') continue;
      lines.emplace_back(line);
    }
    uris = absl::StrJoin(lines, ",");
  }
  auto brokers = amqp::ParseBrokerList(uris);
  if (!brokers.ok()) return Bad(flag, brokers.status().message());
  return brokers;
}

// A TLS context from PEM files, its errors naming the flag of the part
// that is wrong.
absl::StatusOr<std::shared_ptr<const web::TlsContext>> TlsFromFiles(
    const std::string& cert_pem, const std::string& key_pem,
    const std::string& ca_pem, const HttpTlsFiles& flags) {
  auto tls = web::TlsContext::FromPem(cert_pem, key_pem, ca_pem);
  if (tls.ok()) return tls;
  absl::string_view m = tls.status().message();
  absl::string_view flag = absl::StartsWith(m, "private key") ? flags.key_flag
                           : absl::StartsWith(m, "client CA")
                               ? flags.client_ca_flag
                               : flags.cert_flag;
  return Bad(flag, m);
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Config>> Config::Load(Options options) {
  absl::Status s = ValidateOptions(options);
  if (!s.ok()) return s;
  std::shared_ptr<Config> c(new Config());
  c->options_ = std::move(options);
  const Options& o = c->options_;
  c->cors_origins_ = CorsOrigins(o);

  absl::StatusOr<std::vector<amqp::BrokerAddress>> brokers = Brokers(o);
  if (!brokers.ok()) return brokers.status();
  core::SessionOptions& out = c->session_;
  out.brokers = *std::move(brokers);
  out.open.heartbeat = o.heartbeat;
  out.open.tls.ca_file = o.broker_tls_ca;
  out.open.tls.cert_file = o.broker_tls_cert;
  out.open.tls.key_file = o.broker_tls_key;
  out.open.tls.verify_hostname = o.broker_tls_verify_hostname;
  out.open.connect_timeout = o.connect_timeout;
  out.backoff.initial = o.reconnect_initial_delay;
  out.backoff.max = o.reconnect_max_delay;
  out.publisher_connections = static_cast<int>(o.publisher_connections);
  out.consumer_connections = static_cast<int>(o.consumer_connections);
  out.consumer_read_pause = o.consumer_read_pause;
  out.confirm_window = static_cast<uint32_t>(o.confirm_window);
  out.max_pending_bytes = o.max_pending_bytes;
  out.default_timeout = o.publish_timeout;
  out.connect_on_start = o.connect_on_start;
  out.instance_id = o.instance_id;
  if (out.instance_id.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    absl::StatusOr<HostPort> listen = ParseHostPort(o.listen);
    out.instance_id = absl::StrCat(host, ":", listen.ok() ? listen->port : 0);
  }
  // rabbitmq-c reads these by path when it connects: readable now?
  for (const auto& [flag, path] : {std::pair<const char*, const std::string*>{
                                       "broker_tls_ca", &o.broker_tls_ca},
                                   {"broker_tls_cert", &o.broker_tls_cert},
                                   {"broker_tls_key", &o.broker_tls_key}}) {
    if (path->empty()) continue;
    absl::Status readable = ReadFileForFlag(flag, *path).status();
    if (!readable.ok()) return readable;
  }

  // The gRPC port's TLS.
  if (!o.tls_cert.empty()) {
    absl::StatusOr<std::string> cert = ReadFileForFlag("tls_cert", o.tls_cert);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadFileForFlag("tls_key", o.tls_key);
    if (!key.ok()) return key.status();
    c->grpc_cert_pem_ = *std::move(cert);
    c->grpc_key_pem_ = *std::move(key);
    if (!o.tls_client_ca.empty()) {
      absl::StatusOr<std::string> ca =
          ReadFileForFlag("tls_client_ca", o.tls_client_ca);
      if (!ca.ok()) return ca.status();
      c->grpc_client_ca_pem_ = *std::move(ca);
    }
    // gRPC would refuse a bad file only when it binds, without a reason:
    // check the PEM here, with the same code the HTTP port uses.
    HttpTlsFiles grpc_flags;
    grpc_flags.cert_flag = "tls_cert";
    grpc_flags.key_flag = "tls_key";
    grpc_flags.client_ca_flag = "tls_client_ca";
    auto checked = TlsFromFiles(c->grpc_cert_pem_, c->grpc_key_pem_,
                                c->grpc_client_ca_pem_, grpc_flags);
    if (!checked.ok()) return checked.status();
  }

  // The HTTP port's TLS, after the defaults; never less than the gRPC
  // port's unless --http_insecure says so.
  if (!o.http_listen.empty()) {
    HttpTlsFiles files = EffectiveHttpTls(o);
    if (!files.cert.empty()) {
      // The same files as the gRPC port's are not read twice.
      auto read =
          [&](const std::string& flag, const std::string& path,
              const std::string& grpc_path,
              const std::string& grpc_pem) -> absl::StatusOr<std::string> {
        if (path.empty()) return std::string();
        if (path == grpc_path && !grpc_pem.empty()) return grpc_pem;
        return ReadFileForFlag(flag, path);
      };
      auto cert =
          read(files.cert_flag, files.cert, o.tls_cert, c->grpc_cert_pem_);
      if (!cert.ok()) return cert.status();
      auto key = read(files.key_flag, files.key, o.tls_key, c->grpc_key_pem_);
      if (!key.ok()) return key.status();
      auto ca = read(files.client_ca_flag, files.client_ca, o.tls_client_ca,
                     c->grpc_client_ca_pem_);
      if (!ca.ok()) return ca.status();
      auto tls = TlsFromFiles(*cert, *key, *ca, files);
      if (!tls.ok()) return tls.status();
      c->http_tls_ = *std::move(tls);
    }
    bool http_tls = c->http_tls_ != nullptr;
    bool http_client_certs =
        http_tls && c->http_tls_->requires_client_certificate();
    if (!o.http_insecure &&
        ((!o.tls_cert.empty() && !http_tls) ||
         (!o.tls_client_ca.empty() && !http_client_certs))) {
      return Bad("http_listen",
                 "the HTTP port would be less protected than the gRPC port "
                 "(TLS, client certificates); give it --http_tls_* flags, "
                 "or say so with --http_insecure");
    }
  }

  if (!o.auth_tokens.empty()) {
    auto tokens = grpc_api::Authorizer::FromFile(o.auth_tokens);
    if (!tokens.ok()) return Bad("auth_tokens", tokens.status().message());
    c->tokens_ = *std::move(tokens);
  }

  if (!o.peer_secret_file.empty()) {
    absl::StatusOr<std::string> secret =
        ReadFileForFlag("peer_secret_file", o.peer_secret_file);
    if (!secret.ok()) return secret.status();
    c->peer_secret_ = std::string(absl::StripAsciiWhitespace(*secret));
    if (c->peer_secret_.size() < 16) {
      return Bad("peer_secret_file",
                 "the secret must be at least 16 characters (e.g. `openssl "
                 "rand -hex 32`)");
    }
  }

  // Listing: the management API, by default as the (first) broker's user.
  management::ManagementClient::Options& m = c->management_;
  const amqp::BrokerAddress& broker = out.brokers.front();
  m.url = o.management_url;
  m.user = o.management_user.empty() ? broker.user : o.management_user;
  m.password = broker.password;
  if (!o.management_password_file.empty()) {
    absl::StatusOr<std::string> text =
        ReadFileForFlag("management_password_file", o.management_password_file);
    if (!text.ok()) return text.status();
    m.password = std::string(absl::StripAsciiWhitespace(*text));
  }
  m.vhost = broker.vhost;
  m.tls_ca_file = o.broker_tls_ca;
  m.tls_cert_file = o.broker_tls_cert;
  m.tls_key_file = o.broker_tls_key;
  m.own_connection_prefix =
      absl::StrCat(core::ConnectionName(out.instance_id), " ");
  return std::shared_ptr<const Config>(std::move(c));
}

}  // namespace amqpgw::daemon
