// The global options of amqpgw (flags and their AMQPGW_* environment
// twins) and the gRPC channel built from them, plus the output helpers every
// command shares (exit codes, error lines, JSON, tables).
#ifndef AMQPGW_CLIENT_CLIENT_H_
#define AMQPGW_CLIENT_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "amqpgw/v1/gateway.grpc.pb.h"
#include "client/args.h"
#include "google/protobuf/message.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace amqpgw::cli {

constexpr int kExitOk = 0;
constexpr int kExitRpcError = 1;
constexpr int kExitUsage = 2;

struct GlobalOptions {
  std::string server = "127.0.0.1:50051";
  // Where `server` came from: "--server", "AMQPGW_SERVER", or "" (default).
  std::string server_from;
  // Deadline of each call; zero means none.
  absl::Duration timeout = absl::Seconds(30);
  // --timeout (or AMQPGW_TIMEOUT) was given: consume only has a deadline then.
  bool timeout_given = false;
  bool json = false;
  // Sent as "authorization: Bearer <token>" on every call when set.
  std::string token;
  bool tls = false;
  // PEM contents (not paths) of --tls_ca, --tls_cert, --tls_key.
  std::string tls_ca_pem;
  std::string tls_cert_pem;
  std::string tls_key_pem;
  std::string tls_server_name;
};

// Flags every command accepts, before or after the command name.
const std::vector<FlagSpec>& GlobalFlags();

// Flags first, then the environment twins (AMQPGW_SERVER, AMQPGW_TIMEOUT,
// AMQPGW_TOKEN, AMQPGW_TLS_CA, AMQPGW_TLS_CERT, AMQPGW_TLS_KEY,
// AMQPGW_TLS_SERVER_NAME) for those not given. Reads the TLS files. Errors
// are usage errors naming the flag.
absl::StatusOr<GlobalOptions> ResolveGlobalOptions(const ParsedArgs& args);

// The channel and stubs of one amqpgw run, created on first use. Owned by
// main(); stubs and channel live as long as the Client. NewContext may be
// called from any thread; the stub getters from the main thread only (the
// stubs themselves are thread-safe once created).
class Client {
 public:
  explicit Client(GlobalOptions options) : options_(std::move(options)) {}

  const GlobalOptions& options() const { return options_; }
  v1::Gateway::Stub& gateway();
  ::grpc::health::v1::Health::Stub& health();

  // A context with the token and a deadline of --timeout (none when zero).
  std::unique_ptr<::grpc::ClientContext> NewContext() const;
  // A context with the token and no deadline unless --timeout was given.
  std::unique_ptr<::grpc::ClientContext> NewStreamContext() const;

 private:
  std::shared_ptr<::grpc::Channel> Channel();

  const GlobalOptions options_;
  std::shared_ptr<::grpc::Channel> channel_;
  std::unique_ptr<v1::Gateway::Stub> gateway_;
  std::unique_ptr<::grpc::health::v1::Health::Stub> health_;
};

// "NOT_FOUND", "UNAVAILABLE", ...
std::string CodeName(::grpc::StatusCode code);
// Prints DescribeRpcError (client/hints.h) on stderr: "amqpgw: CODE:
// message" and the CLI's hint, or plain words when no daemon answered at
// --server. `context` names what failed when it is not the command itself
// ("ack"). Returns kExitRpcError.
int ReportRpcError(const Client& client, const ::grpc::Status& status,
                   absl::string_view context = "");

// One line of JSON with the proto's field names; every field printed.
std::string ToJsonLine(const google::protobuf::Message& message,
                       bool print_defaults = true);
// ToJsonLine + newline on stdout.
void PrintJson(const google::protobuf::Message& message);

// Aligned columns, two spaces apart; no line ends in blanks.
class Table {
 public:
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(FILE* out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace amqpgw::cli

#endif  // AMQPGW_CLIENT_CLIENT_H_
