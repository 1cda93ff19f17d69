#include "server/web/grpc_web_frame.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace amqpgw::web {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

std::string Frame(uint8_t flags, absl::string_view payload) {
  std::string out;
  AppendFrame(flags, payload, &out);
  return out;
}

TEST(GrpcWebFrameTest, AppendFrameWritesFlagsAndBigEndianLength) {
  std::string f = Frame(kTrailerFrame, std::string(300, 'x'));
  ASSERT_EQ(f.size(), 305u);
  EXPECT_EQ(static_cast<uint8_t>(f[0]), 0x80);
  EXPECT_EQ(f.substr(1, 4), std::string("\x00\x00\x01\x2c", 4));
  EXPECT_EQ(Frame(kDataFrame, ""), std::string(5, '\0'));
}

TEST(GrpcWebFrameTest, ParsesSeveralFramesAndEmptyBody) {
  std::string body = Frame(kDataFrame, "abc") + Frame(kDataFrame, "") +
                     Frame(kTrailerFrame, "grpc-status: 0\r\n");
  auto frames = ParseFrames(body, 100);
  ASSERT_TRUE(frames.ok()) << frames.status();
  ASSERT_EQ(frames->size(), 3u);
  EXPECT_EQ((*frames)[0].payload, "abc");
  EXPECT_EQ((*frames)[1].payload, "");
  EXPECT_EQ((*frames)[2].flags, kTrailerFrame);
  auto none = ParseFrames("", 100);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(GrpcWebFrameTest, TruncatedFramesAreInvalidArgument) {
  std::string body = Frame(kDataFrame, "abcdef");
  for (size_t cut = 1; cut < body.size(); ++cut) {
    auto frames = ParseFrames(body.substr(0, cut), 100);
    ASSERT_FALSE(frames.ok()) << cut;
    EXPECT_EQ(frames.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(frames.status().message(), HasSubstr("cut short"));
  }
}

TEST(GrpcWebFrameTest, OversizedFrameIsResourceExhaustedBeforeReading) {
  // Claims 4 GiB - 1 with 3 bytes present: refused on the length alone.
  std::string body(
      "\x00\xff\xff\xff\xff"
      "abc",
      8);
  auto frames = ParseFrames(body, 1 << 20);
  ASSERT_FALSE(frames.ok());
  EXPECT_EQ(frames.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(GrpcWebFrameTest, RequestMessagesRefuseTrailersCompressionAndFlags) {
  // The messages are views into the body: it must outlive them.
  const std::string body = Frame(0, "a") + Frame(0, "bc");
  auto ok = ParseRequestMessages(body, 10);
  ASSERT_TRUE(ok.ok());
  EXPECT_THAT(*ok, ElementsAre("a", "bc"));

  auto trailer = ParseRequestMessages(Frame(kTrailerFrame, "x: y"), 10);
  EXPECT_EQ(trailer.status().code(), absl::StatusCode::kInvalidArgument);
  auto compressed = ParseRequestMessages(Frame(kCompressedFlag, "zz"), 10);
  EXPECT_EQ(compressed.status().code(), absl::StatusCode::kUnimplemented);
  auto reserved = ParseRequestMessages(Frame(0x40, "zz"), 10);
  EXPECT_EQ(reserved.status().code(), absl::StatusCode::kInvalidArgument);
  // The limit is on all messages together.
  auto total =
      ParseRequestMessages(Frame(0, "123456") + Frame(0, "123456"), 10);
  EXPECT_EQ(total.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(GrpcWebFrameTest, TrailerBlockPercentEncodesMessageAndBase64sBinary) {
  std::string block = TrailerBlock(
      5, "queue 'ä' 100% gone\r\n",
      {{"X-Custom", "v"}, {"trace-bin", std::string("\x00\xff", 2)}});
  EXPECT_EQ(block,
            "grpc-status: 5\r\n"
            "grpc-message: queue '%C3%A4' 100%25 gone%0D%0A\r\n"
            "x-custom: v\r\n"
            "trace-bin: AP8=\r\n");
  auto lines = ParseTrailerBlock(block);
  ASSERT_TRUE(lines.ok());
  EXPECT_THAT(
      *lines,
      ElementsAre(Pair("grpc-status", "5"), Pair("grpc-message", ::testing::_),
                  Pair("x-custom", "v"), Pair("trace-bin", "AP8=")));
  EXPECT_EQ(PercentDecode((*lines)[1].second), "queue 'ä' 100% gone\r\n");
  EXPECT_EQ(TrailerBlock(0, "", {}), "grpc-status: 0\r\n");
  EXPECT_FALSE(ParseTrailerBlock("no colon here").ok());
}

TEST(GrpcWebFrameTest, PercentDecodeKeepsMalformedEscapes) {
  EXPECT_EQ(PercentDecode("a%2"), "a%2");
  EXPECT_EQ(PercentDecode("%zz%41"), "%zzA");
  EXPECT_EQ(PercentDecode("%"), "%");
}

TEST(GrpcWebFrameTest, Base64RoundTripsAndAcceptsPaddedChunks) {
  for (std::string s : {"", "a", "ab", "abc", "abcd", "\x00\x01\xfe\xff"}) {
    auto d = Base64DecodeChunks(Base64Encode(s));
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(*d, s);
  }
  EXPECT_EQ(Base64Encode("hello"), "aGVsbG8=");
  // Two flushes, each padded, then unpadded tail.
  auto d = Base64DecodeChunks(
      "YQ==YmM=ZGVm"
      "Zw");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, "abcdefg");
}

TEST(GrpcWebFrameTest, Base64RejectsBadInput) {
  for (absl::string_view bad :
       {"a", "ab=", "a===", "====", "ab$d", "YQ==Y", "ab\ncd", "-_-_"}) {
    auto d = Base64DecodeChunks(bad);
    EXPECT_FALSE(d.ok()) << bad;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(GrpcWebFrameTest, GrpcTimeout) {
  EXPECT_EQ(*ParseGrpcTimeout("1H"), absl::Hours(1));
  EXPECT_EQ(*ParseGrpcTimeout("2M"), absl::Minutes(2));
  EXPECT_EQ(*ParseGrpcTimeout("3S"), absl::Seconds(3));
  EXPECT_EQ(*ParseGrpcTimeout("99999999m"), absl::Milliseconds(99999999));
  EXPECT_EQ(*ParseGrpcTimeout("5u"), absl::Microseconds(5));
  EXPECT_EQ(*ParseGrpcTimeout("6n"), absl::Nanoseconds(6));
  for (absl::string_view bad :
       {"", "S", "5", "123456789S", "-1S", "1s", "1.5S", " 1S", "1 S"}) {
    EXPECT_FALSE(ParseGrpcTimeout(bad).ok()) << bad;
  }
}

TEST(GrpcWebFrameTest, ContentTypes) {
  EXPECT_EQ(*ParseContentType("application/grpc-web"), WireFormat::kBinary);
  EXPECT_EQ(*ParseContentType("application/grpc-web+proto"),
            WireFormat::kBinary);
  EXPECT_EQ(*ParseContentType("Application/GRPC-Web+proto; charset=x"),
            WireFormat::kBinary);
  EXPECT_EQ(*ParseContentType("application/grpc-web-text"), WireFormat::kText);
  EXPECT_EQ(*ParseContentType("application/grpc-web-text+proto"),
            WireFormat::kText);
  for (absl::string_view bad : {"", "application/grpc", "application/json",
                                "application/grpc-web+json", "text/plain"}) {
    auto f = ParseContentType(bad);
    ASSERT_FALSE(f.ok()) << bad;
    EXPECT_THAT(f.status().message(), HasSubstr("content-type"));
  }
  EXPECT_STREQ(ResponseContentType(WireFormat::kText),
               "application/grpc-web-text+proto");
}

TEST(GrpcWebFrameTest, MetadataRules) {
  EXPECT_TRUE(IsValidMetadataKey("authorization"));
  EXPECT_TRUE(IsValidMetadataKey("x-trace_id.v1-bin"));
  EXPECT_FALSE(IsValidMetadataKey(""));
  EXPECT_FALSE(IsValidMetadataKey("Upper"));
  EXPECT_FALSE(IsValidMetadataKey("a b"));
  EXPECT_TRUE(IsValidMetadataValue("Bearer abc.def ~!"));
  EXPECT_FALSE(IsValidMetadataValue("tab\there"));
  EXPECT_FALSE(IsValidMetadataValue("caf\xc3\xa9"));
}

}  // namespace
}  // namespace amqpgw::web
