// Certificates for TLS tests, made with the openssl command line: a CA, a
// server certificate for localhost and 127.0.0.1, a client certificate of
// that CA, and an unrelated CA with a client certificate of its own. Files
// (PEM; keys mode 600) in one folder:
//   ca.pem ca.key server.pem server.key client.pem client.key
//   other-ca.pem other-client.pem other-client.key
#ifndef AMQPGW_TESTS_SUPPORT_TEST_PKI_H_
#define AMQPGW_TESTS_SUPPORT_TEST_PKI_H_

#include <string>

#include "absl/status/status.h"

namespace amqpgw::testing {

struct TestPki {
  std::string dir;
  std::string path(const char* name) const { return dir + "/" + name; }

  // Makes the files under `dir` (created). Takes about a second.
  absl::Status Make(const std::string& dir);
};

}  // namespace amqpgw::testing

#endif  // AMQPGW_TESTS_SUPPORT_TEST_PKI_H_
