#include "tests/support/test_pki.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace amqpgw::testing {

absl::Status TestPki::Make(const std::string& folder) {
  dir = folder;
  const char* key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  std::string ca_ext =
      "-addext basicConstraints=critical,CA:TRUE "
      "-addext keyUsage=critical,keyCertSign,cRLSign";
  std::string script = absl::StrCat(
      "set -e; mkdir -p '", dir, "'; cd '", dir, "';",
      // CAs
      "openssl req -x509 ", key, " -keyout ca.key -out ca.pem -days 2 ",
      "-subj /CN=amqpgw-test-ca ", ca_ext, ";", "openssl req -x509 ", key,
      " -keyout other-ca.key -out other-ca.pem ",
      "-days 2 -subj /CN=amqpgw-other-ca ", ca_ext, ";",
      // Server: localhost and 127.0.0.1
      "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n"
      "extendedKeyUsage=serverAuth\\n' > server.ext;",
      "openssl req ", key, " -keyout server.key -out server.csr ",
      "-subj /CN=localhost;",
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key ",
      "-CAcreateserial -out server.pem -days 2 -extfile server.ext;",
      // Clients: one of each CA
      "printf 'extendedKeyUsage=clientAuth\\n' > client.ext;", "openssl req ",
      key, " -keyout client.key -out client.csr ", "-subj /CN=amqpgw-client;",
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key ",
      "-CAcreateserial -out client.pem -days 2 -extfile client.ext;",
      "openssl req ", key, " -keyout other-client.key -out other-client.csr ",
      "-subj /CN=amqpgw-other-client;",
      "openssl x509 -req -in other-client.csr -CA other-ca.pem ",
      "-CAkey other-ca.key -CAcreateserial -out other-client.pem -days 2 ",
      "-extfile client.ext;", "chmod 600 *.key");
  std::string quoted;
  for (char c : script) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  std::string command = "sh -c '" + quoted + "' >/dev/null 2>&1";
  int rc = std::system(command.c_str());
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("openssl could not make the test certificates in ", dir,
                     " (exit ", rc, ")"));
  }
  return absl::OkStatus();
}

}  // namespace amqpgw::testing
