// amqpgwd: RabbitMQ behind gRPC. Parses the flags (server/daemon/flags.h),
// loads the configuration once, and runs the daemon.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "server/daemon/config.h"
#include "server/daemon/daemon.h"
#include "server/daemon/flags.h"

namespace {

using ::amqpgw::daemon::Config;

// The command line and the AMQPGW_* environment, as a loaded Config. SIGHUP
// calls it again: the flag files are read anew.
absl::StatusOr<std::shared_ptr<const Config>> Load(
    const std::vector<std::string>& args, bool* help, bool* version) {
  absl::StatusOr<amqpgw::daemon::CommandLine> line =
      amqpgw::daemon::ParseCommandLine(args,
                                       amqpgw::daemon::AmqpgwEnvironment());
  if (!line.ok()) return line.status();
  if (help != nullptr) *help = line->help;
  if (version != nullptr) *version = line->version;
  if (line->help || line->version) return nullptr;
  return Config::Load(std::move(line->options));
}

}  // namespace

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, so every absl::Mutex::Lock (gRPC's
  // locks included: grpc_core::Mutex is an absl::Mutex) runs the debug-mode
  // deadlock detector: a global graph of lock nodes under a global lock, and
  // a stack trace per acquisition. It cost a large share of the daemon's CPU
  // per call (bench/, perf: GraphCycles::GetId, UpdateStackTrace). Tests keep
  // it on; the daemon turns it off before any lock is taken.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const std::vector<std::string> args(argv + 1, argv + argc);
  bool help = false;
  bool version = false;
  absl::StatusOr<std::shared_ptr<const Config>> config =
      Load(args, &help, &version);
  if (!config.ok()) {
    std::fprintf(stderr, "amqpgwd: %s\n",
                 std::string(config.status().message()).c_str());
    return 2;
  }
  if (help) {
    std::fputs(amqpgw::daemon::UsageText().c_str(), stdout);
    return 0;
  }
  if (version) {
    std::printf("amqpgwd %s\n", AMQPGW_VERSION);
    return 0;
  }
  const amqpgw::daemon::Options& o = (*config)->options();
  amqpgw::daemon::InitLogging(o.log_level, o.log_format);
  return amqpgw::daemon::RunDaemon(
      *config, [args] { return Load(args, nullptr, nullptr); });
}
