// queue list, exchange list, binding list, consumer list: the broker as
// RabbitMQ's management API shows it, through the daemon's listing RPCs.
// And --watch (here for queue list; status uses it too).
#include <unistd.h>

#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/commands.h"
#include "client/values.h"

namespace amqpgw::cli {
namespace {

// Pages of this size are fetched until the last.
constexpr uint32_t kPageSize = 500;
// A bound on pages, so a broker that keeps growing cannot keep a listing
// going forever.
constexpr int kMaxPages = 1000;

const FlagSpec kFilterFlag = {
    "filter", "REGEX",
    "only names matching this regular expression (the broker's PCRE "
    "flavour, e.g. '^orders\\.')"};
const FlagSpec kPrefixFlag = {"prefix", "TEXT",
                              "only names that start with TEXT"};

std::string ExchangeName(const std::string& name) {
  return name.empty() ? "(default)" : name;
}

// "3 queues" or "3 of 12 queues".
std::string CountLine(uint64_t shown, uint64_t total, const char* what) {
  if (shown == total) return absl::StrCat(shown, " ", what, "\n");
  return absl::StrCat(shown, " of ", total, " ", what, "\n");
}

// --filter or --prefix into `filter`; a usage error when both are given.
bool SetFilter(const Command& cmd, const ParsedArgs& args,
               v1::NameFilter* filter, int* exit_code) {
  if (args.Has("filter") && args.Has("prefix")) {
    *exit_code = UsageError(cmd, "give --filter or --prefix, not both");
    return false;
  }
  if (args.Has("filter")) filter->set_regex(args.Get("filter"));
  if (args.Has("prefix")) filter->set_prefix(args.Get("prefix"));
  return true;
}

int ListQueuesOnce(const Command& cmd, const ParsedArgs& args, Client& client) {
  v1::ListQueuesRequest req;
  int exit_code = kExitOk;
  if (!SetFilter(cmd, args, req.mutable_filter(), &exit_code)) {
    return exit_code;
  }
  req.set_page_size(kPageSize);
  Table t;
  t.AddRow({"name", "type", "ready", "unacked", "consumers", "in/s", "out/s"});
  uint64_t total = 0, shown = 0;
  for (int page = 0; page < kMaxPages; ++page) {
    v1::ListQueuesResponse resp;
    auto ctx = client.NewContext();
    ::grpc::Status s = client.gateway().ListQueues(ctx.get(), req, &resp);
    if (!s.ok()) return ReportRpcError(client, s);
    for (const v1::QueueInfo& q : resp.queues()) {
      if (client.options().json) {
        PrintJson(q);
        continue;
      }
      t.AddRow({q.name(), QueueTypeName(q.type()), absl::StrCat(q.ready()),
                absl::StrCat(q.unacked()), absl::StrCat(q.consumers()),
                FormatRate(q.rates().publish()),
                FormatRate(q.rates().deliver())});
    }
    shown += resp.queues_size();
    total = resp.total_count();
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  if (!client.options().json) {
    t.Print(stdout);
    std::fputs(CountLine(shown, total, "queues").c_str(), stdout);
  }
  return kExitOk;
}

int RunQueueList(const Command& cmd, const ParsedArgs& args, Client& client) {
  return RunWatched(cmd, args, client, &ListQueuesOnce);
}

int RunExchangeList(const Command& cmd, const ParsedArgs& args,
                    Client& client) {
  v1::ListExchangesRequest req;
  int exit_code = kExitOk;
  if (!SetFilter(cmd, args, req.mutable_filter(), &exit_code)) {
    return exit_code;
  }
  req.set_page_size(kPageSize);
  Table t;
  t.AddRow({"name", "type", "durable", "in/s", "out/s"});
  uint64_t total = 0, shown = 0;
  for (int page = 0; page < kMaxPages; ++page) {
    v1::ListExchangesResponse resp;
    auto ctx = client.NewContext();
    ::grpc::Status s = client.gateway().ListExchanges(ctx.get(), req, &resp);
    if (!s.ok()) return ReportRpcError(client, s);
    for (const v1::ExchangeInfo& e : resp.exchanges()) {
      if (client.options().json) {
        PrintJson(e);
        continue;
      }
      std::string type =
          e.custom_type().empty()
              ? absl::AsciiStrToLower(v1::ExchangeType_Name(e.type()))
              : e.custom_type();
      t.AddRow({ExchangeName(e.name()), type, e.durable() ? "yes" : "no",
                FormatRate(e.publish_in_rate()),
                FormatRate(e.publish_out_rate())});
    }
    shown += resp.exchanges_size();
    total = resp.total_count();
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  if (!client.options().json) {
    t.Print(stdout);
    std::fputs(CountLine(shown, total, "exchanges").c_str(), stdout);
  }
  return kExitOk;
}

int RunBindingList(const Command& cmd, const ParsedArgs& args, Client& client) {
  v1::ListBindingsRequest req;
  if (args.Has("queue") && args.Has("exchange")) {
    return UsageError(cmd, "give --queue or --exchange, not both");
  }
  if (args.Has("queue")) req.set_queue(args.Get("queue"));
  if (args.Has("exchange")) req.set_exchange(args.Get("exchange"));
  v1::ListBindingsResponse resp;
  auto ctx = client.NewContext();
  ::grpc::Status s = client.gateway().ListBindings(ctx.get(), req, &resp);
  if (!s.ok()) return ReportRpcError(client, s);
  if (client.options().json) {
    for (const v1::BindingInfo& b : resp.bindings()) PrintJson(b);
    return kExitOk;
  }
  Table t;
  t.AddRow({"exchange", "destination", "kind", "routing key", "arguments"});
  for (const v1::BindingInfo& b : resp.bindings()) {
    t.AddRow({ExchangeName(b.exchange()), b.destination(),
              b.destination_type() == v1::BindingInfo::EXCHANGE ? "exchange"
                                                                : "queue",
              b.routing_key(),
              b.arguments().empty() ? "" : FormatFieldTable(b.arguments())});
  }
  t.Print(stdout);
  std::fputs(absl::StrCat(resp.bindings_size(), " bindings\n").c_str(), stdout);
  return kExitOk;
}

int RunConsumerList(const Command&, const ParsedArgs& args, Client& client) {
  v1::ListConsumersRequest req;
  req.set_queue(args.positionals[0]);
  v1::ListConsumersResponse resp;
  auto ctx = client.NewContext();
  ::grpc::Status s = client.gateway().ListConsumers(ctx.get(), req, &resp);
  if (!s.ok()) return ReportRpcError(client, s);
  if (client.options().json) {
    for (const v1::ConsumerInfo& c : resp.consumers()) PrintJson(c);
    return kExitOk;
  }
  Table t;
  t.AddRow({"tag", "connection", "user", "prefetch", "ack", "gateway"});
  for (const v1::ConsumerInfo& c : resp.consumers()) {
    t.AddRow(
        {c.consumer_tag(),
         c.connection_name().empty() ? c.connection() : c.connection_name(),
         c.user(), c.prefetch() == 0 ? "none" : absl::StrCat(c.prefetch()),
         c.ack_required() ? "manual" : "no-ack",
         c.gateway_own() ? "this one" : ""});
  }
  t.Print(stdout);
  std::fputs(absl::StrCat(resp.consumers_size(), " consumers\n").c_str(),
             stdout);
  return kExitOk;
}

}  // namespace

const FlagSpec& WatchFlag() {
  static const FlagSpec* flag = new FlagSpec{
      "watch", "",
      "redraw every 2 s on a terminal (plain lines, each round after a "
      "'---' line, into a pipe); Ctrl-C stops"};
  return *flag;
}

int RunWatched(const Command& cmd, const ParsedArgs& args, Client& client,
               int (*once)(const Command&, const ParsedArgs&, Client&)) {
  if (!args.GetBool("watch")) return once(cmd, args, client);
  const bool terminal = isatty(STDOUT_FILENO);
  for (;;) {
    const std::string now =
        absl::FormatTime("%H:%M:%S", absl::Now(), absl::LocalTimeZone());
    if (terminal) {
      // Home and clear, then the round: a redraw in place.
      std::printf("\x1b[H\x1b[2J%s  (every 2 s; Ctrl-C stops)\n\n",
                  absl::StrCat("amqpgw ", cmd.name, "  ", now).c_str());
    } else {
      std::printf("--- %s\n", now.c_str());
    }
    std::fflush(stdout);
    int code = once(cmd, args, client);
    if (code == kExitUsage) return code;
    // Errors are shown on stderr and the watch goes on (the gateway may
    // come back); a closed stdout ends it.
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) return kExitOk;
    absl::SleepFor(absl::Seconds(2));
  }
}

std::vector<Command> ListCommands() {
  std::vector<Command> out;
  out.push_back({
      "queue list",
      "",
      "the vhost's queues: counts, consumers, rates",
      "Lists the queues of the daemon's vhost, sorted by name: type, ready "
      "and unacknowledged messages, consumers, and messages per second in "
      "(published) and out (delivered). Needs RabbitMQ's management plugin "
      "on the broker (see 'amqpgw status'); counts lag by a few seconds. "
      "--json prints one QueueInfo per line, with every field.",
      {kFilterFlag, kPrefixFlag, WatchFlag()},
      {"amqpgw queue list", "amqpgw queue list --filter '^orders\\.'",
       "amqpgw queue list --prefix orders --watch",
       "amqpgw queue list --json | jq -r 'select(.unacked > 0) | .name'"},
      0,
      0,
      RunQueueList,
  });
  out.push_back({
      "exchange list",
      "",
      "the vhost's exchanges with their rates",
      "Lists the exchanges of the daemon's vhost, sorted by name, with "
      "messages per second published in and routed out. Needs RabbitMQ's "
      "management plugin. --json prints one ExchangeInfo per line.",
      {kFilterFlag, kPrefixFlag},
      {"amqpgw exchange list", "amqpgw exchange list --prefix amq."},
      0,
      0,
      RunExchangeList,
  });
  out.push_back({
      "binding list",
      "",
      "bindings: all, to a queue, or from an exchange",
      "Lists the vhost's bindings, or those to one queue (the default "
      "exchange's implicit one included), or those from one exchange. "
      "NOT_FOUND (exit 1) when that queue or exchange does not exist. Needs "
      "RabbitMQ's management plugin. --json prints one BindingInfo per "
      "line.",
      {{"queue", "NAME", "only the bindings to this queue"},
       {"exchange", "NAME", "only the bindings from this exchange"}},
      {"amqpgw binding list", "amqpgw binding list --queue orders",
       "amqpgw binding list --exchange events"},
      0,
      0,
      RunBindingList,
  });
  out.push_back({
      "consumer list",
      "QUEUE",
      "a queue's consumers and their connections",
      "Lists the consumers of a queue: tag, the connection (its name when "
      "the client gave one), user, prefetch, acknowledgement mode, and "
      "whether it is a stream of this gateway. Needs RabbitMQ's management "
      "plugin. --json prints one ConsumerInfo per line.",
      {},
      {"amqpgw consumer list orders", "amqpgw consumer list orders --json"},
      1,
      1,
      RunConsumerList,
  });
  return out;
}

}  // namespace amqpgw::cli
