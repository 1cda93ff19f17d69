// What the CLI says about a failed call, beyond the gateway's own words.
//
// The gateway's messages are written for every caller, so they name RPCs and
// proto fields ("call Connect", "declare it first (DeclareExchange)", "set
// allow_unroutable"). The CLI adds its own way out on a second line
// ("hint: run 'amqpgw connect'"), from one table of rules (kHintRules in
// hints.cc). A call that never reached a gRPC server (connection refused,
// unknown host, not gRPC, TLS mismatch) is described in plain words instead
// of gRPC's transport text. Pure functions; no I/O.
#ifndef AMQPGW_CLIENT_HINTS_H_
#define AMQPGW_CLIENT_HINTS_H_

#include <grpcpp/grpcpp.h>

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace amqpgw::cli {

// The CLI's way out of a gateway error (without "hint: "), or "" when no rule
// matches. Names taken from the message are shell-quoted when needed.
std::string HintFor(::grpc::StatusCode code, absl::string_view message);

// For a status that means no gRPC server answered at `server` (host:port;
// the call never reached a gateway): what to print instead of gRPC's text,
// as "message\n  hint: ...". `server_from` says how the address was chosen:
// "--server", "AMQPGW_SERVER", or "" for the default. nullopt for any other
// status.
std::optional<std::string> DescribeUnreachable(const ::grpc::Status& status,
                                               absl::string_view server,
                                               absl::string_view server_from);

// Everything printed on stderr for a failed call, without a final newline:
// "amqpgw: CODE: message" (or "amqpgw: CONTEXT failed: CODE: message"), then
// "  hint: ..." when there is one.
std::string DescribeRpcError(const ::grpc::Status& status,
                             absl::string_view server,
                             absl::string_view server_from,
                             absl::string_view context = "");

// `word` as one shell word: as it is when it holds only safe characters,
// else in single quotes ('it'\''s').
std::string ShellQuote(absl::string_view word);

}  // namespace amqpgw::cli

#endif  // AMQPGW_CLIENT_HINTS_H_
