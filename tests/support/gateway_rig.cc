#include "tests/support/gateway_rig.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tests/support/broker_node.h"
#include "tests/support/http_client.h"
#include "tests/support/wait.h"

extern char** environ;

namespace amqpgw::testing {
namespace {

// The number after `marker` in `text` (0 when absent).
int NumberAfter(const std::string& text, const std::string& marker) {
  size_t at = text.find(marker);
  if (at == std::string::npos) return 0;
  int n = 0;
  for (size_t i = at + marker.size(); i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') break;
    n = n * 10 + (text[i] - '0');
  }
  return n;
}

std::string FindInPath(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  for (absl::string_view dir :
       absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  // Debian installs haproxy in /usr/sbin, which a test's PATH may lack.
  for (const char* dir : {"/usr/sbin", "/sbin", "/usr/local/sbin"}) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

}  // namespace

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// --- LoggedProcess ----------------------------------------------------------

absl::StatusOr<std::unique_ptr<LoggedProcess>> LoggedProcess::Start(
    const std::vector<std::string>& argv, const std::vector<std::string>& env,
    const std::vector<std::string>& unset_prefixes,
    const std::string& log_path) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  std::string binary = FindInPath(argv[0]);
  if (binary.empty()) {
    return absl::NotFoundError(
        absl::StrCat(argv[0], " not found (scripts/bootstrap.sh installs it)"));
  }
  // Everything the child needs is built before fork(): after it, only
  // async-signal-safe calls (the test process has many threads).
  std::vector<std::string> env_strings;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    absl::string_view entry(*e);
    bool drop = false;
    for (const std::string& prefix : unset_prefixes) {
      drop |= absl::StartsWith(entry, prefix);
    }
    for (const std::string& mine : env) {
      std::string name = mine.substr(0, mine.find('=') + 1);
      drop |= absl::StartsWith(entry, name);
    }
    if (!drop) env_strings.emplace_back(entry);
  }
  env_strings.insert(env_strings.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argvp;
  for (std::string& a : args) argvp.push_back(a.data());
  argvp.push_back(nullptr);

  int log_fd =
      open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::InternalError(absl::StrCat("cannot open ", log_path));
  }
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    // Signals the test blocked must not stay blocked in the child.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(binary.c_str(), argvp.data(), envp.data());
    _exit(127);
  }
  close(log_fd);
  if (null_fd >= 0) close(null_fd);
  if (pid < 0) return absl::InternalError("fork failed");
  auto p = std::unique_ptr<LoggedProcess>(new LoggedProcess());
  p->pid_ = pid;
  p->log_path_ = log_path;
  return p;
}

LoggedProcess::~LoggedProcess() {
  if (!Reap(false)) {
    kill(pid_, SIGKILL);
    Reap(true);
  }
}

bool LoggedProcess::Reap(bool block) {
  if (exited_ || pid_ <= 0) return true;
  int status = 0;
  pid_t r = waitpid(pid_, &status, block ? 0 : WNOHANG);
  if (r == pid_) {
    exited_ = true;
    status_ = status;
  }
  return exited_;
}

bool LoggedProcess::running() { return !Reap(false); }

void LoggedProcess::Signal(int sig) {
  if (running()) kill(pid_, sig);
}

int LoggedProcess::Wait(absl::Duration timeout) {
  bool done = WaitFor([&] { return Reap(false); }, timeout);
  if (!done) {
    kill(pid_, SIGKILL);
    Reap(true);
    return -1;
  }
  return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
}

std::string LoggedProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// --- GatewayProcess ---------------------------------------------------------

absl::StatusOr<std::unique_ptr<GatewayProcess>> GatewayProcess::Start(
    const std::string& instance_id, const std::string& brokers,
    const std::vector<std::string>& flags, const std::string& dir,
    int grpc_port) {
  std::vector<std::string> argv = {
      AMQPGWD_BINARY, "--instance_id=" + instance_id, "--broker=" + brokers,
      absl::StrCat("--listen=127.0.0.1:", grpc_port),
      "--http_listen=127.0.0.1:0"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  auto g = std::make_unique<GatewayProcess>();
  g->instance_id_ = instance_id;
  auto p = LoggedProcess::Start(argv, {}, {"AMQPGW_"},
                                absl::StrCat(dir, "/", instance_id, ".log"));
  if (!p.ok()) return p.status();
  g->process_ = *std::move(p);
  // Both lines are logged once the daemon listens on both ports.
  const std::string grpc_marker = "(gRPC; port ";
  const std::string http_marker = "browser view and grpc-web on ";
  bool listening = WaitFor(
      [&] {
        std::string log = g->process_->Log();
        size_t http = log.find(http_marker);
        return (log.find(grpc_marker) != std::string::npos &&
                http != std::string::npos &&
                log.find("(port ", http) != std::string::npos) ||
               !g->process_->running();
      },
      absl::Seconds(60));
  std::string log = g->process_->Log();
  if (!listening || !g->process_->running()) {
    return absl::UnavailableError(
        absl::StrCat("amqpgwd ", instance_id, " did not start: ", log));
  }
  g->grpc_port_ = NumberAfter(log, grpc_marker);
  g->http_port_ = NumberAfter(log.substr(log.find(http_marker)), "(port ");
  if (g->grpc_port_ == 0 || g->http_port_ == 0) {
    return absl::InternalError(
        absl::StrCat("no ports in amqpgwd ", instance_id, "'s log: ", log));
  }
  return g;
}

std::string GatewayProcess::grpc_address() const {
  return absl::StrCat("127.0.0.1:", grpc_port_);
}

std::string GatewayProcess::http_address() const {
  return absl::StrCat("127.0.0.1:", http_port_);
}

void GatewayProcess::Kill() {
  process_->Signal(SIGKILL);
  process_->Wait(absl::Seconds(30));
}

int GatewayProcess::Stop(absl::Duration timeout) {
  process_->Signal(SIGTERM);
  return process_->Wait(timeout);
}

double GatewayProcess::Metric(const std::string& sample) const {
  absl::StatusOr<HttpResponse> page = HttpGet(http_port_, "/metrics");
  if (!page.ok() || page->status != 200) return -1;
  return MetricValue(page->body, sample);
}

// --- Haproxy ----------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Haproxy>> Haproxy::Start(
    const std::vector<std::pair<std::string, std::string>>& gateways,
    const std::string& dir) {
  if (gateways.empty() || gateways.size() > 3) {
    return absl::InvalidArgumentError("docker/haproxy.cfg takes 1..3 gateways");
  }
  auto h = std::make_unique<Haproxy>();
  h->grpc_port_ = FreeLoopbackPort();
  h->http_port_ = FreeLoopbackPort();
  h->stats_port_ = FreeLoopbackPort();
  // The variables docker/haproxy.cfg reads (compose sets the same).
  std::vector<std::string> env = {
      absl::StrCat("HAPROXY_GRPC_BIND=127.0.0.1:", h->grpc_port_),
      absl::StrCat("HAPROXY_HTTP_BIND=127.0.0.1:", h->http_port_),
      absl::StrCat("HAPROXY_STATS_BIND=127.0.0.1:", h->stats_port_)};
  for (size_t i = 0; i < gateways.size(); ++i) {
    env.push_back(absl::StrCat("GATEWAY", i + 1, "_GRPC=", gateways[i].first));
    env.push_back(absl::StrCat("GATEWAY", i + 1, "_HTTP=", gateways[i].second));
  }
  auto p =
      LoggedProcess::Start({"haproxy", "-db", "-f", AMQPGW_HAPROXY_CFG}, env,
                           {"HAPROXY_", "GATEWAY"}, dir + "/haproxy.log");
  if (!p.ok()) return p.status();
  h->process_ = *std::move(p);
  bool up = WaitFor(
      [&] { return !h->process_->running() || !h->ServerStatus().empty(); },
      absl::Seconds(30), absl::Milliseconds(50));
  if (!up || !h->process_->running()) {
    return absl::UnavailableError(
        absl::StrCat("haproxy did not start: ", h->process_->Log()));
  }
  return h;
}

std::string Haproxy::address() const {
  return absl::StrCat("127.0.0.1:", grpc_port_);
}

std::map<std::string, std::string> Haproxy::ServerStatus(
    const std::string& backend) const {
  std::map<std::string, std::string> out;
  httplib::Client client("127.0.0.1", stats_port_);
  client.set_connection_timeout(std::chrono::seconds(2));
  client.set_read_timeout(std::chrono::seconds(5));
  // ";csv" must reach HAProxy as is, not percent-encoded.
  client.set_url_encode(false);
  httplib::Result page = client.Get("/stats;csv");
  if (!page || page->status != 200) return out;
  std::vector<std::string> lines = absl::StrSplit(page->body, '\n');
  if (lines.empty() || !absl::StartsWith(lines[0], "# ")) return out;
  std::vector<std::string> header = absl::StrSplit(lines[0].substr(2), ',');
  int px = -1, sv = -1, status = -1;
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == "pxname") px = static_cast<int>(i);
    if (header[i] == "svname") sv = static_cast<int>(i);
    if (header[i] == "status") status = static_cast<int>(i);
  }
  if (px < 0 || sv < 0 || status < 0) return out;
  for (size_t l = 1; l < lines.size(); ++l) {
    std::vector<std::string> f = absl::StrSplit(lines[l], ',');
    if (static_cast<int>(f.size()) <= status || f[px] != backend) continue;
    if (f[sv] == "FRONTEND" || f[sv] == "BACKEND") continue;
    out[f[sv]] = f[status];
  }
  return out;
}

// --- GatewayRig -------------------------------------------------------------

absl::StatusOr<std::unique_ptr<GatewayRig>> GatewayRig::Start(
    const Options& options) {
  if (options.brokers.empty() || options.brokers.size() > 3) {
    return absl::InvalidArgumentError("a rig has 1..3 gateways");
  }
  auto rig = std::make_unique<GatewayRig>();
  rig->dir_ = absl::StrCat(AMQPGW_TEST_TMP_DIR, "/", UniqueName("rig"));
  if (mkdir(AMQPGW_TEST_TMP_DIR, 0755) != 0 && errno != EEXIST) {
    return absl::InternalError("cannot create " AMQPGW_TEST_TMP_DIR);
  }
  if (mkdir(rig->dir_.c_str(), 0755) != 0) {
    return absl::InternalError(absl::StrCat("cannot create ", rig->dir_));
  }
  std::string secret_file = absl::StrCat(rig->dir_, "/peer.secret");
  if (options.forward_acks) {
    std::ofstream(secret_file) << UniqueName("secret-of-the-rig") << "\n";
    chmod(secret_file.c_str(), 0600);
  }
  std::vector<std::pair<std::string, std::string>> addresses;
  for (size_t i = 0; i < options.brokers.size(); ++i) {
    std::vector<std::string> flags = options.flags;
    int port = 0;
    if (options.forward_acks) {
      port = FreeLoopbackPort();
      flags.push_back(absl::StrCat("--advertise_address=127.0.0.1:", port));
      flags.push_back("--peer_secret_file=" + secret_file);
    }
    auto g = GatewayProcess::Start(absl::StrCat(options.id_prefix, i + 1),
                                   options.brokers[i], flags, rig->dir_, port);
    if (!g.ok()) return g.status();
    addresses.emplace_back((*g)->grpc_address(), (*g)->http_address());
    rig->gateways_.push_back(*std::move(g));
  }
  auto h = Haproxy::Start(addresses, rig->dir_);
  if (!h.ok()) return h.status();
  rig->haproxy_ = *std::move(h);
  return rig;
}

absl::StatusOr<std::unique_ptr<GatewayRig>> GatewayRig::StartAllUp(
    const Options& options, absl::Duration timeout) {
  auto rig = Start(options);
  if (!rig.ok()) return rig.status();
  if (!(*rig)->WaitAllUp(timeout)) {
    std::vector<std::string> states;
    for (int i = 0; i < (*rig)->size(); ++i) {
      states.push_back(absl::StrCat("gw", i + 1, " ", (*rig)->Status(i)));
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "HAProxy does not show every gateway UP after ",
        absl::FormatDuration(timeout), ": ", absl::StrJoin(states, ", ")));
  }
  return rig;
}

absl::StatusOr<std::unique_ptr<GatewayRig>> GatewayRig::StartThree(
    const std::string& broker_uri, const std::vector<std::string>& flags,
    bool forward_acks) {
  Options options{{broker_uri, broker_uri, broker_uri}, flags};
  options.forward_acks = forward_acks;
  return StartAllUp(options);
}

GatewayRig::~GatewayRig() {
  // HAProxy first, so that no call reaches a gateway being stopped.
  if (haproxy_ != nullptr) {
    haproxy_->process().Signal(SIGTERM);
    haproxy_->process().Wait(absl::Seconds(10));
  }
  for (auto& g : gateways_) g->process().Signal(SIGTERM);
  for (auto& g : gateways_) g->process().Wait(absl::Seconds(30));
}

std::unique_ptr<v1::Gateway::Stub> GatewayRig::NewStub() const {
  ::grpc::ChannelArguments args;
  // A connection of its own (no shared subchannel with other stubs).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return v1::Gateway::NewStub(::grpc::CreateCustomChannel(
      address(), ::grpc::InsecureChannelCredentials(), args));
}

std::string GatewayRig::Status(int i) const {
  std::map<std::string, std::string> s = haproxy_->ServerStatus();
  auto it = s.find(absl::StrCat("gw", i + 1));
  return it == s.end() ? "" : it->second;
}

bool GatewayRig::WaitAllUp(absl::Duration timeout) {
  return WaitFor(
      [&] {
        std::map<std::string, std::string> s = haproxy_->ServerStatus();
        for (int i = 0; i < size(); ++i) {
          if (s[absl::StrCat("gw", i + 1)] != "UP") return false;
        }
        return true;
      },
      timeout, absl::Milliseconds(100));
}

bool GatewayRig::WaitStatus(int i, const std::string& status,
                            absl::Duration timeout) {
  return WaitFor([&] { return Status(i) == status; }, timeout,
                 absl::Milliseconds(100));
}

void GatewayRig::KillGateway(int i) { gateways_[i]->Kill(); }

int GatewayRig::GatewayOf(const std::string& id) const {
  std::string instance = id.substr(0, id.find('/'));
  for (int i = 0; i < size(); ++i) {
    if (gateways_[i]->instance_id() == instance) return i;
  }
  return -1;
}

}  // namespace amqpgw::testing
