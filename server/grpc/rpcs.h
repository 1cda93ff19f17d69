// The Gateway's RPCs as gateway.proto declares them, read from its
// descriptor: one entry per RPC with what the gateway needs beyond the RPC's
// messages (the role a caller's token needs, from the RPC's
// `option (amqpgw.v1.role)`). Authorization, the RPC metrics' method names and
// the handlers' lookups all come from here, so adding an RPC means: the RPC in
// gateway.proto (with its role), its handler in GatewayService (named as the
// RPC), and its conversion in convert.cc.
//
// Thread safety: built once, on first use; immutable afterwards.
#ifndef AMQPGW_SERVER_GRPC_RPCS_H_
#define AMQPGW_SERVER_GRPC_RPCS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "amqpgw/v1/options.pb.h"

namespace amqpgw::grpc_api {

struct Rpc {
  std::string name;       // "Publish"
  std::string full_name;  // "/amqpgw.v1.Gateway/Publish"
  // ROLE_ADMIN when the proto sets no role (fail closed).
  v1::Role role = v1::ROLE_ADMIN;
};

// Every amqpgw.v1.Gateway RPC, in the proto's order.
const std::vector<Rpc>& GatewayRpcs();
// The RPC named `name` ("Publish"); nullptr when the Gateway has none.
const Rpc* FindGatewayRpc(absl::string_view name);

// "any", "publish", "consume", "admin": the role's name in lower case without
// its ROLE_ prefix, as the token file writes it.
std::string RoleName(v1::Role role);
// A token file's role word ("publish", "consume", "admin"); nullopt for any
// other word (ROLE_ANY and ROLE_UNSPECIFIED are no token roles).
std::optional<v1::Role> ParseTokenRole(absl::string_view word);
// Whether a token of role `token` may call an RPC that needs `needed`: admin
// tokens may call everything, ROLE_ANY RPCs take every token, otherwise the
// roles must match.
bool RoleAllows(v1::Role token, v1::Role needed);

}  // namespace amqpgw::grpc_api

#endif  // AMQPGW_SERVER_GRPC_RPCS_H_
