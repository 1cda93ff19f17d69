// The subcommands of amqpgw: what each accepts, its help, and how it runs.
// The registry is static and immutable; each command runs on the main
// thread with the Client main() owns.
#ifndef AMQPGW_CLIENT_COMMANDS_H_
#define AMQPGW_CLIENT_COMMANDS_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "client/args.h"
#include "client/client.h"

namespace amqpgw::cli {

struct Command;
// Returns the process exit code (kExitOk, kExitRpcError, kExitUsage).
using RunFn = int (*)(const Command& command, const ParsedArgs& args,
                      Client& client);

struct Command {
  std::string name;      // "publish", "queue declare"
  std::string synopsis;  // positional arguments, e.g. "ROUTING_KEY [BODY]"
  std::string summary;   // one line for `amqpgw help`
  std::string description;
  std::vector<FlagSpec> flags;
  std::vector<std::string> examples;
  size_t min_args = 0;
  size_t max_args = 0;  // SIZE_MAX: any number
  RunFn run = nullptr;
};

// Every command, in the order `amqpgw help` lists them.
const std::vector<Command>& AllCommands();
// The command named by the first one or two of `words` ("queue declare");
// `*used` says how many. nullptr when there is none.
const Command* FindCommand(const std::vector<std::string>& words, size_t* used);
// True for "queue", "exchange", "binding" and "consumer", whose subcommands
// are words of their own.
bool IsCommandGroup(absl::string_view word);

// Commands close to what was typed, for "did you mean ...?": `words` are
// the arguments from the (unknown) command word on, e.g. {"purge", "q"} or
// {"queue", "remove"}. Names such as "queue purge", closest first (at most
// three); empty when nothing is close.
std::vector<std::string> SuggestCommands(const std::vector<std::string>& words);
// The one line for an unknown command or subcommand: what was not found,
// the closest commands, and where the full list is.
std::string UnknownCommandLine(const std::vector<std::string>& words);

std::string MainHelp();
std::string CommandHelp(const Command& command);
std::string GroupHelp(absl::string_view group);

// Prints "amqpgw NAME: message" and the command's usage on stderr; returns
// kExitUsage.
int UsageError(const Command& command, absl::string_view message);

// `once` as the command runs it, or with --watch (WatchFlag()) again every
// 2 s until stdout closes: on a terminal each round redraws the screen,
// into a pipe it follows a "--- HH:MM:SS" line. RPC errors go to stderr and
// the watch goes on; usage errors end it.
int RunWatched(const Command& command, const ParsedArgs& args, Client& client,
               int (*once)(const Command&, const ParsedArgs&, Client&));
const FlagSpec& WatchFlag();

// Per-file command lists, assembled by AllCommands().
std::vector<Command> SessionCommands();   // connect, disconnect, status, health
std::vector<Command> TopologyCommands();  // queue ..., exchange ..., (un)bind
std::vector<Command> ListCommands();     // queue|exchange|binding|consumer list
std::vector<Command> PublishCommands();  // publish, publish-batch
std::vector<Command> ConsumeCommands();  // consume, ack
std::vector<Command> GetCommands();      // get

}  // namespace amqpgw::cli

#endif  // AMQPGW_CLIENT_COMMANDS_H_
