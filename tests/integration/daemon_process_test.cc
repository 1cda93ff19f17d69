// The amqpgwd binary as a process: flag errors, environment twins, a clean
// exit on SIGTERM, a second daemon on a port already taken, and SIGHUP
// (reload, never exit).
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "amqpgw/v1/gateway.grpc.pb.h"
#include "tests/support/broker_node.h"
#include "tests/support/child_process.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/grpc_web_client.h"

namespace amqpgw::testing {
namespace {

using ::testing::HasSubstr;

int NumberAfter(const std::string& text, const std::string& prefix) {
  size_t at = text.find(prefix);
  if (at == std::string::npos) return 0;
  size_t start = at + prefix.size();
  size_t end = text.find_first_not_of("0123456789", start);
  int n = 0;
  (void)absl::SimpleAtoi(text.substr(start, end - start), &n);
  return n;
}

int GrpcPort(const Child& c) { return NumberAfter(c.err, "(gRPC; port "); }
int HttpPort(const Child& c) {
  size_t at = c.err.find("grpc-web on ");
  return at == std::string::npos ? 0 : NumberAfter(c.err.substr(at), "(port ");
}

void Write(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::trunc) << content;
}

// GetStatus over gRPC with `token` ("" for none).
::grpc::Status GetStatus(int port, const std::string& token) {
  ::grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto stub = v1::Gateway::NewStub(
      ::grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                  ::grpc::InsecureChannelCredentials(), args));
  auto ctx = Ctx(absl::Seconds(5));
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  v1::GetStatusResponse r;
  return stub->GetStatus(ctx.get(), v1::GetStatusRequest(), &r);
}

TEST(DaemonProcessTest, BadFlagValuesAreRefusedNamingTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  } cases[] = {
      {{"--broker=http://x"}, "--broker"},
      {{"--listen=nohostport"}, "--listen"},
      {{"--heartbeat=-5s"}, "--heartbeat"},
      {{"--confirm_window=0"}, "--confirm_window"},
      {{"--max_message_bytes=0"}, "--max_message_bytes"},
      {{"--log_level=loud"}, "--log_level"},
      {{"--http_listen=nohostport"}, "--http_listen"},
      {{"--cors_origins=https://ok.example,ftp://x"}, "--cors_origins"},
      {{"--cors_origins=https://app.example/path"}, "--cors_origins"},
      {{"--web_root=/nonexistent/folder"}, "--web_root"},
      {{"--http_max_connections=1"}, "--http_max_connections"},
  };
  for (const Case& c : cases) {
    Child child = Child::Spawn(c.args);
    int code = child.Wait(absl::Seconds(10));
    EXPECT_EQ(code, 2) << child.err;
    EXPECT_THAT(child.err, HasSubstr(c.expect));
  }
  Child unparsable = Child::Spawn({"--heartbeat=soon"});
  EXPECT_NE(unparsable.Wait(absl::Seconds(10)), 0);
  EXPECT_THAT(unparsable.err, HasSubstr("heartbeat"));
}

TEST(DaemonProcessTest, EnvironmentTwinIsReadAndChecked) {
  Child child = Child::Spawn({}, {"AMQPGW_CONFIRM_WINDOW=-1"});
  EXPECT_EQ(child.Wait(absl::Seconds(10)), 2);
  EXPECT_THAT(child.err, HasSubstr("--confirm_window"));
}

TEST(DaemonProcessTest, SigtermShutsDownCleanly) {
  BrokerNode node = BrokerNode::Shared();
  Child child =
      Child::Spawn({"--listen=127.0.0.1:0", "--http_listen=127.0.0.1:0",
                    "--shutdown_grace=2s"},
                   {"AMQPGW_BROKER=" + node.uri()});
  ASSERT_TRUE(child.ReadUntil("session: READY", absl::Seconds(30)))
      << child.err;
  // The password never appears in the logs.
  EXPECT_THAT(child.err, ::testing::Not(HasSubstr("guest:guest")));
  kill(child.pid, SIGTERM);
  EXPECT_EQ(child.Wait(absl::Seconds(30)), 0) << child.err;
  EXPECT_THAT(child.err, HasSubstr("stopped"));
}

TEST(DaemonProcessTest, ASecondDaemonOnATakenPortRefusesToStart) {
  Child first =
      Child::Spawn({"--listen=127.0.0.1:0", "--http_listen=127.0.0.1:0",
                    "--connect_on_start=false"});
  ASSERT_TRUE(first.ReadUntil("grpc-web on", absl::Seconds(30))) << first.err;
  const int grpc_port = GrpcPort(first);
  const int http_port = HttpPort(first);
  ASSERT_GT(grpc_port, 0);
  ASSERT_GT(http_port, 0);
  // The gRPC port: without SO_REUSEPORT the second one cannot bind it.
  Child second =
      Child::Spawn({absl::StrCat("--listen=127.0.0.1:", grpc_port),
                    "--http_listen=127.0.0.1:0", "--connect_on_start=false"});
  EXPECT_EQ(second.Wait(absl::Seconds(30)), 1) << second.err;
  EXPECT_THAT(second.err,
              HasSubstr(absl::StrCat("--listen: cannot listen on 127.0.0.1:",
                                     grpc_port, " (address in use")));
  // The HTTP port, likewise.
  Child third =
      Child::Spawn({"--listen=127.0.0.1:0",
                    absl::StrCat("--http_listen=127.0.0.1:", http_port),
                    "--connect_on_start=false"});
  EXPECT_EQ(third.Wait(absl::Seconds(30)), 1) << third.err;
  EXPECT_THAT(third.err, HasSubstr("--http_listen: cannot listen on"));
  // The first one alone answers on its ports, and was never disturbed.
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(GetStatus(grpc_port, "").ok());
  }
  EXPECT_EQ(first.Stop(), 0) << first.err;
}

TEST(DaemonProcessTest, SighupReloadsTokensAndLogLevelAndKeepsStreams) {
  BrokerNode node = BrokerNode::Shared();
  const std::string dir = AMQPGW_TEST_TMP_DIR;
  const std::string tokens = absl::StrCat(dir, "/", UniqueName("tokens"));
  const std::string flags = absl::StrCat(dir, "/", UniqueName("flags"));
  const std::string admin = "admin-token-0123456789";
  const std::string added = "added-token-0123456789";
  Write(tokens, admin + " admin\n");
  Write(flags, "--log_level=info\n--auth_tokens=" + tokens + "\n");
  Child child =
      Child::Spawn({"--flagfile=" + flags, "--listen=127.0.0.1:0",
                    "--http_listen=127.0.0.1:0", "--shutdown_grace=2s"},
                   {"AMQPGW_BROKER=" + node.uri()});
  ASSERT_TRUE(child.ReadUntil("session: READY", absl::Seconds(30)))
      << child.err;
  const int grpc_port = GrpcPort(child);
  const int http_port = HttpPort(child);
  ASSERT_TRUE(GetStatus(grpc_port, admin).ok());
  EXPECT_EQ(GetStatus(grpc_port, added).error_code(),
            ::grpc::StatusCode::UNAUTHENTICATED);

  // A grpc-web stream open across the reloads.
  const std::string queue = UniqueName("sighup");
  auto stub = v1::Gateway::NewStub(
      ::grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc_port),
                            ::grpc::InsecureChannelCredentials()));
  auto with_token = [&](const std::string& token) {
    auto ctx = Ctx();
    ctx->AddMetadata("authorization", "Bearer " + token);
    return ctx;
  };
  v1::DeclareQueueRequest declare;
  declare.set_name(queue);
  v1::DeclareQueueResponse declared;
  ASSERT_TRUE(
      stub->DeclareQueue(with_token(admin).get(), declare, &declared).ok());
  auto publish = [&](const std::string& body) {
    v1::PublishRequest p;
    p.set_routing_key(queue);
    p.set_body(body);
    v1::PublishResponse r;
    return stub->Publish(with_token(admin).get(), p, &r).ok();
  };
  v1::StreamMessagesRequest stream_request;
  stream_request.set_queue(queue);
  GrpcWebCallOptions web;
  web.headers = {{"Authorization", "Bearer " + admin}};
  GrpcWebStream stream(http_port, "/amqpgw.v1.Gateway/StreamMessages",
                       stream_request.SerializeAsString(), web);
  auto deliveries = [&](const GrpcWebReply& r) {
    int n = 0;
    for (const std::string& m : r.messages) {
      v1::StreamMessagesResponse e;
      if (e.ParseFromString(m) && e.has_delivery()) ++n;
    }
    return n;
  };
  ASSERT_TRUE(publish("before"));
  ASSERT_TRUE(stream.WaitFor(
      [&](const GrpcWebReply& r) { return deliveries(r) == 1; }));

  // 1. New token and a new log level: both applied, the process lives.
  Write(tokens, admin + " admin\n" + added + " publish\n");
  Write(flags, "--log_level=debug\n--auth_tokens=" + tokens + "\n");
  kill(child.pid, SIGHUP);
  ASSERT_TRUE(child.ReadUntil("reload: --auth_tokens: 2 tokens from",
                              absl::Seconds(10)))
      << child.err;
  EXPECT_THAT(child.err, HasSubstr("reload: --log_level debug (was info)"));
  EXPECT_TRUE(GetStatus(grpc_port, added).ok());
  // Debug lines now appear (the HTTP port logs each request at debug).
  EXPECT_TRUE(HttpGet(http_port, "/").status == 200);
  EXPECT_TRUE(child.ReadUntil("] http 127.0.0.1:", absl::Seconds(10)));

  // 2. A broken token file: refused, the tokens in force stay.
  Write(tokens, "short admin\n");
  kill(child.pid, SIGHUP);
  ASSERT_TRUE(
      child.ReadUntil("the configuration in force stays", absl::Seconds(10)))
      << child.err;
  EXPECT_THAT(child.err, HasSubstr("reload failed: --auth_tokens:"));
  EXPECT_TRUE(GetStatus(grpc_port, added).ok());

  // 3. A flag that cannot change while running: said so.
  Write(tokens, admin + " admin\n" + added + " publish\n");
  Write(flags, "--log_level=debug\n--auth_tokens=" + tokens +
                   "\n--confirm_window=7\n");
  kill(child.pid, SIGHUP);
  ASSERT_TRUE(child.ReadUntil("--confirm_window changed; that takes a restart",
                              absl::Seconds(10)))
      << child.err;

  // The stream lived through all three: it still delivers, no trailer.
  ASSERT_TRUE(publish("after"));
  EXPECT_TRUE(stream.WaitFor(
      [&](const GrpcWebReply& r) { return deliveries(r) == 2; }));
  EXPECT_FALSE(stream.Snapshot().has_trailer);
  EXPECT_EQ(child.Stop(), 0) << child.err;
  // SIGTERM ends the stream with a status in its trailer.
  EXPECT_TRUE(stream.WaitEnded(absl::Seconds(10)));
  EXPECT_TRUE(stream.Snapshot().has_trailer);
}

}  // namespace
}  // namespace amqpgw::testing
