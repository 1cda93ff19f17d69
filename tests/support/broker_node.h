// RabbitMQ nodes for tests, through tests/support/rabbitmq-node.sh.
#ifndef AMQPGW_TESTS_SUPPORT_BROKER_NODE_H_
#define AMQPGW_TESTS_SUPPORT_BROKER_NODE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace amqpgw::testing {

// A queue's messages as the broker itself counts them (rabbitmqctl
// list_queues, no statistics lag); -1 for a queue it does not list.
struct QueueCounts {
  int64_t ready = -1;
  int64_t unacked = -1;
};

class BrokerNode {
 public:
  // The node ctest's `rabbitmq` fixture started for all integration tests
  // (AMQPGW_TEST_NODE_DIR). Do not stop it: use a private node for that.
  static BrokerNode Shared();
  // Starts a node of the test's own in a fresh folder under the build tree.
  // `extra_conf` lines are added to its rabbitmq.conf. With `management`
  // false the node runs without the management plugin (management_url()
  // then points at a port nothing listens on).
  static absl::StatusOr<BrokerNode> StartPrivate(
      const std::string& name, const std::string& extra_conf = "",
      bool management = true);
  // Starts `n` nodes and clusters them (the first is the seed).
  // `extra_conf` lines are added to every node's rabbitmq.conf.
  static absl::StatusOr<std::vector<BrokerNode>> StartCluster(
      const std::string& name, int n, const std::string& extra_conf = "");

  const std::string& dir() const { return dir_; }
  // amqp://guest:guest@127.0.0.1:PORT/
  const std::string& uri() const { return uri_; }
  int port() const { return port_; }
  // The management plugin's HTTP API: http://127.0.0.1:PORT/ (user guest,
  // password guest).
  const std::string& management_url() const { return management_url_; }

  // Same folder, same ports: durable queues and persistent messages survive.
  absl::Status Start();
  absl::Status Stop();
  absl::Status Kill();
  // rabbitmqctl on this node; returns its standard output.
  absl::StatusOr<std::string> Ctl(const std::vector<std::string>& args) const;
  // `queue`'s ready and unacknowledged messages, through Ctl.
  absl::StatusOr<QueueCounts> Counts(const std::string& queue) const;
  // rabbitmq-plugins on this node (e.g. {"enable", "rabbitmq_random_exchange"}:
  // enables it on the running node).
  absl::StatusOr<std::string> Plugins(
      const std::vector<std::string>& args) const;
  // The Erlang node name (name@localhost).
  const std::string& node_name() const { return node_name_; }

 private:
  absl::Status Load();
  std::string dir_;
  std::string uri_;
  std::string node_name_;
  std::string management_url_;
  std::string env_;  // extra environment for the node script
  int port_ = 0;
};

// Runs a shell command; returns its standard output, or an error with its
// output when it exits non-zero.
absl::StatusOr<std::string> RunCommand(const std::string& command);

// A name no other test uses: "<prefix>-<random>".
std::string UniqueName(const std::string& prefix);

}  // namespace amqpgw::testing

#endif  // AMQPGW_TESTS_SUPPORT_BROKER_NODE_H_
