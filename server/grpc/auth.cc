#include "server/grpc/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace amqpgw::grpc_api {
namespace {

constexpr size_t kMinTokenLength = 16;

std::optional<Role> ParseRole(absl::string_view s) {
  if (s == "publish") return Role::kPublish;
  if (s == "consume") return Role::kConsume;
  if (s == "admin") return Role::kAdmin;
  return std::nullopt;
}

}  // namespace

const char* RpcName(Rpc rpc) {
  switch (rpc) {
    case Rpc::kConnect:
      return "Connect";
    case Rpc::kDisconnect:
      return "Disconnect";
    case Rpc::kGetStatus:
      return "GetStatus";
    case Rpc::kDeclareQueue:
      return "DeclareQueue";
    case Rpc::kInspectQueue:
      return "InspectQueue";
    case Rpc::kDeleteQueue:
      return "DeleteQueue";
    case Rpc::kPurgeQueue:
      return "PurgeQueue";
    case Rpc::kDeclareExchange:
      return "DeclareExchange";
    case Rpc::kDeleteExchange:
      return "DeleteExchange";
    case Rpc::kBindQueue:
      return "BindQueue";
    case Rpc::kUnbindQueue:
      return "UnbindQueue";
    case Rpc::kPublish:
      return "Publish";
    case Rpc::kPublishBatch:
      return "PublishBatch";
    case Rpc::kStreamMessages:
      return "StreamMessages";
    case Rpc::kAck:
      return "Ack";
  }
  return "?";
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kPublish:
      return "publish";
    case Role::kConsume:
      return "consume";
    case Role::kAdmin:
      return "admin";
  }
  return "?";
}

bool RoleAllows(Role role, Rpc rpc) {
  if (role == Role::kAdmin) return true;
  switch (rpc) {
    case Rpc::kConnect:
    case Rpc::kGetStatus:
    case Rpc::kDeclareQueue:
    case Rpc::kInspectQueue:
    case Rpc::kDeclareExchange:
    case Rpc::kBindQueue:
    case Rpc::kUnbindQueue:
      return true;
    case Rpc::kPublish:
    case Rpc::kPublishBatch:
      return role == Role::kPublish;
    case Rpc::kStreamMessages:
    case Rpc::kAck:
      return role == Role::kConsume;
    case Rpc::kDisconnect:
    case Rpc::kDeleteQueue:
    case Rpc::kDeleteExchange:
    case Rpc::kPurgeQueue:
      return false;
  }
  return false;
}

Authorizer::Digest Authorizer::Hash(absl::string_view token) {
  Digest d{};
  unsigned int len = 0;
  EVP_Digest(token.data(), token.size(), d.data(), &len, EVP_sha256(), nullptr);
  return d;
}

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::FromFile(
    const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read token file '", path, "'"));
  }
  std::stringstream text;
  text << in.rdbuf();
  return FromText(text.str(), path);
}

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::FromText(
    absl::string_view text, absl::string_view source) {
  auto a = std::unique_ptr<Authorizer>(new Authorizer());
  Table entries;
  std::vector<int> lines;  // line of each entry, for duplicate errors
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ":", line_no, ": want '<token> <role>' (",
                       fields.size(), " fields)"));
    }
    std::optional<Role> role = ParseRole(fields[1]);
    if (!role.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ":", line_no, ": unknown role '", fields[1],
                       "' (want publish, consume or admin)"));
    }
    if (fields[0].size() < kMinTokenLength) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ":", line_no, ": token shorter than ", kMinTokenLength,
          " characters (make one with: openssl rand -hex 32)"));
    }
    Entry e{Hash(fields[0]), *role};
    for (size_t i = 0; i < entries.size(); ++i) {
      if (entries[i].digest == e.digest) {
        return absl::InvalidArgumentError(absl::StrCat(
            source, ":", line_no, ": repeats the token of line ", lines[i]));
      }
    }
    entries.push_back(e);
    lines.push_back(line_no);
  }
  if (entries.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source,
                     ": no tokens (every call would be refused); want lines of "
                     "'<token> <role>'"));
  }
  a->entries_ = std::make_shared<const Table>(std::move(entries));
  return a;
}

std::shared_ptr<const Authorizer::Table> Authorizer::Entries() const {
  return std::atomic_load(&entries_);
}

void Authorizer::ReplaceWith(const Authorizer& other) {
  std::atomic_store(&entries_, other.Entries());
}

absl::Status Authorizer::Check(std::optional<absl::string_view> authorization,
                               Rpc rpc) const {
  if (!authorization.has_value()) {
    return absl::UnauthenticatedError(
        "this gateway requires a token: send the metadata 'authorization: "
        "Bearer <token>'");
  }
  absl::string_view value = absl::StripAsciiWhitespace(*authorization);
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return absl::UnauthenticatedError(
        "authorization metadata must be 'Bearer <token>'");
  }
  absl::string_view token =
      absl::StripLeadingAsciiWhitespace(value.substr(kScheme.size()));
  Digest d = Hash(token);
  std::shared_ptr<const Table> entries = Entries();
  // Compare with every entry, whatever matched, so the time taken does not
  // depend on which token (if any) it was.
  int found = -1;
  for (size_t i = 0; i < entries->size(); ++i) {
    bool equal =
        CRYPTO_memcmp((*entries)[i].digest.data(), d.data(), d.size()) == 0;
    found = equal ? static_cast<int>(i) : found;
  }
  if (found < 0) return absl::UnauthenticatedError("unknown token");
  Role role = (*entries)[found].role;
  if (!RoleAllows(role, rpc)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "the token's role '", RoleName(role), "' may not call ", RpcName(rpc),
        RoleAllows(Role::kPublish, rpc) || RoleAllows(Role::kConsume, rpc)
            ? ""
            : " (it needs the admin role)"));
  }
  return absl::OkStatus();
}

}  // namespace amqpgw::grpc_api
