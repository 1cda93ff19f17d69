// HTTP/1.1 request framing (RFC 9112), strict, as pure functions: the
// request head (request line and header fields) and chunked bodies. The HTTP
// server (http_server.h) feeds them the bytes it has read so far; nothing
// here does I/O or keeps state between calls except ChunkedDecoder, which a
// single connection owns. Fuzzed by http_request_fuzzer.cc.
//
// Strict means: whatever could be read two ways by two HTTP parsers (a proxy
// in front and this server) is refused, at once, with a status and a short
// reason: Content-Length together with Transfer-Encoding, Content-Length
// values that differ or are not plain digits, a transfer coding other than
// "chunked", obsolete line folding, whitespace before a header's colon,
// bare CR or LF line ends, control characters in a field, a missing or
// repeated Host (HTTP/1.1). A declared body larger than the limit is
// refused as soon as the head is read (413), before any of it is read.
#ifndef AMQPGW_SERVER_WEB_HTTP_PARSER_H_
#define AMQPGW_SERVER_WEB_HTTP_PARSER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace amqpgw::web::http {

struct Limits {
  // Request line plus header fields plus the blank line (431 beyond).
  size_t max_head_bytes = 16 * 1024;
  // The request line alone (414 beyond).
  size_t max_request_line_bytes = 8 * 1024;
  // Header field lines (431 beyond).
  size_t max_header_count = 100;
  // Largest request body (413 beyond); chunked bodies count their data.
  uint64_t max_body_bytes = 64 << 20;
  // Appended to the 413 reason, e.g. " (--max_request_bytes)".
  std::string body_limit_hint;
};

// A refusal: the HTTP status to answer and a short reason (never echoing
// more than a few bytes of the request).
struct Refusal {
  int status = 400;
  std::string reason;
};

enum class BodyFraming { kNone, kContentLength, kChunked };

struct RequestHead {
  std::string method;
  // The request target as sent ("/a/b?x=1", "*", "http://h/a").
  std::string target;
  // The path, percent-decoded, without the query ("/a/b"); "*" for an
  // asterisk-form target.
  std::string path;
  // The query after '?', as sent (still encoded).
  std::string query;
  // 0 for HTTP/1.0, 1 for HTTP/1.1.
  int minor_version = 1;
  // In order; names in lower case, values without surrounding whitespace.
  std::vector<std::pair<std::string, std::string>> headers;
  BodyFraming framing = BodyFraming::kNone;
  uint64_t content_length = 0;
  // The connection may carry another request after this one.
  bool keep_alive = true;
  // "Expect: 100-continue": the client waits for an interim 100 response
  // before it sends the body.
  bool expect_continue = false;
  // Bytes of the buffer this head took (empty lines before it included).
  size_t head_bytes = 0;

  // The first value of `lower_case_name`, or "" when absent.
  absl::string_view Header(absl::string_view lower_case_name) const;
};

struct HeadResult {
  enum State { kIncomplete, kComplete, kRefused } state = kIncomplete;
  RequestHead head;  // kComplete
  Refusal refusal;   // kRefused
};

// Parses the head at the start of `buffer` (the bytes a connection received
// so far). kIncomplete when more bytes are needed and nothing seen so far is
// wrong; kRefused as soon as what arrived is wrong or too large, even if the
// head is not complete yet.
HeadResult ParseRequestHead(absl::string_view buffer, const Limits& limits);

// Percent-decodes a path ("%2F" -> "/"); false for a malformed escape or a
// decoded NUL.
bool DecodePath(absl::string_view in, std::string* out);

// Splits a query ("a=1&b=x%20y&c") into decoded (name, value) pairs; '+' is
// a space. Malformed escapes are kept as they are.
std::vector<std::pair<std::string, std::string>> ParseQuery(
    absl::string_view query);

// A chunked request body (RFC 9112 section 7.1), fed as bytes arrive. Chunk
// extensions are skipped (bounded), trailer fields are read and dropped
// (bounded). One per request; not thread-safe.
class ChunkedDecoder {
 public:
  explicit ChunkedDecoder(const Limits& limits);

  enum class State { kNeedMore, kDone, kRefused };
  // Consumes a prefix of `in` (how much: *consumed), appending chunk data to
  // `body`. Once kDone, bytes after the body are left unconsumed (a
  // pipelined request). kRefused fills refusal().
  State Feed(absl::string_view in, size_t* consumed, std::string* body);

  const Refusal& refusal() const { return refusal_; }

 private:
  enum class Step {
    kSize,       // hex digits of a chunk size
    kExtension,  // ";name=value" after the size, skipped
    kSizeLf,     // the LF of the size line
    kData,       // chunk data
    kDataCr,     // the CRLF after chunk data
    kDataLf,
    kTrailerStart,   // the start of a trailer line, or of the final CRLF
    kTrailerLine,    // inside a trailer field line, skipped
    kTrailerLineLf,  // the LF ending a trailer field line
    kFinalLf,        // the LF of the blank line that ends the body
    kDone,
  };

  State Refuse(int status, std::string reason);

  const uint64_t max_body_bytes_;
  const std::string body_limit_hint_;
  Step step_ = Step::kSize;
  uint64_t chunk_left_ = 0;
  int size_digits_ = 0;
  size_t extension_bytes_ = 0;
  size_t trailer_bytes_ = 0;
  uint64_t body_bytes_ = 0;
  Refusal refusal_;
};

// The reason phrase of a status code ("Bad Request").
const char* StatusReason(int status);

}  // namespace amqpgw::web::http

#endif  // AMQPGW_SERVER_WEB_HTTP_PARSER_H_
