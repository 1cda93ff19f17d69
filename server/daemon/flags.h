// amqpgwd's flags, each defined once, in one table (flags.cc): its name, its
// help text, the Options field it sets (whose initializer is its default),
// the check of its value, and whether SIGHUP may change it. From the table
// come the command-line parser, the AMQPGW_<NAME> environment twins,
// --help, and ValidateOptions.
//
// Command line (as Abseil's flags read it): --name=value, --name value,
// -name=value; a bool flag alone is true, --noname is false; --flagfile=FILE
// (comma-separated files) reads one flag a line (# comments); --help;
// --version. The environment twins are read first, then the command line in
// order: the command line wins.
//
// Threads: pure functions (the table is built once, thread-safely).
#ifndef AMQPGW_SERVER_DAEMON_FLAGS_H_
#define AMQPGW_SERVER_DAEMON_FLAGS_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/daemon/options.h"

namespace amqpgw::daemon {

struct FlagDef {
  enum class Type { kString, kBool, kInt, kDuration };

  std::string name;
  std::string help;
  Type type = Type::kString;
  // Heading of the --help section the flag opens (empty: same section).
  std::string section;
  // SIGHUP applies a new value (else a change waits for a restart).
  bool reloadable = false;
  // Sets the field from text; the error says what is wanted (no flag name).
  std::function<absl::Status(absl::string_view text, Options& options)> parse;
  // The field as text (for --help and for reporting changes on SIGHUP).
  std::function<std::string(const Options& options)> print;
  // Checks the value in the whole configuration; the error says what is
  // allowed (no flag name). Runs in table order, after every flag is set.
  std::function<absl::Status(const Options& options)> check;

  std::string EnvName() const;  // "AMQPGW_" + NAME
};

// The table, in --help order.
const std::vector<FlagDef>& FlagTable();

// Every flag's check, in table order, then the rules across flags (pairs
// such as --tls_cert and --tls_key). INVALID_ARGUMENT "--name: what is
// wrong and what is allowed". Reads no file (Config::Load does).
absl::Status ValidateOptions(const Options& options);

struct CommandLine {
  Options options;
  bool help = false;     // --help / --helpfull / -h
  bool version = false;  // --version
  // The --flagfile files, in order (SIGHUP re-reads them).
  std::vector<std::string> flagfiles;
};

// Defaults, then `environment` (AMQPGW_<NAME> entries), then `args` (argv
// without argv[0]), --flagfile contents at their place. INVALID_ARGUMENT
// names the flag (or the variable, or the file and line). Values are set,
// not yet validated.
absl::StatusOr<CommandLine> ParseCommandLine(
    const std::vector<std::string>& args,
    const std::map<std::string, std::string>& environment);

// The process environment's AMQPGW_* entries.
std::map<std::string, std::string> AmqpgwEnvironment();

// --help: usage, then every flag with its default, environment twin and
// help text, by section.
std::string UsageText();

}  // namespace amqpgw::daemon

#endif  // AMQPGW_SERVER_DAEMON_FLAGS_H_
