// What the daemon runs with: the flag values (Options) validated once, and
// every file they name read once: the broker URIs (--broker_file), the
// token file, the TLS certificates and keys of both ports (their PEM
// checked here, so a bad file is refused at start-up naming its flag).
//
// Immutable once loaded; shared as std::shared_ptr<const Config>. Threads:
// any. The one part that changes later is the token table's content
// (tokens(): SIGHUP replaces it in place, Authorizer::ReplaceWith).
#ifndef AMQPGW_SERVER_DAEMON_CONFIG_H_
#define AMQPGW_SERVER_DAEMON_CONFIG_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/core/session.h"
#include "server/daemon/options.h"
#include "server/grpc/auth.h"
#include "server/management/client.h"
#include "server/web/tls_context.h"

namespace amqpgw::daemon {

class Config {
 public:
  // ValidateOptions, then the files. INVALID_ARGUMENT naming the flag;
  // never echoes a broker URI or a token.
  static absl::StatusOr<std::shared_ptr<const Config>> Load(Options options);

  const Options& options() const { return options_; }
  // Brokers parsed, instance id resolved, tuning copied.
  const core::SessionOptions& session() const { return session_; }

  // The gRPC port's TLS, as PEM texts; an empty certificate: plain.
  const std::string& grpc_cert_pem() const { return grpc_cert_pem_; }
  const std::string& grpc_key_pem() const { return grpc_key_pem_; }
  const std::string& grpc_client_ca_pem() const { return grpc_client_ca_pem_; }
  // The HTTP port's TLS after the defaults (EffectiveHttpTls); nullptr:
  // plain HTTP (or no HTTP port).
  const std::shared_ptr<const web::TlsContext>& http_tls() const {
    return http_tls_;
  }
  // The token table, nullptr without --auth_tokens.
  const std::shared_ptr<grpc_api::Authorizer>& tokens() const {
    return tokens_;
  }
  // --peer_secret_file's content (whitespace trimmed); empty without it.
  const std::string& peer_secret() const { return peer_secret_; }
  // --cors_origins as a list.
  const std::vector<std::string>& cors_origins() const { return cors_origins_; }
  // The management API client's settings (listing): URL (empty: derived
  // from the broker's host once the session is up), user and password (the
  // first broker URI's unless --management_user / --management_password_file
  // say otherwise), vhost, the broker's TLS trust, and the prefix of the
  // gateway's own connection names.
  const management::ManagementClient::Options& management() const {
    return management_;
  }

 private:
  Config() = default;

  Options options_;
  core::SessionOptions session_;
  std::string grpc_cert_pem_;
  std::string grpc_key_pem_;
  std::string grpc_client_ca_pem_;
  std::shared_ptr<const web::TlsContext> http_tls_;
  std::shared_ptr<grpc_api::Authorizer> tokens_;
  std::vector<std::string> cors_origins_;
  std::string peer_secret_;
  management::ManagementClient::Options management_;
};

}  // namespace amqpgw::daemon

#endif  // AMQPGW_SERVER_DAEMON_CONFIG_H_
