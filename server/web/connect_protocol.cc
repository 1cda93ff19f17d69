#include "server/web/connect_protocol.h"

#include <google/protobuf/any.pb.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/base/quote.h"
#include "server/base/utf8.h"
#include "server/web/grpc_web_frame.h"
#include "server/web/json_codec.h"

namespace amqpgw::web {
namespace {

constexpr char kServedTypes[] =
    "Connect takes application/json or application/proto (unary methods), "
    "application/connect+json or application/connect+proto (streaming "
    "methods); grpc-web takes application/grpc-web or "
    "application/grpc-web-text";

bool Refuse(RequestRefusal* refusal, int http_status, absl::Status status) {
  refusal->http_status = http_status;
  refusal->status = std::move(status);
  return false;
}

std::string MethodName(absl::string_view path) {
  return std::string(path.substr(path.rfind('/') + 1));
}

// The media type without parameters, in lower case.
std::string MediaType(absl::string_view content_type) {
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(
      content_type.substr(0, content_type.find(';'))));
}

// "json" / "proto" -> codec.
bool ParseCodec(absl::string_view name, ConnectCodec* codec) {
  if (name == "json") {
    *codec = ConnectCodec::kJson;
    return true;
  }
  if (name == "proto") {
    *codec = ConnectCodec::kProto;
    return true;
  }
  return false;
}

// An encoding other than identity is refused (UNIMPLEMENTED, 501).
bool CheckEncoding(absl::string_view what, absl::string_view encoding,
                   RequestRefusal* refusal) {
  if (encoding.empty() || absl::EqualsIgnoreCase(encoding, "identity")) {
    return true;
  }
  return Refuse(refusal, 501,
                absl::UnimplementedError(absl::StrCat(
                    what, " ", QuoteInput(encoding, 40),
                    " is not supported: this gateway takes identity "
                    "(uncompressed) messages only")));
}

// One message in `codec` as serialized protobuf.
bool DecodeMessage(ConnectCodec codec, const MethodShape& shape,
                   absl::string_view bytes, std::string* out,
                   RequestRefusal* refusal) {
  if (codec == ConnectCodec::kProto) {
    out->assign(bytes.data(), bytes.size());
    return true;
  }
  absl::StatusOr<std::string> binary = JsonToBinary(*shape.input, bytes);
  if (!binary.ok()) return Refuse(refusal, 400, binary.status());
  *out = *std::move(binary);
  return true;
}

bool CheckSize(size_t total, size_t max_request_bytes,
               RequestRefusal* refusal) {
  if (total <= max_request_bytes) return true;
  return Refuse(
      refusal, 413,
      absl::ResourceExhaustedError(absl::StrCat(
          "the request message is ", total, " bytes, more than the limit of ",
          max_request_bytes, " (--max_request_bytes)")));
}

// The first value of query parameter `name`, or nullptr.
const std::string* Param(const HttpRequest& req, const std::string& name) {
  auto it = req.params.find(name);
  return it == req.params.end() ? nullptr : &it->second;
}

// GET ?encoding=...&message=...[&base64=1][&compression=...][&connect=v1].
bool ParseGet(const HttpRequest& req, const MethodShape& shape,
              size_t max_request_bytes, ConnectRequest* out,
              RequestRefusal* refusal) {
  if (!shape.no_side_effects || shape.client_streaming ||
      shape.server_streaming) {
    return Refuse(refusal, 405,
                  absl::UnimplementedError(absl::StrCat(
                      MethodName(req.path),
                      shape.server_streaming || shape.client_streaming
                          ? " streams"
                          : " has side effects",
                      ": call it with POST (GET serves only unary methods "
                      "marked `option idempotency_level = NO_SIDE_EFFECTS`)")));
  }
  if (const std::string* v = Param(req, "connect");
      v != nullptr && *v != "v1") {
    return Refuse(refusal, 400,
                  absl::InvalidArgumentError(absl::StrCat(
                      "connect=", QuoteInput(*v, 20),
                      ": this gateway speaks Connect protocol version v1")));
  }
  out->codec = ConnectCodec::kJson;
  if (const std::string* v = Param(req, "encoding"); v != nullptr) {
    if (!ParseCodec(*v, &out->codec)) {
      return Refuse(refusal, 415,
                    absl::InvalidArgumentError(
                        absl::StrCat("encoding=", QuoteInput(*v, 40),
                                     " is not served: use encoding=json or "
                                     "encoding=proto")));
    }
  }
  const std::string* compression = Param(req, "compression");
  if (!CheckEncoding("compression", compression ? *compression : "", refusal)) {
    return false;
  }
  if (out->codec == ConnectCodec::kJson && shape.input == nullptr) {
    return Refuse(refusal, 415,
                  absl::InvalidArgumentError(absl::StrCat(
                      "encoding=json needs ", MethodName(req.path),
                      "'s message types, which this binary lacks: use "
                      "encoding=proto")));
  }
  const std::string* message = Param(req, "message");
  std::string raw = message ? *message : "";
  const std::string* b64 = Param(req, "base64");
  if (b64 != nullptr && *b64 == "1") {
    std::string decoded;
    if (!absl::WebSafeBase64Unescape(raw, &decoded)) {
      return Refuse(refusal, 400,
                    absl::InvalidArgumentError(
                        "message= is not URL-safe base64 (base64=1)"));
    }
    raw = std::move(decoded);
  }
  std::string binary;
  if (!DecodeMessage(out->codec, shape, raw, &binary, refusal)) return false;
  if (!CheckSize(binary.size(), max_request_bytes, refusal)) return false;
  out->messages.push_back(std::move(binary));
  return true;
}

bool ParsePost(const HttpRequest& req, const MethodShape& shape,
               size_t max_request_bytes, ConnectRequest* out,
               RequestRefusal* refusal) {
  const std::string raw_type = req.Header("content-type");
  const std::string type = MediaType(raw_type);
  if (absl::StartsWith(type, "application/connect+")) {
    out->streaming = true;
    if (!ParseCodec(type.substr(strlen("application/connect+")), &out->codec)) {
      return Refuse(refusal, 415,
                    absl::InvalidArgumentError(
                        absl::StrCat("content type ", QuoteInput(raw_type, 60),
                                     " is not served: ", kServedTypes)));
    }
  } else if (!absl::StartsWith(type, "application/") ||
             !ParseCodec(type.substr(strlen("application/")), &out->codec)) {
    return Refuse(refusal, 415,
                  absl::InvalidArgumentError(absl::StrCat(
                      raw_type.empty() ? std::string("no content type")
                                       : absl::StrCat("content type ",
                                                      QuoteInput(raw_type, 60)),
                      " is not served: ", kServedTypes)));
  }
  const bool method_streams = shape.client_streaming || shape.server_streaming;
  if (out->streaming != method_streams) {
    const char* want =
        out->codec == ConnectCodec::kJson
            ? (method_streams ? "application/connect+json" : "application/json")
            : (method_streams ? "application/connect+proto"
                              : "application/proto");
    return Refuse(
        refusal, 415,
        absl::InvalidArgumentError(absl::StrCat(
            MethodName(req.path),
            method_streams ? " streams: send Content-Type "
                           : " is unary: "
                             "send "
                             "Content-"
                             "Type ",
            want,
            method_streams ? " with the request in an envelope (a flags "
                             "byte 0, a 4-byte big-endian length, then the "
                             "message)"
                           : " with the bare message as the body")));
  }
  if (out->codec == ConnectCodec::kJson && shape.input == nullptr) {
    return Refuse(refusal, 415,
                  absl::InvalidArgumentError(absl::StrCat(
                      "JSON needs ", MethodName(req.path),
                      "'s message types, which this binary lacks: send "
                      "protobuf (application/proto, application/connect+"
                      "proto)")));
  }
  if (std::string v = req.Header("connect-protocol-version");
      !v.empty() && v != "1") {
    return Refuse(refusal, 400,
                  absl::InvalidArgumentError(absl::StrCat(
                      "Connect-Protocol-Version ", QuoteInput(v, 20),
                      ": this gateway speaks version 1")));
  }
  if (!CheckEncoding(
          out->streaming ? "Connect-Content-Encoding" : "Content-Encoding",
          req.Header(out->streaming ? "connect-content-encoding"
                                    : "content-encoding"),
          refusal)) {
    return false;
  }

  if (!out->streaming) {
    std::string binary;
    if (out->codec == ConnectCodec::kProto &&
        !CheckSize(req.body.size(), max_request_bytes, refusal)) {
      return false;
    }
    if (!DecodeMessage(out->codec, shape, req.body, &binary, refusal)) {
      return false;
    }
    if (!CheckSize(binary.size(), max_request_bytes, refusal)) return false;
    out->messages.push_back(std::move(binary));
    return true;
  }

  // A JSON message is larger than its binary form (bytes as base64): the
  // binary size is checked below.
  absl::StatusOr<std::vector<Frame>> envelopes =
      ParseFrames(req.body, out->codec == ConnectCodec::kJson
                                ? max_request_bytes / 3 * 4 + 4096
                                : max_request_bytes);
  if (!envelopes.ok()) {
    bool too_big =
        envelopes.status().code() == absl::StatusCode::kResourceExhausted;
    return Refuse(refusal, too_big ? 413 : 400,
                  absl::Status(envelopes.status().code(),
                               absl::StrCat("envelopes: ",
                                            envelopes.status().message())));
  }
  if (!shape.client_streaming && envelopes->size() != 1) {
    return Refuse(
        refusal, 400,
        absl::InvalidArgumentError(absl::StrCat(
            "the request body holds ", envelopes->size(), " envelopes; ",
            MethodName(req.path),
            " takes exactly one (a flags byte 0, a 4-byte big-endian length, "
            "then the message)")));
  }
  size_t total = 0;
  for (const Frame& e : *envelopes) {
    if (e.flags & kConnectCompressedFlag) {
      return Refuse(refusal, 501,
                    absl::UnimplementedError(
                        "a compressed envelope: this gateway takes identity "
                        "(uncompressed) messages only"));
    }
    if (e.flags != 0) {
      return Refuse(refusal, 400,
                    absl::InvalidArgumentError(absl::StrCat(
                        "envelope flags 0x", absl::Hex(e.flags),
                        ": a request envelope has flags 0 (0x02 ends a "
                        "response stream, the other bits are reserved)")));
    }
    std::string binary;
    if (!DecodeMessage(out->codec, shape, e.payload, &binary, refusal)) {
      return false;
    }
    total += binary.size();
    if (!CheckSize(total, max_request_bytes, refusal)) return false;
    out->messages.push_back(std::move(binary));
  }
  return true;
}

// Appends `s` as the body of a JSON string (no quotes).
void AppendJsonEscaped(absl::string_view s, std::string* out) {
  for (char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(c);
        }
    }
  }
}

// Base64 without padding (Connect's binary values).
std::string UnpaddedBase64(absl::string_view data) {
  std::string s = Base64Encode(data);
  while (!s.empty() && s.back() == '=') s.pop_back();
  return s;
}

// The details of a serialized google.rpc.Status (field 3: repeated Any), as
// JSON objects; unreadable bytes give none.
std::vector<std::string> DetailsJson(absl::string_view status_details) {
  std::vector<std::string> out;
  using google::protobuf::internal::WireFormatLite;
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(status_details.data()),
      static_cast<int>(status_details.size()));
  while (uint32_t tag = in.ReadTag()) {
    if (WireFormatLite::GetTagFieldNumber(tag) == 3 &&
        WireFormatLite::GetTagWireType(tag) ==
            WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      std::string bytes;
      google::protobuf::Any any;
      if (!WireFormatLite::ReadBytes(&in, &bytes) ||
          !any.ParseFromString(bytes)) {
        return {};
      }
      absl::string_view type = any.type_url();
      type = type.substr(type.rfind('/') + 1);
      out.push_back(absl::StrCat("{\"type\":", JsonQuote(type), ",\"value\":\"",
                                 UnpaddedBase64(any.value()), "\"}"));
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return {};
    }
  }
  return out;
}

}  // namespace

bool IsConnectRequest(const HttpRequest& req, const MethodShape& shape) {
  if (req.method == "POST") {
    return !absl::StartsWith(MediaType(req.Header("content-type")),
                             "application/grpc-web");
  }
  if (req.method != "GET" && req.method != "HEAD") return false;
  if (!ValidMethodPath(req.path)) return false;
  return shape.known || req.params.count("connect") > 0 ||
         req.params.count("encoding") > 0 || req.params.count("message") > 0;
}

bool ParseConnectRequest(const HttpRequest& req, const MethodShape& shape,
                         size_t max_request_bytes, absl::Time now,
                         ConnectRequest* out, RequestRefusal* refusal) {
  if (!ValidMethodPath(req.path)) {
    return Refuse(refusal, 404,
                  absl::UnimplementedError(
                      absl::StrCat("no such method: ", QuoteInput(req.path),
                                   " (want /package.Service/Method)")));
  }
  if (!shape.known) {
    return Refuse(refusal, 404,
                  absl::UnimplementedError(absl::StrCat(
                      "no such method: ", QuoteInput(req.path),
                      " (the services and methods are in the proto files; "
                      "gRPC reflection lists them)")));
  }
  bool parsed = req.method == "POST"
                    ? ParsePost(req, shape, max_request_bytes, out, refusal)
                    : ParseGet(req, shape, max_request_bytes, out, refusal);
  if (!parsed) return false;
  if (std::string t = req.Header("connect-timeout-ms"); !t.empty()) {
    uint64_t ms = 0;
    bool digits = t.size() <= 10 && absl::c_all_of(t, [](char c) {
                    return c >= '0' && c <= '9';
                  });
    if (!digits || !absl::SimpleAtoi(t, &ms) || ms == 0) {
      return Refuse(refusal, 400,
                    absl::InvalidArgumentError(absl::StrCat(
                        "Connect-Timeout-Ms ", QuoteInput(t, 20),
                        ": want a positive number of milliseconds (at most "
                        "10 digits)")));
    }
    out->deadline = now + absl::Milliseconds(ms);
  }
  if (!RequestMetadata(req, &out->metadata, refusal)) return false;
  out->method = req.path;
  return true;
}

const char* ConnectContentType(ConnectCodec codec, bool streaming) {
  if (streaming) {
    return codec == ConnectCodec::kJson ? "application/connect+json"
                                        : "application/connect+proto";
  }
  return codec == ConnectCodec::kJson ? "application/json"
                                      : "application/proto";
}

absl::StatusOr<std::string> EncodeConnectMessage(
    ConnectCodec codec, const google::protobuf::Descriptor* type,
    absl::string_view reply) {
  if (codec == ConnectCodec::kProto) return std::string(reply);
  if (type == nullptr) {
    return absl::InternalError("no message type to write the reply as JSON");
  }
  return BinaryToJson(*type, reply);
}

const char* ConnectCodeName(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return "ok";
    case absl::StatusCode::kCancelled:
      return "canceled";
    case absl::StatusCode::kUnknown:
      return "unknown";
    case absl::StatusCode::kInvalidArgument:
      return "invalid_argument";
    case absl::StatusCode::kDeadlineExceeded:
      return "deadline_exceeded";
    case absl::StatusCode::kNotFound:
      return "not_found";
    case absl::StatusCode::kAlreadyExists:
      return "already_exists";
    case absl::StatusCode::kPermissionDenied:
      return "permission_denied";
    case absl::StatusCode::kResourceExhausted:
      return "resource_exhausted";
    case absl::StatusCode::kFailedPrecondition:
      return "failed_precondition";
    case absl::StatusCode::kAborted:
      return "aborted";
    case absl::StatusCode::kOutOfRange:
      return "out_of_range";
    case absl::StatusCode::kUnimplemented:
      return "unimplemented";
    case absl::StatusCode::kInternal:
      return "internal";
    case absl::StatusCode::kUnavailable:
      return "unavailable";
    case absl::StatusCode::kDataLoss:
      return "data_loss";
    case absl::StatusCode::kUnauthenticated:
      return "unauthenticated";
    default:
      return "unknown";
  }
}

int ConnectHttpStatus(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    default:
      return 500;
  }
}

std::string JsonQuote(absl::string_view text) {
  std::string out = "\"";
  AppendJsonEscaped(SanitizeUtf8(text), &out);
  out.push_back('"');
  return out;
}

std::string ConnectErrorJson(absl::StatusCode code, absl::string_view message,
                             absl::string_view status_details) {
  std::string out = absl::StrCat("{\"code\":\"", ConnectCodeName(code), "\"");
  if (!message.empty())
    absl::StrAppend(&out, ",\"message\":", JsonQuote(message));
  std::vector<std::string> details = DetailsJson(status_details);
  if (!details.empty()) {
    absl::StrAppend(&out, ",\"details\":[", absl::StrJoin(details, ","), "]");
  }
  out.push_back('}');
  return out;
}

std::string ConnectEndStreamJson(absl::StatusCode code,
                                 absl::string_view message,
                                 absl::string_view status_details,
                                 const Metadata& metadata) {
  std::vector<std::string> parts;
  if (code != absl::StatusCode::kOk) {
    parts.push_back(absl::StrCat(
        "\"error\":", ConnectErrorJson(code, message, status_details)));
  }
  if (!metadata.empty()) {
    // Keys in order of first appearance, values grouped.
    std::vector<std::pair<std::string, std::vector<std::string>>> grouped;
    for (const auto& entry : metadata) {
      const std::string& k = entry.first;
      const std::string& v = entry.second;
      std::string value =
          absl::EndsWith(k, "-bin") ? UnpaddedBase64(v) : std::string(v);
      auto it = std::find_if(grouped.begin(), grouped.end(),
                             [&](const auto& g) { return g.first == k; });
      if (it == grouped.end()) {
        grouped.push_back({k, {JsonQuote(value)}});
      } else {
        it->second.push_back(JsonQuote(value));
      }
    }
    std::vector<std::string> entries;
    for (const auto& [k, values] : grouped) {
      entries.push_back(
          absl::StrCat(JsonQuote(k), ":[", absl::StrJoin(values, ","), "]"));
    }
    parts.push_back(
        absl::StrCat("\"metadata\":{", absl::StrJoin(entries, ","), "}"));
  }
  return absl::StrCat("{", absl::StrJoin(parts, ","), "}");
}

void AppendEnvelope(uint8_t flags, absl::string_view payload,
                    std::string* out) {
  AppendFrame(flags, payload, out);
}

void AppendMetadataHeaders(
    const Metadata& metadata, absl::string_view prefix,
    std::vector<std::pair<std::string, std::string>>* headers) {
  for (const auto& [k, v] : metadata) {
    // Never the response's own framing.
    if (k == "content-length" || k == "transfer-encoding" ||
        k == "connection" || k == "keep-alive" || k == "upgrade" ||
        k == "trailer") {
      continue;
    }
    headers->emplace_back(absl::StrCat(prefix, k), absl::EndsWith(k, "-bin")
                                                       ? UnpaddedBase64(v)
                                                       : std::string(v));
  }
}

}  // namespace amqpgw::web
