#include "client/hints.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "client/client.h"

namespace amqpgw::cli {
namespace {

using Code = ::grpc::StatusCode;

// One rule: a gateway error whose code is `code` and whose message matches
// `pattern` gets `hint`.
struct HintRule {
  Code code;
  // Literal text found anywhere in the message, where each '*' stands for a
  // name (whatever lies between the text around it).
  absl::string_view pattern;
  // {1}, {2}, ...: the names the '*'s stood for, shell-quoted when needed.
  absl::string_view hint;
};

// Every hint the CLI gives, first match wins. The patterns follow the
// gateway's messages (server/core, server/grpc) and RabbitMQ's reply texts;
// client/cli_unit_test.cc holds a real message for each rule.
constexpr HintRule kHintRules[] = {
    // Session.
    {Code::FAILED_PRECONDITION, "call Connect",
     "run 'amqpgw connect' to open the broker session again"},
    {Code::UNAVAILABLE, "broker unreachable",
     "amqpgwd cannot reach RabbitMQ now: 'amqpgw status' shows its last "
     "error"},
    {Code::UNAVAILABLE, "broker connection lost",
     "amqpgwd lost its RabbitMQ connection and reconnects by itself: "
     "'amqpgw status' says when it is READY again"},
    {Code::UNAVAILABLE, "blocking publishers",
     "RabbitMQ raised a memory or disk alarm ('rabbitmq-diagnostics alarms' "
     "on the broker); 'amqpgw status' shows it as blocked"},
    {Code::DEADLINE_EXCEEDED, "Deadline Exceeded",
     "no answer within --timeout: give it longer (--timeout 2m, or "
     "AMQPGW_TIMEOUT), and check 'amqpgw status'"},
    // Missing exchanges and queues.
    {Code::NOT_FOUND, "exchange '*' does not exist",
     "declare it first: amqpgw exchange declare {1} (--type topic, fanout "
     "or headers for those)"},
    {Code::NOT_FOUND, "no exchange '*' in vhost",
     "declare it first: amqpgw exchange declare {1}"},
    {Code::NOT_FOUND, "no queue '*' in vhost",
     "declare it first: amqpgw queue declare {1}"},
    // Unroutable messages.
    {Code::FAILED_PRECONDITION, "NO_ROUTE: no queue named '*' exists",
     "declare the queue (amqpgw queue declare {1}), or add "
     "--allow-unroutable to let the broker drop such messages"},
    {Code::FAILED_PRECONDITION, "NO_ROUTE: no queue is bound to exchange '*'",
     "bind a queue to it (amqpgw bind QUEUE {1} ROUTING_KEY), or add "
     "--allow-unroutable to let the broker drop such messages"},
    // Entities that exist with other settings, or conditions not met.
    {Code::FAILED_PRECONDITION, "inequivalent arg '*' for queue '*' in vhost",
     "queue {2} already exists with another '{1}': declare it with the same "
     "settings, or delete it first (amqpgw queue delete {2}; its messages go "
     "with it)"},
    {Code::FAILED_PRECONDITION,
     "inequivalent arg '*' for exchange '*' in vhost",
     "exchange {2} already exists with another '{1}': declare it with the "
     "same --type and flags, or delete it first (amqpgw exchange delete {2})"},
    {Code::FAILED_PRECONDITION, "queue '*' in vhost '*' in use",
     "it has consumers; without --if-unused it is deleted anyway"},
    {Code::FAILED_PRECONDITION, "exchange '*' in vhost '*' in use",
     "queues are bound to it; without --if-unused it is deleted anyway"},
    {Code::FAILED_PRECONDITION, "queue '*' in vhost '*' not empty",
     "it holds messages; without --if-empty it is deleted with them"},
    {Code::FAILED_PRECONDITION, "user_id property set to",
     "--user-id must name the broker user amqpgwd logs in as; leave it out "
     "otherwise"},
    // Permissions and tokens.
    {Code::PERMISSION_DENIED, "contains reserved prefix",
     "names starting with amq. belong to the broker: pick another name"},
    {Code::PERMISSION_DENIED, "ACCESS_REFUSED - access to",
     "amqpgwd's broker user lacks the permission: see 'rabbitmqctl "
     "set_permissions' on the broker"},
    {Code::UNAUTHENTICATED, "requires a token",
     "give your token with --token TOKEN or AMQPGW_TOKEN"},
    {Code::UNAUTHENTICATED, "unknown token",
     "the daemon does not know this token: check --token or AMQPGW_TOKEN"},
    {Code::PERMISSION_DENIED, "the token's role '*' may not call",
     "use a token whose role allows this command (roles: publish, consume, "
     "admin)"},
    // Acknowledgements.
    {Code::NOT_FOUND, "no subscription '*' on this gateway",
     "subscription ids come from a running 'amqpgw consume QUEUE --ack "
     "client' (on stderr when it starts) and last while it runs"},
    {Code::NOT_FOUND, "subscription '*' has ended",
     "its stream is gone and its unacknowledged messages went back to the "
     "queue: consume them again"},
    {Code::FAILED_PRECONDITION, "uses ack_mode",
     "only streams of 'amqpgw consume --ack client' take acks"},
    {Code::FAILED_PRECONDITION, "belongs to gateway instance '*'",
     "send the ack to the amqpgwd that holds the stream (instance {1}) with "
     "--server"},
    {Code::INVALID_ARGUMENT, "was never delivered on subscription",
     "delivery ids are the numbers consume prints first (#1, #2, ...; "
     "delivery_id with --json)"},
    // Fields the gateway names that the CLI sets from flags.
    {Code::INVALID_ARGUMENT, "properties.headers[", "set by --header"},
    {Code::INVALID_ARGUMENT, "arguments[", "set by --arg"},
};

// Matches `pattern` (see HintRule) against `message`; `names` gets what each
// '*' stood for.
bool Match(absl::string_view pattern, absl::string_view message,
           std::vector<absl::string_view>* names) {
  std::vector<absl::string_view> pieces = absl::StrSplit(pattern, '*');
  size_t pos = message.find(pieces[0]);
  if (pos == absl::string_view::npos) return false;
  pos += pieces[0].size();
  for (size_t i = 1; i < pieces.size(); ++i) {
    size_t end =
        pieces[i].empty() ? message.size() : message.find(pieces[i], pos);
    if (end == absl::string_view::npos) return false;
    names->push_back(message.substr(pos, end - pos));
    pos = end + pieces[i].size();
  }
  return true;
}

// What follows gRPC's "last error: " (the transport's own words).
absl::string_view TransportDetail(absl::string_view message) {
  constexpr absl::string_view kLast = "last error: ";
  size_t at = message.find(kLast);
  return at == absl::string_view::npos ? message
                                       : message.substr(at + kLast.size());
}

}  // namespace

std::string ShellQuote(absl::string_view word) {
  bool safe = !word.empty();
  for (char c : word) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) &&
        !absl::StrContains("._-:/@%+=,", c)) {
      safe = false;
    }
  }
  if (safe) return std::string(word);
  return absl::StrCat("'", absl::StrReplaceAll(word, {{"'", "'\\''"}}), "'");
}

std::string HintFor(::grpc::StatusCode code, absl::string_view message) {
  for (const HintRule& rule : kHintRules) {
    std::vector<absl::string_view> names;
    if (rule.code != code || !Match(rule.pattern, message, &names)) continue;
    std::vector<std::pair<std::string, std::string>> replacements;
    for (size_t i = 0; i < names.size(); ++i) {
      replacements.push_back(
          {absl::StrCat("{", i + 1, "}"), ShellQuote(names[i])});
    }
    return absl::StrReplaceAll(rule.hint, replacements);
  }
  return "";
}

std::optional<std::string> DescribeUnreachable(const ::grpc::Status& status,
                                               absl::string_view server,
                                               absl::string_view server_from) {
  if (status.error_code() != Code::UNAVAILABLE) return std::nullopt;
  const std::string& message = status.error_message();
  const std::string where = absl::StrCat(
      server, server_from.empty() ? " (the default address)"
                                  : absl::StrCat(" (from ", server_from, ")"));
  constexpr absl::string_view kElsewhere =
      "give the daemon's address with --server HOST:PORT or AMQPGW_SERVER";
  if (absl::StartsWith(message, "DNS resolution failed")) {
    return absl::StrCat("cannot resolve the host of ", where,
                        "\n  hint: check the name; ", kElsewhere);
  }
  if (!absl::StartsWith(message, "failed to connect to all addresses")) {
    return std::nullopt;
  }
  absl::string_view detail = TransportDetail(message);
  if (absl::StrContains(detail, "Connection refused")) {
    return absl::StrCat(
        "nothing answers at ", where,
        ": connection refused\n  hint: is amqpgwd running? scripts/run.sh "
        "starts one (with a RabbitMQ of its own); otherwise ",
        kElsewhere);
  }
  if (absl::StrContains(detail, "wrong version number")) {
    return absl::StrCat(
        "the TLS handshake with ", where,
        " failed: it does not speak TLS\n  hint: drop --tls, --tls_ca and "
        "--tls_cert (and AMQPGW_TLS_*) for a daemon without TLS");
  }
  if (absl::StrContains(detail, "certificate verify failed") ||
      absl::StrContains(detail, "Peer name")) {
    return absl::StrCat("the TLS certificate of ", where, " is not trusted (",
                        detail,
                        ")\n  hint: trust its CA with --tls_ca FILE; when the "
                        "certificate names another host, add "
                        "--tls_server_name NAME");
  }
  if (absl::StrContains(detail, "andshake")) {
    return absl::StrCat("the TLS handshake with ", where, " failed (", detail,
                        ")\n  hint: check --tls_ca, and --tls_cert with "
                        "--tls_key when the daemon asks for a client "
                        "certificate");
  }
  return absl::StrCat(
      "no gRPC server answers at ", where, " (", detail,
      ")\n  hint: is this amqpgwd's gRPC port (its --listen), not its HTTP "
      "port or RabbitMQ's? A daemon with TLS needs --tls or --tls_ca FILE; "
      "otherwise ",
      kElsewhere);
}

std::string DescribeRpcError(const ::grpc::Status& status,
                             absl::string_view server,
                             absl::string_view server_from,
                             absl::string_view context) {
  std::string out = absl::StrCat(
      "amqpgw: ", context,
      context.empty() ? "" : " failed: ", CodeName(status.error_code()), ": ");
  if (std::optional<std::string> unreachable =
          DescribeUnreachable(status, server, server_from)) {
    return out + *unreachable;
  }
  absl::StrAppend(&out, status.error_message());
  std::string hint = HintFor(status.error_code(), status.error_message());
  if (!hint.empty()) absl::StrAppend(&out, "\n  hint: ", hint);
  return out;
}

}  // namespace amqpgw::cli
