#include "server/web/grpc_web_request.h"

#include "absl/strings/str_cat.h"
#include "server/base/quote.h"

namespace amqpgw::web {
namespace {

bool Refuse(RequestRefusal* refusal, int http_status, absl::Status status) {
  refusal->http_status = http_status;
  refusal->status = std::move(status);
  return false;
}

}  // namespace

bool ParseGrpcWebRequest(const HttpRequest& req, const MethodShape& shape,
                         size_t max_request_bytes, absl::Time now,
                         GrpcWebRequest* out, RequestRefusal* refusal) {
  if (!ValidMethodPath(req.path)) {
    return Refuse(refusal, 404,
                  absl::UnimplementedError(
                      absl::StrCat("no such method: ", QuoteInput(req.path),
                                   " (want /package.Service/Method)")));
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

  // grpc-timeout -> deadline; the other headers -> metadata.
  auto timeout_header = req.headers.find("grpc-timeout");
  if (timeout_header != req.headers.end()) {
    absl::StatusOr<absl::Duration> timeout =
        ParseGrpcTimeout(timeout_header->second);
    if (!timeout.ok()) return Refuse(refusal, 400, timeout.status());
    out->deadline = now + *timeout;
  }
  if (!RequestMetadata(req, &out->metadata, refusal)) return false;
  out->method = req.path;
  out->wire = *format;
  out->messages.reserve(messages->size());
  for (absl::string_view m : *messages) out->messages.emplace_back(m);
  out->server_streaming = shape.server_streaming;
  return true;
}

}  // namespace amqpgw::web
