#include "server/daemon/options.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/base/host_port.h"

namespace amqpgw::daemon {

absl::StatusOr<std::string> ReadFileForFlag(absl::string_view flag,
                                            const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": cannot read '", path, "'"));
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool IsLoopbackListen(absl::string_view host_port) {
  absl::StatusOr<HostPort> hp = ParseHostPort(host_port);
  return hp.ok() && hp->IsLoopback();
}

std::vector<std::string> CorsOrigins(const Options& o) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(o.cors_origins, ',')) {
    absl::string_view origin = absl::StripAsciiWhitespace(part);
    while (absl::ConsumeSuffix(&origin, "/")) {
    }
    if (!origin.empty()) out.emplace_back(origin);
  }
  return out;
}

HttpTlsFiles EffectiveHttpTls(const Options& o) {
  HttpTlsFiles f;
  f.cert = o.http_tls_cert;
  f.key = o.http_tls_key;
  f.client_ca = o.http_tls_client_ca;
  if (o.http_insecure) return f;  // only what was given for the HTTP port
  if (f.cert.empty() && !o.tls_cert.empty()) {
    f.cert = o.tls_cert;
    f.key = o.tls_key;
    f.cert_flag = "tls_cert";
    f.key_flag = "tls_key";
  }
  if (f.client_ca.empty() && !o.tls_client_ca.empty()) {
    f.client_ca = o.tls_client_ca;
    f.client_ca_flag = "tls_client_ca";
  }
  return f;
}

}  // namespace amqpgw::daemon
