#include "tests/support/broker_node.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace amqpgw::testing {
namespace {

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string Script() { return AMQPGW_NODE_SCRIPT; }

}  // namespace

absl::StatusOr<std::string> RunCommand(const std::string& command) {
  std::string full = command + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  if (p == nullptr) return absl::InternalError("popen failed");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int rc = pclose(p);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("`", command, "` failed (", rc, "): ", out));
  }
  return out;
}

std::string UniqueName(const std::string& prefix) {
  static thread_local std::mt19937_64 gen{std::random_device{}()};
  return absl::StrCat(prefix, "-", gen() % 1000000000);
}

BrokerNode BrokerNode::Shared() {
  const char* dir = std::getenv("AMQPGW_TEST_NODE_DIR");
  BrokerNode node;
  node.dir_ = dir != nullptr ? dir : AMQPGW_TEST_NODE_DIR;
  absl::Status s = node.Load();
  if (!s.ok()) {
    std::fprintf(stderr, "no shared RabbitMQ node (run through ctest): %s\n",
                 std::string(s.message()).c_str());
    std::abort();
  }
  return node;
}

absl::StatusOr<BrokerNode> BrokerNode::StartPrivate(
    const std::string& name, const std::string& extra_conf, bool management) {
  BrokerNode node;
  node.dir_ = absl::StrCat(AMQPGW_TEST_TMP_DIR, "/", UniqueName(name));
  if (!extra_conf.empty()) {
    node.env_ = absl::StrCat("RABBITMQ_EXTRA_CONF=", Quote(extra_conf), " ");
  }
  if (!management) absl::StrAppend(&node.env_, "AMQPGW_NODE_MANAGEMENT=0 ");
  absl::Status s = node.Start();
  if (!s.ok()) return s;
  return node;
}

absl::StatusOr<std::vector<BrokerNode>> BrokerNode::StartCluster(
    const std::string& name, int n, const std::string& extra_conf) {
  std::string cookie = UniqueName("cookie");
  std::vector<BrokerNode> nodes(n);
  for (int i = 0; i < n; ++i) {
    nodes[i].dir_ = absl::StrCat(AMQPGW_TEST_TMP_DIR, "/", UniqueName(name));
    nodes[i].env_ = absl::StrCat("AMQPGW_NODE_COOKIE=", cookie, " ");
    if (!extra_conf.empty()) {
      absl::StrAppend(&nodes[i].env_, "RABBITMQ_EXTRA_CONF=", Quote(extra_conf),
                      " ");
    }
    absl::Status s = nodes[i].Start();
    if (!s.ok()) return s;
  }
  for (int i = 1; i < n; ++i) {
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"stop_app"},
             {"join_cluster", nodes[0].node_name()},
             {"start_app"}}) {
      auto out = nodes[i].Ctl(args);
      if (!out.ok()) return out.status();
    }
  }
  auto out = nodes[0].Ctl({"await_online_nodes", absl::StrCat(n)});
  if (!out.ok()) return out.status();
  return nodes;
}

absl::Status BrokerNode::Load() {
  std::ifstream in(dir_ + "/node.env");
  if (!in) return absl::NotFoundError(dir_ + "/node.env");
  std::string line;
  while (std::getline(in, line)) {
    std::pair<std::string, std::string> kv =
        absl::StrSplit(line, absl::MaxSplits('=', 1));
    if (kv.first == "URI") uri_ = kv.second;
    if (kv.first == "NODE") node_name_ = kv.second;
    if (kv.first == "MGMT_URL") management_url_ = kv.second;
    if (kv.first == "AMQP_PORT") (void)absl::SimpleAtoi(kv.second, &port_);
  }
  return absl::OkStatus();
}

absl::Status BrokerNode::Start() {
  absl::StatusOr<std::string> out =
      RunCommand(absl::StrCat(env_, Script(), " start ", Quote(dir_)));
  if (!out.ok()) return out.status();
  return Load();
}

absl::Status BrokerNode::Stop() {
  return RunCommand(absl::StrCat(Script(), " stop ", Quote(dir_))).status();
}

absl::Status BrokerNode::Kill() {
  return RunCommand(absl::StrCat(Script(), " kill ", Quote(dir_))).status();
}

absl::StatusOr<std::string> BrokerNode::Ctl(
    const std::vector<std::string>& args) const {
  std::vector<std::string> quoted;
  for (const auto& a : args) quoted.push_back(Quote(a));
  return RunCommand(absl::StrCat(env_, Script(), " ctl ", Quote(dir_), " ",
                                 absl::StrJoin(quoted, " ")));
}

absl::StatusOr<QueueCounts> BrokerNode::Counts(const std::string& queue) const {
  absl::StatusOr<std::string> out =
      Ctl({"list_queues", "-q", "--no-table-headers", "name", "messages_ready",
           "messages_unacknowledged"});
  if (!out.ok()) return out.status();
  QueueCounts c;
  for (absl::string_view line : absl::StrSplit(*out, '\n')) {
    std::vector<absl::string_view> f =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (f.size() != 3 || f[0] != queue) continue;
    if (!absl::SimpleAtoi(f[1], &c.ready) ||
        !absl::SimpleAtoi(f[2], &c.unacked)) {
      return absl::InternalError(absl::StrCat("list_queues: ", line));
    }
  }
  return c;
}

absl::StatusOr<std::string> BrokerNode::Plugins(
    const std::vector<std::string>& args) const {
  std::vector<std::string> quoted;
  for (const auto& a : args) quoted.push_back(Quote(a));
  return RunCommand(absl::StrCat(env_, Script(), " plugins ", Quote(dir_), " ",
                                 absl::StrJoin(quoted, " ")));
}

}  // namespace amqpgw::testing
