// The Connect protocol's request parsing and response pieces, against
// amqpgw.v1's real descriptors (linked from amqpgw_proto).
#include "server/web/connect_protocol.h"

#include <gmock/gmock.h>
#include <google/protobuf/any.pb.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <map>

#include "absl/strings/escaping.h"
#include "amqpgw/v1/gateway.pb.h"
#include "server/web/grpc_web_frame.h"
#include "server/web/json_codec.h"

namespace amqpgw::web {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr size_t kMax = 1 << 20;

HttpRequest Post(const std::string& method, const std::string& body,
                 const std::string& type = "application/json") {
  HttpRequest r;
  r.method = "POST";
  r.path = "/amqpgw.v1.Gateway/" + method;
  r.body = body;
  if (!type.empty()) r.headers.emplace("content-type", type);
  r.remote_addr = "10.0.0.9";
  return r;
}

HttpRequest Get(const std::string& method,
                const std::multimap<std::string, std::string>& params) {
  HttpRequest r;
  r.method = "GET";
  r.path = "/amqpgw.v1.Gateway/" + method;
  r.params = params;
  r.remote_addr = "10.0.0.9";
  return r;
}

std::string Envelopes(const std::vector<std::string>& messages,
                      uint8_t flags = 0) {
  std::string out;
  for (const auto& m : messages) AppendEnvelope(flags, m, &out);
  return out;
}

struct Parsed {
  bool ok = false;
  ConnectRequest request;
  RequestRefusal refusal;
};

Parsed Parse(const HttpRequest& r, size_t max = kMax,
             absl::Time now = absl::UnixEpoch()) {
  Parsed p;
  p.ok = ParseConnectRequest(r, LookUpMethod(r.path), max, now, &p.request,
                             &p.refusal);
  return p;
}

// The refusal's HTTP status, code and message, for one-line checks.
void ExpectRefused(const Parsed& p, int http, absl::StatusCode code,
                   const std::string& words) {
  ASSERT_FALSE(p.ok);
  EXPECT_EQ(p.refusal.http_status, http) << p.refusal.status;
  EXPECT_EQ(p.refusal.status.code(), code) << p.refusal.status;
  EXPECT_THAT(std::string(p.refusal.status.message()), HasSubstr(words));
}

google::protobuf::Struct ParseJson(const std::string& json) {
  google::protobuf::Struct s;
  auto status = google::protobuf::util::JsonStringToMessage(json, &s);
  EXPECT_TRUE(status.ok()) << status << ": " << json;
  return s;
}

TEST(ConnectShapeTest, IdempotencyComesFromTheProto) {
  EXPECT_TRUE(LookUpMethod("/amqpgw.v1.Gateway/GetStatus").no_side_effects);
  EXPECT_TRUE(LookUpMethod("/amqpgw.v1.Gateway/InspectQueue").no_side_effects);
  EXPECT_FALSE(LookUpMethod("/amqpgw.v1.Gateway/Publish").no_side_effects);
  EXPECT_FALSE(LookUpMethod("/amqpgw.v1.Gateway/PurgeQueue").no_side_effects);
  MethodShape s = LookUpMethod("/amqpgw.v1.Gateway/StreamMessages");
  EXPECT_TRUE(s.known && s.server_streaming);
  ASSERT_NE(s.input, nullptr);
  EXPECT_EQ(s.input->full_name(), "amqpgw.v1.StreamMessagesRequest");
  EXPECT_EQ(s.output->full_name(), "amqpgw.v1.StreamMessagesResponse");
  EXPECT_FALSE(LookUpMethod("/amqpgw.v1.Gateway/Nope").known);
  EXPECT_FALSE(LookUpMethod("garbage").known);
}

TEST(ConnectRequestTest, UnaryJsonTakesBothFieldNamesEnumsAndBytes) {
  HttpRequest r = Post("Publish",
                       R"({"routingKey":"jobs","body":"aGVsbG8=",)"
                       R"("properties":{"content_type":"text/plain",)"
                       R"("delivery_mode":"TRANSIENT"}})",
                       "Application/JSON; charset=utf-8");
  r.headers.emplace("authorization", "Bearer t");
  r.headers.emplace("traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  r.headers.emplace("connect-protocol-version", "1");
  r.headers.emplace("connect-timeout-ms", "2500");
  r.headers.emplace("x-forwarded-for", "1.2.3.4");
  Parsed p = Parse(r);
  ASSERT_TRUE(p.ok) << p.refusal.status;
  EXPECT_EQ(p.request.method, "/amqpgw.v1.Gateway/Publish");
  EXPECT_EQ(p.request.codec, ConnectCodec::kJson);
  EXPECT_FALSE(p.request.streaming);
  EXPECT_EQ(p.request.deadline, absl::UnixEpoch() + absl::Milliseconds(2500));
  ASSERT_EQ(p.request.messages.size(), 1u);
  v1::PublishRequest m;
  ASSERT_TRUE(m.ParseFromString(p.request.messages[0]));
  EXPECT_EQ(m.routing_key(), "jobs");
  EXPECT_EQ(m.body(), "hello");
  EXPECT_EQ(m.properties().content_type(), "text/plain");
  EXPECT_EQ(m.properties().delivery_mode(), v1::TRANSIENT);
  std::map<std::string, std::string> md(p.request.metadata.begin(),
                                        p.request.metadata.end());
  EXPECT_EQ(md["authorization"], "Bearer t");
  EXPECT_EQ(md["traceparent"],
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  EXPECT_EQ(md["x-forwarded-for"], "1.2.3.4, 10.0.0.9");
  EXPECT_EQ(md.count("connect-protocol-version"), 0u);
  EXPECT_EQ(md.count("connect-timeout-ms"), 0u);
  EXPECT_EQ(md.count("content-type"), 0u);
}

TEST(ConnectRequestTest, UnaryProtoAndEmptyBodies) {
  v1::InspectQueueRequest q;
  q.set_name("orders");
  Parsed p =
      Parse(Post("InspectQueue", q.SerializeAsString(), "application/proto"));
  ASSERT_TRUE(p.ok) << p.refusal.status;
  EXPECT_EQ(p.request.codec, ConnectCodec::kProto);
  EXPECT_EQ(p.request.messages,
            std::vector<std::string>{q.SerializeAsString()});
  // An empty body is the empty message in both codecs.
  for (const char* type : {"application/json", "application/proto"}) {
    p = Parse(Post("GetStatus", "", type));
    ASSERT_TRUE(p.ok) << type << ": " << p.refusal.status;
    EXPECT_EQ(p.request.messages, std::vector<std::string>{""});
  }
}

TEST(ConnectRequestTest, BadJsonIsInvalidArgumentInProtobufsWords) {
  struct Case {
    std::string body;
    std::string words;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"routingKey":"jobs","nope":1})", "nope"},
           {R"({"routingKey":)", "amqpgw.v1.PublishRequest"},
           {R"({"body":"not base64!"})", "body"},
           {R"({"properties":{"deliveryMode":"SOMETIMES"}})", "SOMETIMES"},
           {"[1,2]", "amqpgw.v1.PublishRequest"},
           {std::string(R"({"routingKey":")") + std::string(5000, 'x') + "\"x}",
            "amqpgw.v1.PublishRequest"},
       }) {
    Parsed p = Parse(Post("Publish", c.body));
    ExpectRefused(p, 400, absl::StatusCode::kInvalidArgument, c.words);
    EXPECT_LT(p.refusal.status.message().size(), 400u) << c.body;
  }
}

TEST(ConnectRequestTest, ContentTypesMustMatchTheMethod) {
  ExpectRefused(Parse(Post("Publish", "{}", "text/plain")), 415,
                absl::StatusCode::kInvalidArgument, "application/json");
  ExpectRefused(Parse(Post("Publish", "{}", "")), 415,
                absl::StatusCode::kInvalidArgument, "no content type");
  ExpectRefused(Parse(Post("Publish", "{}", "application/xml")), 415,
                absl::StatusCode::kInvalidArgument, "application/xml");
  ExpectRefused(
      Parse(Post("Publish", Envelopes({"{}"}), "application/connect+json")),
      415, absl::StatusCode::kInvalidArgument,
      "Publish is unary: send Content-Type application/json");
  ExpectRefused(Parse(Post("StreamMessages", R"({"queue":"q"})")), 415,
                absl::StatusCode::kInvalidArgument,
                "StreamMessages streams: send Content-Type "
                "application/connect+json");
  ExpectRefused(Parse(Post("StreamMessages", "", "application/connect+xml")),
                415, absl::StatusCode::kInvalidArgument, "connect+xml");
}

TEST(ConnectRequestTest, UnknownMethodsAreNotFoundAsUnimplemented) {
  ExpectRefused(Parse(Post("Nope", "{}")), 404,
                absl::StatusCode::kUnimplemented, "no such method");
  HttpRequest r = Post("x", "{}");
  r.path = "/not-a-method";
  ExpectRefused(Parse(r), 404, absl::StatusCode::kUnimplemented,
                "no such method");
}

TEST(ConnectRequestTest, StreamingTakesExactlyOneEnvelope) {
  Parsed p = Parse(Post("StreamMessages",
                        Envelopes({R"({"queue":"q","ackMode":"CLIENT"})"}),
                        "application/connect+json"));
  ASSERT_TRUE(p.ok) << p.refusal.status;
  EXPECT_TRUE(p.request.streaming);
  ASSERT_EQ(p.request.messages.size(), 1u);
  v1::StreamMessagesRequest m;
  ASSERT_TRUE(m.ParseFromString(p.request.messages[0]));
  EXPECT_EQ(m.queue(), "q");
  EXPECT_EQ(m.ack_mode(), v1::StreamMessagesRequest::CLIENT);

  v1::StreamMessagesRequest proto;
  proto.set_queue("q");
  p = Parse(Post("StreamMessages", Envelopes({proto.SerializeAsString()}),
                 "application/connect+proto"));
  ASSERT_TRUE(p.ok) << p.refusal.status;
  EXPECT_EQ(p.request.codec, ConnectCodec::kProto);

  const std::string type = "application/connect+json";
  ExpectRefused(Parse(Post("StreamMessages", "", type)), 400,
                absl::StatusCode::kInvalidArgument, "holds 0 envelopes");
  ExpectRefused(Parse(Post("StreamMessages", Envelopes({"{}", "{}"}), type)),
                400, absl::StatusCode::kInvalidArgument, "holds 2 envelopes");
  ExpectRefused(
      Parse(Post("StreamMessages", std::string("\0\0\0\0\x09{}", 7), type)),
      400, absl::StatusCode::kInvalidArgument, "envelopes");
  ExpectRefused(Parse(Post("StreamMessages", Envelopes({"{}"}, 0x01), type)),
                501, absl::StatusCode::kUnimplemented, "compressed");
  ExpectRefused(Parse(Post("StreamMessages", Envelopes({"{}"}, 0x02), type)),
                400, absl::StatusCode::kInvalidArgument, "flags 0x2");
  ExpectRefused(Parse(Post("StreamMessages", Envelopes({"{\"x\":1}"}), type)),
                400, absl::StatusCode::kInvalidArgument,
                "amqpgw.v1.StreamMessagesRequest");
}

TEST(ConnectRequestTest, HeadersThatAreNotServed) {
  HttpRequest r = Post("GetStatus", "{}");
  r.headers.emplace("connect-protocol-version", "2");
  ExpectRefused(Parse(r), 400, absl::StatusCode::kInvalidArgument,
                "Connect-Protocol-Version");
  for (const char* t : {"soon", "0", "12345678901", "-5", "1.5"}) {
    r = Post("GetStatus", "{}");
    r.headers.emplace("connect-timeout-ms", t);
    ExpectRefused(Parse(r), 400, absl::StatusCode::kInvalidArgument,
                  "Connect-Timeout-Ms");
  }
  r = Post("GetStatus", "{}");
  r.headers.emplace("connect-timeout-ms", "9999999999");
  EXPECT_TRUE(Parse(r).ok);
  r = Post("GetStatus", "{}");
  r.headers.emplace("content-encoding", "gzip");
  ExpectRefused(Parse(r), 501, absl::StatusCode::kUnimplemented, "identity");
  r = Post("GetStatus", "{}");
  r.headers.emplace("content-encoding", "identity");
  EXPECT_TRUE(Parse(r).ok);
  r = Post("StreamMessages", Envelopes({"{}"}), "application/connect+json");
  r.headers.emplace("connect-content-encoding", "br");
  ExpectRefused(Parse(r), 501, absl::StatusCode::kUnimplemented,
                "Connect-Content-Encoding");
  r = Post("GetStatus", "{}");
  r.headers.emplace("x-name", "caf\xc3\xa9");
  ExpectRefused(Parse(r), 400, absl::StatusCode::kInvalidArgument, "x-name");
}

TEST(ConnectRequestTest, RequestsBeyondTheLimit) {
  v1::PublishRequest big;
  big.set_body(std::string(2000, 'x'));
  ExpectRefused(
      Parse(Post("Publish", big.SerializeAsString(), "application/proto"),
            1000),
      413, absl::StatusCode::kResourceExhausted, "--max_request_bytes");
  // JSON is measured as the protobuf it becomes.
  std::string json =
      R"({"body":")" + absl::Base64Escape(std::string(2000, 'x')) + R"("})";
  ExpectRefused(Parse(Post("Publish", json), 1000), 413,
                absl::StatusCode::kResourceExhausted, "limit of 1000");
  ExpectRefused(
      Parse(Post("StreamMessages", Envelopes({std::string(6000, ' ')}),
                 "application/connect+json"),
            1000),
      413, absl::StatusCode::kResourceExhausted, "");
}

TEST(ConnectRequestTest, GetForMethodsWithoutSideEffects) {
  Parsed p = Parse(Get("InspectQueue", {{"connect", "v1"},
                                        {"encoding", "json"},
                                        {"message", R"({"name":"orders"})"}}));
  ASSERT_TRUE(p.ok) << p.refusal.status;
  v1::InspectQueueRequest m;
  ASSERT_TRUE(m.ParseFromString(p.request.messages.at(0)));
  EXPECT_EQ(m.name(), "orders");

  // Protobuf, URL-safe base64, padded or not.
  v1::InspectQueueRequest q;
  q.set_name("a?b>c~");
  std::string b64;
  absl::WebSafeBase64Escape(q.SerializeAsString(), &b64);
  for (const std::string& message : {b64, b64 + "="}) {
    p = Parse(
        Get("InspectQueue",
            {{"encoding", "proto"}, {"base64", "1"}, {"message", message}}));
    ASSERT_TRUE(p.ok) << p.refusal.status;
    EXPECT_EQ(p.request.codec, ConnectCodec::kProto);
    EXPECT_EQ(p.request.messages.at(0), q.SerializeAsString());
  }
  // JSON in base64 too; and no query at all is {} in JSON.
  std::string json_b64;
  absl::WebSafeBase64Escape(R"({"name":"x"})", &json_b64);
  p = Parse(
      Get("InspectQueue",
          {{"encoding", "json"}, {"base64", "1"}, {"message", json_b64}}));
  ASSERT_TRUE(p.ok) << p.refusal.status;
  p = Parse(Get("GetStatus", {}));
  ASSERT_TRUE(p.ok) << p.refusal.status;
  EXPECT_EQ(p.request.codec, ConnectCodec::kJson);
  EXPECT_EQ(p.request.messages, std::vector<std::string>{""});

  ExpectRefused(Parse(Get("Publish", {{"message", "{}"}})), 405,
                absl::StatusCode::kUnimplemented, "Publish has side effects");
  ExpectRefused(Parse(Get("StreamMessages", {{"message", "{}"}})), 405,
                absl::StatusCode::kUnimplemented, "StreamMessages streams");
  ExpectRefused(Parse(Get("GetStatus", {{"connect", "v2"}})), 400,
                absl::StatusCode::kInvalidArgument, "v1");
  ExpectRefused(Parse(Get("GetStatus", {{"encoding", "xml"}})), 415,
                absl::StatusCode::kInvalidArgument, "encoding=json");
  ExpectRefused(Parse(Get("GetStatus", {{"compression", "gzip"}})), 501,
                absl::StatusCode::kUnimplemented, "identity");
  ExpectRefused(
      Parse(Get("InspectQueue",
                {{"encoding", "proto"}, {"base64", "1"}, {"message", "%%%"}})),
      400, absl::StatusCode::kInvalidArgument, "base64");
  ExpectRefused(Parse(Get("InspectQueue", {{"message", R"({"nme":"x"})"}})),
                400, absl::StatusCode::kInvalidArgument, "nme");
}

TEST(ConnectRequestTest, WhichRequestsAreConnect) {
  const MethodShape known = LookUpMethod("/amqpgw.v1.Gateway/GetStatus");
  HttpRequest post = Post("GetStatus", "", "application/grpc-web+proto");
  EXPECT_FALSE(IsConnectRequest(post, known));
  post = Post("GetStatus", "", "application/grpc-web-text");
  EXPECT_FALSE(IsConnectRequest(post, known));
  post = Post("GetStatus", "", "application/json");
  EXPECT_TRUE(IsConnectRequest(post, known));
  post = Post("GetStatus", "", "");
  EXPECT_TRUE(IsConnectRequest(post, known));
  EXPECT_TRUE(IsConnectRequest(Get("GetStatus", {}), known));
  // Files of the browser view are not methods, even in a folder.
  HttpRequest file = Get("x", {});
  file.path = "/assets/app.js";
  EXPECT_FALSE(IsConnectRequest(file, LookUpMethod(file.path)));
  file.path = "/";
  EXPECT_FALSE(IsConnectRequest(file, LookUpMethod(file.path)));
  // An unknown method asked for with Connect's parameters is one (404).
  HttpRequest unknown = Get("Nope", {{"connect", "v1"}});
  EXPECT_TRUE(IsConnectRequest(unknown, LookUpMethod(unknown.path)));
}

TEST(ConnectResponseTest, CodesAndHttpStatuses) {
  struct Row {
    absl::StatusCode code;
    const char* name;
    int http;
  };
  for (const Row& r : std::vector<Row>{
           {absl::StatusCode::kCancelled, "canceled", 499},
           {absl::StatusCode::kUnknown, "unknown", 500},
           {absl::StatusCode::kInvalidArgument, "invalid_argument", 400},
           {absl::StatusCode::kDeadlineExceeded, "deadline_exceeded", 504},
           {absl::StatusCode::kNotFound, "not_found", 404},
           {absl::StatusCode::kAlreadyExists, "already_exists", 409},
           {absl::StatusCode::kPermissionDenied, "permission_denied", 403},
           {absl::StatusCode::kResourceExhausted, "resource_exhausted", 429},
           {absl::StatusCode::kFailedPrecondition, "failed_precondition", 400},
           {absl::StatusCode::kAborted, "aborted", 409},
           {absl::StatusCode::kOutOfRange, "out_of_range", 400},
           {absl::StatusCode::kUnimplemented, "unimplemented", 501},
           {absl::StatusCode::kInternal, "internal", 500},
           {absl::StatusCode::kUnavailable, "unavailable", 503},
           {absl::StatusCode::kDataLoss, "data_loss", 500},
           {absl::StatusCode::kUnauthenticated, "unauthenticated", 401},
       }) {
    EXPECT_STREQ(ConnectCodeName(r.code), r.name);
    EXPECT_EQ(ConnectHttpStatus(r.code), r.http) << r.name;
  }
}

TEST(ConnectResponseTest, ErrorJsonIsValidWhateverTheMessageHolds) {
  std::string json = ConnectErrorJson(absl::StatusCode::kNotFound,
                                      "queue \"a\\b\"\n\x01 \xff gone ä");
  google::protobuf::Struct s = ParseJson(json);
  EXPECT_EQ(s.fields().at("code").string_value(), "not_found");
  EXPECT_EQ(s.fields().at("message").string_value(),
            "queue \"a\\b\"\n\x01 \xEF\xBF\xBD gone ä");
  EXPECT_EQ(s.fields().count("details"), 0u);
  EXPECT_EQ(ConnectErrorJson(absl::StatusCode::kInternal, ""),
            R"({"code":"internal"})");

  // Details from a google.rpc.Status: field 3, repeated Any.
  google::protobuf::Any any;
  any.set_type_url("type.googleapis.com/google.rpc.RetryInfo");
  any.set_value(std::string("\x0a\x02\x08\x3c", 4));
  std::string status_bytes = "\x08\x0e";  // code 14
  status_bytes += '\x1a';
  status_bytes += static_cast<char>(any.ByteSizeLong());
  status_bytes += any.SerializeAsString();
  s = ParseJson(
      ConnectErrorJson(absl::StatusCode::kUnavailable, "later", status_bytes));
  const auto& details = s.fields().at("details").list_value().values();
  ASSERT_EQ(details.size(), 1);
  EXPECT_EQ(details[0].struct_value().fields().at("type").string_value(),
            "google.rpc.RetryInfo");
  EXPECT_EQ(details[0].struct_value().fields().at("value").string_value(),
            "CgIIPA");
  // Unreadable details are left out, the error stays.
  s = ParseJson(ConnectErrorJson(absl::StatusCode::kUnavailable, "later",
                                 "\xff\xff\xff"));
  EXPECT_EQ(s.fields().count("details"), 0u);
}

TEST(ConnectResponseTest, EndStreamCarriesTheErrorAndMetadata) {
  EXPECT_EQ(ConnectEndStreamJson(absl::StatusCode::kOk, "", "", {}), "{}");
  google::protobuf::Struct s = ParseJson(ConnectEndStreamJson(
      absl::StatusCode::kUnavailable, "broker gone", "",
      {{"x-a", "1"}, {"x-b-bin", std::string("\x00\x01", 2)}, {"x-a", "2"}}));
  const auto& error = s.fields().at("error").struct_value().fields();
  EXPECT_EQ(error.at("code").string_value(), "unavailable");
  EXPECT_EQ(error.at("message").string_value(), "broker gone");
  const auto& md = s.fields().at("metadata").struct_value().fields();
  ASSERT_EQ(md.at("x-a").list_value().values_size(), 2);
  EXPECT_EQ(md.at("x-a").list_value().values(1).string_value(), "2");
  EXPECT_EQ(md.at("x-b-bin").list_value().values(0).string_value(), "AAE");
}

TEST(ConnectResponseTest, RepliesAsJsonPrintZeros) {
  v1::InspectQueueResponse r;
  r.set_name("orders");
  absl::StatusOr<std::string> json = EncodeConnectMessage(
      ConnectCodec::kJson, r.GetDescriptor(), r.SerializeAsString());
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_THAT(*json, AllOf(HasSubstr(R"("name":"orders")"),
                           HasSubstr(R"("messageCount":0)")));
  absl::StatusOr<std::string> proto = EncodeConnectMessage(
      ConnectCodec::kProto, r.GetDescriptor(), r.SerializeAsString());
  EXPECT_EQ(*proto, r.SerializeAsString());
  EXPECT_FALSE(
      EncodeConnectMessage(ConnectCodec::kJson, r.GetDescriptor(), "\xff\xff")
          .ok());
}

TEST(ConnectResponseTest, MetadataHeaders) {
  std::vector<std::pair<std::string, std::string>> headers;
  AppendMetadataHeaders({{"x-cost", "237"},
                         {"x-raw-bin", std::string("\xff\x00", 2)},
                         {"content-length", "5"}},
                        "trailer-", &headers);
  EXPECT_THAT(headers, ::testing::ElementsAre(
                           std::make_pair(std::string("trailer-x-cost"),
                                          std::string("237")),
                           std::make_pair(std::string("trailer-x-raw-bin"),
                                          std::string("/wA"))));
}

}  // namespace
}  // namespace amqpgw::web
