// A third-party gRPC client that knows nothing of amqpgw: `buf curl` (npm
// @bufbuild/buf) over plaintext HTTP/2 with server reflection lists the
// services and methods, describes messages (through the reflection service
// itself), calls Publish and StreamMessages with JSON, and checks
// grpc.health.v1. On the HTTP port (HTTP/1.1) it speaks the Connect
// protocol and grpc-web with the build's descriptor set as its schema.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "tests/support/amqp_peer.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/subprocess.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

using ::google::protobuf::Struct;
using ::google::protobuf::Value;
using ::testing::AllOf;
using ::testing::HasSubstr;

// buf curl prints each response message as a JSON document; a stream gives
// several in a row. Splits them (depth counting, strings respected).
std::vector<Struct> JsonDocuments(const std::string& text) {
  std::vector<Struct> docs;
  int depth = 0;
  bool in_string = false;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{') {
      if (depth++ == 0) start = i;
    } else if (c == '}' && --depth == 0) {
      Struct s;
      auto status = google::protobuf::util::JsonStringToMessage(
          text.substr(start, i - start + 1), &s);
      EXPECT_TRUE(status.ok()) << status;
      docs.push_back(s);
    }
  }
  return docs;
}

const Value& Field(const Struct& s, const std::string& name) {
  static const Value* const kMissing = new Value();
  auto it = s.fields().find(name);
  return it == s.fields().end() ? *kMissing : it->second;
}

class BufCurlTest : public SharedGatewayTest {
 protected:
  // buf curl --protocol grpc --http2-prior-knowledge ARGS... URL
  static ProcessResult Buf(std::vector<std::string> args,
                           const std::string& path = "") {
    Subprocess::Options o;
    o.argv = {AMQPGW_BUF_BINARY,         "curl",         "--protocol", "grpc",
              "--http2-prior-knowledge", "--log-format", "text"};
    o.argv.insert(o.argv.end(), args.begin(), args.end());
    o.argv.push_back(absl::StrCat("http://", gateway_->address(),
                                  path.empty() ? "" : "/", path));
    // buf keeps its cache away from the user's home.
    std::string tmp = absl::StrCat(AMQPGW_TEST_TMP_DIR, "/buf");
    o.env = {"BUF_CACHE_DIR=" + tmp + "/cache", "XDG_CONFIG_HOME=" + tmp};
    return RunProcess(o, absl::Seconds(60));
  }

  // buf curl --protocol connect|grpcweb --schema amqpgw.protoset ARGS...
  // on the HTTP port.
  static ProcessResult BufHttp(const std::string& protocol,
                               std::vector<std::string> args,
                               const std::string& path) {
    Subprocess::Options o;
    o.argv = {AMQPGW_BUF_BINARY, "curl",     "--protocol",
              protocol,          "--schema", AMQPGW_PROTOSET "#format=binpb",
              "--log-format",    "text"};
    o.argv.insert(o.argv.end(), args.begin(), args.end());
    o.argv.push_back(absl::StrCat(
        "http://127.0.0.1:", gateway_->daemon().http_port(), "/", path));
    std::string tmp = absl::StrCat(AMQPGW_TEST_TMP_DIR, "/buf");
    o.env = {"BUF_CACHE_DIR=" + tmp + "/cache", "XDG_CONFIG_HOME=" + tmp};
    return RunProcess(o, absl::Seconds(60));
  }

  std::string NewQueue() {
    std::string q = UniqueName("buf");
    v1::DeclareQueueRequest req;
    req.set_name(q);
    req.set_durable(false);
    v1::DeclareQueueResponse resp;
    EXPECT_TRUE(gateway_->stub().DeclareQueue(Ctx().get(), req, &resp).ok());
    return q;
  }
};

TEST_F(BufCurlTest, ListsServicesAndMethodsThroughReflection) {
  ProcessResult r = Buf({"--list-services"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, AllOf(HasSubstr("amqpgw.v1.Gateway\n"),
                           HasSubstr("grpc.health.v1.Health\n")));

  r = Buf({"--list-methods"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* m :
       {"Connect", "Disconnect", "GetStatus", "DeclareQueue", "InspectQueue",
        "DeleteQueue", "PurgeQueue", "DeclareExchange", "DeleteExchange",
        "BindQueue", "UnbindQueue", "Publish", "PublishBatch", "StreamMessages",
        "Ack"}) {
    EXPECT_THAT(r.out, HasSubstr(absl::StrCat("amqpgw.v1.Gateway/", m, "\n")));
  }
  EXPECT_THAT(r.out, HasSubstr("grpc.health.v1.Health/Check\n"));
}

TEST_F(BufCurlTest, DescribesMessagesThroughTheReflectionService) {
  // What `grpcurl describe amqpgw.v1.PublishRequest` does: ask reflection
  // for the file that defines the symbol and read its descriptor.
  ProcessResult r =
      Buf({"-d", R"({"file_containing_symbol": "amqpgw.v1.PublishRequest"})"},
          "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<Struct> docs = JsonDocuments(r.out);
  ASSERT_EQ(docs.size(), 1u) << r.out;
  const auto& files =
      Field(Field(docs[0], "fileDescriptorResponse").struct_value(),
            "fileDescriptorProto")
          .list_value()
          .values();
  ASSERT_FALSE(files.empty()) << r.out;
  google::protobuf::FileDescriptorProto gateway;
  for (const Value& f : files) {
    std::string raw;
    ASSERT_TRUE(absl::Base64Unescape(f.string_value(), &raw));
    google::protobuf::FileDescriptorProto file;
    ASSERT_TRUE(file.ParseFromString(raw));
    if (file.name() == "amqpgw/v1/gateway.proto") gateway = file;
  }
  ASSERT_EQ(gateway.package(), "amqpgw.v1");
  std::map<std::string, std::string> fields;
  for (const auto& m : gateway.message_type()) {
    if (m.name() != "PublishRequest") continue;
    for (const auto& f : m.field()) {
      fields[f.name()] =
          f.type_name().empty()
              ? google::protobuf::FieldDescriptorProto::Type_Name(f.type())
              : f.type_name();
    }
  }
  EXPECT_EQ(fields["exchange"], "TYPE_STRING");
  EXPECT_EQ(fields["routing_key"], "TYPE_STRING");
  EXPECT_EQ(fields["body"], "TYPE_BYTES");
  EXPECT_EQ(fields["properties"], ".amqpgw.v1.MessageProperties");
  EXPECT_EQ(fields["allow_unroutable"], "TYPE_BOOL");
  bool server_streaming = false;
  for (const auto& s : gateway.service()) {
    for (const auto& m : s.method()) {
      if (m.name() == "StreamMessages") server_streaming = m.server_streaming();
    }
  }
  EXPECT_TRUE(server_streaming);

  // The health service's descriptor is served too.
  r = Buf({"-d", R"({"file_containing_symbol": "grpc.health.v1.Health"})"},
          "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("fileDescriptorProto"));
}

TEST_F(BufCurlTest, PublishWithJsonInput) {
  std::string q = NewQueue();
  // "aGVsbG8gZnJvbSBidWY=" is base64 for "hello from buf" (bytes in JSON).
  ProcessResult r = Buf(
      {"-d", absl::StrCat(R"({"routing_key": ")", q,
                          R"(", "body": "aGVsbG8gZnJvbSBidWY=", )",
                          R"("properties": {"content_type": "text/plain", )",
                          R"("message_id": "buf-1", )",
                          R"("headers": {"attempt": {"int_value": "5"}}}})")},
      "amqpgw.v1.Gateway/Publish");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<Struct> docs = JsonDocuments(r.out);
  ASSERT_EQ(docs.size(), 1u) << r.out;
  // The caller's message_id comes back; the gateway invents none of its own
  // (only with --default_message_id).
  EXPECT_EQ(Field(docs[0], "messageId").string_value(), "buf-1") << r.out;
  EXPECT_FALSE(Field(docs[0], "publishTime").string_value().empty()) << r.out;

  // What reached the broker, read with an independent AMQP client.
  auto peer = AmqpPeer::Connect(node_->port());
  ASSERT_TRUE(peer.ok()) << peer.status();
  auto m = (*peer)->Get(q);
  ASSERT_TRUE(m.ok() && m->has_value());
  EXPECT_EQ((*m)->body, "hello from buf");
  EXPECT_EQ((*m)->headers["attempt"], "l:5");
  EXPECT_EQ((*m)->properties["content_type"], "text/plain");
  EXPECT_EQ((*m)->properties["message_id"], "buf-1");
}

TEST_F(BufCurlTest, StreamMessagesWithJsonInput) {
  std::string q = NewQueue();
  for (const char* body : {"one", "two", "three"}) {
    v1::PublishRequest req;
    req.set_routing_key(q);
    req.set_body(body);
    v1::PublishResponse resp;
    ASSERT_TRUE(gateway_->stub().Publish(Ctx().get(), req, &resp).ok());
  }
  ProcessResult r = Buf(
      {"-d", absl::StrCat(R"({"queue": ")", q, R"(", "max_messages": "3"})")},
      "amqpgw.v1.Gateway/StreamMessages");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<Struct> docs = JsonDocuments(r.out);
  ASSERT_EQ(docs.size(), 4u) << r.out;
  EXPECT_EQ(Field(Field(docs[0], "subscribed").struct_value(), "queue")
                .string_value(),
            q);
  std::vector<std::string> bodies;
  for (size_t i = 1; i < docs.size(); ++i) {
    const Struct& d = Field(docs[i], "delivery").struct_value();
    EXPECT_EQ(Field(d, "deliveryId").string_value(), absl::StrCat(i));
    std::string body;
    ASSERT_TRUE(absl::Base64Unescape(Field(d, "body").string_value(), &body));
    bodies.push_back(body);
  }
  EXPECT_THAT(bodies, ::testing::ElementsAre("one", "two", "three"));
  v1::InspectQueueRequest inspect;
  inspect.set_name(q);
  v1::InspectQueueResponse left;
  ASSERT_TRUE(gateway_->stub().InspectQueue(Ctx().get(), inspect, &left).ok());
  EXPECT_EQ(left.message_count(), 0u);
}

TEST_F(BufCurlTest, HealthCheck) {
  ProcessResult r = Buf({"-d", "{}"}, "grpc.health.v1.Health/Check");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<Struct> docs = JsonDocuments(r.out);
  ASSERT_EQ(docs.size(), 1u) << r.out;
  EXPECT_EQ(Field(docs[0], "status").string_value(), "SERVING");

  r = Buf({"-d", R"({"service": "amqpgw.v1.Gateway"})"},
          "grpc.health.v1.Health/Check");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Field(JsonDocuments(r.out).at(0), "status").string_value(),
            "SERVING");
}

TEST_F(BufCurlTest, ErrorsCarryTheGrpcCode) {
  ProcessResult r =
      Buf({"-d", absl::StrCat(R"({"name": ")", UniqueName("absent"), R"("})")},
          "amqpgw.v1.Gateway/InspectQueue");
  // buf curl exits with the gRPC code shifted left by three: NOT_FOUND (5).
  EXPECT_EQ(r.exit_code, 5 << 3) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("not_found"));
}

TEST_F(BufCurlTest, ConnectAndGrpcWebOnTheHttpPort) {
  for (const char* protocol : {"connect", "grpcweb"}) {
    SCOPED_TRACE(protocol);
    std::string q = NewQueue();
    ProcessResult r = BufHttp(
        protocol,
        {"-d", absl::StrCat(R"({"routingKey": ")", q,
                            R"(", "body": "aGVsbG8=", "properties": )",
                            R"({"headers": {"n": {"intValue": "7"}}}})")},
        "amqpgw.v1.Gateway/Publish");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::vector<Struct> docs = JsonDocuments(r.out);
    ASSERT_EQ(docs.size(), 1u) << r.out;
    EXPECT_FALSE(Field(docs[0], "publishTime").string_value().empty()) << r.out;
    auto peer = AmqpPeer::Connect(node_->port());
    ASSERT_TRUE(peer.ok()) << peer.status();
    auto m = (*peer)->Get(q);
    ASSERT_TRUE(m.ok() && m->has_value());
    EXPECT_EQ((*m)->body, "hello");
    EXPECT_EQ((*m)->headers["n"], "l:7");

    // A server stream: subscribed, then each delivery, then the end.
    for (const char* body : {"one", "two"}) {
      v1::PublishRequest req;
      req.set_routing_key(q);
      req.set_body(body);
      v1::PublishResponse resp;
      ASSERT_TRUE(gateway_->stub().Publish(Ctx().get(), req, &resp).ok());
    }
    r = BufHttp(
        protocol,
        {"-d", absl::StrCat(R"({"queue": ")", q, R"(", "maxMessages": "2"})")},
        "amqpgw.v1.Gateway/StreamMessages");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    docs = JsonDocuments(r.out);
    ASSERT_EQ(docs.size(), 3u) << r.out;
    EXPECT_EQ(Field(Field(docs[0], "subscribed").struct_value(), "queue")
                  .string_value(),
              q);
    for (int i = 1; i <= 2; ++i) {
      const Struct& d = Field(docs[i], "delivery").struct_value();
      std::string body;
      ASSERT_TRUE(absl::Base64Unescape(Field(d, "body").string_value(), &body));
      EXPECT_EQ(body, i == 1 ? "one" : "two");
    }

    // Errors: the code, as buf curl reads it from each protocol.
    r = BufHttp(
        protocol,
        {"-d", absl::StrCat(R"({"name": ")", UniqueName("absent"), R"("})")},
        "amqpgw.v1.Gateway/InspectQueue");
    EXPECT_EQ(r.exit_code, 5 << 3) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr("not_found"));
    r = BufHttp(protocol,
                {"-d", absl::StrCat(R"({"routingKey": ")", UniqueName("nobody"),
                                    R"("})")},
                "amqpgw.v1.Gateway/Publish");
    EXPECT_EQ(r.exit_code, 9 << 3) << r.out << r.err;  // FAILED_PRECONDITION
  }
}

}  // namespace
}  // namespace amqpgw::testing
