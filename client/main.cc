// amqpgw: the command-line client of amqpgwd. Parses the global flags, finds
// the subcommand, parses its flags and runs it. See `amqpgw help`.
#include <grpc/support/log.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/args.h"
#include "client/client.h"
#include "client/commands.h"

namespace amqpgw::cli {
namespace {

std::vector<const FlagSpec*> Specs(const std::vector<FlagSpec>& a,
                                   const std::vector<FlagSpec>& b) {
  std::vector<const FlagSpec*> out;
  for (const FlagSpec& f : a) out.push_back(&f);
  for (const FlagSpec& f : b) out.push_back(&f);
  return out;
}

int MainUsageError(const std::string& message) {
  std::fprintf(stderr,
               "amqpgw: %s\nRun 'amqpgw help' for the commands and global "
               "flags.\n",
               message.c_str());
  return kExitUsage;
}

// One line, not the whole help: the closest commands and where the rest is.
int UnknownCommand(const std::vector<std::string>& words) {
  std::fprintf(stderr, "%s\n", UnknownCommandLine(words).c_str());
  return kExitUsage;
}

// `amqpgw help [WORDS...]`.
int Help(const std::vector<std::string>& words) {
  if (words.empty()) {
    std::fputs(MainHelp().c_str(), stdout);
    return kExitOk;
  }
  size_t used = 0;
  const Command* cmd = FindCommand(words, &used);
  if (cmd != nullptr && used == words.size()) {
    std::fputs(CommandHelp(*cmd).c_str(), stdout);
    return kExitOk;
  }
  if (words.size() == 1 && IsCommandGroup(words[0])) {
    std::fputs(GroupHelp(words[0]).c_str(), stdout);
    return kExitOk;
  }
  return UnknownCommand(words);
}

int Main(const std::vector<std::string>& args) {
  static const std::vector<FlagSpec> kNone;
  ParsedArgs global;
  size_t used = 0;
  absl::Status st = ParseArgs(args, Specs(GlobalFlags(), kNone), &global,
                              /*stop_at_positional=*/true, &used);
  if (!st.ok()) return MainUsageError(std::string(st.message()));
  std::vector<std::string> rest(args.begin() + used, args.end());
  if (global.GetBool("version")) {
    std::printf("amqpgw %s\n", AMQPGW_VERSION);
    return kExitOk;
  }
  if (rest.empty()) {
    if (global.help) return Help({});
    std::fprintf(stderr, "amqpgw: missing COMMAND\n\n%s", MainHelp().c_str());
    return kExitUsage;
  }
  if (rest[0] == "help") return Help({rest.begin() + 1, rest.end()});

  size_t words = 0;
  const Command* cmd = FindCommand(rest, &words);
  if (cmd == nullptr) {
    if (IsCommandGroup(rest[0])) {
      bool asked = rest.size() == 1 ? global.help
                                    : rest[1] == "--help" || rest[1] == "-h";
      std::string help = GroupHelp(rest[0]);
      if (asked) {
        std::fputs(help.c_str(), stdout);
        return kExitOk;
      }
      if (rest.size() > 1) return UnknownCommand(rest);
      std::fprintf(stderr, "amqpgw %s: missing SUBCOMMAND\n\n%s",
                   rest[0].c_str(), help.c_str());
      return kExitUsage;
    }
    return UnknownCommand(rest);
  }
  ParsedArgs parsed;
  st = ParseArgs({rest.begin() + words, rest.end()},
                 Specs(cmd->flags, GlobalFlags()), &parsed);
  if (!st.ok()) return UsageError(*cmd, st.message());
  if (parsed.help || global.help) {
    std::fputs(CommandHelp(*cmd).c_str(), stdout);
    return kExitOk;
  }
  global.Merge(parsed);
  const size_t n = global.positionals.size();
  if (n < cmd->min_args || n > cmd->max_args) {
    std::string expected = cmd->synopsis.empty()
                               ? "no arguments"
                               : absl::StrCat("arguments ", cmd->synopsis);
    return UsageError(*cmd, absl::StrCat("expected ", expected, ", got ", n));
  }
  absl::StatusOr<GlobalOptions> options = ResolveGlobalOptions(global);
  if (!options.ok()) return UsageError(*cmd, options.status().message());
  Client client(*std::move(options));
  return cmd->run(*cmd, global, client);
}

}  // namespace
}  // namespace amqpgw::cli

int main(int argc, char** argv) {
  // A closed stdout (amqpgw consume q | head) is an error to handle, not a
  // signal that kills.
  signal(SIGPIPE, SIG_IGN);
  // gRPC's own log lines (a failed TLS handshake, say) would repeat in its
  // words what the CLI reports in its own; GRPC_VERBOSITY=... shows them.
  if (std::getenv("GRPC_VERBOSITY") == nullptr) {
    gpr_set_log_function([](gpr_log_func_args*) {});
  }
  return amqpgw::cli::Main(std::vector<std::string>(argv + 1, argv + argc));
}
