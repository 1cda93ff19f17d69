// The Connect protocol on the daemon's HTTP port, with curl as the client
// (nobody here wrote it) against a real daemon and RabbitMQ: unary JSON and
// protobuf, server streaming with each delivery arriving as it is published,
// GET, errors (HTTP status and Connect's JSON body), limits, caller tokens
// (401, 403), tracing, metrics, and HTTPS with a CA made by openssl. What
// reached the broker is read with an independent AMQP client. The shell
// snippets of docs/http.md (envelope, connect_messages) are run as written.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "amqpgw/v1/gateway.pb.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "server/trace/trace_context.h"
#include "tests/support/amqp_peer.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/http_client.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_pki.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

using ::google::protobuf::Struct;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// docs/http.md's shell functions, as written there.
constexpr char kEnvelopeFunction[] = R"sh(
envelope() {
  local n; n=$(printf %s "$1" | wc -c)
  printf "\\x00\\x$(printf %02x $((n >> 24 & 255)))\\x$(printf %02x $((n >> 16 & 255)))\\x$(printf %02x $((n >> 8 & 255)))\\x$(printf %02x $((n & 255)))"
  printf %s "$1"
}
)sh";
constexpr char kMessagesFunction[] = R"sh(
connect_messages() {
  python3 -uc 'import struct, sys
r = sys.stdin.buffer
while h := r.read(5):
    flags, n = struct.unpack(">BI", h)
    print(("end: " if flags & 2 else "") + r.read(n).decode())'
}
)sh";

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string TempFile(const std::string& prefix, const std::string& content) {
  std::string path = absl::StrCat(AMQPGW_TEST_TMP_DIR, "/", UniqueName(prefix));
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

struct Curl {
  int exit_code = -1;
  int status = 0;
  std::string headers;  // the response head, as received
  std::string body;
  std::string err;

  // A response header's value ("" when absent); names case-insensitive.
  std::string Header(const std::string& name) const {
    for (absl::string_view line : absl::StrSplit(headers, "\r\n")) {
      size_t colon = line.find(':');
      if (colon != absl::string_view::npos &&
          absl::EqualsIgnoreCase(line.substr(0, colon), name)) {
        return std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      }
    }
    return "";
  }
  Struct Json() const {
    Struct s;
    auto st = google::protobuf::util::JsonStringToMessage(body, &s);
    EXPECT_TRUE(st.ok()) << st << ": " << body;
    return s;
  }
  std::string Field(const std::string& name) const {
    Struct s = Json();
    auto it = s.fields().find(name);
    return it == s.fields().end() ? "" : it->second.string_value();
  }
};

// curl ARGS... URL; the head and body kept apart (-D, -o).
Curl RunCurl(const std::vector<std::string>& args, const std::string& url) {
  std::string head = absl::StrCat(AMQPGW_TEST_TMP_DIR, "/", UniqueName("h"));
  std::string body = absl::StrCat(AMQPGW_TEST_TMP_DIR, "/", UniqueName("b"));
  Subprocess::Options o;
  o.argv = {"curl", "-sS", "--max-time", "30", "-D",
            head,   "-o",  body,         "-w", "%{http_code}"};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.argv.push_back(url);
  ProcessResult r = RunProcess(o, absl::Seconds(60));
  Curl c;
  c.exit_code = r.exit_code;
  c.err = r.err;
  (void)absl::SimpleAtoi(r.out, &c.status);
  c.headers = Slurp(head);
  c.body = Slurp(body);
  return c;
}

// The envelopes of a Connect stream: (flags, payload), complete ones only.
std::vector<std::pair<int, std::string>> Envelopes(const std::string& raw) {
  std::vector<std::pair<int, std::string>> out;
  size_t i = 0;
  while (i + 5 <= raw.size()) {
    size_t n = (size_t{static_cast<unsigned char>(raw[i + 1])} << 24) |
               (size_t{static_cast<unsigned char>(raw[i + 2])} << 16) |
               (size_t{static_cast<unsigned char>(raw[i + 3])} << 8) |
               static_cast<unsigned char>(raw[i + 4]);
    if (i + 5 + n > raw.size()) break;
    out.emplace_back(static_cast<unsigned char>(raw[i]), raw.substr(i + 5, n));
    i += 5 + n;
  }
  return out;
}

Struct ParseStruct(const std::string& json) {
  Struct s;
  auto st = google::protobuf::util::JsonStringToMessage(json, &s);
  EXPECT_TRUE(st.ok()) << st << ": " << json;
  return s;
}

class ConnectTest : public SharedGatewayTest {
 protected:
  static std::string Url(int port, const std::string& method,
                         const std::string& scheme = "http") {
    return absl::StrCat(scheme, "://127.0.0.1:", port, "/amqpgw.v1.Gateway/",
                        method);
  }
  std::string Url(const std::string& method) {
    return Url(gateway_->daemon().http_port(), method);
  }

  // curl -s URL -H 'Content-Type: application/json' -d JSON
  Curl PostJson(const std::string& method, const std::string& json,
                std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"-H", "Content-Type: application/json",
                                     "-d", json};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCurl(args, Url(method));
  }

  std::string NewQueue() {
    std::string q = UniqueName("connect");
    v1::DeclareQueueRequest req;
    req.set_name(q);
    req.set_durable(false);
    v1::DeclareQueueResponse resp;
    EXPECT_TRUE(stub().DeclareQueue(Ctx().get(), req, &resp).ok());
    return q;
  }

  void PublishGrpc(const std::string& q, const std::string& body) {
    v1::PublishRequest req;
    req.set_routing_key(q);
    req.set_body(body);
    v1::PublishResponse resp;
    ASSERT_TRUE(stub().Publish(Ctx().get(), req, &resp).ok());
  }

  uint32_t Count(const std::string& q) {
    auto peer = AmqpPeer::Connect(node_->port());
    EXPECT_TRUE(peer.ok()) << peer.status();
    if (!peer.ok()) return 0;
    auto n = (*peer)->MessageCount(q);
    EXPECT_TRUE(n.ok()) << n.status();
    return n.ok() ? *n : 0;
  }
};

TEST_F(ConnectTest, TheReadmeCurlPublishesWithAConfirm) {
  std::string q = NewQueue();
  // Exactly the command of the README, on this gateway's port.
  Curl c = RunCurl(
      {"-H", "Content-Type: application/json", "-d",
       absl::StrCat(R"({"routingKey":")", q, R"(","body":"aGVsbG8="})")},
      Url("Publish"));
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(c.status, 200);
  EXPECT_EQ(c.Header("Content-Type"), "application/json");
  v1::PublishResponse resp;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(c.body, &resp).ok())
      << c.body;
  EXPECT_EQ(resp.message_id(), "");  // none given, none added
  EXPECT_GT(resp.publish_time().seconds(), 0);

  auto peer = AmqpPeer::Connect(node_->port());
  ASSERT_TRUE(peer.ok()) << peer.status();
  auto m = (*peer)->Get(q);
  ASSERT_TRUE(m.ok() && m->has_value());
  EXPECT_EQ((*m)->body, "hello");
  EXPECT_EQ((*m)->properties.count("message_id"), 0u);
  // The broker confirmed it: the gateway counted the confirm.
  EXPECT_GE(GatewayStatus(*gateway_).counters().confirmed(), 1u);
}

TEST_F(ConnectTest, UnaryJsonWithProtoNamesEnumsAndBatches) {
  std::string q = NewQueue();
  Curl c = PostJson(
      "PublishBatch",
      absl::StrCat(R"({"messages":[)", R"({"routing_key":")", q,
                   R"(","body":"b25l",)",
                   R"("properties":{"delivery_mode":"TRANSIENT",)",
                   R"("headers":{"n":{"intValue":"7"}}}},)",
                   R"({"routingKey":")", q, R"(","body":"dHdv"},)",
                   R"({"routingKey":")", q, R"(","body":"dGhyZWU="}]})"));
  ASSERT_EQ(c.status, 200) << c.body;
  v1::PublishBatchResponse batch;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(c.body, &batch).ok())
      << c.body;
  ASSERT_EQ(batch.results_size(), 3);
  for (const auto& r : batch.results()) EXPECT_EQ(r.code(), 0) << c.body;
  EXPECT_EQ(Count(q), 3u);
  auto peer = AmqpPeer::Connect(node_->port());
  ASSERT_TRUE(peer.ok());
  auto m = (*peer)->Get(q);
  ASSERT_TRUE(m.ok() && m->has_value());
  EXPECT_EQ((*m)->body, "one");
  EXPECT_EQ((*m)->headers["n"], "l:7");
  EXPECT_EQ((*m)->properties["delivery_mode"], "1");

  // Answers print every field, zeros included.
  c = PostJson("InspectQueue", absl::StrCat(R"({"name":")", q, R"("})"));
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_THAT(c.body, AllOf(HasSubstr(R"("messageCount":2)"),
                            HasSubstr(R"("consumerCount":0)")));
}

TEST_F(ConnectTest, UnaryProtobuf) {
  std::string q = NewQueue();
  PublishGrpc(q, "x");
  PublishGrpc(q, "y");
  v1::InspectQueueRequest req;
  req.set_name(q);
  std::string file = TempFile("inspect", req.SerializeAsString());
  Curl c = RunCurl({"-H", "Content-Type: application/proto", "-H",
                    "Connect-Protocol-Version: 1", "--data-binary", "@" + file},
                   Url("InspectQueue"));
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_EQ(c.Header("Content-Type"), "application/proto");
  v1::InspectQueueResponse resp;
  ASSERT_TRUE(resp.ParseFromString(c.body));
  EXPECT_EQ(resp.name(), q);
  EXPECT_EQ(resp.message_count(), 2u);
}

TEST_F(ConnectTest, StreamingShowsEachDeliveryAsItIsPublished) {
  std::string q = NewQueue();
  // curl -N with the request built by docs/http.md's envelope function.
  Subprocess::Options o;
  o.argv = {"bash",
            "-c",
            absl::StrCat(kEnvelopeFunction,
                         "envelope \"$1\" | curl -sN --max-time 60 -H "
                         "'Content-Type: application/connect+json' "
                         "--data-binary @- \"$2\""),
            "_",
            absl::StrCat(R"({"queue":")", q, R"(","maxMessages":"3"})"),
            Url("StreamMessages")};
  std::unique_ptr<Subprocess> curl = Subprocess::Start(o);
  ASSERT_NE(curl, nullptr);
  // Subscribed first, before anything was published.
  ASSERT_TRUE(curl->WaitOutput(
      [](const std::string& out, const std::string&) {
        return Envelopes(out).size() == 1;
      },
      absl::Seconds(30)))
      << curl->err();
  EXPECT_THAT(Envelopes(curl->out())[0].second, HasSubstr("\"subscribed\""));
  // Each message reaches curl before the next is published.
  for (int i = 1; i <= 3; ++i) {
    PublishGrpc(q, absl::StrCat("live-", i));
    ASSERT_TRUE(curl->WaitOutput(
        [&](const std::string& out, const std::string&) {
          return Envelopes(out).size() >= static_cast<size_t>(i + 1);
        },
        absl::Seconds(30)))
        << "delivery " << i << " did not arrive while the stream was open";
    auto e = Envelopes(curl->out())[i];
    EXPECT_EQ(e.first, 0);
    Struct event = ParseStruct(e.second);
    const auto& d = event.fields().at("delivery").struct_value().fields();
    std::string body;
    ASSERT_TRUE(absl::Base64Unescape(d.at("body").string_value(), &body));
    EXPECT_EQ(body, absl::StrCat("live-", i));
    EXPECT_EQ(d.at("deliveryId").string_value(), absl::StrCat(i));
  }
  ProcessResult r = curl->Wait(absl::Seconds(30));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto envelopes = Envelopes(r.out);
  ASSERT_EQ(envelopes.size(), 5u);
  // The end-of-stream message: OK, so no error.
  EXPECT_EQ(envelopes[4].first, 2);
  EXPECT_THAT(envelopes[4].second, Not(HasSubstr("error")));
  // AUTO acks: nothing left.
  EXPECT_TRUE(WaitFor([&] { return Count(q) == 0; }));
}

TEST_F(ConnectTest, TheDocsStreamingPipelinePrintsOneJsonPerLine) {
  std::string q = NewQueue();
  PublishGrpc(q, "one");
  PublishGrpc(q, "two");
  Subprocess::Options o;
  o.argv = {"bash",
            "-c",
            absl::StrCat(kEnvelopeFunction, kMessagesFunction,
                         "set -o pipefail; envelope \"$1\" | curl -sN -H "
                         "'Content-Type: application/connect+json' "
                         "--data-binary @- \"$2\" | connect_messages"),
            "_",
            absl::StrCat(R"({"queue":")", q,
                         R"(","maxMessages":"2","ackMode":"AUTO"})"),
            Url("StreamMessages")};
  ProcessResult r = RunProcess(o, absl::Seconds(60));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines =
      absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << r.out;
  EXPECT_THAT(lines[0], HasSubstr(R"("subscribed":{)"));
  EXPECT_THAT(lines[1], HasSubstr(absl::StrCat(R"("body":")",
                                               absl::Base64Escape("one"))));
  EXPECT_THAT(lines[2], HasSubstr(absl::StrCat(R"("body":")",
                                               absl::Base64Escape("two"))));
  EXPECT_EQ(lines[3], "end: {}");
}

TEST_F(ConnectTest, StreamErrorsAndDeadlinesEndTheStream) {
  Curl c = RunCurl(
      {"-H", "Content-Type: application/connect+json", "--data-binary",
       "@" + TempFile("env",
                      [] {
                        std::string out;
                        std::string json =
                            R"({"queue":"connect-no-such-queue"})";
                        out.push_back('\0');
                        for (int shift : {24, 16, 8, 0}) {
                          out.push_back(
                              static_cast<char>((json.size() >> shift) & 255));
                        }
                        return out + json;
                      }())},
      Url("StreamMessages"));
  ASSERT_EQ(c.status, 200);
  EXPECT_EQ(c.Header("Content-Type"), "application/connect+json");
  auto envelopes = Envelopes(c.body);
  ASSERT_FALSE(envelopes.empty());
  EXPECT_EQ(envelopes.back().first, 2);
  Struct end = ParseStruct(envelopes.back().second);
  EXPECT_EQ(end.fields()
                .at("error")
                .struct_value()
                .fields()
                .at("code")
                .string_value(),
            "not_found");

  // Connect-Timeout-Ms ends an idle stream: deadline_exceeded.
  std::string q = NewQueue();
  Subprocess::Options o;
  o.argv = {"bash",
            "-c",
            absl::StrCat(kEnvelopeFunction, kMessagesFunction,
                         "envelope \"$1\" | curl -sN -H "
                         "'Content-Type: application/connect+json' -H "
                         "'Connect-Timeout-Ms: 1500' --data-binary @- \"$2\" "
                         "| connect_messages"),
            "_",
            absl::StrCat(R"({"queue":")", q, R"("})"),
            Url("StreamMessages")};
  ProcessResult r = RunProcess(o, absl::Seconds(60));
  EXPECT_THAT(r.out, HasSubstr(R"(end: {"error":{"code":"deadline_exceeded")"))
      << r.out << r.err;
}

TEST_F(ConnectTest, GetForReadOnlyMethods) {
  std::string q = NewQueue();
  PublishGrpc(q, "x");
  // The form connect clients send; curl -G builds the query.
  Curl c = RunCurl({"-G", "--data-urlencode",
                    absl::StrCat(R"(message={"name":")", q, R"("})"), "-d",
                    "encoding=json", "-d", "connect=v1"},
                   Url("InspectQueue"));
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_THAT(c.body, HasSubstr(R"("messageCount":1)"));
  // No query at all: the empty request, as JSON (a monitoring probe).
  c = RunCurl({}, Url("GetStatus"));
  ASSERT_EQ(c.status, 200) << c.body;
  Struct status = c.Json();
  EXPECT_EQ(status.fields()
                .at("connection")
                .struct_value()
                .fields()
                .at("state")
                .string_value(),
            "READY");
  // Protobuf, base64url.
  v1::InspectQueueRequest req;
  req.set_name(q);
  std::string b64;
  absl::WebSafeBase64Escape(req.SerializeAsString(), &b64);
  c = RunCurl({}, absl::StrCat(Url("InspectQueue"),
                               "?encoding=proto&base64=1&message=", b64));
  ASSERT_EQ(c.status, 200);
  v1::InspectQueueResponse resp;
  ASSERT_TRUE(resp.ParseFromString(c.body));
  EXPECT_EQ(resp.message_count(), 1u);
  // The listing RPCs only read: a GET lists the queue (the management
  // API may take a moment to see a queue declared just now).
  std::string listing;
  EXPECT_TRUE(WaitFor([&] {
    Curl l =
        RunCurl({"-G", "--data-urlencode",
                 absl::StrCat(R"(message={"filter":{"prefix":")", q, R"("}})"),
                 "-d", "encoding=json", "-d", "connect=v1"},
                Url("ListQueues"));
    listing = absl::StrCat(l.status, " ", l.body);
    return l.status == 200 &&
           absl::StrContains(l.body, absl::StrCat(R"("name":")", q, "\""));
  })) << listing;
  // Methods with side effects only by POST: nothing was published.
  c = RunCurl({"-G", "--data-urlencode",
               absl::StrCat(R"(message={"routingKey":")", q, R"("})")},
              Url("Publish"));
  EXPECT_EQ(c.status, 405);
  EXPECT_EQ(c.Header("Allow"), "POST");
  EXPECT_EQ(c.Field("code"), "unimplemented");
  EXPECT_EQ(Count(q), 1u);
}

TEST_F(ConnectTest, ErrorsAreConnectJsonWithTheirHttpStatus) {
  struct Case {
    const char* what;
    std::string method;
    std::string json;
    int status;
    const char* code;
    const char* words;
  };
  std::vector<Case> cases = {
      {"absent queue", "InspectQueue",
       absl::StrCat(R"({"name":")", UniqueName("absent"), R"("})"), 404,
       "not_found", "no queue"},
      {"unknown field", "Publish", R"({"routingKey":"x","nope":1})", 400,
       "invalid_argument", "nope"},
      {"broken JSON", "Publish", R"({"routingKey":)", 400, "invalid_argument",
       "amqpgw.v1.PublishRequest"},
      {"bad enum", "Publish", R"({"properties":{"deliveryMode":"SOMETIMES"}})",
       400, "invalid_argument", "SOMETIMES"},
      {"gateway validation", "Publish",
       absl::StrCat(R"({"routingKey":")", std::string(300, 'k'), R"("})"), 400,
       "invalid_argument", "routing_key"},
      {"unknown method", "Nope", "{}", 404, "unimplemented", "no such method"},
      {"unroutable", "Publish",
       absl::StrCat(R"({"routingKey":")", UniqueName("nobody"), R"("})"), 400,
       "failed_precondition", "NO_ROUTE"},
  };
  for (const Case& c : cases) {
    Curl r = PostJson(c.method, c.json);
    EXPECT_EQ(r.status, c.status) << c.what << ": " << r.body;
    EXPECT_EQ(r.Header("Content-Type"), "application/json") << c.what;
    EXPECT_EQ(r.Field("code"), c.code) << c.what << ": " << r.body;
    EXPECT_THAT(r.Field("message"), HasSubstr(c.words)) << c.what;
  }
  // A content type Connect does not serve.
  Curl r =
      RunCurl({"-H", "Content-Type: text/plain", "-d", "hi"}, Url("GetStatus"));
  EXPECT_EQ(r.status, 415);
  EXPECT_THAT(r.Field("message"), HasSubstr("application/json"));
}

TEST_F(ConnectTest, TracingAndMetricsAreTheGrpcServersOwn) {
  std::string q = NewQueue();
  trace::TraceContext caller = trace::NewRootContext(/*sampled=*/true);
  Curl c = PostJson(
      "Publish", absl::StrCat(R"({"routingKey":")", q, R"(","body":"dA=="})"),
      {"-H", "traceparent: " + caller.Traceparent()});
  ASSERT_EQ(c.status, 200) << c.body;
  auto peer = AmqpPeer::Connect(node_->port());
  ASSERT_TRUE(peer.ok());
  auto m = (*peer)->Get(q);
  ASSERT_TRUE(m.ok() && m->has_value());
  EXPECT_THAT((*m)->headers["traceparent"], HasSubstr(caller.trace_id));

  const std::string sample =
      R"(amqpgw_rpc_handled_total{service="amqpgw.v1.Gateway",)"
      R"(method="InspectQueue",code="NOT_FOUND"})";
  auto page = HttpGet(gateway_->daemon().http_port(), "/metrics");
  ASSERT_TRUE(page.ok());
  double before = std::max(0.0, MetricValue(page->body, sample));
  c = PostJson("InspectQueue",
               absl::StrCat(R"({"name":")", UniqueName("absent"), R"("})"));
  EXPECT_EQ(c.status, 404);
  page = HttpGet(gateway_->daemon().http_port(), "/metrics");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(MetricValue(page->body, sample), before + 1);
}

// A gateway of its own: caller tokens and a small --max_request_bytes.
TEST_F(ConnectTest, TokensAndLimits) {
  std::string tokens = TempFile("tokens",
                                "connect-publish-token-0123456789 publish\n"
                                "connect-consume-token-0123456789 consume\n");
  auto g = TestGateway::Start(node_->uri(), [&](daemon::Options& o) {
    o.auth_tokens = tokens;
    o.max_request_bytes = 4 << 20;
  });
  const int port = g->daemon().http_port();
  // Ready (GetStatus needs a token here too).
  ASSERT_TRUE(WaitFor([&] {
    Curl c = RunCurl(
        {"-H", "Authorization: Bearer connect-consume-token-0123456789"},
        Url(port, "GetStatus"));
    return c.body.find(R"("state":"READY")") != std::string::npos;
  }));
  std::string q = NewQueue();
  auto publish = [&](const std::vector<std::string>& extra,
                     const std::string& body = "aGk=") {
    std::vector<std::string> args = {
        "-H", "Content-Type: application/json", "--data-binary",
        "@" +
            TempFile("publish", absl::StrCat(R"({"routingKey":")", q,
                                             R"(","body":")", body, R"("})"))};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCurl(args, Url(port, "Publish"));
  };
  Curl c = publish({});
  EXPECT_EQ(c.status, 401);
  EXPECT_EQ(c.Field("code"), "unauthenticated");
  EXPECT_EQ(c.Header("WWW-Authenticate"), "Bearer");
  c = publish({"-H", "Authorization: Bearer wrong-token-0123456789abc"});
  EXPECT_EQ(c.status, 401);
  c = publish({"-H", "Authorization: Bearer connect-consume-token-0123456789"});
  EXPECT_EQ(c.status, 403);
  EXPECT_EQ(c.Field("code"), "permission_denied");
  EXPECT_EQ(Count(q), 0u);
  c = publish({"-H", "Authorization: Bearer connect-publish-token-0123456789"});
  EXPECT_EQ(c.status, 200) << c.body;
  EXPECT_EQ(Count(q), 1u);
  // GET carries the token as a header too.
  c = RunCurl({"-H", "Authorization: Bearer connect-consume-token-0123456789"},
              Url(port, "GetStatus"));
  EXPECT_EQ(c.status, 200);
  c = RunCurl({}, Url(port, "GetStatus"));
  EXPECT_EQ(c.status, 401);

  // --max_request_bytes (4 MiB) counts the message as protobuf: a JSON body
  // the HTTP server takes (base64 makes it 4/3 larger) is refused once
  // converted, a larger one by the HTTP server itself; both the same way.
  for (size_t n : {(4u << 20) + 1000, 5u << 20}) {
    c = publish(
        {"-H", "Authorization: Bearer connect-publish-token-0123456789"},
        absl::Base64Escape(std::string(n, 'x')));
    EXPECT_EQ(c.status, 413) << n;
    EXPECT_EQ(c.Field("code"), "resource_exhausted") << n;
    EXPECT_THAT(c.Field("message"), HasSubstr("--max_request_bytes")) << n;
  }
  EXPECT_EQ(Count(q), 1u);
}

TEST_F(ConnectTest, HttpsWithACaMadeByOpenssl) {
  TestPki pki;
  absl::Status made =
      pki.Make(absl::StrCat(AMQPGW_TEST_TMP_DIR, "/", UniqueName("pki")));
  ASSERT_TRUE(made.ok()) << made;
  auto g = TestGateway::Start(node_->uri(), [&](daemon::Options& o) {
    o.http_tls_cert = pki.path("server.pem");
    o.http_tls_key = pki.path("server.key");
  });
  ASSERT_TRUE(g->WaitReady());
  const int port = g->daemon().http_port();
  std::string q = NewQueue();
  std::vector<std::string> trust = {"--cacert", pki.path("ca.pem")};
  std::vector<std::string> args = trust;
  args.insert(args.end(),
              {"-H", "Content-Type: application/json", "-d",
               absl::StrCat(R"({"routingKey":")", q, R"(","body":"aGk="})")});
  Curl c = RunCurl(args, Url(port, "Publish", "https"));
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(c.status, 200) << c.body;
  EXPECT_FALSE(c.Field("publishTime").empty()) << c.body;
  EXPECT_EQ(Count(q), 1u);
  c = RunCurl(trust, Url(port, "GetStatus", "https"));
  EXPECT_EQ(c.status, 200);
  // Without the CA curl refuses the server; plain HTTP gets no answer.
  c = RunCurl({}, Url(port, "GetStatus", "https"));
  EXPECT_NE(c.exit_code, 0);
  c = RunCurl({}, Url(port, "GetStatus", "http"));
  EXPECT_NE(c.status, 200);
}

}  // namespace
}  // namespace amqpgw::testing
