#include "server/daemon/operations.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "server/daemon/config.h"
#include "server/daemon/options.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"
#include "tests/support/test_pki.h"

namespace amqpgw::daemon {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::string TempFile(const std::string& content, mode_t mode = 0600) {
  char path[] = "/tmp/amqpgw-ops-XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  FILE* f = fdopen(fd, "w");
  fputs(content.c_str(), f);
  fclose(f);
  chmod(path, mode);
  return path;
}

// Captures what spdlog's default logger writes while it lives.
class LogCapture {
 public:
  LogCapture() {
    previous_ = spdlog::default_logger();
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    auto logger = std::make_shared<spdlog::logger>("capture", sink);
    logger->set_pattern("%l %v");
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

std::string Warnings(const Options& o) {
  LogCapture capture;
  absl::StatusOr<std::shared_ptr<const Config>> c = Config::Load(o);
  EXPECT_TRUE(c.ok()) << c.status();
  if (c.ok()) WarnAboutRisks(**c);
  return capture.text();
}

// Certificates made once for the whole test binary.
const testing::TestPki& Pki() {
  static testing::TestPki* pki = [] {
    auto* p = new testing::TestPki();
    char dir[] = "/tmp/amqpgw-ops-pki-XXXXXX";
    EXPECT_NE(mkdtemp(dir), nullptr);
    absl::Status made = p->Make(dir);
    EXPECT_TRUE(made.ok()) << made;
    return p;
  }();
  return *pki;
}

TEST(OperationsTest, LoopbackAddresses) {
  EXPECT_TRUE(IsLoopbackListen("127.0.0.1:50051"));
  EXPECT_TRUE(IsLoopbackListen("127.1.2.3:0"));
  EXPECT_TRUE(IsLoopbackListen("localhost:50051"));
  EXPECT_TRUE(IsLoopbackListen("[::1]:50051"));
  EXPECT_FALSE(IsLoopbackListen("0.0.0.0:50051"));
  EXPECT_FALSE(IsLoopbackListen("[::]:50051"));
  EXPECT_FALSE(IsLoopbackListen("10.1.2.3:50051"));
  EXPECT_FALSE(IsLoopbackListen("gateway.example:50051"));
}

TEST(OperationsTest, WarnsWhenListeningBeyondLoopbackWithoutTlsOrTokens) {
  Options o;
  o.listen = "127.0.0.1:50051";
  EXPECT_THAT(Warnings(o), IsEmpty());

  o.listen = "0.0.0.0:50051";
  std::string w = Warnings(o);
  EXPECT_THAT(w,
              HasSubstr("warning listening on 0.0.0.0:50051 (not loopback)"));
  EXPECT_THAT(w, HasSubstr("without TLS"));
  EXPECT_THAT(w, HasSubstr("caller authentication (--auth_tokens)"));

  o.tls_cert = Pki().path("server.pem");
  o.tls_key = Pki().path("server.key");
  w = Warnings(o);
  EXPECT_THAT(w, Not(HasSubstr("without TLS")));
  EXPECT_THAT(w, HasSubstr("without caller authentication"));

  o.auth_tokens = TempFile("0123456789abcdef0123 admin\n");
  EXPECT_THAT(Warnings(o), Not(HasSubstr("not loopback")));
}

TEST(OperationsTest, TheHttpPortWarnsAsTheGrpcPortDoes) {
  Options o;
  o.http_listen = "0.0.0.0:8080";
  std::string w = Warnings(o);
  EXPECT_THAT(w, HasSubstr("warning listening on 0.0.0.0:8080 (not loopback) "
                           "without TLS (--http_tls_cert, --http_tls_key) and "
                           "without caller authentication (--auth_tokens)"));
  // HTTPS by default once the gRPC port has TLS.
  o.tls_cert = Pki().path("server.pem");
  o.tls_key = Pki().path("server.key");
  o.auth_tokens = TempFile("0123456789abcdef0123 admin\n");
  EXPECT_THAT(Warnings(o), Not(HasSubstr("0.0.0.0:8080")));
  // Plain HTTP beside a TLS gRPC port only when asked, and said.
  o.http_insecure = true;
  w = Warnings(o);
  EXPECT_THAT(w, HasSubstr("--http_insecure: the HTTP port 0.0.0.0:8080 "
                           "serves every RPC over plain HTTP while the gRPC "
                           "port requires TLS"));
  EXPECT_THAT(w, HasSubstr("without TLS (--http_tls_cert, --http_tls_key):"));
  o.metrics_listen = "0.0.0.0:9090";
  EXPECT_THAT(Warnings(o), HasSubstr("--metrics_listen 0.0.0.0:9090 (not "
                                     "loopback) serves /metrics"));
}

TEST(OperationsTest, WarnsAboutFilesOthersCanRead) {
  Options o;
  o.broker_file = TempFile("amqp://u:p@127.0.0.1:5672/\n", 0644);
  EXPECT_THAT(Warnings(o), HasSubstr("--broker_file: '" + o.broker_file +
                                     "' is readable by other users"));
  chmod(o.broker_file.c_str(), 0600);
  EXPECT_THAT(Warnings(o), IsEmpty());
}

TEST(OperationsTest, BrokerFileReplacesBrokerAndIgnoresComments) {
  Options o;
  o.broker = "amqp://ignored@10.0.0.1/";
  o.broker_file = TempFile(
      "# primary\n"
      "amqp://user:s3cret@10.0.0.2:5672/\n"
      "\n"
      "  amqps://user:s3cret@10.0.0.3/prod  \r\n");
  absl::StatusOr<std::shared_ptr<const Config>> c = Config::Load(o);
  ASSERT_TRUE(c.ok()) << c.status();
  const core::SessionOptions& s = (*c)->session();
  ASSERT_EQ(s.brokers.size(), 2u);
  EXPECT_EQ(s.brokers[0].HostPort(), "10.0.0.2:5672");
  EXPECT_EQ(s.brokers[1].HostPort(), "10.0.0.3:5671");
  EXPECT_TRUE(s.brokers[1].tls);

  // A bad URI in the file is refused without echoing it.
  o.broker_file = TempFile("amqp://user:s3cret@host:99999/\n");
  absl::Status bad = Config::Load(o).status();
  EXPECT_THAT(bad.message(), HasSubstr("--broker_file"));
  EXPECT_THAT(bad.message(), Not(HasSubstr("s3cret")));
}

TEST(OperationsTest, BrokerTlsFlagsReachTheSession) {
  Options o;
  o.broker = "amqps://u:p@broker.example/";
  o.broker_tls_ca = TempFile("ca");
  o.broker_tls_cert = TempFile("cert");
  o.broker_tls_key = TempFile("key");
  o.broker_tls_verify_hostname = false;
  absl::StatusOr<std::shared_ptr<const Config>> c = Config::Load(o);
  ASSERT_TRUE(c.ok()) << c.status();
  const core::SessionOptions& s = (*c)->session();
  EXPECT_EQ(s.open.tls.ca_file, o.broker_tls_ca);
  EXPECT_EQ(s.open.tls.cert_file, o.broker_tls_cert);
  EXPECT_EQ(s.open.tls.key_file, o.broker_tls_key);
  EXPECT_FALSE(s.open.tls.verify_hostname);
  EXPECT_TRUE(s.open.tls.verify_peer);
}

TEST(OperationsTest, ServerCredentials) {
  Options o;
  auto plain = Config::Load(o);
  ASSERT_TRUE(plain.ok());
  EXPECT_NE(MakeServerCredentials(**plain), nullptr);
  o.tls_cert = Pki().path("server.pem");
  o.tls_key = Pki().path("server.key");
  auto tls = Config::Load(o);
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_THAT((*tls)->grpc_cert_pem(), HasSubstr("BEGIN CERTIFICATE"));
  EXPECT_NE(MakeServerCredentials(**tls), nullptr);
}

TEST(OperationsTest, MetricsFamiliesRender) {
  core::SessionOptions so;
  so.brokers.push_back(*amqp::ParseBrokerUri("amqp://u:secretpw@127.0.0.1:1/"));
  so.connect_on_start = false;
  so.instance_id = "unit:1";
  core::Session session(so);
  metrics::RpcMetrics rpc({"/amqpgw.v1.Gateway/Publish"});
  metrics::Registry registry;
  RegisterDaemonMetrics(registry, &session, &rpc, nullptr);
  std::string page = registry.Render();
  EXPECT_THAT(page, HasSubstr("amqpgw_build_info{version=\"" AMQPGW_VERSION
                              "\",instance_id=\"unit:1\"} 1\n"));
  EXPECT_THAT(page,
              HasSubstr("amqpgw_session_state{state=\"DISCONNECTED\"} 1\n"));
  EXPECT_THAT(page, HasSubstr("amqpgw_session_state{state=\"READY\"} 0\n"));
  EXPECT_THAT(page, HasSubstr("amqpgw_trace_spans_dropped_total 0\n"));
  EXPECT_THAT(page, Not(HasSubstr("secretpw")));
}

}  // namespace
}  // namespace amqpgw::daemon
