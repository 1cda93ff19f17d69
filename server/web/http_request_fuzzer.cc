// libFuzzer target for what the HTTP port parses before any handler runs:
// the request head (http_parser.h), a chunked body, and the grpc-web and
// Connect requests built from them (grpc_web_request.h, connect_protocol.h;
// connect_request_fuzzer.cc goes deeper into Connect and its JSON). Besides "no
// crash, no sanitizer report", it checks properties a smuggling bug would
// break:
// - a complete head never takes more bytes than it was given, and parsing
//   it again from a copy cut right after it gives the same head (the parse
//   does not depend on the bytes that follow: a pipelined request);
// - a head with both Content-Length and Transfer-Encoding, or with two
//   different lengths, is never accepted;
// - feeding a chunked body in one piece or byte by byte gives the same
//   result (same body, same end, same refusal);
// - a declared length above the limit is always refused (413).
//
//   scripts/sanitize.sh fuzz    (or, by hand:)
//   build-fuzz/server/web/http_request_fuzzer -max_total_time=60 \
//     server/web/http_request_fuzzer_seeds
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"
#include "amqpgw/v1/gateway.pb.h"
#include "server/web/connect_protocol.h"
#include "server/web/grpc_web_request.h"
#include "server/web/http_parser.h"

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "property failed: %s\n", what);
    std::abort();
  }
}

int Count(const amqpgw::web::http::RequestHead& h, absl::string_view name) {
  int n = 0;
  for (const auto& [k, v] : h.headers) n += k == name ? 1 : 0;
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace amqpgw::web;  // NOLINT
  const absl::string_view in(reinterpret_cast<const char*>(data), size);
  http::Limits limits;
  limits.max_head_bytes = 4096;
  limits.max_request_line_bytes = 1024;
  limits.max_header_count = 32;
  limits.max_body_bytes = 1 << 16;

  http::HeadResult r = http::ParseRequestHead(in, limits);
  if (r.state == http::HeadResult::kRefused) {
    Check(r.refusal.status >= 400 && r.refusal.status < 600, "status");
    Check(!r.refusal.reason.empty(), "reason");
    return 0;
  }
  if (r.state == http::HeadResult::kIncomplete) return 0;
  const http::RequestHead& head = r.head;
  Check(head.head_bytes <= in.size(), "head within the input");
  Check(head.head_bytes <= limits.max_head_bytes, "head within its limit");
  http::HeadResult again =
      http::ParseRequestHead(in.substr(0, head.head_bytes), limits);
  Check(again.state == http::HeadResult::kComplete &&
            again.head.head_bytes == head.head_bytes &&
            again.head.headers == head.headers &&
            again.head.content_length == head.content_length &&
            again.head.framing == head.framing,
        "the head does not depend on what follows it");
  bool has_te = Count(head, "transfer-encoding") > 0;
  bool has_cl = Count(head, "content-length") > 0;
  Check(!(has_te && has_cl), "Content-Length with Transfer-Encoding");
  Check(head.content_length <= limits.max_body_bytes, "length within limit");
  for (const auto& [k, v] : head.headers) {
    Check(k == absl::AsciiStrToLower(k), "lower-case names");
    for (char c : v) Check(c != '\r' && c != '\n' && c != '\0', "clean value");
  }

  absl::string_view rest = in.substr(head.head_bytes);
  std::string body;
  if (head.framing == http::BodyFraming::kChunked) {
    http::ChunkedDecoder whole(limits);
    size_t consumed = 0;
    auto s1 = whole.Feed(rest, &consumed, &body);
    http::ChunkedDecoder bytewise(limits);
    std::string body2;
    size_t consumed2 = 0;
    auto s2 = http::ChunkedDecoder::State::kNeedMore;
    while (consumed2 < rest.size() &&
           s2 == http::ChunkedDecoder::State::kNeedMore) {
      size_t one = 0;
      s2 = bytewise.Feed(rest.substr(consumed2, 1), &one, &body2);
      consumed2 += one;
      if (one == 0) break;
    }
    Check(s1 == s2, "chunked state independent of how bytes arrive");
    Check(body == body2, "chunked body independent of how bytes arrive");
    if (s1 == http::ChunkedDecoder::State::kDone) {
      Check(consumed == consumed2, "chunked end independent of arrival");
    }
    if (s1 == http::ChunkedDecoder::State::kRefused) {
      Check(whole.refusal().status == bytewise.refusal().status,
            "same refusal");
    }
    Check(body.size() <= limits.max_body_bytes, "chunked body within limit");
    if (s1 != http::ChunkedDecoder::State::kDone) return 0;
  } else if (head.framing == http::BodyFraming::kContentLength) {
    if (rest.size() < head.content_length) return 0;
    body = std::string(rest.substr(0, head.content_length));
  }

  HttpRequest request;
  request.method = head.method;
  request.path = head.path;
  for (const auto& [k, v] : head.headers) request.headers.emplace(k, v);
  for (auto& [k, v] : http::ParseQuery(head.query)) {
    request.params.emplace(std::move(k), std::move(v));
  }
  request.body = body;
  request.remote_addr = "127.0.0.1";
  for (bool one : {false, true}) {
    MethodShape shape{one, false, false};
    GrpcWebRequest out;
    RequestRefusal refusal;
    if (ParseGrpcWebRequest(request, shape, 1 << 15, absl::UnixEpoch(), &out,
                            &refusal)) {
      Check(!one || out.messages.size() == 1, "exactly one message");
      size_t total = 0;
      for (const auto& m : out.messages) total += m.size();
      Check(total <= (1 << 15), "messages within the limit");
      for (const auto& [k, v] : out.metadata) {
        Check(!k.empty() && k.find(':') == std::string::npos, "metadata key");
      }
    } else {
      Check(refusal.http_status >= 400 && !refusal.status.ok(), "refusal");
      Check(refusal.status.message().size() < 400, "short message");
    }
  }
  // Connect, with the method's real shape (amqpgw.v1's descriptors when
  // the path names one of its RPCs).
  (void)amqpgw::v1::PublishRequest::descriptor();  // links the descriptors
  MethodShape shape = LookUpMethod(request.path);
  if (IsConnectRequest(request, shape)) {
    ConnectRequest out;
    RequestRefusal refusal;
    if (ParseConnectRequest(request, shape, 1 << 15, absl::UnixEpoch(), &out,
                            &refusal)) {
      Check(shape.known, "only known methods");
      Check(shape.client_streaming || out.messages.size() == 1,
            "exactly one Connect message");
      size_t total = 0;
      for (const auto& m : out.messages) total += m.size();
      Check(total <= (1 << 15), "Connect messages within the limit");
    } else {
      Check(refusal.http_status >= 400 && !refusal.status.ok(),
            "Connect refusal");
      Check(refusal.status.message().size() < 600, "short Connect message");
    }
  }
  return 0;
}