// get (GetMessages: peek at the head of a queue, or take messages with
// --ack), printing each message as consume does.
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "client/delivery_format.h"
#include "client/values.h"

namespace amqpgw::cli {
namespace {

// GetMessagesRequest.count's range.
constexpr uint64_t kMaxCount = 1000;

int RunGet(const Command& cmd, const ParsedArgs& args, Client& client) {
  v1::GetMessagesRequest req;
  req.set_queue(args.positionals[0]);
  req.set_count(1);
  if (args.Has("count")) {
    absl::StatusOr<uint64_t> count = ParseCount(args.Get("count"), kMaxCount);
    if (!count.ok() || *count == 0) {
      return UsageError(cmd, absl::StrCat("--count: '", args.Get("count"),
                                          "' is not a number 1..1000"));
    }
    req.set_count(static_cast<uint32_t>(*count));
  }
  req.set_ack(args.GetBool("ack"));
  v1::GetMessagesResponse resp;
  auto ctx = client.NewContext();
  ::grpc::Status s = client.gateway().GetMessages(ctx.get(), req, &resp);
  if (!s.ok()) return ReportRpcError(client, s);
  const bool json = client.options().json;
  const bool text = args.GetBool("text");
  for (const v1::Delivery& d : resp.messages()) {
    std::string line = json ? JsonDelivery(d, text) : HumanDelivery(d);
    std::fputs(line.c_str(), stdout);
    std::fputc('\n', stdout);
  }
  std::fflush(stdout);
  // The summary goes to stderr: stdout holds only messages.
  std::fprintf(
      stderr, "%s %s from %s%s; %s ready behind them\n",
      req.ack() ? "took" : "peeked at",
      Plural(resp.messages_size(), "message").c_str(), req.queue().c_str(),
      resp.requeued() ? " (left in the queue, now marked redelivered)" : "",
      Plural(resp.message_count(), "more message").c_str());
  return kExitOk;
}

}  // namespace

std::vector<Command> GetCommands() {
  std::vector<Command> out;
  out.push_back({
      "get",
      "QUEUE",
      "peek at the first messages of a queue (or take them with --ack)",
      "Prints up to --count messages at the head of QUEUE (default 1), "
      "oldest first, one per line on stdout as 'amqpgw consume' prints them "
      "(with --json one JSON object each; --text keeps UTF-8 bodies as "
      "text). By default this is a peek: the messages stay in the queue, in "
      "their order, but RabbitMQ now marks them redelivered (a quorum queue "
      "also counts the peek towards a delivery-limit). With --ack they are "
      "acknowledged and leave the queue: exactly the ones printed.\n\n"
      "Fewer messages come when the queue holds fewer ready ones (messages "
      "delivered to consumers and not yet acked are not seen) or once they "
      "reach 1 MiB. An empty queue prints nothing and exits 0; a stream "
      "queue always looks empty here (read it with 'amqpgw consume QUEUE "
      "--offset first'). A summary goes to stderr. Needs a "
      "token of role consume when the daemon checks tokens.",
      {{"count", "N", "messages at most, 1..1000 (default 1)"},
       {"ack", "", "take the messages: ack them so that they leave the queue"},
       {"text", "",
        "--json: bodies that are valid UTF-8 as text instead of base64"}},
      {"amqpgw get orders", "amqpgw get orders --count 10 --json --text",
       "amqpgw get dead-letters --count 100 --ack > removed.log"},
      1,
      1,
      RunGet,
  });
  return out;
}

}  // namespace amqpgw::cli
