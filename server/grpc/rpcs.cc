#include "server/grpc/rpcs.h"

#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "amqpgw/v1/gateway.pb.h"

namespace amqpgw::grpc_api {
namespace {

struct Table {
  std::vector<Rpc> rpcs;
  absl::flat_hash_map<std::string, size_t> by_name;
};

const Table& GetTable() {
  static const Table* const table = [] {
    auto* t = new Table();
    const google::protobuf::ServiceDescriptor* service =
        v1::PublishRequest::descriptor()->file()->FindServiceByName("Gateway");
    for (int i = 0; service != nullptr && i < service->method_count(); ++i) {
      const google::protobuf::MethodDescriptor* m = service->method(i);
      Rpc rpc;
      rpc.name = m->name();
      rpc.full_name = absl::StrCat("/", service->full_name(), "/", m->name());
      v1::Role role = m->options().GetExtension(v1::role);
      rpc.role = role == v1::ROLE_UNSPECIFIED ? v1::ROLE_ADMIN : role;
      t->by_name[rpc.name] = t->rpcs.size();
      t->rpcs.push_back(std::move(rpc));
    }
    return t;
  }();
  return *table;
}

}  // namespace

const std::vector<Rpc>& GatewayRpcs() { return GetTable().rpcs; }

const Rpc* FindGatewayRpc(absl::string_view name) {
  const Table& t = GetTable();
  auto it = t.by_name.find(name);
  return it == t.by_name.end() ? nullptr : &t.rpcs[it->second];
}

std::string RoleName(v1::Role role) {
  return absl::AsciiStrToLower(absl::StripPrefix(v1::Role_Name(role), "ROLE_"));
}

std::optional<v1::Role> ParseTokenRole(absl::string_view word) {
  v1::Role role;
  if (word.empty() || absl::AsciiStrToLower(word) != word ||
      !v1::Role_Parse(absl::StrCat("ROLE_", absl::AsciiStrToUpper(word)),
                      &role) ||
      role == v1::ROLE_ANY || role == v1::ROLE_UNSPECIFIED) {
    return std::nullopt;
  }
  return role;
}

bool RoleAllows(v1::Role token, v1::Role needed) {
  return token == v1::ROLE_ADMIN || needed == v1::ROLE_ANY || token == needed;
}

}  // namespace amqpgw::grpc_api
