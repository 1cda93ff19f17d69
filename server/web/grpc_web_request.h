// A grpc-web request taken apart and checked, before any call starts: the
// method path, the content type, the framed messages (exactly one for a
// method that is not client streaming), the headers that travel as gRPC
// metadata (rpc_method.h), and grpc-timeout. Pure functions (no I/O): any
// thread; fuzzed with the HTTP parser (http_request_fuzzer.cc).
#ifndef AMQPGW_SERVER_WEB_GRPC_WEB_REQUEST_H_
#define AMQPGW_SERVER_WEB_GRPC_WEB_REQUEST_H_

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/web/grpc_web_frame.h"
#include "server/web/http_message.h"
#include "server/web/rpc_method.h"

namespace amqpgw::web {

struct GrpcWebRequest {
  std::string method;  // "/package.Service/Method"
  WireFormat wire = WireFormat::kBinary;
  std::vector<std::string> messages;  // serialized, in order
  std::vector<std::pair<std::string, std::string>> metadata;
  absl::Time deadline = absl::InfiniteFuture();
  bool server_streaming = false;
};

// Takes `request` (a POST) apart. `shape` describes its method. On refusal
// returns false and fills `*refusal`:
//   404 UNIMPLEMENTED       the path is not /package.Service/Method
//   415 INVALID_ARGUMENT    not application/grpc-web(-text)
//   413 RESOURCE_EXHAUSTED  messages beyond `max_request_bytes`
//   400 INVALID_ARGUMENT    bad framing or base64, no message or several
//                           for a method that takes one, a bad grpc-timeout,
//                           a header that cannot be gRPC metadata
// Messages never echo the body; header names are shown, values never.
bool ParseGrpcWebRequest(const HttpRequest& request, const MethodShape& shape,
                         size_t max_request_bytes, absl::Time now,
                         GrpcWebRequest* out, RequestRefusal* refusal);

}  // namespace amqpgw::web

#endif  // AMQPGW_SERVER_WEB_GRPC_WEB_REQUEST_H_
