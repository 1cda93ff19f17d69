// Launches the Python and Node.js callers (tests/polyglot/python,
// tests/polyglot/node) against an in-process daemon on the shared RabbitMQ
// node. Each script publishes, calls PublishBatch, streams with CLIENT acks
// and checks a typed header round trip; it exits 0 only when all held.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/subprocess.h"

namespace amqpgw::testing {
namespace {

using ::testing::HasSubstr;

class PolyglotTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    gateway_ = TestGateway::Start(BrokerNode::Shared().uri()).release();
    ASSERT_TRUE(gateway_->WaitReady());
  }
  static void TearDownTestSuite() { delete gateway_; }

  static ProcessResult RunScript(std::vector<std::string> argv) {
    Subprocess::Options o;
    o.argv = std::move(argv);
    for (const std::string& a :
         {std::string("--server"), gateway_->address(), std::string("--queue"),
          UniqueName("polyglot"), std::string("--proto"),
          std::string(AMQPGW_PROTO_DIR)}) {
      o.argv.push_back(a);
    }
    return RunProcess(o, absl::Seconds(120));
  }

  static TestGateway* gateway_;
};

TestGateway* PolyglotTest::gateway_ = nullptr;

TEST_F(PolyglotTest, Python) {
  ProcessResult r = RunScript({"/usr/bin/python3", AMQPGW_PYTHON_CLIENT});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("python: ok"));
}

TEST_F(PolyglotTest, Node) {
  ProcessResult r = RunScript({"node", AMQPGW_NODE_CLIENT});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("node: ok"));
}

}  // namespace
}  // namespace amqpgw::testing
