#include "server/web/http_parser.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace amqpgw::web::http {
namespace {

using ::testing::HasSubstr;

HeadResult Parse(const std::string& text, Limits limits = {}) {
  return ParseRequestHead(text, limits);
}

void ExpectRefused(const std::string& text, int status,
                   const std::string& reason, Limits limits = {}) {
  HeadResult r = Parse(text, limits);
  ASSERT_EQ(r.state, HeadResult::kRefused) << text;
  EXPECT_EQ(r.refusal.status, status) << text;
  EXPECT_THAT(r.refusal.reason, HasSubstr(reason)) << text;
}

TEST(HttpParserTest, ParsesAPostWithLengthQueryAndPipelinedRest) {
  std::string text =
      "POST /amqpgw.v1.Gateway/Publish?x=1&y=a%20b HTTP/1.1\r\n"
      "Host: gw\r\n"
      "Content-Type:application/grpc-web\r\n"
      "Content-Length: 5\r\n"
      "X-Custom:   spaced value \t\r\n"
      "\r\n"
      "helloGET / HTTP/1.1\r\n";
  HeadResult r = Parse(text);
  ASSERT_EQ(r.state, HeadResult::kComplete) << r.refusal.reason;
  const RequestHead& h = r.head;
  EXPECT_EQ(h.method, "POST");
  EXPECT_EQ(h.path, "/amqpgw.v1.Gateway/Publish");
  EXPECT_EQ(h.query, "x=1&y=a%20b");
  EXPECT_EQ(h.minor_version, 1);
  EXPECT_EQ(h.framing, BodyFraming::kContentLength);
  EXPECT_EQ(h.content_length, 5u);
  EXPECT_TRUE(h.keep_alive);
  EXPECT_EQ(h.Header("content-type"), "application/grpc-web");
  EXPECT_EQ(h.Header("x-custom"), "spaced value");
  EXPECT_EQ(text.substr(h.head_bytes, 5), "hello");
  auto params = ParseQuery(h.query);
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[1].second, "a b");
}

TEST(HttpParserTest, IncompleteUntilTheBlankLineButBadBytesAtOnce) {
  std::string full = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
  for (size_t n = 0; n < full.size(); ++n) {
    EXPECT_EQ(Parse(full.substr(0, n)).state, HeadResult::kIncomplete) << n;
  }
  EXPECT_EQ(Parse(full).state, HeadResult::kComplete);
  // Wrong bytes are refused before the head is complete.
  ExpectRefused("GET /x HTTP/1.1\r\nHost: a\x01", 400, "control character");
  ExpectRefused(std::string("GET /x\0", 7), 400, "control character");
  ExpectRefused("GET /x HTTP/1.1\r\n b", 400, "folding");
}

TEST(HttpParserTest, RefusesAmbiguousFraming) {
  ExpectRefused(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
      "Transfer-Encoding: chunked\r\n\r\n",
      400, "both Content-Length and Transfer-Encoding");
  ExpectRefused(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
      "Content-Length: 4\r\n\r\n",
      400, "conflicting Content-Length");
  ExpectRefused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n",
                400, "conflicting Content-Length");
  ExpectRefused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", 400,
                "malformed Content-Length");
  ExpectRefused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
                400, "malformed Content-Length");
  ExpectRefused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
                501, "'gzip' is not supported");
  ExpectRefused(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
      "Transfer-Encoding: chunked\r\n\r\n",
      501, "not supported");
  ExpectRefused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
                "HTTP/1.0");
  ExpectRefused("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400,
                "whitespace before ':'");
  ExpectRefused("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  folded\r\n\r\n", 400,
                "folding");
  ExpectRefused("GET / HTTP/1.1\nHost: a\n\n", 400, "CRLF");
  ExpectRefused("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400,
                "control character");
  ExpectRefused("GET / HTTP/1.1\r\n\r\n", 400, "missing Host");
  ExpectRefused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400,
                "more than one Host");
  // Equal duplicates are one length (RFC 9112 6.3).
  HeadResult same = Parse(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
      "Content-Length: 003\r\n\r\n");
  ASSERT_EQ(same.state, HeadResult::kComplete) << same.refusal.reason;
  EXPECT_EQ(same.head.content_length, 3u);
}

TEST(HttpParserTest, RefusesATooLargeBodyFromItsHead) {
  Limits limits;
  limits.max_body_bytes = 1000;
  limits.body_limit_hint = " (--max_request_bytes)";
  ExpectRefused(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n", 413,
      "too large: 99999999999 bytes, more than the limit of 1000 bytes "
      "(--max_request_bytes)",
      limits);
  ExpectRefused(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
      "999999999999999999999999\r\n\r\n",
      413, "too large", limits);
  EXPECT_EQ(Parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n",
                  limits)
                .state,
            HeadResult::kComplete);
}

TEST(HttpParserTest, LimitsOnHeadSizeLineAndFieldCount) {
  Limits limits;
  limits.max_head_bytes = 200;
  limits.max_request_line_bytes = 100;
  limits.max_header_count = 3;
  ExpectRefused("GET /" + std::string(200, 'a'), 414, "request line too long",
                limits);
  ExpectRefused("GET / HTTP/1.1\r\nX: " + std::string(300, 'a'), 431,
                "too large", limits);
  ExpectRefused("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
                431, "more than 3 header fields", limits);
}

TEST(HttpParserTest, VersionsTargetsAndConnection) {
  ExpectRefused("GET / HTTP/2.0\r\n\r\n", 505, "not supported");
  ExpectRefused("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "not supported");
  ExpectRefused("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "request line");
  ExpectRefused("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request line");
  ExpectRefused("GET x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "start with '/'");
  ExpectRefused("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "OPTIONS only");
  ExpectRefused("GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400, "percent");
  ExpectRefused("GET /a%00b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "percent");
  ExpectRefused("GET /a#f HTTP/1.1\r\nHost: a\r\n\r\n", 400, "fragment");
  ExpectRefused("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "method");
  ExpectRefused("GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", 417,
                "100-continue");

  HeadResult old = Parse("GET /a HTTP/1.0\r\n\r\n");
  ASSERT_EQ(old.state, HeadResult::kComplete);
  EXPECT_FALSE(old.head.keep_alive);
  old = Parse("GET /a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
  EXPECT_TRUE(old.head.keep_alive);
  HeadResult closing =
      Parse("GET /a HTTP/1.1\r\nHost: a\r\nConnection: te, close\r\n\r\n");
  EXPECT_FALSE(closing.head.keep_alive);
  HeadResult absolute =
      Parse("GET http://gw:8080/x/y?q=1 HTTP/1.1\r\nHost: gw\r\n\r\n");
  ASSERT_EQ(absolute.state, HeadResult::kComplete);
  EXPECT_EQ(absolute.head.path, "/x/y");
  EXPECT_EQ(absolute.head.query, "q=1");
  HeadResult star = Parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(star.head.path, "*");
  HeadResult decoded = Parse("GET /%2e%2e/x HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(decoded.head.path, "/../x");
  // Empty lines before a request are skipped.
  HeadResult leading = Parse("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_EQ(leading.state, HeadResult::kComplete);
  EXPECT_EQ(leading.head.head_bytes, 4u + 27u);
  HeadResult expect = Parse(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
      "Expect: 100-Continue\r\n\r\n");
  EXPECT_TRUE(expect.head.expect_continue);
}

ChunkedDecoder::State Feed(ChunkedDecoder& d, const std::string& in,
                           std::string* body, size_t* consumed) {
  return d.Feed(in, consumed, body);
}

TEST(HttpParserTest, ChunkedBodiesByteByByteAndWhole) {
  const std::string wire =
      "5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
      "NEXT";
  // Whole.
  {
    ChunkedDecoder d{Limits{}};
    std::string body;
    size_t consumed = 0;
    EXPECT_EQ(Feed(d, wire, &body, &consumed), ChunkedDecoder::State::kDone);
    EXPECT_EQ(body, "hello world");
    EXPECT_EQ(wire.substr(consumed), "NEXT");
  }
  // A byte at a time.
  {
    ChunkedDecoder d{Limits{}};
    std::string body;
    ChunkedDecoder::State s = ChunkedDecoder::State::kNeedMore;
    size_t i = 0;
    for (; i < wire.size() && s == ChunkedDecoder::State::kNeedMore; ++i) {
      size_t consumed = 0;
      s = d.Feed(wire.substr(i, 1), &consumed, &body);
      EXPECT_EQ(consumed, 1u);
    }
    EXPECT_EQ(s, ChunkedDecoder::State::kDone);
    EXPECT_EQ(body, "hello world");
    EXPECT_EQ(wire.substr(i), "NEXT");
  }
}

TEST(HttpParserTest, ChunkedRefusals) {
  struct Case {
    std::string wire;
    int status;
    const char* reason;
  } cases[] = {
      {"x\r\n", 400, "chunk size"},
      {"\r\n", 400, "chunk size"},
      {"5\r\nhelloX\r\n", 400, "longer than its size"},
      {"5\nhello\r\n", 400, "chunk size"},
      {"5\r\rhello\r\n", 400, "CRLF"},
      {"11111111111111111\r\n", 413, "too large"},
      {"3e9\r\n", 413, "limit of 1000"},
      {"0\r\nX: \x01\r\n\r\n", 400, "control character"},
      {"0\r\n\rx", 400, "CRLF"},
      {"1;" + std::string(2000, 'e') + "\r\n", 400, "extension too long"},
      {"0\r\n" + std::string(9000, 'a'), 431, "trailer"},
  };
  for (const Case& c : cases) {
    Limits limits;
    limits.max_body_bytes = 1000;
    ChunkedDecoder d{limits};
    std::string body;
    size_t consumed = 0;
    EXPECT_EQ(d.Feed(c.wire, &consumed, &body), ChunkedDecoder::State::kRefused)
        << c.wire.substr(0, 30);
    EXPECT_EQ(d.refusal().status, c.status) << c.wire.substr(0, 30);
    EXPECT_THAT(d.refusal().reason, HasSubstr(c.reason))
        << c.wire.substr(0, 30);
  }
  // The limit counts the sum of the chunks.
  Limits limits;
  limits.max_body_bytes = 10;
  ChunkedDecoder d{limits};
  std::string body;
  size_t consumed = 0;
  EXPECT_EQ(d.Feed("6\r\naaaaaa\r\n6\r\n", &consumed, &body),
            ChunkedDecoder::State::kRefused);
  EXPECT_EQ(d.refusal().status, 413);
}

}  // namespace
}  // namespace amqpgw::web::http
