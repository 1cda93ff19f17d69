#include "client/commands.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace amqpgw::cli {
namespace {

constexpr size_t kWidth = 80;
constexpr size_t kFlagColumn = 26;

// Word-wraps `text` to kWidth; lines after the first start with `indent`
// spaces. `column` is where the first line starts.
std::string Wrap(absl::string_view text, size_t column, size_t indent) {
  std::string out;
  size_t col = column;
  bool first = true;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (!first && col + 1 + word.size() > kWidth) {
      out += "\n" + std::string(indent, ' ');
      col = indent;
    } else if (!first) {
      out += ' ';
      ++col;
    }
    out.append(word.data(), word.size());
    col += word.size();
    first = false;
  }
  return out;
}

std::string FlagLines(const std::vector<FlagSpec>& flags) {
  std::string out;
  for (const FlagSpec& f : flags) {
    std::string left = absl::StrCat("  --", f.name);
    if (!f.value_name.empty()) absl::StrAppend(&left, " ", f.value_name);
    if (f.repeated) absl::StrAppend(&left, " ...");
    if (left.size() + 2 > kFlagColumn) {
      absl::StrAppend(&left, "\n", std::string(kFlagColumn, ' '));
    } else {
      left.append(kFlagColumn - left.size(), ' ');
    }
    absl::StrAppend(&out, left, Wrap(f.help, kFlagColumn, kFlagColumn), "\n");
  }
  return out;
}

std::string UsageLine(const Command& c) {
  std::string out = absl::StrCat("amqpgw ", c.name);
  if (!c.synopsis.empty()) absl::StrAppend(&out, " ", c.synopsis);
  if (!c.flags.empty()) absl::StrAppend(&out, " [flags]");
  return out;
}

constexpr size_t kCommandColumn = 32;

std::string CommandLine(absl::string_view usage, absl::string_view summary) {
  std::string left = absl::StrCat("  ", usage);
  if (left.size() + 2 > kCommandColumn) {
    absl::StrAppend(&left, "\n", std::string(kCommandColumn, ' '));
  } else {
    left.append(kCommandColumn - left.size(), ' ');
  }
  return absl::StrCat(left, Wrap(summary, kCommandColumn, kCommandColumn),
                      "\n");
}

std::string CommandList(absl::string_view group) {
  std::string out;
  for (const Command& c : AllCommands()) {
    if (!group.empty() && !absl::StartsWith(c.name, absl::StrCat(group, " "))) {
      continue;
    }
    std::string usage = c.name;
    if (!c.synopsis.empty()) absl::StrAppend(&usage, " ", c.synopsis);
    absl::StrAppend(&out, CommandLine(usage, c.summary));
  }
  return out;
}

// Edit distance with adjacent transpositions ("consmue" is 1 from
// "consume").
size_t Distance(absl::string_view a, absl::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1,
                                     std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] =
          std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// How far `typed` is from `name`: 0 for the same or a prefix of three
// characters or more, else the edit distance.
size_t Closeness(absl::string_view typed, absl::string_view name) {
  if (typed.size() >= 3 && absl::StartsWith(name, typed)) return 0;
  return Distance(typed, name);
}

}  // namespace

std::vector<std::string> SuggestCommands(
    const std::vector<std::string>& words) {
  if (words.empty()) return {};
  const bool in_group = IsCommandGroup(words[0]) && words.size() > 1;
  const std::string& typed = in_group ? words[1] : words[0];
  const std::string two =
      words.size() > 1 ? absl::StrCat(words[0], " ", words[1]) : "";
  // Up to a third of the word may be wrong.
  const size_t most = std::max<size_t>(1, typed.size() / 3);
  std::vector<std::pair<size_t, std::string>> found;
  for (const Command& c : AllCommands()) {
    std::vector<absl::string_view> parts = absl::StrSplit(c.name, ' ');
    if (in_group && (parts.size() != 2 || parts[0] != words[0])) continue;
    // "purge" finds "queue purge"; "queues declare" finds "queue declare".
    size_t score =
        std::min(Closeness(typed, c.name), Closeness(typed, parts.back()));
    if (!in_group && !two.empty()) {
      score = std::min(score, Distance(two, c.name));
    }
    if (score <= most) found.push_back({score, c.name});
  }
  std::stable_sort(
      found.begin(), found.end(),
      [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> out;
  for (const auto& [score, name] : found) {
    if (out.size() == 3 || score > found.front().first) break;
    out.push_back(name);
  }
  return out;
}

std::string UnknownCommandLine(const std::vector<std::string>& words) {
  const bool in_group = IsCommandGroup(words[0]) && words.size() > 1;
  std::string out = in_group
                        ? absl::StrCat("amqpgw ", words[0], ": no subcommand '",
                                       words[1], "'.")
                        : absl::StrCat("amqpgw: no command '", words[0], "'.");
  std::vector<std::string> similar = SuggestCommands(words);
  if (!similar.empty()) {
    absl::StrAppend(&out, " Did you mean ");
    for (size_t i = 0; i < similar.size(); ++i) {
      absl::StrAppend(&out,
                      i == 0                    ? ""
                      : i + 1 == similar.size() ? " or "
                                                : ", ",
                      "'amqpgw ", similar[i], "'");
    }
    absl::StrAppend(&out, "?");
  }
  absl::StrAppend(&out, in_group ? absl::StrCat(" Run 'amqpgw ", words[0],
                                                " --help' for its subcommands.")
                                 : " Run 'amqpgw help' for every command.");
  return out;
}

const std::vector<Command>& AllCommands() {
  static const auto* commands = [] {
    auto* all = new std::vector<Command>();
    for (auto part : {SessionCommands(), TopologyCommands(), ListCommands(),
                      PublishCommands(), ConsumeCommands(), GetCommands()}) {
      for (Command& c : part) all->push_back(std::move(c));
    }
    return all;
  }();
  return *commands;
}

bool IsCommandGroup(absl::string_view word) {
  return word == "queue" || word == "exchange" || word == "binding" ||
         word == "consumer";
}

const Command* FindCommand(const std::vector<std::string>& words,
                           size_t* used) {
  if (words.empty()) return nullptr;
  std::string one = words[0];
  std::string two = words.size() > 1 ? absl::StrCat(one, " ", words[1]) : "";
  for (const Command& c : AllCommands()) {
    if (!two.empty() && c.name == two) {
      *used = 2;
      return &c;
    }
  }
  if (IsCommandGroup(one)) return nullptr;
  for (const Command& c : AllCommands()) {
    if (c.name == one) {
      *used = 1;
      return &c;
    }
  }
  return nullptr;
}

std::string MainHelp() {
  return absl::StrCat(
      "amqpgw: the command-line client of amqpgwd (RabbitMQ behind gRPC).\n"
      "\n"
      "Usage: amqpgw [global flags] COMMAND [arguments] [flags]\n"
      "\n"
      "Commands:\n",
      CommandList(""),
      CommandLine("help [COMMAND]", "this help, or a command's"),
      "\n"
      "Global flags (before or after the command; '-' and '_' are the same "
      "in\nflag names, --name=value and --name value both work):\n",
      FlagLines(GlobalFlags()),
      "\n"
      "Exit codes: 0 success; 1 a gRPC error (its code name and message on "
      "stderr,\nwith a hint when the CLI knows a way out), or a queue or "
      "exchange to delete\nthat did not exist (unless --if-exists); 2 bad "
      "usage (the problem on stderr).\n"
      "\n"
      "Examples:\n"
      "  amqpgw queue declare orders\n"
      "  amqpgw publish orders 'hello' --header attempt:int=1\n"
      "  seq 1000 | amqpgw publish orders --lines\n"
      "  amqpgw consume orders --max 10 --json\n"
      "  amqpgw get orders --count 5\n"
      "  AMQPGW_SERVER=gw.example:50051 amqpgw status\n"
      "\n"
      "Run 'amqpgw COMMAND --help' for a command's flags and examples.\n");
}

std::string CommandHelp(const Command& c) {
  std::string out = absl::StrCat("Usage: ", UsageLine(c), "\n");
  for (absl::string_view paragraph : absl::StrSplit(c.description, "\n\n")) {
    absl::StrAppend(&out, "\n", Wrap(paragraph, 0, 0), "\n");
  }
  if (!c.flags.empty()) {
    absl::StrAppend(&out, "\nFlags:\n", FlagLines(c.flags));
  }
  absl::StrAppend(&out,
                  "\nGlobal flags: --server, --timeout, --json, --token, "
                  "--tls, --tls_ca,\n--tls_cert, --tls_key, "
                  "--tls_server_name (see 'amqpgw help').\n");
  if (!c.examples.empty()) {
    absl::StrAppend(&out, "\nExamples:\n");
    for (const std::string& e : c.examples)
      absl::StrAppend(&out, "  ", e, "\n");
  }
  return out;
}

std::string GroupHelp(absl::string_view group) {
  return absl::StrCat("Usage: amqpgw ", group,
                      " SUBCOMMAND [arguments] [flags]\n\n", "Subcommands:\n",
                      CommandList(group), "\nRun 'amqpgw ", group,
                      " SUBCOMMAND --help' for its flags and examples.\n");
}

int UsageError(const Command& command, absl::string_view message) {
  std::fprintf(stderr,
               "amqpgw %s: %s\n\nUsage: %s\nRun 'amqpgw %s --help' for "
               "details.\n",
               command.name.c_str(), std::string(message).c_str(),
               UsageLine(command).c_str(), command.name.c_str());
  return kExitUsage;
}

}  // namespace amqpgw::cli
