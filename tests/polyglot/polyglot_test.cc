// Launches the Python and Node.js callers (tests/polyglot/python,
// tests/polyglot/node) against an in-process daemon on the shared RabbitMQ
// node. Each script publishes, calls PublishBatch, streams with CLIENT acks,
// checks a typed header round trip, uses PublishStream and consumes 500
// messages with Subscribe over two stops (each processed once, the summaries
// exact, the queue empty at the end); it exits 0 only when all held.
// NodeConnect runs the official Connect client for Node (connect_client.mjs)
// on the HTTP port, with code that @bufbuild/protoc-gen-es generates here
// with Debian's /usr/bin/protoc: the Connect protocol in JSON and binary,
// and grpc-web. The PublishStream, batches and Subscribe snippets of
// docs/clients.md must be the scripts' own, line for line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/subprocess.h"

namespace amqpgw::testing {
namespace {

using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The lines of the script at `path` between its "--- snippet: NAME
// (docs/clients.md) ---" and "--- end of snippet ---" comments, less the
// start marker's indentation. Empty when the markers are missing.
std::string Snippet(const std::string& path, const std::string& name) {
  const std::string start =
      absl::StrCat("--- snippet: ", name, " (docs/clients.md) ---");
  std::string out;
  size_t indent = std::string::npos;
  for (absl::string_view line : absl::StrSplit(ReadFile(path), '\n')) {
    if (indent == std::string::npos) {
      if (absl::StrContains(line, start)) {
        indent = line.find_first_not_of(' ');
      }
      continue;
    }
    if (absl::StrContains(line, "--- end of snippet ---")) return out;
    if (line.size() > indent)
      line.remove_prefix(indent);
    else
      line = "";
    absl::StrAppend(&out, line, "\n");
  }
  return "";
}

// docs/clients.md shows the snippet exactly as the script runs it.
void ExpectDocumented(const std::string& script, const std::string& name) {
  std::string snippet = Snippet(script, name);
  ASSERT_FALSE(snippet.empty()) << name << " snippet markers in " << script;
  EXPECT_THAT(ReadFile(absl::StrCat(AMQPGW_PROTO_DIR, "/../docs/clients.md")),
              HasSubstr(snippet))
      << "docs/clients.md differs from the " << name << " snippet of "
      << script;
}

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
  for (const char* name : {"batches", "PublishStream", "Subscribe"}) {
    ExpectDocumented(AMQPGW_PYTHON_CLIENT, name);
  }
}

TEST_F(PolyglotTest, NodeConnect) {
  // Generated code next to a node_modules link, so that its imports
  // (@bufbuild/protobuf) resolve.
  std::string gen = absl::StrCat(AMQPGW_TEST_TMP_DIR, "/", UniqueName("es"));
  ASSERT_TRUE(RunCommand(absl::StrCat("mkdir -p '", gen, "' && ln -s '",
                                      AMQPGW_NODE_DIR, "/node_modules' '", gen,
                                      "/node_modules'"))
                  .ok());
  Subprocess::Options protoc;
  protoc.argv = {"/usr/bin/protoc",
                 absl::StrCat("--plugin=protoc-gen-es=", AMQPGW_NODE_DIR,
                              "/node_modules/.bin/protoc-gen-es"),
                 "--es_out=" + gen,
                 "--es_opt=target=js,import_extension=js",
                 absl::StrCat("-I", AMQPGW_PROTO_DIR),
                 absl::StrCat(AMQPGW_PROTO_DIR, "/amqpgw/v1/gateway.proto"),
                 absl::StrCat(AMQPGW_PROTO_DIR, "/amqpgw/v1/options.proto")};
  ProcessResult generated = RunProcess(protoc, absl::Seconds(120));
  ASSERT_EQ(generated.exit_code, 0) << generated.err;

  const std::string base_url =
      absl::StrCat("http://127.0.0.1:", gateway_->daemon().http_port());
  for (const char* protocol : {"connect", "connect-binary", "grpcweb"}) {
    Subprocess::Options o;
    o.argv = {"node",       AMQPGW_NODE_CONNECT_CLIENT,
              "--base-url", base_url,
              "--queue",    UniqueName(absl::StrCat("connect-", protocol)),
              "--gen",      gen,
              "--protocol", protocol};
    ProcessResult r = RunProcess(o, absl::Seconds(120));
    EXPECT_EQ(r.exit_code, 0) << protocol << ": " << r.out << r.err;
    EXPECT_THAT(r.out,
                HasSubstr(absl::StrCat("connect client (", protocol, "): ok")));
  }
}

TEST_F(PolyglotTest, Node) {
  ProcessResult r = RunScript({"node", AMQPGW_NODE_CLIENT});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("node: ok"));
  for (const char* name : {"PublishStream", "Subscribe"}) {
    ExpectDocumented(AMQPGW_NODE_CLIENT, name);
  }
}

}  // namespace
}  // namespace amqpgw::testing
