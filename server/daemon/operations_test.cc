#include "server/daemon/operations.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "server/daemon/options.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

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
  absl::StatusOr<core::SessionOptions> s = ToSessionOptions(o);
  EXPECT_TRUE(s.ok()) << s.status();
  if (s.ok()) WarnAboutRisks(o, *s);
  return capture.text();
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

  o.tls_cert = TempFile("cert");
  o.tls_key = TempFile("key");
  w = Warnings(o);
  EXPECT_THAT(w, Not(HasSubstr("without TLS")));
  EXPECT_THAT(w, HasSubstr("without caller authentication"));

  o.auth_tokens = TempFile("0123456789abcdef0123 admin\n");
  EXPECT_THAT(Warnings(o), Not(HasSubstr("not loopback")));
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
  absl::StatusOr<std::string> uris = BrokerUris(o);
  ASSERT_TRUE(uris.ok());
  EXPECT_EQ(*uris,
            "amqp://user:s3cret@10.0.0.2:5672/,"
            "amqps://user:s3cret@10.0.0.3/prod");
  absl::StatusOr<core::SessionOptions> s = ToSessionOptions(o);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->brokers.size(), 2u);
  EXPECT_EQ(s->brokers[1].HostPort(), "10.0.0.3:5671");
  EXPECT_TRUE(s->brokers[1].tls);

  // A bad URI in the file is refused without echoing it.
  o.broker_file = TempFile("amqp://user:s3cret@host:99999/\n");
  absl::Status bad = ValidateOptions(o);
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
  absl::StatusOr<core::SessionOptions> s = ToSessionOptions(o);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->open.tls.ca_file, o.broker_tls_ca);
  EXPECT_EQ(s->open.tls.cert_file, o.broker_tls_cert);
  EXPECT_EQ(s->open.tls.key_file, o.broker_tls_key);
  EXPECT_FALSE(s->open.tls.verify_hostname);
  EXPECT_TRUE(s->open.tls.verify_peer);
}

TEST(OperationsTest, ServerCredentials) {
  Options o;
  auto insecure = MakeServerCredentials(o);
  ASSERT_TRUE(insecure.ok());
  o.tls_cert = "/nonexistent/cert.pem";
  o.tls_key = "/nonexistent/key.pem";
  auto missing = MakeServerCredentials(o);
  EXPECT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("--tls_cert"));
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
