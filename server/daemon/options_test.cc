// The flag table (flags.h) and the configuration it loads (config.h): every
// flag parses from the command line and from its environment twin, every
// bad value is refused naming its flag, --help lists every flag, and the
// files a configuration names are read when it loads.
#include "server/daemon/options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/daemon/config.h"
#include "server/daemon/flags.h"
#include "tests/support/test_pki.h"

namespace amqpgw::daemon {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

std::string TempDir() {
  char dir[] = "/tmp/amqpgw-options-XXXXXX";
  EXPECT_NE(mkdtemp(dir), nullptr);
  return dir;
}

std::string WriteFile(const std::string& dir, const std::string& name,
                      const std::string& content) {
  std::string path = dir + "/" + name;
  std::ofstream(path) << content;
  chmod(path.c_str(), 0600);
  return path;
}

absl::StatusOr<CommandLine> Parse(std::vector<std::string> args,
                                  std::map<std::string, std::string> env = {}) {
  return ParseCommandLine(args, env);
}

// A value each flag accepts other than its default, by type.
std::string SampleValue(const FlagDef& f) {
  switch (f.type) {
    case FlagDef::Type::kBool:
      return f.print(Options()) == "true" ? "false" : "true";
    case FlagDef::Type::kInt:
      return "7777";
    case FlagDef::Type::kDuration:
      return "42ms";
    case FlagDef::Type::kString:
      return "sample-value";
  }
  return "";
}

TEST(FlagTableTest, EveryFlagParsesFromTheCommandLineAndItsEnvironmentTwin) {
  std::set<std::string> names;
  for (const FlagDef& f : FlagTable()) {
    EXPECT_TRUE(names.insert(f.name).second) << "twice: " << f.name;
    EXPECT_FALSE(f.help.empty()) << f.name;
    EXPECT_EQ(f.EnvName(), "AMQPGW_" + absl::AsciiStrToUpper(f.name));
    const std::string value = SampleValue(f);
    auto by_flag = Parse({"--" + f.name + "=" + value});
    ASSERT_TRUE(by_flag.ok()) << f.name << ": " << by_flag.status();
    auto by_env = Parse({}, {{f.EnvName(), value}});
    ASSERT_TRUE(by_env.ok()) << f.name << ": " << by_env.status();
    EXPECT_EQ(f.print(by_flag->options), f.print(by_env->options)) << f.name;
    EXPECT_NE(f.print(by_flag->options), f.print(Options())) << f.name;
    if (f.type != FlagDef::Type::kBool) {
      // "--name value" too.
      auto spaced = Parse({"--" + f.name, value});
      ASSERT_TRUE(spaced.ok()) << f.name;
      EXPECT_EQ(f.print(spaced->options), f.print(by_flag->options));
    }
    // The command line wins over the environment.
    auto both = Parse({"--" + f.name + "=" + f.print(Options())},
                      {{f.EnvName(), value}});
    ASSERT_TRUE(both.ok()) << f.name;
    EXPECT_EQ(f.print(both->options), f.print(Options())) << f.name;
  }
  // The flags the daemon had before the table, and the new ones.
  for (const char* name :
       {"listen", "broker", "heartbeat", "max_pending_bytes", "log_level",
        "auth_tokens", "http_listen", "http_max_connections", "http_tls_cert",
        "http_tls_key", "http_tls_client_ca", "http_insecure",
        "http_header_timeout", "http_body_timeout", "management_url",
        "management_user", "management_password_file"}) {
    EXPECT_EQ(names.count(name), 1u) << name;
  }
}

TEST(FlagTableTest, HelpListsEveryFlagWithDefaultAndTwin) {
  std::string help = UsageText();
  for (const FlagDef& f : FlagTable()) {
    EXPECT_THAT(help, HasSubstr("  --" + f.name + " (")) << f.name;
    EXPECT_THAT(help, HasSubstr(f.EnvName())) << f.name;
  }
  EXPECT_THAT(help, HasSubstr("--listen (string; default \"127.0.0.1:50051\""));
  EXPECT_THAT(help, HasSubstr("--log_level (string; default \"info\"; "
                              "AMQPGW_LOG_LEVEL; reloadable)"));
  EXPECT_THAT(help, HasSubstr("--heartbeat (duration; default \"10s\""));
  EXPECT_TRUE(Parse({"--help"})->help);
  EXPECT_TRUE(Parse({"--version"})->version);
}

TEST(FlagTableTest, CommandLineForms) {
  auto bools = Parse({"--noconnect_on_start", "--http_insecure"});
  ASSERT_TRUE(bools.ok()) << bools.status();
  EXPECT_FALSE(bools->options.connect_on_start);
  EXPECT_TRUE(bools->options.http_insecure);
  EXPECT_TRUE(Parse({"-connect_on_start=false"}).ok());
  struct Bad {
    std::vector<std::string> args;
    std::map<std::string, std::string> env;
    const char* message;
  } cases[] = {
      {{"--nosuch=1"}, {}, "unknown flag --nosuch"},
      {{"positional"}, {}, "takes no arguments"},
      {{"--heartbeat=soon"}, {}, "--heartbeat: want a duration"},
      {{"--confirm_window=many"}, {}, "--confirm_window: want an integer"},
      {{"--connect_on_start=maybe"}, {}, "--connect_on_start: want true"},
      {{"--listen"}, {}, "--listen: missing value"},
      {{}, {{"AMQPGW_HEARTBEAT", "soon"}}, "AMQPGW_HEARTBEAT (--heartbeat)"},
      {{"--flagfile=/nonexistent/flags"}, {}, "--flagfile: cannot read"},
  };
  for (const Bad& c : cases) {
    auto r = Parse(c.args, c.env);
    ASSERT_FALSE(r.ok()) << c.message;
    EXPECT_THAT(r.status().message(), HasSubstr(c.message));
  }
  // Unknown AMQPGW_* variables are not flags (AMQPGW_TEST_NODE_DIR...).
  EXPECT_TRUE(Parse({}, {{"AMQPGW_TEST_NODE_DIR", "/x"}}).ok());
}

TEST(FlagTableTest, FlagFilesInPlaceAndInOrder) {
  std::string dir = TempDir();
  std::string file = WriteFile(dir, "flags",
                               "# the gateway\n"
                               "--log_level=debug\n"
                               "\n"
                               "  --confirm_window=64  \n"
                               "--noconnect_on_start\n");
  auto r =
      Parse({"--confirm_window=8", "--flagfile=" + file, "--log_level=warn"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->options.confirm_window, 64);  // the file came later
  EXPECT_EQ(r->options.log_level, "warn");   // the command line after it
  EXPECT_FALSE(r->options.connect_on_start);
  EXPECT_EQ(r->flagfiles, std::vector<std::string>{file});
  std::string bad = WriteFile(dir, "bad", "--log_level=info\nlisten=x\n");
  auto refused = Parse({"--flagfile", bad});
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr(bad + ":2:"));
}

TEST(OptionsTest, DefaultsAreValid) {
  Options o;
  EXPECT_TRUE(ValidateOptions(o).ok());
  auto c = Config::Load(o);
  ASSERT_TRUE(c.ok()) << c.status();
  const core::SessionOptions& s = (*c)->session();
  ASSERT_EQ(s.brokers.size(), 1u);
  EXPECT_EQ(s.brokers[0].HostPort(), "127.0.0.1:5672");
  EXPECT_THAT(s.instance_id, ::testing::EndsWith(":50051"));
  EXPECT_EQ(s.confirm_window, 1024u);
  EXPECT_EQ((*c)->http_tls(), nullptr);
  EXPECT_EQ((*c)->tokens(), nullptr);
}

TEST(OptionsTest, EachBadValueNamesItsFlag) {
  struct Case {
    std::function<void(Options&)> set;
    std::string flag;
  } cases[] = {
      {[](Options& o) { o.listen = "50051"; }, "--listen"},
      {[](Options& o) { o.listen = "h:70000"; }, "--listen"},
      {[](Options& o) { o.broker = "redis://x"; }, "--broker"},
      {[](Options& o) { o.broker = ""; }, "--broker"},
      {[](Options& o) { o.heartbeat = absl::Seconds(-1); }, "--heartbeat"},
      {[](Options& o) { o.connect_timeout = absl::ZeroDuration(); },
       "--connect_timeout"},
      {[](Options& o) { o.reconnect_max_delay = absl::Milliseconds(1); },
       "--reconnect_max_delay"},
      {[](Options& o) { o.max_message_bytes = 0; }, "--max_message_bytes"},
      {[](Options& o) { o.max_request_bytes = 10; }, "--max_request_bytes"},
      {[](Options& o) { o.confirm_window = 0; }, "--confirm_window"},
      {[](Options& o) { o.max_pending_bytes = 1; }, "--max_pending_bytes"},
      {[](Options& o) { o.publish_timeout = absl::ZeroDuration(); },
       "--publish_timeout"},
      {[](Options& o) { o.publisher_connections = 0; },
       "--publisher_connections"},
      {[](Options& o) { o.consumer_connections = 1000; },
       "--consumer_connections"},
      {[](Options& o) { o.consumer_read_pause = absl::Seconds(1); },
       "--consumer_read_pause"},
      {[](Options& o) { o.consumer_read_pause = absl::Microseconds(-1); },
       "--consumer_read_pause"},
      {[](Options& o) { o.instance_id = "a/b"; }, "--instance_id"},
      {[](Options& o) { o.log_level = "chatty"; }, "--log_level"},
      {[](Options& o) { o.log_format = "xml"; }, "--log_format"},
      {[](Options& o) { o.metrics_listen = "nohostport"; }, "--metrics_listen"},
      {[](Options& o) { o.otlp_endpoint = "ftp://x:1"; }, "--otlp_endpoint"},
      {[](Options& o) { o.http_listen = ":8080"; }, "--http_listen"},
      {[](Options& o) { o.cors_origins = "ftp://x"; }, "--cors_origins"},
      {[](Options& o) { o.web_root = "/nonexistent"; }, "--web_root"},
      {[](Options& o) { o.http_max_connections = 1; },
       "--http_max_connections"},
      {[](Options& o) { o.http_header_timeout = absl::ZeroDuration(); },
       "--http_header_timeout"},
      {[](Options& o) { o.http_body_timeout = absl::Hours(2); },
       "--http_body_timeout"},
      {[](Options& o) { o.tls_cert = "/x"; }, "--tls_key"},
      {[](Options& o) { o.tls_client_ca = "/x"; }, "--tls_client_ca"},
      {[](Options& o) { o.http_tls_key = "/x"; }, "--http_tls_cert"},
      {[](Options& o) { o.http_tls_client_ca = "/x"; }, "--http_tls_client_ca"},
      {[](Options& o) { o.broker_tls_key = "/x"; }, "--broker_tls_cert"},
      {[](Options& o) { o.management_url = "127.0.0.1:15672"; },
       "--management_url"},
      {[](Options& o) { o.management_url = "http://u:p@h:15672/"; },
       "--management_url"},
  };
  for (const Case& c : cases) {
    Options o;
    c.set(o);
    absl::Status s = ValidateOptions(o);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.flag;
    EXPECT_THAT(std::string(s.message()), StartsWith(c.flag + ":"));
    EXPECT_FALSE(Config::Load(o).ok()) << c.flag;
  }
}

TEST(OptionsTest, FilesAreReadWhenTheConfigLoadsAndNamedInErrors) {
  std::string dir = TempDir();
  struct Case {
    std::function<void(Options&)> set;
    std::string message;
  } cases[] = {
      {[](Options& o) { o.broker_file = "/nonexistent/b"; },
       "--broker_file: cannot read"},
      {[&](Options& o) {
         o.broker_file = WriteFile(dir, "b", "amqp://u:s3cret@h:99999/\n");
       },
       "port must be 1..65535"},
      {[](Options& o) { o.auth_tokens = "/nonexistent/t"; }, "--auth_tokens"},
      {[&](Options& o) {
         o.auth_tokens = WriteFile(dir, "t", "0123456789abcdef0123 root\n");
       },
       "unknown role 'root'"},
      {[](Options& o) {
         o.tls_cert = "/nonexistent/c";
         o.tls_key = "/nonexistent/k";
       },
       "--tls_cert: cannot read"},
      {[&](Options& o) {
         o.tls_cert = WriteFile(dir, "c", "not a certificate");
         o.tls_key = WriteFile(dir, "k", "not a key");
       },
       "--tls_cert: certificate: no PEM certificate"},
      {[](Options& o) { o.broker_tls_ca = "/nonexistent/ca"; },
       "--broker_tls_ca: cannot read"},
      {[](Options& o) { o.management_password_file = "/nonexistent/pw"; },
       "--management_password_file: cannot read"},
  };
  for (const Case& c : cases) {
    Options o;
    c.set(o);
    auto config = Config::Load(o);
    ASSERT_FALSE(config.ok()) << c.message;
    EXPECT_THAT(config.status().message(), HasSubstr(c.message));
    EXPECT_THAT(config.status().message(), Not(HasSubstr("s3cret")));
    EXPECT_THAT(config.status().message(), Not(HasSubstr("0123456789abcdef")));
  }
  Options o;
  o.broker = "amqp://u:secret@a:1/,amqps://b/";
  o.broker_file = WriteFile(dir, "brokers",
                            "# primary\namqp://u:p@10.0.0.2:5672/\n\n"
                            "  amqps://u:p@10.0.0.3/prod  \r\n");
  o.auth_tokens = WriteFile(dir, "tokens", "0123456789abcdef0123 admin\n");
  auto config = Config::Load(o);
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ((*config)->session().brokers.size(), 2u);
  EXPECT_EQ((*config)->session().brokers[1].HostPort(), "10.0.0.3:5671");
  ASSERT_NE((*config)->tokens(), nullptr);
  EXPECT_EQ((*config)->tokens()->size(), 1u);
}

TEST(OptionsTest, ManagementApiDefaultsToTheBrokersUserAndVhost) {
  std::string dir = TempDir();
  std::string ca = WriteFile(dir, "ca", "any readable file will do here");
  Options o;
  o.broker = "amqp://app:s3cret@a:5672/prod,amqp://other:x@b/";
  o.instance_id = "gw-1";
  o.broker_tls_ca = ca;
  auto config = Config::Load(o);
  ASSERT_TRUE(config.ok()) << config.status();
  const management::ManagementClient::Options& m = (*config)->management();
  EXPECT_EQ(m.url, "");  // derived once the session is up
  EXPECT_EQ(m.user, "app");
  EXPECT_EQ(m.password, "s3cret");
  EXPECT_EQ(m.vhost, "prod");
  EXPECT_EQ(m.tls_ca_file, ca);
  // The gateway's own connections, as the session names them.
  EXPECT_EQ(m.own_connection_prefix, "amqpgw gw-1 ");
  EXPECT_EQ(core::ConnectionName("gw-1"), "amqpgw gw-1");

  // Given: a user and a password file (its line ending dropped).
  o.management_url = "https://rabbit.example:15671/";
  o.management_user = "watcher";
  o.management_password_file = WriteFile(dir, "pw", "watch-pw\n");
  config = Config::Load(o);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ((*config)->management().url, "https://rabbit.example:15671/");
  EXPECT_EQ((*config)->management().user, "watcher");
  EXPECT_EQ((*config)->management().password, "watch-pw");
}

TEST(OptionsTest, TheHttpPortIsNeverLessProtectedThanTheGrpcPort) {
  testing::TestPki pki;
  ASSERT_TRUE(pki.Make(TempDir() + "/pki").ok());
  Options o;
  o.tls_cert = pki.path("server.pem");
  o.tls_key = pki.path("server.key");
  // HTTPS by default, with the gRPC port's certificate.
  auto tls = Config::Load(o);
  ASSERT_TRUE(tls.ok()) << tls.status();
  ASSERT_NE((*tls)->http_tls(), nullptr);
  EXPECT_FALSE((*tls)->http_tls()->requires_client_certificate());
  // Client certificates by default too.
  o.tls_client_ca = pki.path("ca.pem");
  auto mutual = Config::Load(o);
  ASSERT_TRUE(mutual.ok()) << mutual.status();
  EXPECT_TRUE((*mutual)->http_tls()->requires_client_certificate());
  // Less only when said so.
  o.http_insecure = true;
  auto insecure = Config::Load(o);
  ASSERT_TRUE(insecure.ok()) << insecure.status();
  EXPECT_EQ((*insecure)->http_tls(), nullptr);
  o.http_tls_cert = pki.path("server.pem");
  o.http_tls_key = pki.path("server.key");
  auto no_client_certs = Config::Load(o);
  ASSERT_TRUE(no_client_certs.ok()) << no_client_certs.status();
  ASSERT_NE((*no_client_certs)->http_tls(), nullptr);
  EXPECT_FALSE((*no_client_certs)->http_tls()->requires_client_certificate());
  // A key that is not the certificate's.
  Options wrong;
  wrong.http_tls_cert = pki.path("server.pem");
  wrong.http_tls_key = pki.path("client.key");
  auto mismatch = Config::Load(wrong);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_THAT(mismatch.status().message(),
              HasSubstr("--http_tls_key: private key: does not match"));
  // No HTTP port: nothing to check there.
  wrong.http_listen = "";
  EXPECT_TRUE(Config::Load(wrong).ok());
}

}  // namespace
}  // namespace amqpgw::daemon
