#include "server/web/rpc_method.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/base/quote.h"
#include "server/web/grpc_web_frame.h"

namespace amqpgw::web {
namespace {

// Request headers that are not passed on as gRPC metadata: HTTP/1.1
// transport, browser bookkeeping, the protocols' own, and those gRPC
// reserves.
bool IsHopOrBrowserHeader(absl::string_view key) {
  static constexpr absl::string_view kExact[] = {
      "host",
      "connection",
      "keep-alive",
      "proxy-connection",
      "transfer-encoding",
      "te",
      "upgrade",
      "content-length",
      "content-type",
      "content-encoding",
      "accept",
      "accept-encoding",
      "accept-language",
      "accept-charset",
      "origin",
      "referer",
      "user-agent",
      "cookie",
      "cache-control",
      "pragma",
      "dnt",
      "priority",
      "expect",
      "x-grpc-web",
      "x-user-agent",
      "http2-settings",
      "upgrade-insecure-requests",
      "x-forwarded-for",
  };
  for (absl::string_view e : kExact) {
    if (key == e) return true;
  }
  return absl::StartsWith(key, "sec-") || absl::StartsWith(key, "grpc-") ||
         absl::StartsWith(key, "connect-") ||
         absl::StartsWith(key, "access-control-") || absl::StartsWith(key, ":");
}

}  // namespace

bool ValidMethodPath(absl::string_view path) {
  if (path.empty() || path[0] != '/') return false;
  std::vector<absl::string_view> parts = absl::StrSplit(path.substr(1), '/');
  if (parts.size() != 2) return false;
  for (absl::string_view part : parts) {
    if (part.empty()) return false;
    for (char c : part) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' &&
          c != '.') {
        return false;
      }
    }
  }
  return true;
}

MethodShape LookUpMethod(absl::string_view path) {
  MethodShape shape;
  if (!ValidMethodPath(path)) return shape;
  // "/pkg.Service/Method" -> "pkg.Service.Method".
  size_t slash = path.rfind('/');
  std::string full =
      absl::StrCat(path.substr(1, slash - 1), ".", path.substr(slash + 1));
  const google::protobuf::MethodDescriptor* m =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(
          full);
  if (m == nullptr) return shape;
  shape.known = true;
  shape.client_streaming = m->client_streaming();
  shape.server_streaming = m->server_streaming();
  shape.no_side_effects = m->options().idempotency_level() ==
                          google::protobuf::MethodOptions::NO_SIDE_EFFECTS;
  shape.input = m->input_type();
  shape.output = m->output_type();
  return shape;
}

bool RequestMetadata(const HttpRequest& req, Metadata* out,
                     RequestRefusal* refusal) {
  std::string forwarded_for;
  for (const auto& [key, value] : req.headers) {
    if (key == "x-forwarded-for") forwarded_for = value;
    if (IsHopOrBrowserHeader(key) || !IsValidMetadataKey(key)) continue;
    if (absl::EndsWith(key, "-bin")) {
      absl::StatusOr<std::string> bin = Base64DecodeChunks(value);
      if (!bin.ok()) {
        refusal->http_status = 400;
        refusal->status = absl::InvalidArgumentError(
            absl::StrCat("header ", QuoteInput(key), ": not base64"));
        return false;
      }
      out->emplace_back(key, *std::move(bin));
    } else if (!IsValidMetadataValue(value)) {
      refusal->http_status = 400;
      refusal->status = absl::InvalidArgumentError(
          absl::StrCat("header ", QuoteInput(key),
                       ": only printable ASCII can pass as gRPC metadata "
                       "(use a -bin header for bytes)"));
      return false;
    } else {
      out->emplace_back(key, value);
    }
  }
  out->emplace_back("x-forwarded-for",
                    forwarded_for.empty()
                        ? req.remote_addr
                        : absl::StrCat(forwarded_for, ", ", req.remote_addr));
  return true;
}

}  // namespace amqpgw::web
