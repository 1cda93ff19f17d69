// The grpc-web wire format (https://github.com/grpc/grpc/blob/master/doc/
// PROTOCOL-WEB.md) as pure functions: frames, the trailer block, base64 for
// application/grpc-web-text, grpc-timeout, percent-encoded grpc-message and
// metadata key/value rules. No I/O, no state: safe from any thread, and
// small enough to fuzz (grpc_web_frame_fuzzer.cc).
#ifndef AMQPGW_SERVER_WEB_GRPC_WEB_FRAME_H_
#define AMQPGW_SERVER_WEB_GRPC_WEB_FRAME_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace amqpgw::web {

// First byte of a frame: bit 7 set = trailers, bit 0 set = compressed.
inline constexpr uint8_t kDataFrame = 0x00;
inline constexpr uint8_t kTrailerFrame = 0x80;
inline constexpr uint8_t kCompressedFlag = 0x01;
inline constexpr size_t kFrameHeaderBytes = 5;

// One frame; `payload` points into the parsed buffer.
struct Frame {
  uint8_t flags = 0;
  absl::string_view payload;
};

// Splits `body` into frames. Fails with INVALID_ARGUMENT when a frame header
// or payload is cut short, and RESOURCE_EXHAUSTED when a payload is larger
// than `max_payload_bytes`.
absl::StatusOr<std::vector<Frame>> ParseFrames(absl::string_view body,
                                               size_t max_payload_bytes);

// The messages of a grpc-web request body: every frame must be an
// uncompressed data frame (INVALID_ARGUMENT for a trailer frame or reserved
// flag bits, UNIMPLEMENTED for a compressed one), and all payloads together
// at most `max_total_bytes` (RESOURCE_EXHAUSTED).
absl::StatusOr<std::vector<absl::string_view>> ParseRequestMessages(
    absl::string_view body, size_t max_total_bytes);

// Appends one frame (5-byte header + payload) to `out`.
void AppendFrame(uint8_t flags, absl::string_view payload, std::string* out);

// The payload of a trailer frame: "grpc-status: N\r\ngrpc-message: ...\r\n"
// and then `metadata` (keys lower case; values of "-bin" keys are
// base64-encoded here). The message is percent-encoded.
std::string TrailerBlock(
    int status_code, absl::string_view message,
    const std::vector<std::pair<std::string, std::string>>& metadata);

// The "key: value" lines of a trailer block, in order (for tests and
// clients). INVALID_ARGUMENT when a line has no colon.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>>
ParseTrailerBlock(absl::string_view block);

// Standard base64 with padding.
std::string Base64Encode(absl::string_view data);
// Decodes application/grpc-web-text: standard base64 where each chunk the
// sender flushed may carry its own padding, so '=' may appear inside the
// text ("AAE=AAAB"). A final group without padding is accepted.
// INVALID_ARGUMENT on any other character or a group cut short.
absl::StatusOr<std::string> Base64DecodeChunks(absl::string_view text);

// grpc-message encoding (gRPC HTTP/2 spec): bytes outside 0x20..0x7E and '%'
// become %XX.
std::string PercentEncode(absl::string_view text);
// The inverse; a malformed %XX is kept as is.
std::string PercentDecode(absl::string_view text);

// "<1-8 digits><H|M|S|m|u|n>" as a duration. INVALID_ARGUMENT otherwise.
absl::StatusOr<absl::Duration> ParseGrpcTimeout(absl::string_view value);

// The request's wire format from its Content-Type.
enum class WireFormat { kBinary, kText };
// application/grpc-web, application/grpc-web+proto -> kBinary;
// application/grpc-web-text(+proto) -> kText (parameters after ';' and case
// are ignored). Anything else, +json included, is INVALID_ARGUMENT.
absl::StatusOr<WireFormat> ParseContentType(absl::string_view content_type);
// The response Content-Type for a format.
const char* ResponseContentType(WireFormat format);

// gRPC metadata rules: keys are [0-9a-z_.-]+; values of keys not ending in
// "-bin" are printable ASCII (0x20..0x7E).
bool IsValidMetadataKey(absl::string_view key);
bool IsValidMetadataValue(absl::string_view value);

}  // namespace amqpgw::web

#endif  // AMQPGW_SERVER_WEB_GRPC_WEB_FRAME_H_
