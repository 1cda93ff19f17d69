// The amqpgwd binary, operated: logs in text and JSON never show a broker
// password (nor do responses or metrics), --broker_file keeps it out of the
// process list and environment, and the new flags are checked at start-up.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "amqpgw/v1/gateway.grpc.pb.h"
#include "tests/support/broker_node.h"
#include "tests/support/child_process.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/http_client.h"

namespace amqpgw::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The number after `prefix` in the child's output (a port), or 0.
int NumberAfter(const std::string& text, const std::string& prefix) {
  size_t at = text.find(prefix);
  if (at == std::string::npos) return 0;
  size_t start = at + prefix.size();
  size_t end = text.find_first_not_of("0123456789", start);
  int n = 0;
  (void)absl::SimpleAtoi(text.substr(start, end - start), &n);
  return n;
}

std::string WriteFile(const std::string& name, const std::string& content) {
  std::string path = absl::StrCat(AMQPGW_TEST_TMP_DIR, "/", UniqueName(name));
  std::ofstream(path) << content;
  chmod(path.c_str(), 0600);
  return path;
}

std::string ReadProcFile(pid_t pid, const char* what) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/", what), std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A broker user of its own with a password no other test uses.
class OpsProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_ = BrokerNode::Shared();
    user_ = UniqueName("opsuser");
    password_ = UniqueName("S3cret-pw");
    wrong_password_ = UniqueName("Wr0ng-pw");
    ASSERT_TRUE(node_.Ctl({"add_user", user_, password_}).ok());
    ASSERT_TRUE(
        node_.Ctl({"set_permissions", "-p", "/", user_, ".*", ".*", ".*"})
            .ok());
  }
  void TearDown() override { (void)node_.Ctl({"delete_user", user_}); }

  std::string Uri(const std::string& password) const {
    return absl::StrCat("amqp://", user_, ":", password,
                        "@127.0.0.1:", node_.port(), "/");
  }

  void ExpectNoPassword(const std::string& text, const std::string& where) {
    EXPECT_THAT(text, Not(HasSubstr(password_))) << where;
    EXPECT_THAT(text, Not(HasSubstr(wrong_password_))) << where;
  }

  // Runs the daemon with a wrong password first and the right one second,
  // checks logs, GetStatus and /metrics, then stops it; returns the logs.
  std::string RunWithPasswords(const std::string& format) {
    Child child = Child::Spawn(
        {"--listen=127.0.0.1:0", "--http_listen=127.0.0.1:0",
         "--metrics_listen=127.0.0.1:0", "--log_level=debug",
         "--log_format=" + format, "--reconnect_initial_delay=10ms",
         "--shutdown_grace=1s",
         "--broker=" + Uri(wrong_password_) + "," + Uri(password_)});
    EXPECT_TRUE(child.ReadUntil("session: READY", absl::Seconds(30)))
        << child.err;
    // The refused login was logged (connection errors always are).
    EXPECT_THAT(child.err, HasSubstr("cannot connect"));

    int grpc_port = NumberAfter(child.err, "(gRPC; port ");
    EXPECT_GT(grpc_port, 0) << child.err;
    auto stub = v1::Gateway::NewStub(
        ::grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc_port),
                              ::grpc::InsecureChannelCredentials()));
    v1::GetStatusResponse status;
    EXPECT_TRUE(
        stub->GetStatus(Ctx().get(), v1::GetStatusRequest(), &status).ok());
    EXPECT_EQ(status.connection().state(), v1::ConnectionInfo::READY);
    ExpectNoPassword(status.DebugString(), "GetStatus");
    v1::ConnectResponse connect;
    EXPECT_TRUE(
        stub->Connect(Ctx().get(), v1::ConnectRequest(), &connect).ok());
    ExpectNoPassword(connect.DebugString(), "Connect");

    int metrics_port = NumberAfter(child.err, "metrics: http://127.0.0.1:");
    auto page = HttpGet(metrics_port, "/metrics");
    EXPECT_TRUE(page.ok()) << page.status();
    if (page.ok()) ExpectNoPassword(page->body, "/metrics");
    // The HTTP port (grpc-web, browser view) serves the same page.
    int http_port = NumberAfter(
        child.err, "browser view and grpc-web on http://127.0.0.1:");
    auto http_page = HttpGet(http_port, "/metrics");
    EXPECT_TRUE(http_page.ok()) << http_page.status();
    if (http_page.ok()) {
      EXPECT_THAT(http_page->body, HasSubstr("amqpgw_build_info"));
      ExpectNoPassword(http_page->body, "/metrics on the HTTP port");
    }

    EXPECT_EQ(child.Stop(), 0) << child.err;
    ExpectNoPassword(child.err, "logs");
    return child.err;
  }

  BrokerNode node_;
  std::string user_;
  std::string password_;
  std::string wrong_password_;
};

TEST_F(OpsProcessTest, TextLogsNeverShowThePassword) {
  std::string logs = RunWithPasswords("text");
  EXPECT_THAT(logs, HasSubstr(absl::StrCat("amqp://", user_, "@127.0.0.1:")));
  // Readable lines: "<timestamp> <level> [logger] message".
  std::regex line(
      R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d \S+ \[\w+\] .*)");
  for (absl::string_view l : absl::StrSplit(logs, '\n', absl::SkipEmpty())) {
    EXPECT_TRUE(std::regex_match(std::string(l), line)) << l;
  }
}

TEST_F(OpsProcessTest, JsonLogsAreOneObjectALineAndNeverShowThePassword) {
  std::string logs = RunWithPasswords("json");
  std::string path = WriteFile("json-logs", logs);
  // Every line parses as a JSON object with ts, level, logger, thread, msg.
  auto checked =
      RunCommand(absl::StrCat("/usr/bin/python3 -c '"
                              "import json, sys\n"
                              "n = 0\n"
                              "for line in open(sys.argv[1]):\n"
                              "    o = json.loads(line)\n"
                              "    assert set(o) == {\"ts\", \"level\", "
                              "\"logger\", \"thread\", \"msg\"}, o\n"
                              "    assert o[\"level\"] in (\"trace\", "
                              "\"debug\", \"info\", \"warning\", "
                              "\"error\", \"critical\"), o\n"
                              "    n += 1\n"
                              "print(n)' ",
                              path));
  ASSERT_TRUE(checked.ok()) << checked.status();
  int lines = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(*checked), &lines));
  EXPECT_GT(lines, 5);
  EXPECT_THAT(logs, HasSubstr("\"msg\":\"session: READY\""));
  EXPECT_THAT(logs, HasSubstr("\"level\":\"warning\""));  // the failed login
}

TEST_F(OpsProcessTest,
       BrokerFileKeepsThePasswordOutOfProcessListAndEnvironment) {
  std::string file = WriteFile(
      "broker-uri", absl::StrCat("# the broker\n", Uri(password_), "\n"));
  Child child =
      Child::Spawn({"--listen=127.0.0.1:0", "--http_listen=127.0.0.1:0",
                    "--broker_file=" + file, "--shutdown_grace=1s"});
  ASSERT_TRUE(child.ReadUntil("session: READY", absl::Seconds(30)))
      << child.err;
  std::string cmdline = ReadProcFile(child.pid, "cmdline");
  EXPECT_THAT(cmdline, HasSubstr("--broker_file="));
  ExpectNoPassword(cmdline, "cmdline");
  ExpectNoPassword(ReadProcFile(child.pid, "environ"), "environ");
  EXPECT_EQ(child.Stop(), 0) << child.err;
  ExpectNoPassword(child.err, "logs");
  // Loopback: no exposure warning.
  EXPECT_THAT(child.err, Not(HasSubstr("not loopback")));
}

TEST(OpsLogsTest, GrpcOwnErrorsAreLoggedInTheSameJsonFormat) {
  std::string dir = absl::StrCat(AMQPGW_TEST_TMP_DIR, "/", UniqueName("cert"));
  ASSERT_TRUE(
      RunCommand(
          absl::StrCat("mkdir -p ", dir,
                       " && openssl req -x509 -newkey ec "
                       "-pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
                       "-subj /CN=localhost -keyout ",
                       dir, "/key.pem -out ", dir, "/cert.pem"))
          .ok());
  Child child = Child::Spawn(
      {"--listen=127.0.0.1:0", "--http_listen=127.0.0.1:0",
       "--connect_on_start=false", "--log_format=json",
       "--tls_cert=" + dir + "/cert.pem", "--tls_key=" + dir + "/key.pem"});
  ASSERT_TRUE(child.ReadUntil("with TLS", absl::Seconds(30))) << child.err;
  int port = NumberAfter(child.err, "(gRPC; port ");
  // A plaintext client on the TLS port: gRPC itself logs the failed
  // handshake, through the same JSON lines.
  auto stub = v1::Gateway::NewStub(::grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", port), ::grpc::InsecureChannelCredentials()));
  v1::GetStatusResponse status;
  EXPECT_FALSE(stub->GetStatus(Ctx(absl::Seconds(5)).get(),
                               v1::GetStatusRequest(), &status)
                   .ok());
  EXPECT_TRUE(child.ReadUntil("\"logger\":\"grpc\"", absl::Seconds(10)))
      << child.err;
  EXPECT_EQ(child.Stop(), 0);
  for (absl::string_view line :
       absl::StrSplit(child.err, '\n', absl::SkipEmpty())) {
    EXPECT_TRUE(absl::StartsWith(line, "{\"ts\":\"") &&
                absl::EndsWith(line, "\"}"))
        << line;
  }
}

TEST(OpsFlagsTest, NewFlagsAreCheckedAtStartup) {
  std::string tokens =
      absl::StrCat(AMQPGW_TEST_TMP_DIR, "/", UniqueName("bad-tokens"));
  std::ofstream(tokens) << "leaky-secret-token-123456 superuser\n";
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  } cases[] = {
      {{"--log_format=xml"}, "--log_format"},
      {{"--metrics_listen=nohostport"}, "--metrics_listen"},
      {{"--otlp_endpoint=ftp://collector:4318"}, "--otlp_endpoint"},
      {{"--tls_cert=/etc/hostname"}, "--tls_key"},
      {{"--tls_client_ca=/etc/hostname"}, "--tls_client_ca"},
      {{"--tls_cert=/nonexistent.pem", "--tls_key=/nonexistent.key"},
       "--tls_cert"},
      {{"--broker_tls_key=/etc/hostname"}, "--broker_tls_cert"},
      {{"--auth_tokens=/nonexistent/tokens"}, "--auth_tokens"},
      {{"--auth_tokens=" + tokens}, "unknown role 'superuser'"},
      {{"--broker_file=/nonexistent/broker"}, "--broker_file"},
  };
  for (const Case& c : cases) {
    Child child = Child::Spawn(c.args);
    EXPECT_EQ(child.Wait(absl::Seconds(10)), 2) << child.err;
    EXPECT_THAT(child.err, HasSubstr(c.expect));
    EXPECT_THAT(child.err, Not(HasSubstr("leaky-secret")));
  }
  // Environment twins of the new flags are read too.
  Child env = Child::Spawn({}, {"AMQPGW_LOG_FORMAT=yaml"});
  EXPECT_EQ(env.Wait(absl::Seconds(10)), 2);
  EXPECT_THAT(env.err, HasSubstr("--log_format"));
}

}  // namespace
}  // namespace amqpgw::testing
