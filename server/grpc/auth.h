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
// handler calls Check() first; grpc.health.v1 and reflection stay open. The
// role each RPC needs is its `(amqpgw.v1.role)` option in gateway.proto (see
// rpcs.h).
//
// Tokens are kept only as SHA-256 digests and compared in constant time
// (every entry is compared, with CRYPTO_memcmp), and never logged or echoed
// in errors. Every refused call is counted by reason
// (amqpgw_auth_failures_total) and logged as a warning with its method, peer
// and reason; the log is rate-limited (a burst of 20 lines, then one a
// second, with the number of lines left out) so that a flood of bad calls
// cannot fill the disk.
//
// Thread safety: Check(), size(), failures() and Collect() from any thread.
// ReplaceWith() (SIGHUP re-reads the token file) swaps the whole table at
// once: a check sees the old table or the new one, never a mix. The refusal
// counters survive a reload.
#ifndef AMQPGW_SERVER_GRPC_AUTH_H_
#define AMQPGW_SERVER_GRPC_AUTH_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "amqpgw/v1/options.pb.h"
#include "server/base/sync.h"
#include "server/grpc/rpcs.h"
#include "server/metrics/prometheus.h"

namespace amqpgw::grpc_api {

// Why a call was refused: the `reason` label of amqpgw_auth_failures_total.
enum class AuthFailure : uint8_t {
  kMissingToken,  // no authorization metadata (UNAUTHENTICATED)
  kMalformed,     // not "Bearer <token>" (UNAUTHENTICATED)
  kUnknownToken,  // no such token (UNAUTHENTICATED)
  kRoleDenied,    // the token's role may not call the RPC (PERMISSION_DENIED)
};
inline constexpr int kAuthFailureKinds = 4;
// "missing_token", "malformed", "unknown_token", "role_denied".
const char* AuthFailureName(AuthFailure failure);

// Lets through a burst of `burst` events, then `per_second` a second, and
// counts what it held back. Thread-safe.
class RateLimiter {
 public:
  RateLimiter(double burst, double per_second)
      : burst_(burst), per_second_(per_second), tokens_(burst) {}
  // True when the event may go ahead; then *held_back is the number of
  // events refused since the last one that went ahead.
  bool Allow(absl::Time now, uint64_t* held_back) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const double burst_;
  const double per_second_;
  amqpgw::Mutex mu_;
  double tokens_ ABSL_GUARDED_BY(mu_);
  absl::Time last_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t held_back_ ABSL_GUARDED_BY(mu_) = 0;
};

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
  // PERMISSION_DENIED (the token's role does not allow `rpc`). A refusal is
  // counted and logged (rate-limited) with `peer` (the caller's address).
  absl::Status Check(std::optional<absl::string_view> authorization,
                     const Rpc& rpc, absl::string_view peer = "") const;

  size_t size() const { return Entries()->size(); }

  // From now on checks use `other`'s tokens (any thread).
  void ReplaceWith(const Authorizer& other);
  // Refusals so far for `failure`.
  uint64_t failures(AuthFailure failure) const {
    return failures_[static_cast<int>(failure)].load(std::memory_order_relaxed);
  }
  // Writes amqpgw_auth_failures_total{reason=...} (every reason, zeros
  // included).
  void Collect(metrics::TextWriter& w) const;

 private:
  using Digest = std::array<uint8_t, 32>;
  struct Entry {
    Digest digest;
    v1::Role role;
  };
  using Table = std::vector<Entry>;

  static Digest Hash(absl::string_view token);
  std::shared_ptr<const Table> Entries() const;
  absl::Status Refuse(AuthFailure failure, absl::Status status, const Rpc& rpc,
                      absl::string_view peer) const;

  // Read and replaced whole with std::atomic_load / std::atomic_store.
  std::shared_ptr<const Table> entries_;
  mutable std::array<std::atomic<uint64_t>, kAuthFailureKinds> failures_{};
  mutable RateLimiter log_limiter_{20, 1};
};

}  // namespace amqpgw::grpc_api

#endif  // AMQPGW_SERVER_GRPC_AUTH_H_
