// Several amqpgwd processes behind a real HAProxy running
// docker/haproxy.cfg, for the multi-instance tests
// (tests/integration/balancer_test.cc) and whoever extends them: gateways
// are real processes (so one can be SIGKILLed), HAProxy is Debian's
// haproxy with the repository's configuration, its addresses substituted
// from the environment exactly as docker/compose.cluster.yaml does.
//
// Thread safety: every class here is used by one thread, the test's (it
// starts children with PR_SET_PDEATHSIG, tied to the starting thread).
#ifndef AMQPGW_TESTS_SUPPORT_GATEWAY_RIG_H_
#define AMQPGW_TESTS_SUPPORT_GATEWAY_RIG_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "amqpgw/v1/gateway.grpc.pb.h"

namespace amqpgw::testing {

// A free TCP port on 127.0.0.1 (bound, then released: good enough for a
// test machine; the kernel hands out ephemeral ports in turn).
int FreeLoopbackPort();

// A child process whose stdout and stderr go to a file (never a pipe that
// could fill up and stall it). The child gets SIGKILL when the thread that
// started it exits, so a crashed test leaves nothing running; the
// destructor SIGKILLs it too if it still runs.
class LoggedProcess {
 public:
  // `argv[0]` without a '/' is looked up in PATH. `env` entries
  // ("NAME=value") are added to the environment, after removing every
  // variable whose name starts with one of `unset_prefixes`.
  static absl::StatusOr<std::unique_ptr<LoggedProcess>> Start(
      const std::vector<std::string>& argv, const std::vector<std::string>& env,
      const std::vector<std::string>& unset_prefixes,
      const std::string& log_path);
  ~LoggedProcess();
  LoggedProcess(const LoggedProcess&) = delete;
  LoggedProcess& operator=(const LoggedProcess&) = delete;

  pid_t pid() const { return pid_; }
  // False once the process has exited (and was reaped).
  bool running();
  void Signal(int sig);
  // The exit code (128 + signal when killed by one); -1 when it did not
  // exit within `timeout` (it is then SIGKILLed and reaped).
  int Wait(absl::Duration timeout);
  // Its output so far.
  std::string Log() const;
  const std::string& log_path() const { return log_path_; }

 private:
  LoggedProcess() = default;
  bool Reap(bool block);

  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
  std::string log_path_;
};

// One amqpgwd process on free loopback ports (gRPC and HTTP).
class GatewayProcess {
 public:
  // Starts AMQPGWD_BINARY with --instance_id, --broker, --listen on
  // 127.0.0.1:`grpc_port` and --http_listen on 127.0.0.1:0, and `flags`;
  // logs to DIR/ID.log. Returns once it listens (its broker session may
  // still be connecting).
  static absl::StatusOr<std::unique_ptr<GatewayProcess>> Start(
      const std::string& instance_id, const std::string& brokers,
      const std::vector<std::string>& flags, const std::string& dir,
      int grpc_port = 0);

  const std::string& instance_id() const { return instance_id_; }
  int grpc_port() const { return grpc_port_; }
  int http_port() const { return http_port_; }
  // "127.0.0.1:<grpc port>", "127.0.0.1:<http port>".
  std::string grpc_address() const;
  std::string http_address() const;
  LoggedProcess& process() { return *process_; }
  bool running() { return process_->running(); }
  // SIGKILL, and reaped.
  void Kill();
  // SIGTERM; the exit code (-1: still running after `timeout`, killed).
  int Stop(absl::Duration timeout = absl::Seconds(30));
  // One sample of its /metrics page (HTTP port), e.g.
  // Metric("amqpgw_streams_active"); -1 when unreadable or absent.
  double Metric(const std::string& sample) const;

 private:
  std::string instance_id_;
  int grpc_port_ = 0;
  int http_port_ = 0;
  std::unique_ptr<LoggedProcess> process_;
};

// HAProxy with docker/haproxy.cfg on free loopback ports.
class Haproxy {
 public:
  // (gRPC address, HTTP address) of gateways 1..N, N = 1..3 (the config's
  // GATEWAYn_GRPC / GATEWAYn_HTTP). Returns once its status page answers.
  static absl::StatusOr<std::unique_ptr<Haproxy>> Start(
      const std::vector<std::pair<std::string, std::string>>& gateways,
      const std::string& dir);

  int grpc_port() const { return grpc_port_; }
  int http_port() const { return http_port_; }
  int stats_port() const { return stats_port_; }
  // "127.0.0.1:<gRPC frontend port>".
  std::string address() const;
  // HAProxy's view of each server of `backend` (its stats CSV): "gw1" ->
  // "UP", "DOWN", "UP 1/2" (going down), "MAINT", ...; empty when the
  // status page cannot be read.
  std::map<std::string, std::string> ServerStatus(
      const std::string& backend = "gateways_grpc") const;
  LoggedProcess& process() { return *process_; }

 private:
  int grpc_port_ = 0;
  int http_port_ = 0;
  int stats_port_ = 0;
  std::unique_ptr<LoggedProcess> process_;
};

// N gateways (1..3) behind HAProxy: the rig of the multi-instance tests.
class GatewayRig {
 public:
  struct Options {
    // One entry per gateway: its --broker (comma-separated URIs, tried in
    // order on failover).
    std::vector<std::string> brokers;
    // More amqpgwd flags, for every gateway.
    std::vector<std::string> flags;
    // Instance ids are "<id_prefix>1", "<id_prefix>2", ...: HAProxy's
    // server names are gw1, gw2, ... in the same order.
    std::string id_prefix = "gw";
    // Each gateway forwards Acks to the others (--advertise_address of its
    // own gRPC port, one --peer_secret_file for all).
    bool forward_acks = false;
  };
  static absl::StatusOr<std::unique_ptr<GatewayRig>> Start(
      const Options& options);
  // Start, then WaitAllUp(timeout): an error naming HAProxy's status of
  // each gateway when they are not all UP in time.
  static absl::StatusOr<std::unique_ptr<GatewayRig>> StartAllUp(
      const Options& options, absl::Duration timeout = absl::Seconds(60));
  // Three gateways on one broker, `broker_uri`, with `flags` (forwarding
  // Acks to each other when `forward_acks`): StartAllUp.
  static absl::StatusOr<std::unique_ptr<GatewayRig>> StartThree(
      const std::string& broker_uri, const std::vector<std::string>& flags,
      bool forward_acks = false);
  ~GatewayRig();

  int size() const { return static_cast<int>(gateways_.size()); }
  // 0-based: gateway(0) is HAProxy's gw1.
  GatewayProcess& gateway(int i) { return *gateways_[i]; }
  Haproxy& haproxy() { return *haproxy_; }
  const std::string& dir() const { return dir_; }
  // HAProxy's gRPC frontend.
  std::string address() const { return haproxy_->address(); }
  // A stub through HAProxy on a channel (an HTTP/2 connection) of its own.
  std::unique_ptr<v1::Gateway::Stub> NewStub() const;

  // HAProxy's status of gateway i's gRPC server ("UP", "DOWN", ...).
  std::string Status(int i) const;
  // Waits until HAProxy shows every gateway UP.
  bool WaitAllUp(absl::Duration timeout);
  // Waits until HAProxy shows gateway i with status `status`.
  bool WaitStatus(int i, const std::string& status, absl::Duration timeout);
  // SIGKILL gateway i (no drain: its calls in flight die with it).
  void KillGateway(int i);
  // The gateway whose instance id begins `subscription_id` (ids are
  // "<instance id>/<hex>"), or whose instance id it is; -1 if none.
  int GatewayOf(const std::string& id) const;

 private:
  std::string dir_;
  std::vector<std::unique_ptr<GatewayProcess>> gateways_;
  std::unique_ptr<Haproxy> haproxy_;
};

}  // namespace amqpgw::testing

#endif  // AMQPGW_TESTS_SUPPORT_GATEWAY_RIG_H_
