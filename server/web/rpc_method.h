// What the HTTP port's two RPC protocols (grpc-web, grpc_web_request.h, and
// Connect, connect_protocol.h) share before a call starts: the method a path
// names and its shape, read from the generated descriptors linked into the
// binary; the refusal of a request; and the request headers that travel as
// gRPC metadata. Pure functions (no I/O): any thread; fuzzed.
#ifndef AMQPGW_SERVER_WEB_RPC_METHOD_H_
#define AMQPGW_SERVER_WEB_RPC_METHOD_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/web/http_message.h"

namespace google::protobuf {
class Descriptor;
}  // namespace google::protobuf

namespace amqpgw::web {

// What a method takes and returns.
struct MethodShape {
  bool known = false;  // described by a linked descriptor
  bool client_streaming = false;
  bool server_streaming = false;
  // The method's proto says `option idempotency_level = NO_SIDE_EFFECTS;`:
  // Connect may call it with GET.
  bool no_side_effects = false;
  // Its request and reply types, for JSON (connect_protocol.h); null when
  // the descriptors do not describe the method.
  const google::protobuf::Descriptor* input = nullptr;
  const google::protobuf::Descriptor* output = nullptr;
};

// "/package.Service/Method" with [A-Za-z0-9_.] names.
bool ValidMethodPath(absl::string_view path);

// What "/pkg.Service/Method" takes and returns, from the generated
// descriptors linked into the binary (DescriptorPool::generated_pool());
// known = false for a method they do not describe.
MethodShape LookUpMethod(absl::string_view path);

// A request refused before any call: the HTTP status, and the gRPC status
// (a grpc-web client reads it from the headers, a Connect client from the
// JSON body).
struct RequestRefusal {
  int http_status = 400;
  absl::Status status;
};

using Metadata = std::vector<std::pair<std::string, std::string>>;

// The request headers that become the call's metadata: `authorization`,
// `traceparent` and any custom header (values of `-bin` headers are base64
// on the wire and decoded here). Not passed on: HTTP and browser
// bookkeeping, `grpc-*` and `connect-*` (each protocol reads its own), and
// names that cannot be metadata. `x-forwarded-for` gets the client's address
// appended. False (and 400 INVALID_ARGUMENT in `*refusal`) for a value that
// cannot be metadata; the message names the header, never its value.
bool RequestMetadata(const HttpRequest& request, Metadata* out,
                     RequestRefusal* refusal);

}  // namespace amqpgw::web

#endif  // AMQPGW_SERVER_WEB_RPC_METHOD_H_
