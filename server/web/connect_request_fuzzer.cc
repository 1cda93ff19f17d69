// libFuzzer target for what the HTTP port reads of a Connect request before
// any call starts (connect_protocol.h): unary bodies in both codecs,
// envelopes, GET queries, headers, and the JSON decoder (json_codec.h),
// against amqpgw.v1.Gateway's real message types. Besides "no crash, no
// sanitizer report", it checks:
// - an accepted request has exactly one message for a method that takes
//   one, within the limit, and each message parses as the method's request
//   type;
// - JSON round trips: what the decoder accepted, written back as JSON and
//   read again, is the same message;
// - refusals have an HTTP error status, a gRPC code and a bounded message;
// - the error and end-of-stream JSON the server writes is valid JSON for any
//   message bytes, and says what it was given.
//
// Input: byte 0 picks the RPC, byte 1 the form (bits 0-2: unary JSON, unary
// proto, stream JSON, stream proto, GET JSON, GET proto base64, raw POST
// body with a fuzzed content type; bit 3: wrap the body in an envelope or
// send it as is; bit 4: add a Connect-Timeout-Ms from the body's start), the
// rest is the body.
//
//   scripts/sanitize.sh fuzz    (or, by hand:)
//   build-fuzz/server/web/connect_request_fuzzer -max_total_time=60 \
//     server/web/connect_request_fuzzer_seeds
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/field_comparator.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/string_view.h"
#include "amqpgw/v1/gateway.pb.h"
#include "server/base/utf8.h"
#include "server/web/connect_protocol.h"
#include "server/web/json_codec.h"

namespace {

using namespace amqpgw::web;  // NOLINT

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "property failed: %s\n", what);
    std::abort();
  }
}

std::unique_ptr<google::protobuf::Message> New(
    const google::protobuf::Descriptor* type) {
  return std::unique_ptr<google::protobuf::Message>(
      google::protobuf::MessageFactory::generated_factory()
          ->GetPrototype(type)
          ->New());
}

// JSON -> binary -> JSON -> binary gives the same message.
void CheckJsonRoundTrip(const google::protobuf::Descriptor* type,
                        absl::string_view binary) {
  auto first = New(type);
  Check(first->ParseFromArray(binary.data(), static_cast<int>(binary.size())),
        "accepted JSON gives the request type");
  absl::StatusOr<std::string> json = BinaryToJson(*type, binary);
  Check(json.ok(), "an accepted request prints as JSON");
  absl::StatusOr<std::string> again = JsonToBinary(*type, *json);
  Check(again.ok(), "printed JSON parses again");
  auto second = New(type);
  Check(second->ParseFromString(*again), "reparsed binary parses");
  // NaN is a value JSON carries ("NaN") but not one == finds equal.
  google::protobuf::util::DefaultFieldComparator comparator;
  comparator.set_treat_nan_as_equal(true);
  google::protobuf::util::MessageDifferencer differencer;
  differencer.set_field_comparator(&comparator);
  Check(differencer.Compare(*first, *second),
        "JSON round trip gives the same message");
}

void CheckValidJson(const std::string& json, const char* what) {
  google::protobuf::Struct s;
  Check(google::protobuf::util::JsonStringToMessage(json, &s).ok(), what);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const google::protobuf::ServiceDescriptor* service =
      amqpgw::v1::PublishRequest::descriptor()->file()->FindServiceByName(
          "Gateway");
  const google::protobuf::MethodDescriptor* method =
      service->method(data[0] % service->method_count());
  const uint8_t form = data[1];
  const absl::string_view body(reinterpret_cast<const char*>(data) + 2,
                               size - 2);
  const std::string path =
      std::string("/amqpgw.v1.Gateway/") + std::string(method->name());
  const MethodShape shape = LookUpMethod(path);
  Check(shape.known && shape.input == method->input_type(), "shape");

  HttpRequest req;
  req.path = path;
  req.remote_addr = "127.0.0.1";
  std::string payload(body);
  if (form & 0x08) {
    payload.clear();
    AppendEnvelope(0, body, &payload);
  }
  switch (form & 0x07) {
    case 0:
    case 1:
    case 2:
    case 3: {
      static const char* const kTypes[] = {
          "application/json", "application/proto", "application/connect+json",
          "application/connect+proto"};
      req.method = "POST";
      req.headers.emplace("content-type", kTypes[form & 0x03]);
      req.body = payload;
      break;
    }
    case 4:
      req.method = "GET";
      req.params.emplace("encoding", "json");
      req.params.emplace("message", std::string(body));
      break;
    case 5: {
      req.method = "GET";
      std::string b64;
      absl::WebSafeBase64Escape(body, &b64);
      req.params.emplace("encoding", "proto");
      req.params.emplace("base64", "1");
      req.params.emplace("message", (form & 0x08) ? std::string(body) : b64);
      break;
    }
    default: {
      // The content type is the body's first line.
      size_t eol = body.find('\n');
      req.method = "POST";
      req.headers.emplace("content-type", std::string(body.substr(0, eol)));
      req.body = eol == absl::string_view::npos
                     ? ""
                     : std::string(body.substr(eol + 1));
      break;
    }
  }
  if (form & 0x10) {
    req.headers.emplace("connect-timeout-ms", std::string(body.substr(0, 12)));
  }

  constexpr size_t kLimit = 1 << 14;
  ConnectRequest out;
  RequestRefusal refusal;
  if (ParseConnectRequest(req, shape, kLimit, absl::UnixEpoch(), &out,
                          &refusal)) {
    Check(out.method == path, "method");
    Check(shape.client_streaming || out.messages.size() == 1,
          "exactly one message");
    size_t total = 0;
    for (const std::string& m : out.messages) {
      total += m.size();
      if (out.codec == ConnectCodec::kJson) {
        CheckJsonRoundTrip(shape.input, m);
      }
    }
    Check(total <= kLimit, "messages within the limit");
    Check(out.deadline >= absl::UnixEpoch(), "deadline not in the past");
  } else {
    Check(refusal.http_status >= 400 && refusal.http_status < 600, "status");
    Check(!refusal.status.ok(), "a refusal has a code");
    Check(refusal.status.message().size() < 600, "short message");
  }

  // Whatever the bytes, the JSON the server writes is valid.
  const std::string text(body);
  std::string error =
      ConnectErrorJson(absl::StatusCode::kInvalidArgument, text, text);
  CheckValidJson(error, "error JSON");
  google::protobuf::Struct parsed;
  (void)google::protobuf::util::JsonStringToMessage(error, &parsed);
  if (!text.empty()) {
    Check(parsed.fields().at("message").string_value() ==
              amqpgw::SanitizeUtf8(text),
          "error JSON keeps the message");
  }
  CheckValidJson(ConnectEndStreamJson(absl::StatusCode::kUnavailable, text,
                                      text, {{"x-k", text}, {"x-k-bin", text}}),
                 "end-of-stream JSON");
  return 0;
}
