#include "server/grpc/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/base/quote.h"
#include "spdlog/spdlog.h"

namespace amqpgw::grpc_api {
namespace {

constexpr size_t kMinTokenLength = 16;

}  // namespace

const char* AuthFailureName(AuthFailure failure) {
  switch (failure) {
    case AuthFailure::kMissingToken:
      return "missing_token";
    case AuthFailure::kMalformed:
      return "malformed";
    case AuthFailure::kUnknownToken:
      return "unknown_token";
    case AuthFailure::kRoleDenied:
      return "role_denied";
  }
  return "?";
}

bool RateLimiter::Allow(absl::Time now, uint64_t* held_back) {
  amqpgw::MutexLock lock(&mu_);
  if (last_ != absl::InfinitePast() && now > last_) {
    tokens_ = std::min(
        burst_, tokens_ + absl::ToDoubleSeconds(now - last_) * per_second_);
  }
  last_ = std::max(last_, now);
  if (tokens_ < 1) {
    ++held_back_;
    return false;
  }
  tokens_ -= 1;
  *held_back = held_back_;
  held_back_ = 0;
  return true;
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
    std::optional<v1::Role> role = ParseTokenRole(fields[1]);
    if (!role.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ":", line_no, ": unknown role ", QuoteInput(fields[1]),
          " (want publish, consume or admin)"));
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
                               const Rpc& rpc, absl::string_view peer) const {
  if (!authorization.has_value()) {
    return Refuse(AuthFailure::kMissingToken,
                  absl::UnauthenticatedError(
                      "this gateway requires a token: send the metadata "
                      "'authorization: Bearer <token>'"),
                  rpc, peer);
  }
  absl::string_view value = absl::StripAsciiWhitespace(*authorization);
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return Refuse(AuthFailure::kMalformed,
                  absl::UnauthenticatedError(
                      "authorization metadata must be 'Bearer <token>'"),
                  rpc, peer);
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
  if (found < 0) {
    return Refuse(AuthFailure::kUnknownToken,
                  absl::UnauthenticatedError("unknown token"), rpc, peer);
  }
  v1::Role role = (*entries)[found].role;
  if (!RoleAllows(role, rpc.role)) {
    return Refuse(AuthFailure::kRoleDenied,
                  absl::PermissionDeniedError(absl::StrCat(
                      "the token's role '", RoleName(role), "' may not call ",
                      rpc.name, " (it needs the ", RoleName(rpc.role),
                      rpc.role == v1::ROLE_ADMIN ? "" : " or admin", " role)")),
                  rpc, peer);
  }
  return absl::OkStatus();
}

absl::Status Authorizer::Refuse(AuthFailure failure, absl::Status status,
                                const Rpc& rpc, absl::string_view peer) const {
  failures_[static_cast<int>(failure)].fetch_add(1, std::memory_order_relaxed);
  uint64_t held_back = 0;
  if (log_limiter_.Allow(absl::Now(), &held_back)) {
    spdlog::warn("auth: refused {} from {}: {} ({}){}", rpc.name,
                 peer.empty() ? "?" : QuoteInput(peer),
                 AuthFailureName(failure), std::string(status.message()),
                 held_back == 0
                     ? ""
                     : absl::StrCat("; ", held_back,
                                    " more refusals not logged before this"));
  }
  return status;
}

void Authorizer::Collect(metrics::TextWriter& w) const {
  constexpr char kName[] = "amqpgw_auth_failures_total";
  w.Family(kName, "counter",
           "Calls refused by caller authentication (--auth_tokens), by "
           "reason.");
  for (int i = 0; i < kAuthFailureKinds; ++i) {
    w.Sample(kName, {{"reason", AuthFailureName(static_cast<AuthFailure>(i))}},
             static_cast<double>(failures_[i].load(std::memory_order_relaxed)));
  }
}

}  // namespace amqpgw::grpc_api
