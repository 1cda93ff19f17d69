#include "client/client.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/hints.h"
#include "client/values.h"
#include "google/protobuf/util/json_util.h"

namespace amqpgw::cli {
namespace {

// The environment twin of a global flag: "tls_ca" -> AMQPGW_TLS_CA.
std::string FromEnv(absl::string_view flag) {
  std::string name = "AMQPGW_";
  for (char c : flag) {
    name += c == '-' ? '_' : static_cast<char>(std::toupper(c));
  }
  const char* v = std::getenv(name.c_str());
  return v != nullptr ? v : "";
}

// The flag's value, else its environment twin's, else "".
std::string FlagOrEnv(const ParsedArgs& args, absl::string_view flag,
                      bool* given = nullptr) {
  if (args.Has(flag)) {
    if (given != nullptr) *given = true;
    return args.Get(flag);
  }
  std::string v = FromEnv(flag);
  if (given != nullptr) *given = !v.empty();
  return v;
}

absl::StatusOr<std::string> ReadPemFile(absl::string_view flag,
                                        const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": cannot read '", path, "'"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (ss.str().find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": '", path, "' is not a PEM file"));
  }
  return ss.str();
}

bool ValidToken(absl::string_view token) {
  for (char c : token) {
    if (c <= 0x20 || c >= 0x7F) return false;
  }
  return !token.empty();
}

}  // namespace

const std::vector<FlagSpec>& GlobalFlags() {
  static const auto* flags = new std::vector<FlagSpec>{
      {"server", "HOST:PORT",
       "the daemon's gRPC address (env AMQPGW_SERVER; default "
       "127.0.0.1:50051)"},
      {"timeout", "DURATION",
       "deadline of each call, e.g. 10s, 500ms; 0 = none (env "
       "AMQPGW_TIMEOUT; default 30s; consume has none unless given)"},
      {"json", "", "print JSON (one object per line) instead of tables"},
      {"token", "TOKEN",
       "send 'authorization: Bearer TOKEN' on every call (env AMQPGW_TOKEN)"},
      {"tls", "", "use TLS, trusting the system's CAs"},
      {"tls_ca", "FILE",
       "use TLS, trusting the CA certificate(s) in FILE (PEM; env "
       "AMQPGW_TLS_CA)"},
      {"tls_cert", "FILE",
       "client certificate for mutual TLS (PEM; needs --tls_key; env "
       "AMQPGW_TLS_CERT)"},
      {"tls_key", "FILE",
       "private key of --tls_cert (PEM; env AMQPGW_TLS_KEY)"},
      {"tls_server_name", "NAME",
       "expect this name in the server's certificate instead of the "
       "host of --server (env AMQPGW_TLS_SERVER_NAME)"},
      {"version", "", "print the version of amqpgw and exit"},
  };
  return *flags;
}

absl::StatusOr<GlobalOptions> ResolveGlobalOptions(const ParsedArgs& args) {
  GlobalOptions o;
  std::string server = FlagOrEnv(args, "server");
  if (!server.empty()) {
    o.server = server;
    o.server_from = args.Has("server") ? "--server" : "AMQPGW_SERVER";
  }
  std::string timeout = FlagOrEnv(args, "timeout", &o.timeout_given);
  if (o.timeout_given) {
    absl::StatusOr<absl::Duration> d = ParseDurationArg(timeout);
    if (!d.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--timeout: ", d.status().message()));
    }
    o.timeout = *d;
  }
  o.json = args.GetBool("json");
  o.token = FlagOrEnv(args, "token");
  if (!o.token.empty() && !ValidToken(o.token)) {
    return absl::InvalidArgumentError(
        "--token: must be printable ASCII without spaces");
  }
  o.tls = args.GetBool("tls");
  std::string ca = FlagOrEnv(args, "tls_ca");
  std::string cert = FlagOrEnv(args, "tls_cert");
  std::string key = FlagOrEnv(args, "tls_key");
  o.tls_server_name = FlagOrEnv(args, "tls_server_name");
  if (cert.empty() != key.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert and --tls_key go together (mutual TLS needs both)");
  }
  if (!ca.empty()) {
    absl::StatusOr<std::string> pem = ReadPemFile("tls_ca", ca);
    if (!pem.ok()) return pem.status();
    o.tls_ca_pem = *pem;
  }
  if (!cert.empty()) {
    absl::StatusOr<std::string> pem = ReadPemFile("tls_cert", cert);
    if (!pem.ok()) return pem.status();
    o.tls_cert_pem = *pem;
    pem = ReadPemFile("tls_key", key);
    if (!pem.ok()) return pem.status();
    o.tls_key_pem = *pem;
  }
  o.tls = o.tls || !ca.empty() || !cert.empty();
  if (!o.tls_server_name.empty() && !o.tls) {
    return absl::InvalidArgumentError(
        "--tls_server_name needs TLS (--tls, --tls_ca or --tls_cert)");
  }
  return o;
}

std::shared_ptr<::grpc::Channel> Client::Channel() {
  if (channel_ != nullptr) return channel_;
  std::shared_ptr<::grpc::ChannelCredentials> creds;
  ::grpc::ChannelArguments args;
  if (options_.tls) {
    ::grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options_.tls_ca_pem;
    ssl.pem_cert_chain = options_.tls_cert_pem;
    ssl.pem_private_key = options_.tls_key_pem;
    creds = ::grpc::SslCredentials(ssl);
    if (!options_.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options_.tls_server_name);
    }
  } else {
    creds = ::grpc::InsecureChannelCredentials();
  }
  // Bodies up to the daemon's limits, both ways.
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  channel_ = ::grpc::CreateCustomChannel(options_.server, creds, args);
  return channel_;
}

v1::Gateway::Stub& Client::gateway() {
  if (gateway_ == nullptr) gateway_ = v1::Gateway::NewStub(Channel());
  return *gateway_;
}

::grpc::health::v1::Health::Stub& Client::health() {
  if (health_ == nullptr) {
    health_ = ::grpc::health::v1::Health::NewStub(Channel());
  }
  return *health_;
}

std::unique_ptr<::grpc::ClientContext> Client::NewContext() const {
  auto ctx = std::make_unique<::grpc::ClientContext>();
  if (options_.timeout > absl::ZeroDuration()) {
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
  }
  if (!options_.token.empty()) {
    ctx->AddMetadata("authorization", "Bearer " + options_.token);
  }
  return ctx;
}

std::unique_ptr<::grpc::ClientContext> Client::NewStreamContext() const {
  if (options_.timeout_given) return NewContext();
  auto ctx = std::make_unique<::grpc::ClientContext>();
  if (!options_.token.empty()) {
    ctx->AddMetadata("authorization", "Bearer " + options_.token);
  }
  return ctx;
}

std::string CodeName(::grpc::StatusCode code) {
  // gRPC's codes are the canonical codes, which Abseil names.
  std::string name =
      absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
  return name.empty() ? absl::StrCat("CODE_", static_cast<int>(code)) : name;
}

int ReportRpcError(const Client& client, const ::grpc::Status& status,
                   absl::string_view context) {
  std::fprintf(stderr, "%s\n",
               DescribeRpcError(status, client.options().server,
                                client.options().server_from, context)
                   .c_str());
  return kExitRpcError;
}

std::string ToJsonLine(const google::protobuf::Message& message,
                       bool print_defaults) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = false;
  o.always_print_primitive_fields = print_defaults;
  o.preserve_proto_field_names = true;
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, o);
  if (!status.ok()) {
    return absl::StrCat("{\"error\":\"cannot print JSON: ",
                        status.message().as_string(), "\"}");
  }
  return out;
}

void PrintJson(const google::protobuf::Message& message) {
  std::fputs(ToJsonLine(message).c_str(), stdout);
  std::fputc('\n', stdout);
}

void Table::Print(FILE* out) const {
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    // Empty cells at the end leave no trailing blanks.
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::fprintf(out, "%s\n", line.c_str());
  }
}

}  // namespace amqpgw::cli
