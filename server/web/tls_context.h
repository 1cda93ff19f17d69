// Server-side TLS for the HTTP ports: an OpenSSL context built once from PEM
// texts (certificate chain, private key, and optionally the CA bundle that
// client certificates must chain to). TLS 1.2 and 1.3 only; ALPN offers
// http/1.1 (this server speaks HTTP/1.1 only, so browsers never try h2).
//
// Threads: immutable after FromPem; shared by every connection (OpenSSL's
// SSL_CTX is thread-safe for creating SSL objects).
#ifndef AMQPGW_SERVER_WEB_TLS_CONTEXT_H_
#define AMQPGW_SERVER_WEB_TLS_CONTEXT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace amqpgw::web {

class TlsContext {
 public:
  // `cert_chain_pem`: the server's certificate, then its intermediates.
  // `key_pem`: its private key. `client_ca_pem`: when not empty, every
  // client must present a certificate signed by one of these CAs (mutual
  // TLS), else the handshake fails. INVALID_ARGUMENT says which part is
  // wrong ("certificate: ...", "private key: ...", "client CA: ...").
  static absl::StatusOr<std::shared_ptr<const TlsContext>> FromPem(
      absl::string_view cert_chain_pem, absl::string_view key_pem,
      absl::string_view client_ca_pem);
  ~TlsContext();

  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* ctx() const { return ctx_; }
  bool requires_client_certificate() const { return client_certificates_; }

 private:
  TlsContext() = default;
  SSL_CTX* ctx_ = nullptr;
  bool client_certificates_ = false;
};

// OpenSSL's error queue as one line (and cleared), for messages.
std::string TakeOpenSslErrors();

}  // namespace amqpgw::web

#endif  // AMQPGW_SERVER_WEB_TLS_CONTEXT_H_
