// TLS everywhere it is configured: the gateway reaches a RabbitMQ node over
// amqps:// (CA and client certificate), serves gRPC over TLS and mutual TLS,
// serves the HTTP port over HTTPS (the browser view, grpc-web and /metrics,
// checked with curl), and plain clients are refused wherever TLS is
// required. Certificates are made with openssl when the test starts.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/management/client.h"
#include "server/web/grpc_web_frame.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/grpc_web_client.h"
#include "tests/support/raw_http.h"
#include "tests/support/test_pki.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool PortFree(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  close(fd);
  return ok;
}

// A free port in 20000-31999, the range rabbitmq-node.sh keeps test nodes in
// (clear of the Erlang CLI's distribution ports).
int FreePort() {
  std::mt19937 gen{std::random_device{}()};
  for (int i = 0; i < 200; ++i) {
    int p = 20000 + static_cast<int>(gen() % 12000);
    if (PortFree(p)) return p;
  }
  return 0;
}

// Certificates made by openssl (tests/support/test_pki.h).
struct Certs : TestPki {
  absl::Status Make() {
    return TestPki::Make(
        absl::StrCat(AMQPGW_TEST_TMP_DIR, "/", UniqueName("certs")));
  }
};

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new Certs();
    absl::Status made = certs_->Make();
    ASSERT_TRUE(made.ok()) << made;
    tls_port_ = FreePort();
    ASSERT_GT(tls_port_, 0);
    management_tls_port_ = FreePort();
    ASSERT_GT(management_tls_port_, 0);
    // rabbitmq-node.sh appends RABBITMQ_EXTRA_CONF to the node's config.
    std::string conf = absl::StrCat(
        "listeners.ssl.default = 127.0.0.1:", tls_port_, "\n",
        "ssl_options.cacertfile = ", certs_->path("ca.pem"), "\n",
        "ssl_options.certfile = ", certs_->path("server.pem"), "\n",
        "ssl_options.keyfile = ", certs_->path("server.key"), "\n",
        "ssl_options.verify = verify_peer\n",
        "ssl_options.fail_if_no_peer_cert = true\n",
        // The management API over https, client certificates
        // required, as for AMQP.
        "management.ssl.ip = 127.0.0.1\n",
        "management.ssl.port = ", management_tls_port_, "\n",
        "management.ssl.cacertfile = ", certs_->path("ca.pem"), "\n",
        "management.ssl.certfile = ", certs_->path("server.pem"), "\n",
        "management.ssl.keyfile = ", certs_->path("server.key"), "\n",
        "management.ssl.verify = verify_peer\n",
        "management.ssl.fail_if_no_peer_cert = true\n");
    setenv("RABBITMQ_EXTRA_CONF", conf.c_str(), 1);
    auto node = BrokerNode::StartPrivate("tls");
    unsetenv("RABBITMQ_EXTRA_CONF");
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = new BrokerNode(*std::move(node));
  }
  static void TearDownTestSuite() {
    if (node_ != nullptr) (void)node_->Stop();
    delete node_;
    delete certs_;
  }

  static std::string AmqpsUri(const std::string& host) {
    return absl::StrCat("amqps://guest:guest@", host, ":", tls_port_, "/");
  }

  // Broker options for amqps with our CA; `client` names the client
  // certificate's files ("" for none).
  static std::function<void(daemon::Options&)> BrokerTls(
      const std::string& ca, const std::string& client) {
    return [ca, client](daemon::Options& o) {
      o.broker_tls_ca = certs_->path(ca.c_str());
      if (!client.empty()) {
        o.broker_tls_cert = certs_->path((client + ".pem").c_str());
        o.broker_tls_key = certs_->path((client + ".key").c_str());
      }
      o.connect_timeout = absl::Seconds(2);
    };
  }

  static v1::ConnectionInfo Status(TestGateway& g) {
    v1::GetStatusResponse r;
    EXPECT_TRUE(
        g.stub().GetStatus(Ctx().get(), v1::GetStatusRequest(), &r).ok());
    return r.connection();
  }

  // Waits for a failed connection attempt; returns its error.
  static std::string FirstError(TestGateway& g) {
    std::string error;
    EXPECT_TRUE(WaitFor([&] {
      v1::ConnectionInfo c = Status(g);
      error = c.last_error();
      return !error.empty();
    }));
    EXPECT_NE(Status(g).state(), v1::ConnectionInfo::READY);
    return error;
  }

  static std::shared_ptr<::grpc::ChannelCredentials> ClientTls(
      const std::string& client) {
    ::grpc::SslCredentialsOptions o;
    o.pem_root_certs = Slurp(certs_->path("ca.pem"));
    if (!client.empty()) {
      o.pem_private_key = Slurp(certs_->path((client + ".key").c_str()));
      o.pem_cert_chain = Slurp(certs_->path((client + ".pem").c_str()));
    }
    return ::grpc::SslCredentials(o);
  }

  static ::grpc::Status GetStatusOver(
      int port, std::shared_ptr<::grpc::ChannelCredentials> creds) {
    ::grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto stub = v1::Gateway::NewStub(::grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", port), creds, args));
    v1::GetStatusResponse r;
    return stub->GetStatus(Ctx(absl::Seconds(5)).get(), v1::GetStatusRequest(),
                           &r);
  }

  // WhoAmI through the management API over https with our CA and
  // `client`'s certificate ("" for none).
  static absl::StatusOr<management::User> ManagementWhoAmI(
      const std::string& host, const std::string& ca,
      const std::string& client) {
    management::ManagementClient::Options o;
    o.url = absl::StrCat("https://", host, ":", management_tls_port_, "/");
    o.user = "guest";
    o.password = "guest";
    if (!ca.empty()) o.tls_ca_file = certs_->path(ca.c_str());
    if (!client.empty()) {
      o.tls_cert_file = certs_->path((client + ".pem").c_str());
      o.tls_key_file = certs_->path((client + ".key").c_str());
    }
    o.timeout = absl::Seconds(5);
    auto c = management::ManagementClient::Create(o);
    if (!c.ok()) return c.status();
    absl::Notification done;
    absl::StatusOr<management::User> out = absl::UnknownError("no answer");
    (*c)->WhoAmI([&](absl::StatusOr<management::User> r) {
      out = std::move(r);
      done.Notify();
    });
    done.WaitForNotification();
    return out;
  }

  static Certs* certs_;
  static BrokerNode* node_;
  static int tls_port_;
  static int management_tls_port_;
};

Certs* TlsTest::certs_ = nullptr;
BrokerNode* TlsTest::node_ = nullptr;
int TlsTest::tls_port_ = 0;
int TlsTest::management_tls_port_ = 0;

TEST_F(TlsTest, GatewayReachesTheBrokerOverAmqpsWithAClientCertificate) {
  auto g =
      TestGateway::Start(AmqpsUri("localhost"), BrokerTls("ca.pem", "client"));
  ASSERT_TRUE(g->WaitReady()) << Status(*g).last_error();
  // Real traffic over the TLS connections.
  std::string q = UniqueName("tls");
  v1::DeclareQueueRequest declare;
  declare.set_name(q);
  v1::DeclareQueueResponse declared;
  ASSERT_TRUE(g->stub().DeclareQueue(Ctx().get(), declare, &declared).ok());
  v1::PublishRequest publish;
  publish.set_routing_key(q);
  publish.set_body("over tls");
  v1::PublishResponse published;
  ASSERT_TRUE(g->stub().Publish(Ctx().get(), publish, &published).ok());
  v1::InspectQueueRequest inspect;
  inspect.set_name(q);
  v1::InspectQueueResponse counts;
  ASSERT_TRUE(g->stub().InspectQueue(Ctx().get(), inspect, &counts).ok());
  EXPECT_EQ(counts.message_count(), 1u);
  // The broker sees TLS connections with our client certificate.
  auto conns = node_->Ctl({"list_connections", "ssl", "peer_cert_subject"});
  ASSERT_TRUE(conns.ok()) << conns.status();
  EXPECT_THAT(*conns, HasSubstr("true"));
  EXPECT_THAT(*conns, HasSubstr("amqpgw-client"));
  EXPECT_EQ(Status(*g).brokers(0), absl::StrCat("localhost:", tls_port_));
}

TEST_F(TlsTest, HostnameCheckCanBeTurnedOffForAnAddress) {
  auto g = TestGateway::Start(AmqpsUri("127.0.0.1"), [](daemon::Options& o) {
    BrokerTls("ca.pem", "client")(o);
    o.broker_tls_verify_hostname = false;
  });
  EXPECT_TRUE(g->WaitReady()) << Status(*g).last_error();
}

TEST_F(TlsTest, BrokerRefusesAGatewayWithoutClientCertificate) {
  auto g = TestGateway::Start(AmqpsUri("localhost"), BrokerTls("ca.pem", ""));
  EXPECT_THAT(FirstError(*g), HasSubstr("SSL"));
}

TEST_F(TlsTest, GatewayRefusesABrokerSignedByAnotherCa) {
  auto g = TestGateway::Start(AmqpsUri("localhost"),
                              BrokerTls("other-ca.pem", "client"));
  EXPECT_THAT(FirstError(*g), HasSubstr("verification failed"));
}

TEST_F(TlsTest, PlainAmqpOnTheTlsPortIsRefused) {
  auto g = TestGateway::Start(
      absl::StrCat("amqp://guest:guest@127.0.0.1:", tls_port_, "/"),
      [](daemon::Options& o) { o.connect_timeout = absl::Seconds(2); });
  FirstError(*g);
}

TEST_F(TlsTest, GrpcOverTlsRefusesPlainClients) {
  auto g = TestGateway::Start(node_->uri(), [](daemon::Options& o) {
    o.tls_cert = certs_->path("server.pem");
    o.tls_key = certs_->path("server.key");
  });
  int port = g->daemon().grpc_port();
  ::grpc::Status plain =
      GetStatusOver(port, ::grpc::InsecureChannelCredentials());
  EXPECT_EQ(plain.error_code(), ::grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(GetStatusOver(port, ClientTls("")).ok());
}

TEST_F(TlsTest, MutualTlsRefusesClientsWithoutAValidCertificate) {
  auto g = TestGateway::Start(node_->uri(), [](daemon::Options& o) {
    o.tls_cert = certs_->path("server.pem");
    o.tls_key = certs_->path("server.key");
    o.tls_client_ca = certs_->path("ca.pem");
  });
  int port = g->daemon().grpc_port();
  EXPECT_EQ(
      GetStatusOver(port, ::grpc::InsecureChannelCredentials()).error_code(),
      ::grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(GetStatusOver(port, ClientTls("")).error_code(),
            ::grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(GetStatusOver(port, ClientTls("other-client")).error_code(),
            ::grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(GetStatusOver(port, ClientTls("client")).ok());
}

// The management API over https is trusted like the broker: the same CA
// and client certificate.
TEST_F(TlsTest, ManagementApiOverHttpsWithTheBrokersTrust) {
  for (const char* host : {"127.0.0.1", "localhost"}) {
    auto user = ManagementWhoAmI(host, "ca.pem", "client");
    ASSERT_TRUE(user.ok()) << host << ": " << user.status();
    EXPECT_EQ(user->name, "guest");
  }
  // A server signed by a CA it does not trust: UNAVAILABLE, saying which
  // flags set the trust.
  auto other = ManagementWhoAmI("127.0.0.1", "other-ca.pem", "client");
  EXPECT_EQ(other.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(other.status().message(),
              ::testing::AllOf(HasSubstr("TLS"), HasSubstr("--broker_tls_ca")));
  // The system's CAs do not know ours either.
  EXPECT_EQ(ManagementWhoAmI("127.0.0.1", "", "client").status().code(),
            absl::StatusCode::kUnavailable);
  // The broker wants a client certificate.
  EXPECT_EQ(ManagementWhoAmI("127.0.0.1", "ca.pem", "").status().code(),
            absl::StatusCode::kUnavailable);
}

// --- HTTPS on the HTTP port, with curl as the client. ----------------------

struct CurlResult {
  bool ok = false;      // curl exited 0
  int http_status = 0;  // from -w
  std::string body;     // the response body
  std::string output;   // curl's own output (errors)
};

// curl `url` with `args` (certificates, headers, --data-binary @file).
CurlResult Curl(const std::string& url, const std::string& args) {
  std::string out = absl::StrCat(AMQPGW_TEST_TMP_DIR, "/", UniqueName("curl"));
  absl::StatusOr<std::string> r =
      RunCommand(absl::StrCat("curl -sS --max-time 10 -o '", out,
                              "' -w '%{http_code}' ", args, " '", url, "'"));
  CurlResult c;
  c.ok = r.ok();
  c.output = r.ok() ? *r : std::string(r.status().message());
  (void)absl::SimpleAtoi(c.output, &c.http_status);
  c.body = Slurp(out);
  return c;
}

class HttpsTest : public TlsTest {
 protected:
  std::string Url(int port, const std::string& path) {
    return absl::StrCat("https://127.0.0.1:", port, path);
  }
  std::string Trust() { return "--cacert '" + certs_->path("ca.pem") + "'"; }
  std::string ClientCert(const std::string& name) {
    return absl::StrCat("--cert '", certs_->path((name + ".pem").c_str()),
                        "' --key '", certs_->path((name + ".key").c_str()),
                        "'");
  }
  // A grpc-web GetStatus body in a file, for --data-binary.
  std::string GetStatusBody() {
    std::string path =
        absl::StrCat(AMQPGW_TEST_TMP_DIR, "/", UniqueName("getstatus"));
    std::ofstream(path, std::ios::binary)
        << GrpcWebBody({v1::GetStatusRequest().SerializeAsString()});
    return path;
  }
  std::string GrpcWebArgs(const std::string& token) {
    std::string args = absl::StrCat(
        "-H 'Content-Type: application/grpc-web+proto' --data-binary @'",
        GetStatusBody(), "'");
    if (!token.empty()) {
      absl::StrAppend(&args, " -H 'Authorization: Bearer ", token, "'");
    }
    return args;
  }
};

TEST_F(HttpsTest, TheHttpPortServesHttpsWithTheGrpcPortsCertificate) {
  const std::string token = "https-admin-token-0123456789";
  std::string tokens =
      absl::StrCat(AMQPGW_TEST_TMP_DIR, "/", UniqueName("tokens"));
  std::ofstream(tokens) << token << " admin\n";
  auto g = TestGateway::Start(node_->uri(), [&](daemon::Options& o) {
    o.tls_cert = certs_->path("server.pem");
    o.tls_key = certs_->path("server.key");
    o.auth_tokens = tokens;
  });
  const int port = g->daemon().http_port();

  // The browser view.
  CurlResult page = Curl(Url(port, "/"), Trust());
  ASSERT_TRUE(page.ok) << page.output;
  EXPECT_EQ(page.http_status, 200);
  EXPECT_THAT(page.body, HasSubstr("<!doctype html>"));

  // grpc-web, with and without a token.
  CurlResult call = Curl(Url(port, "/amqpgw.v1.Gateway/GetStatus"),
                         Trust() + " " + GrpcWebArgs(token));
  ASSERT_TRUE(call.ok) << call.output;
  EXPECT_EQ(call.http_status, 200);
  GrpcWebReply reply;
  DecodeGrpcWebBody(call.body, false, &reply);
  EXPECT_EQ(reply.GrpcStatus(), 0);
  ASSERT_EQ(reply.messages.size(), 1u);
  v1::GetStatusResponse status;
  EXPECT_TRUE(status.ParseFromString(reply.messages[0]));
  CurlResult anonymous = Curl(Url(port, "/amqpgw.v1.Gateway/GetStatus"),
                              Trust() + " " + GrpcWebArgs(""));
  DecodeGrpcWebBody(anonymous.body, false, &reply);
  EXPECT_EQ(reply.GrpcStatus(), static_cast<int>(::grpc::UNAUTHENTICATED));

  // /metrics asks for a token too.
  CurlResult metrics = Curl(Url(port, "/metrics"), Trust());
  EXPECT_EQ(metrics.http_status, 401);
  EXPECT_THAT(metrics.body, Not(HasSubstr("amqpgw_build_info")));
  metrics = Curl(Url(port, "/metrics"),
                 Trust() + " -H 'Authorization: Bearer " + token + "'");
  EXPECT_EQ(metrics.http_status, 200);
  EXPECT_THAT(metrics.body, HasSubstr("amqpgw_build_info"));

  // Plain HTTP on the HTTPS port gets no HTTP answer; a client that does not
  // trust the CA gives up.
  RawHttp plain(port);
  ASSERT_TRUE(plain.Send("GET / HTTP/1.1\r\nHost: gw\r\n\r\n"));
  EXPECT_TRUE(plain.ReadUntilClosed(absl::Seconds(10)));
  EXPECT_THAT(plain.received(), Not(HasSubstr("HTTP/1.1")));
  EXPECT_FALSE(Curl(Url(port, "/"), "").ok);
}

TEST_F(HttpsTest, TheHttpPortAsksForClientCertificatesAsTheGrpcPortDoes) {
  auto g = TestGateway::Start(node_->uri(), [](daemon::Options& o) {
    o.tls_cert = certs_->path("server.pem");
    o.tls_key = certs_->path("server.key");
    o.tls_client_ca = certs_->path("ca.pem");
  });
  const int port = g->daemon().http_port();
  CurlResult with =
      Curl(Url(port, "/amqpgw.v1.Gateway/GetStatus"),
           Trust() + " " + ClientCert("client") + " " + GrpcWebArgs(""));
  ASSERT_TRUE(with.ok) << with.output;
  GrpcWebReply reply;
  DecodeGrpcWebBody(with.body, false, &reply);
  EXPECT_EQ(reply.GrpcStatus(), 0);
  EXPECT_FALSE(Curl(Url(port, "/"), Trust()).ok);
  EXPECT_FALSE(
      Curl(Url(port, "/"), Trust() + " " + ClientCert("other-client")).ok);
  // Still served after the refusals.
  EXPECT_EQ(
      Curl(Url(port, "/"), Trust() + " " + ClientCert("client")).http_status,
      200);
}

TEST_F(HttpsTest, HttpInsecureServesPlainHttpBesideATlsGrpcPort) {
  auto g = TestGateway::Start(node_->uri(), [](daemon::Options& o) {
    o.tls_cert = certs_->path("server.pem");
    o.tls_key = certs_->path("server.key");
    o.http_insecure = true;
  });
  CurlResult page =
      Curl(absl::StrCat("http://127.0.0.1:", g->daemon().http_port(), "/"), "");
  ASSERT_TRUE(page.ok) << page.output;
  EXPECT_EQ(page.http_status, 200);
  // The gRPC port still refuses plain clients.
  EXPECT_EQ(GetStatusOver(g->daemon().grpc_port(),
                          ::grpc::InsecureChannelCredentials())
                .error_code(),
            ::grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace amqpgw::testing
