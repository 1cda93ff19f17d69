// The Connect protocol (https://connectrpc.com/docs/protocol) as pure
// functions: a request taken apart and checked before any call starts, and
// the pieces of a response (error bodies, envelopes, the end-of-stream
// message, HTTP statuses). No I/O, no state: any thread; fuzzed
// (connect_request_fuzzer.cc).
//
// What is served, over HTTP/1.1:
//   unary            POST, Content-Type application/json | application/proto,
//                    the bare message as the body; the answer likewise, or
//                    an error as JSON {code, message, details} with the HTTP
//                    status of its code.
//   unary, GET       for methods whose proto says `option idempotency_level =
//                    NO_SIDE_EFFECTS;`: ?encoding=json|proto&message=...
//                    [&base64=1][&connect=v1][&compression=identity].
//   streaming        POST, application/connect+json |
//   application/connect+proto:
//                    5-byte envelopes (flags, big-endian length), one request
//                    message for a server-streaming method; the answer is
//                    200 with an envelope per reply, then the end-of-stream
//                    envelope (flag 0x02) holding {error?, metadata?}.
// Only the identity encoding: compressed requests are UNIMPLEMENTED, answers
// are never compressed (every client accepts identity).
#ifndef AMQPGW_SERVER_WEB_CONNECT_PROTOCOL_H_
#define AMQPGW_SERVER_WEB_CONNECT_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/web/http_message.h"
#include "server/web/rpc_method.h"

namespace amqpgw::web {

// Envelope flags.
inline constexpr uint8_t kConnectCompressedFlag = 0x01;
inline constexpr uint8_t kConnectEndStreamFlag = 0x02;

enum class ConnectCodec { kProto, kJson };

struct ConnectRequest {
  std::string method;  // "/package.Service/Method"
  ConnectCodec codec = ConnectCodec::kJson;
  // Enveloped (application/connect+...): the answer is enveloped too.
  bool streaming = false;
  std::vector<std::string> messages;  // serialized protobuf, in order
  Metadata metadata;
  absl::Time deadline = absl::InfiniteFuture();
};

// Whether `request` (any method) is one for the Connect protocol: a POST
// whose content type is not grpc-web's, or a GET/HEAD of a method path the
// descriptors know (`shape`).
bool IsConnectRequest(const HttpRequest& request, const MethodShape& shape);

// Takes a Connect `request` (POST, GET or HEAD) apart; `shape` describes its
// method. JSON is converted with the method's descriptors (json_codec.h). On
// refusal returns false and fills `*refusal`:
//   404 UNIMPLEMENTED       not /package.Service/Method, or a method the
//                           descriptors do not know
//   405 UNIMPLEMENTED       GET of a method with side effects or a stream
//   415 INVALID_ARGUMENT    a content type (or GET encoding) not served, a
//                           unary type for a streaming method or the reverse,
//                           JSON for a method without descriptors
//   413 RESOURCE_EXHAUSTED  messages beyond `max_request_bytes`
//   501 UNIMPLEMENTED       compression other than identity
//   400 INVALID_ARGUMENT    JSON that is not the request type (protobuf's
//                           reason quoted), bad envelopes, no message or
//                           several for a method that takes one, a bad
//                           Connect-Timeout-Ms, Connect-Protocol-Version or
//                           connect= other than 1 / v1, bad base64, a header
//                           that cannot be metadata
// Messages never echo the body beyond a bounded quote.
bool ParseConnectRequest(const HttpRequest& request, const MethodShape& shape,
                         size_t max_request_bytes, absl::Time now,
                         ConnectRequest* out, RequestRefusal* refusal);

// "application/json", "application/proto", "application/connect+json",
// "application/connect+proto".
const char* ConnectContentType(ConnectCodec codec, bool streaming);

// A reply (serialized `type`) in `codec`: the bytes themselves, or JSON.
absl::StatusOr<std::string> EncodeConnectMessage(
    ConnectCodec codec, const google::protobuf::Descriptor* type,
    absl::string_view reply);

// Connect's name of a code: "invalid_argument", "canceled" (one l), ...
const char* ConnectCodeName(absl::StatusCode code);
// The HTTP status of an error with `code` (Connect's table: 400
// invalid_argument, failed_precondition, out_of_range; 401 unauthenticated;
// 403 permission_denied; 404 not_found; 409 already_exists, aborted; 429
// resource_exhausted; 499 canceled; 501 unimplemented; 503 unavailable; 504
// deadline_exceeded; 500 the rest).
int ConnectHttpStatus(absl::StatusCode code);

// The JSON Error object: {"code": ..., "message": ..., "details": [...]}.
// `status_details` is a serialized google.rpc.Status (gRPC's
// grpc-status-details-bin) whose details become {"type", "value"} entries
// (value: unpadded base64 of the detail); "" for none. The message is
// written as valid JSON whatever bytes it holds.
std::string ConnectErrorJson(absl::StatusCode code, absl::string_view message,
                             absl::string_view status_details = "");

// The end-of-stream message: {"error": {...}} when `code` is not OK, and
// {"metadata": {"key": ["value", ...]}} for `metadata` (values of "-bin"
// keys base64-encoded).
std::string ConnectEndStreamJson(absl::StatusCode code,
                                 absl::string_view message,
                                 absl::string_view status_details,
                                 const Metadata& metadata);

// One envelope appended to `out`.
void AppendEnvelope(uint8_t flags, absl::string_view payload, std::string* out);

// `metadata` as response headers: leading metadata as is, trailing metadata
// with "trailer-" in front (Connect's unary form); "-bin" values
// base64-encoded.
void AppendMetadataHeaders(
    const Metadata& metadata, absl::string_view prefix,
    std::vector<std::pair<std::string, std::string>>* headers);

// A JSON string literal for `text` (quotes included); bytes that are not
// valid UTF-8 become U+FFFD.
std::string JsonQuote(absl::string_view text);

}  // namespace amqpgw::web

#endif  // AMQPGW_SERVER_WEB_CONNECT_PROTOCOL_H_
