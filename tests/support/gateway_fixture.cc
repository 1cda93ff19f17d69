#include "tests/support/gateway_fixture.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/daemon/daemon.h"
#include "tests/support/broker_node.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {

std::unique_ptr<::grpc::ClientContext> Ctx(absl::Duration timeout) {
  auto ctx = std::make_unique<::grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

std::unique_ptr<TestGateway> TestGateway::Start(
    const std::string& broker_uri,
    const std::function<void(daemon::Options&)>& tweak) {
  static std::once_flag logging;
  std::call_once(logging, [] {
    const char* level = std::getenv("AMQPGW_TEST_LOG_LEVEL");
    daemon::InitLogging(level != nullptr ? level : "warn");
  });
  daemon::Options o;
  o.listen = "127.0.0.1:0";
  o.http_listen =
      "127.0.0.1:0";  // never the fixed default: tests run in parallel
  o.broker = broker_uri;
  o.shutdown_grace = absl::Seconds(2);
  o.reconnect_max_delay = absl::Seconds(1);
  if (tweak) tweak(o);
  auto g = std::unique_ptr<TestGateway>(new TestGateway());
  absl::StatusOr<std::shared_ptr<const daemon::Config>> config =
      daemon::Config::Load(o);
  absl::Status s = config.status();
  if (s.ok()) {
    g->daemon_ = std::make_unique<daemon::Daemon>(*config);
    s = g->daemon_->Start();
  }
  if (!s.ok()) {
    std::fprintf(stderr, "cannot start the gateway: %s\n",
                 std::string(s.message()).c_str());
    std::abort();
  }
  g->channel_ =
      ::grpc::CreateChannel(g->address(), ::grpc::InsecureChannelCredentials());
  g->stub_ = v1::Gateway::NewStub(g->channel_);
  return g;
}

TestGateway::~TestGateway() { Shutdown(); }

void TestGateway::Shutdown() {
  if (daemon_ != nullptr) daemon_->Shutdown();
}

std::string TestGateway::address() const {
  return absl::StrCat("127.0.0.1:", daemon_->grpc_port());
}

std::unique_ptr<v1::Gateway::Stub> TestGateway::NewStub() const {
  ::grpc::ChannelArguments args;
  // A distinct channel: do not share the subchannel with other stubs.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return v1::Gateway::NewStub(::grpc::CreateCustomChannel(
      address(), ::grpc::InsecureChannelCredentials(), args));
}

bool TestGateway::WaitReady(absl::Duration timeout) {
  return WaitFor(
      [&] {
        v1::GetStatusResponse r;
        auto ctx = Ctx(absl::Seconds(5));
        return stub_->GetStatus(ctx.get(), v1::GetStatusRequest(), &r).ok() &&
               r.connection().state() == v1::ConnectionInfo::READY;
      },
      timeout, absl::Milliseconds(20));
}

std::string TestGateway::Health() {
  auto health = ::grpc::health::v1::Health::NewStub(channel_);
  ::grpc::health::v1::HealthCheckRequest req;
  ::grpc::health::v1::HealthCheckResponse resp;
  auto ctx = Ctx(absl::Seconds(5));
  ::grpc::Status s = health->Check(ctx.get(), req, &resp);
  if (!s.ok())
    return absl::StrCat("error ", s.error_code(), ": ", s.error_message());
  return resp.status() == ::grpc::health::v1::HealthCheckResponse::SERVING
             ? "SERVING"
             : "NOT_SERVING";
}

BrokerNode* SharedGatewayTest::node_ = nullptr;
TestGateway* SharedGatewayTest::gateway_ = nullptr;

void SharedGatewayTest::SetUpTestSuite() {
  node_ = new BrokerNode(BrokerNode::Shared());
  gateway_ = TestGateway::Start(node_->uri(), [](daemon::Options& o) {
               o.management_url = node_->management_url();
             }).release();
  ASSERT_TRUE(gateway_->WaitReady());
}

void SharedGatewayTest::TearDownTestSuite() {
  delete gateway_;
  gateway_ = nullptr;
  delete node_;
  node_ = nullptr;
}

v1::GetStatusResponse GatewayStatus(TestGateway& g) {
  v1::GetStatusResponse r;
  EXPECT_TRUE(g.stub().GetStatus(Ctx().get(), v1::GetStatusRequest(), &r).ok());
  return r;
}

absl::StatusOr<int> CloseConnectionsOf(const BrokerNode& node, TestGateway& g) {
  std::string instance = GatewayStatus(g).instance_id();
  auto listed = node.Ctl({"list_connections", "-q", "--no-table-headers", "pid",
                          "client_properties"});
  if (!listed.ok()) return listed.status();
  int closed = 0;
  for (absl::string_view line : absl::StrSplit(*listed, '\n')) {
    if (line.find(instance) == absl::string_view::npos) continue;
    std::string pid(line.substr(0, line.find('\t')));
    absl::StatusOr<std::string> c =
        node.Ctl({"close_connection", pid, "closed by the test"});
    if (!c.ok()) return c.status();
    ++closed;
  }
  return closed;
}

}  // namespace amqpgw::testing
