// An amqpgwd running in the test process on a free port, with clients.
#ifndef AMQPGW_TESTS_SUPPORT_GATEWAY_FIXTURE_H_
#define AMQPGW_TESTS_SUPPORT_GATEWAY_FIXTURE_H_

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "amqpgw/v1/gateway.grpc.pb.h"
#include "server/daemon/daemon.h"

namespace amqpgw::testing {

class TestGateway {
 public:
  // Starts a daemon on 127.0.0.1:0 (gRPC and HTTP) for `broker_uri`;
  // `tweak` may change options first. Aborts the test binary when it cannot
  // start.
  static std::unique_ptr<TestGateway> Start(
      const std::string& broker_uri,
      const std::function<void(daemon::Options&)>& tweak = {});
  ~TestGateway();

  // "127.0.0.1:PORT".
  std::string address() const;
  daemon::Daemon& daemon() { return *daemon_; }
  // A stub on a shared channel.
  v1::Gateway::Stub& stub() { return *stub_; }
  // A stub on a channel of its own (its own HTTP/2 connection).
  std::unique_ptr<v1::Gateway::Stub> NewStub() const;
  // Waits until GetStatus says READY.
  bool WaitReady(absl::Duration timeout = absl::Seconds(30));
  // grpc.health.v1 status of "" ("SERVING", "NOT_SERVING", or an error).
  std::string Health();
  void Shutdown();

 private:
  std::unique_ptr<daemon::Daemon> daemon_;
  std::shared_ptr<::grpc::Channel> channel_;
  std::unique_ptr<v1::Gateway::Stub> stub_;
};

class BrokerNode;

// Base of test suites that share one gateway on the shared RabbitMQ node
// (ctest's `rabbitmq` fixture): both set up once per suite. Suites that need
// more in SetUpTestSuite call SharedGatewayTest::SetUpTestSuite() first.
class SharedGatewayTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();

  v1::Gateway::Stub& stub() { return gateway_->stub(); }

  static BrokerNode* node_;
  static TestGateway* gateway_;
};

// GetStatus on `g`'s shared stub (a failed call fails the test).
v1::GetStatusResponse GatewayStatus(TestGateway& g);

// Closes every connection of gateway `g` at `node` (those carrying its
// instance id) with rabbitmqctl close_connection, reason "closed by the
// test": how many, or why listing or closing one failed.
absl::StatusOr<int> CloseConnectionsOf(const BrokerNode& node, TestGateway& g);

// A ClientContext with a deadline `timeout` from now.
std::unique_ptr<::grpc::ClientContext> Ctx(
    absl::Duration timeout = absl::Seconds(30));

}  // namespace amqpgw::testing

#endif  // AMQPGW_TESTS_SUPPORT_GATEWAY_FIXTURE_H_
