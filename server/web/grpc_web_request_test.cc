#include "server/web/grpc_web_request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace amqpgw::web {
namespace {

using ::testing::HasSubstr;

HttpRequest Post(const std::string& path, const std::string& body,
                 const std::string& type = "application/grpc-web+proto") {
  HttpRequest r;
  r.method = "POST";
  r.path = path;
  r.body = body;
  r.headers.emplace("content-type", type);
  r.remote_addr = "10.0.0.9";
  return r;
}

std::string Frames(const std::vector<std::string>& messages) {
  std::string out;
  for (const auto& m : messages) AppendFrame(kDataFrame, m, &out);
  return out;
}

constexpr MethodShape kUnary{true, false, false};
constexpr MethodShape kServerStreaming{true, false, true};
constexpr MethodShape kUnknown{};

TEST(GrpcWebRequestTest, OneMessageHeadersAndDeadline) {
  HttpRequest r = Post("/amqpgw.v1.Gateway/Publish", Frames({"m"}));
  r.headers.emplace("authorization", "Bearer t");
  r.headers.emplace("grpc-timeout", "2S");
  r.headers.emplace("x-data-bin", Base64Encode("\x01\x02"));
  r.headers.emplace("cookie", "never passed");
  r.headers.emplace("x-forwarded-for", "1.2.3.4");
  GrpcWebRequest out;
  RequestRefusal refusal;
  absl::Time now = absl::Now();
  ASSERT_TRUE(
      ParseGrpcWebRequest(r, kServerStreaming, 1000, now, &out, &refusal))
      << refusal.status;
  EXPECT_EQ(out.method, "/amqpgw.v1.Gateway/Publish");
  EXPECT_EQ(out.messages, std::vector<std::string>{"m"});
  EXPECT_EQ(out.deadline, now + absl::Seconds(2));
  EXPECT_TRUE(out.server_streaming);
  std::map<std::string, std::string> md(out.metadata.begin(),
                                        out.metadata.end());
  EXPECT_EQ(md["authorization"], "Bearer t");
  EXPECT_EQ(md["x-data-bin"], "\x01\x02");
  EXPECT_EQ(md["x-forwarded-for"], "1.2.3.4, 10.0.0.9");
  EXPECT_EQ(md.count("cookie"), 0u);
  EXPECT_EQ(md.count("content-type"), 0u);
}

TEST(GrpcWebRequestTest, AMethodThatTakesOneMessageGetsExactlyOne) {
  for (const auto& [messages, what] :
       std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{}, "holds no grpc-web message"},
           {{"a", "b"}, "holds 2 grpc-web messages"}}) {
    GrpcWebRequest out;
    RequestRefusal refusal;
    EXPECT_FALSE(ParseGrpcWebRequest(Post("/p.S/Publish", Frames(messages)),
                                     kUnary, 1000, absl::Now(), &out,
                                     &refusal));
    EXPECT_EQ(refusal.http_status, 400);
    EXPECT_EQ(refusal.status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(refusal.status.message(), HasSubstr(what));
    EXPECT_THAT(refusal.status.message(),
                HasSubstr("Publish takes exactly one"));
  }
  // A method the binary does not describe: passed on as it came.
  GrpcWebRequest out;
  RequestRefusal refusal;
  EXPECT_TRUE(ParseGrpcWebRequest(Post("/x.Y/Count", Frames({"a", "b"})),
                                  kUnknown, 1000, absl::Now(), &out, &refusal));
  EXPECT_EQ(out.messages.size(), 2u);
}

TEST(GrpcWebRequestTest, RefusalsCarryHttpAndGrpcStatus) {
  struct Case {
    HttpRequest request;
    int http;
    absl::StatusCode code;
    const char* message;
  } cases[] = {
      {Post("/nomethod", Frames({"a"})), 404, absl::StatusCode::kUnimplemented,
       "no such method"},
      {Post("/p.S/M", Frames({"a"}), "application/json"), 415,
       absl::StatusCode::kInvalidArgument, "content-type"},
      {Post("/p.S/M", Frames({std::string(2000, 'x')})), 413,
       absl::StatusCode::kResourceExhausted, "limit"},
      {Post("/p.S/M", "AA$A", "application/grpc-web-text"), 400,
       absl::StatusCode::kInvalidArgument, "base64"},
      {Post("/p.S/M", std::string("\0\0\0\0\x09", 5)), 400,
       absl::StatusCode::kInvalidArgument, "cut short"},
  };
  for (const Case& c : cases) {
    GrpcWebRequest out;
    RequestRefusal refusal;
    EXPECT_FALSE(ParseGrpcWebRequest(c.request, kUnary, 1000, absl::Now(), &out,
                                     &refusal))
        << c.message;
    EXPECT_EQ(refusal.http_status, c.http) << c.message;
    EXPECT_EQ(refusal.status.code(), c.code) << c.message;
    EXPECT_THAT(refusal.status.message(), HasSubstr(c.message));
  }
  HttpRequest bad = Post("/p.S/M", Frames({"a"}));
  bad.headers.emplace("x-name", "caf\xc3\xa9");
  GrpcWebRequest out;
  RequestRefusal refusal;
  EXPECT_FALSE(
      ParseGrpcWebRequest(bad, kUnary, 1000, absl::Now(), &out, &refusal));
  EXPECT_THAT(refusal.status.message(), HasSubstr("header 'x-name'"));
  EXPECT_THAT(refusal.status.message(), ::testing::Not(HasSubstr("caf")));
}

}  // namespace
}  // namespace amqpgw::web
