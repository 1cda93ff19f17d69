#include "server/web/grpc_web_request.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace amqpgw::web {
namespace {

// Request headers that are not passed on as gRPC metadata: HTTP/1.1
// transport, browser bookkeeping, grpc-web's own, and those gRPC reserves.
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
         absl::StartsWith(key, "access-control-") || absl::StartsWith(key, ":");
}

bool Refuse(GrpcWebRefusal* refusal, int http_status, absl::Status status) {
  refusal->http_status = http_status;
  refusal->status = std::move(status);
  return false;
}

std::string Shown(absl::string_view s) {
  std::string out;
  for (char c : s.substr(0, 100)) {
    auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7F ? c : '?');
  }
  if (s.size() > 100) out += "...";
  return out;
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

bool ParseGrpcWebRequest(const HttpRequest& req, const MethodShape& shape,
                         size_t max_request_bytes, absl::Time now,
                         GrpcWebRequest* out, GrpcWebRefusal* refusal) {
  if (!ValidMethodPath(req.path)) {
    return Refuse(refusal, 404,
                  absl::UnimplementedError(
                      absl::StrCat("no such method: '", Shown(req.path),
                                   "' (want /package.Service/Method)")));
  }
  absl::StatusOr<WireFormat> format =
      ParseContentType(req.Header("content-type"));
  if (!format.ok()) return Refuse(refusal, 415, format.status());
  std::string decoded;
  absl::string_view body = req.body;
  if (*format == WireFormat::kText) {
    absl::StatusOr<std::string> d = Base64DecodeChunks(req.body);
    if (!d.ok()) return Refuse(refusal, 400, d.status());
    decoded = *std::move(d);
    body = decoded;
  }
  absl::StatusOr<std::vector<absl::string_view>> messages =
      ParseRequestMessages(body, max_request_bytes);
  if (!messages.ok()) {
    bool too_big =
        messages.status().code() == absl::StatusCode::kResourceExhausted;
    return Refuse(refusal, too_big ? 413 : 400, messages.status());
  }
  // A method that takes one request message gets exactly one: a second
  // would be dropped by the server without a word, none would fail with a
  // status that does not say why.
  if (shape.known && !shape.client_streaming && messages->size() != 1) {
    return Refuse(
        refusal, 400,
        absl::InvalidArgumentError(absl::StrCat(
            messages->empty()
                ? "the request body holds no grpc-web message"
                : absl::StrCat("the request body holds ", messages->size(),
                               " grpc-web messages"),
            "; ", req.path.substr(req.path.rfind('/') + 1),
            " takes exactly one (a 5-byte frame header, then the message)")));
  }

  // Request headers -> metadata; grpc-timeout -> deadline.
  std::string forwarded_for;
  for (const auto& [key, value] : req.headers) {
    if (key == "grpc-timeout") {
      absl::StatusOr<absl::Duration> timeout = ParseGrpcTimeout(value);
      if (!timeout.ok()) return Refuse(refusal, 400, timeout.status());
      out->deadline = now + *timeout;
      continue;
    }
    if (key == "x-forwarded-for") forwarded_for = value;
    if (IsHopOrBrowserHeader(key) || !IsValidMetadataKey(key)) continue;
    if (absl::EndsWith(key, "-bin")) {
      absl::StatusOr<std::string> bin = Base64DecodeChunks(value);
      if (!bin.ok()) {
        return Refuse(refusal, 400,
                      absl::InvalidArgumentError(
                          absl::StrCat("header ", Shown(key), ": not base64")));
      }
      out->metadata.emplace_back(key, *std::move(bin));
    } else if (!IsValidMetadataValue(value)) {
      return Refuse(refusal, 400,
                    absl::InvalidArgumentError(absl::StrCat(
                        "header ", Shown(key),
                        ": only printable ASCII can pass as gRPC metadata "
                        "(use a -bin header for bytes)")));
    } else {
      out->metadata.emplace_back(key, value);
    }
  }
  out->metadata.emplace_back(
      "x-forwarded-for",
      forwarded_for.empty()
          ? req.remote_addr
          : absl::StrCat(forwarded_for, ", ", req.remote_addr));
  out->method = req.path;
  out->wire = *format;
  out->messages.reserve(messages->size());
  for (absl::string_view m : *messages) out->messages.emplace_back(m);
  out->server_streaming = shape.server_streaming;
  return true;
}

}  // namespace amqpgw::web
