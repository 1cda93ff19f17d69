// Caller authentication for amqpgw.v1.Gateway: bearer tokens with roles.
//
// `--auth_tokens FILE` lists one token a line with its role:
//
//   # comment
//   3f1c...9a  publish
//   77ab...02  consume
//   c0de...ff  admin
//
// A caller sends `authorization: Bearer <token>` metadata (grpc-web callers
// too: the bridge passes the header into the call). Every GatewayService
// handler calls Check() first; grpc.health.v1 and reflection stay open.
//
// Tokens are kept only as SHA-256 digests and compared in constant time
// (every entry is compared, with CRYPTO_memcmp), and never logged or echoed
// in errors.
//
// Thread safety: Check() and size() from any thread. ReplaceWith() (SIGHUP
// re-reads the token file) swaps the whole table at once: a check sees the
// old table or the new one, never a mix.
#ifndef AMQPGW_SERVER_GRPC_AUTH_H_
#define AMQPGW_SERVER_GRPC_AUTH_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace amqpgw::grpc_api {

enum class Role : uint8_t { kPublish, kConsume, kAdmin };

// The Gateway's RPCs.
enum class Rpc : uint8_t {
  kConnect,
  kDisconnect,
  kGetStatus,
  kDeclareQueue,
  kInspectQueue,
  kDeleteQueue,
  kPurgeQueue,
  kDeclareExchange,
  kDeleteExchange,
  kBindQueue,
  kUnbindQueue,
  kPublish,
  kPublishBatch,
  kStreamMessages,
  kAck,
};

const char* RpcName(Rpc rpc);
const char* RoleName(Role role);

// The role table (docs/security.md, "Authentication"):
//   any role:        Connect, GetStatus, DeclareQueue, InspectQueue,
//                    DeclareExchange, BindQueue, UnbindQueue
//   publish, admin:  Publish, PublishBatch
//   consume, admin:  StreamMessages, Ack
//   admin only:      Disconnect, DeleteQueue, DeleteExchange, PurgeQueue
bool RoleAllows(Role role, Rpc rpc);

class Authorizer {
 public:
  // Reads and parses a token file. Errors name the file and line, never a
  // token.
  static absl::StatusOr<std::unique_ptr<Authorizer>> FromFile(
      const std::string& path);
  // `source` names the text in errors.
  static absl::StatusOr<std::unique_ptr<Authorizer>> FromText(
      absl::string_view text, absl::string_view source);

  // `authorization`: the call's `authorization` metadata, nullopt when
  // absent. OK, UNAUTHENTICATED (missing, malformed or unknown token) or
  // PERMISSION_DENIED (the token's role does not allow `rpc`).
  absl::Status Check(std::optional<absl::string_view> authorization,
                     Rpc rpc) const;

  size_t size() const { return Entries()->size(); }

  // From now on checks use `other`'s tokens (any thread).
  void ReplaceWith(const Authorizer& other);

 private:
  using Digest = std::array<uint8_t, 32>;
  struct Entry {
    Digest digest;
    Role role;
  };
  using Table = std::vector<Entry>;

  static Digest Hash(absl::string_view token);
  std::shared_ptr<const Table> Entries() const;

  // Read and replaced whole with std::atomic_load / std::atomic_store.
  std::shared_ptr<const Table> entries_;
};

}  // namespace amqpgw::grpc_api

#endif  // AMQPGW_SERVER_GRPC_AUTH_H_
