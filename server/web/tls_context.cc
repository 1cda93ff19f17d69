#include "server/web/tls_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace amqpgw::web {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

BioPtr MemoryBio(absl::string_view pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

absl::Status Bad(absl::string_view what, absl::string_view detail) {
  std::string errors = TakeOpenSslErrors();
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": ", detail, errors.empty() ? "" : " (", errors,
                   errors.empty() ? "" : ")"));
}

// ALPN: this server speaks http/1.1 only.
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen,
               const unsigned char* in, unsigned int inlen, void*) {
  static const unsigned char kHttp11[] = "http/1.1";
  for (unsigned int i = 0; i < inlen;) {
    unsigned int len = in[i];
    if (i + 1 + len > inlen) break;
    if (len == 8 && std::memcmp(in + i + 1, kHttp11, 8) == 0) {
      *out = in + i + 1;
      *outlen = 8;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

std::string TakeOpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

absl::StatusOr<std::shared_ptr<const TlsContext>> TlsContext::FromPem(
    absl::string_view cert_chain_pem, absl::string_view key_pem,
    absl::string_view client_ca_pem) {
  ERR_clear_error();
  std::shared_ptr<TlsContext> t(new TlsContext());
  t->ctx_ = SSL_CTX_new(TLS_server_method());
  if (t->ctx_ == nullptr) return Bad("TLS", "cannot create a context");
  SSL_CTX* ctx = t->ctx_;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_alpn_select_cb(ctx, SelectAlpn, nullptr);

  // The certificate, then the rest of the chain.
  BioPtr bio = MemoryBio(cert_chain_pem);
  X509* leaf = PEM_read_bio_X509_AUX(bio.get(), nullptr, nullptr, nullptr);
  if (leaf == nullptr) return Bad("certificate", "no PEM certificate found");
  int ok = SSL_CTX_use_certificate(ctx, leaf);
  X509_free(leaf);
  if (ok != 1) return Bad("certificate", "refused");
  while (X509* extra =
             PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
      X509_free(extra);
      return Bad("certificate", "cannot add a chain certificate");
    }
  }
  ERR_clear_error();  // the end of the PEM text reads as an error

  BioPtr key_bio = MemoryBio(key_pem);
  EVP_PKEY* key =
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) return Bad("private key", "no PEM private key found");
  ok = SSL_CTX_use_PrivateKey(ctx, key);
  EVP_PKEY_free(key);
  if (ok != 1) {
    return Bad("private key", "does not match the certificate, or is unusable");
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return Bad("private key", "does not match the certificate");
  }

  if (!client_ca_pem.empty()) {
    BioPtr ca_bio = MemoryBio(client_ca_pem);
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    int count = 0;
    while (X509* ca =
               PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr)) {
      bool added = X509_STORE_add_cert(store, ca) == 1 &&
                   SSL_CTX_add_client_CA(ctx, ca) == 1;
      X509_free(ca);
      if (!added) return Bad("client CA", "cannot use a certificate");
      ++count;
    }
    ERR_clear_error();
    if (count == 0) return Bad("client CA", "no PEM certificate found");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       nullptr);
    SSL_CTX_set_verify_depth(ctx, 8);
    // Sessions resumed on another context must not skip the check.
    static const unsigned char kSessionContext[] = "amqpgw-http";
    SSL_CTX_set_session_id_context(ctx, kSessionContext,
                                   sizeof(kSessionContext) - 1);
    t->client_certificates_ = true;
  }
  return std::shared_ptr<const TlsContext>(std::move(t));
}

}  // namespace amqpgw::web
