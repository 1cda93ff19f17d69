// queue declare|inspect|delete|purge, exchange declare|delete, bind, unbind.
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "client/values.h"

namespace amqpgw::cli {
namespace {

const FlagSpec kArgFlag = {
    "arg", "KEY[:TYPE]=VALUE",
    absl::StrCat("an argument (repeatable), typed like a header: ",
                 kFieldTypes),
    true};

const FlagSpec kIfExistsFlag = {
    "if-exists", "",
    "exit 0 when it did not exist (idempotent deletes in scripts)"};

int PrintQueue(const Client& client, const google::protobuf::Message& resp,
               const std::string& name, uint32_t messages, uint32_t consumers) {
  if (client.options().json) {
    PrintJson(resp);
    return kExitOk;
  }
  Table t;
  t.AddRow({"queue", "messages", "consumers"});
  t.AddRow({name, absl::StrCat(messages), absl::StrCat(consumers)});
  t.Print(stdout);
  return kExitOk;
}

// Prints a response that carries nothing but success.
int PrintDone(const Client& client, const google::protobuf::Message& resp,
              const std::string& line) {
  if (client.options().json) {
    PrintJson(resp);
  } else {
    std::printf("%s\n", line.c_str());
  }
  return kExitOk;
}

int RunQueueDeclare(const Command& cmd, const ParsedArgs& args,
                    Client& client) {
  v1::DeclareQueueRequest req;
  if (!args.positionals.empty()) req.set_name(args.positionals[0]);
  if (args.GetBool("transient")) req.set_durable(false);
  req.set_auto_delete(args.GetBool("auto-delete"));
  if (args.Has("type")) {
    std::string type = absl::AsciiStrToUpper(args.Get("type"));
    v1::QueueType t;
    if (!v1::QueueType_Parse(type, &t) || t == v1::QUEUE_TYPE_UNSPECIFIED) {
      return UsageError(cmd,
                        absl::StrCat("--type: '", args.Get("type"),
                                     "' is not classic, quorum or stream"));
    }
    req.set_type(t);
  }
  absl::Status st =
      ParseFieldArgs(args.GetAll("arg"), "arg", req.mutable_arguments());
  if (!st.ok()) return UsageError(cmd, st.message());
  v1::DeclareQueueResponse resp;
  auto ctx = client.NewContext();
  ::grpc::Status s = client.gateway().DeclareQueue(ctx.get(), req, &resp);
  if (!s.ok()) return ReportRpcError(client, s);
  return PrintQueue(client, resp, resp.name(), resp.message_count(),
                    resp.consumer_count());
}

int RunQueueInspect(const Command&, const ParsedArgs& args, Client& client) {
  v1::InspectQueueRequest req;
  req.set_name(args.positionals[0]);
  v1::InspectQueueResponse resp;
  auto ctx = client.NewContext();
  ::grpc::Status s = client.gateway().InspectQueue(ctx.get(), req, &resp);
  if (!s.ok()) return ReportRpcError(client, s);
  int code = PrintQueue(client, resp, resp.name(), resp.message_count(),
                        resp.consumer_count());
  if (!client.options().json && resp.has_details()) {
    // What the management API adds (its statistics lag by a few seconds).
    const v1::QueueInfo& d = resp.details();
    Table t;
    t.AddRow({"type", "unacked", "in/s", "out/s", "state"});
    t.AddRow({QueueTypeName(d.type()), absl::StrCat(d.unacked()),
              FormatRate(d.rates().publish()), FormatRate(d.rates().deliver()),
              d.state()});
    std::printf("\n");
    t.Print(stdout);
  }
  return code;
}

// What a delete found: the line to print and the exit code. A gateway
// older than the `existed` field leaves it unset: then only "deleted".
int PrintDeleted(const Client& client, const ParsedArgs& args,
                 const google::protobuf::Message& resp, bool has_existed,
                 bool existed, const std::string& what,
                 const std::string& deleted_line) {
  if (has_existed && !existed) {
    const bool if_exists = args.GetBool("if-exists");
    if (client.options().json) {
      PrintJson(resp);
    } else if (if_exists) {
      std::printf("%s did not exist\n", what.c_str());
    } else {
      std::fprintf(stderr,
                   "amqpgw: %s did not exist\n  hint: --if-exists makes "
                   "that a success (exit code 0)\n",
                   what.c_str());
    }
    return if_exists ? kExitOk : kExitRpcError;
  }
  return PrintDone(client, resp, deleted_line);
}

int RunQueueDelete(const Command&, const ParsedArgs& args, Client& client) {
  v1::DeleteQueueRequest req;
  req.set_name(args.positionals[0]);
  req.set_if_unused(args.GetBool("if-unused"));
  req.set_if_empty(args.GetBool("if-empty"));
  v1::DeleteQueueResponse resp;
  auto ctx = client.NewContext();
  ::grpc::Status s = client.gateway().DeleteQueue(ctx.get(), req, &resp);
  if (!s.ok()) return ReportRpcError(client, s);
  return PrintDeleted(
      client, args, resp, resp.has_existed(), resp.existed(),
      absl::StrCat("queue ", req.name()),
      absl::StrCat("deleted queue ", req.name(), " (",
                   Plural(resp.message_count(), "message"), ")"));
}

int RunQueuePurge(const Command&, const ParsedArgs& args, Client& client) {
  v1::PurgeQueueRequest req;
  req.set_name(args.positionals[0]);
  v1::PurgeQueueResponse resp;
  auto ctx = client.NewContext();
  ::grpc::Status s = client.gateway().PurgeQueue(ctx.get(), req, &resp);
  if (!s.ok()) return ReportRpcError(client, s);
  return PrintDone(
      client, resp,
      absl::StrCat("purged ", Plural(resp.message_count(), "message"), " from ",
                   req.name()));
}

int RunExchangeDeclare(const Command& cmd, const ParsedArgs& args,
                       Client& client) {
  v1::DeclareExchangeRequest req;
  req.set_name(args.positionals[0]);
  std::string type = args.Get("type", "direct");
  v1::ExchangeType t;
  if (v1::ExchangeType_Parse(absl::AsciiStrToUpper(type), &t) &&
      t != v1::EXCHANGE_TYPE_UNSPECIFIED) {
    req.set_type(t);
  } else if (absl::StartsWith(type, "x-")) {
    req.set_custom_type(type);
  } else {
    return UsageError(cmd, absl::StrCat("--type: '", type,
                                        "' is not direct, fanout, topic, "
                                        "headers or a plugin type x-..."));
  }
  if (args.GetBool("transient")) req.set_durable(false);
  req.set_auto_delete(args.GetBool("auto-delete"));
  req.set_internal(args.GetBool("internal"));
  absl::Status st =
      ParseFieldArgs(args.GetAll("arg"), "arg", req.mutable_arguments());
  if (!st.ok()) return UsageError(cmd, st.message());
  v1::DeclareExchangeResponse resp;
  auto ctx = client.NewContext();
  ::grpc::Status s = client.gateway().DeclareExchange(ctx.get(), req, &resp);
  if (!s.ok()) return ReportRpcError(client, s);
  return PrintDone(
      client, resp,
      absl::StrCat("declared exchange ", req.name(), " (", type,
                   req.has_durable() ? ", transient" : ", durable", ")"));
}

int RunExchangeDelete(const Command&, const ParsedArgs& args, Client& client) {
  v1::DeleteExchangeRequest req;
  req.set_name(args.positionals[0]);
  req.set_if_unused(args.GetBool("if-unused"));
  v1::DeleteExchangeResponse resp;
  auto ctx = client.NewContext();
  ::grpc::Status s = client.gateway().DeleteExchange(ctx.get(), req, &resp);
  if (!s.ok()) return ReportRpcError(client, s);
  return PrintDeleted(client, args, resp, resp.has_existed(), resp.existed(),
                      absl::StrCat("exchange ", req.name()),
                      absl::StrCat("deleted exchange ", req.name()));
}

template <typename Request>
absl::Status FillBinding(const ParsedArgs& args, Request* req) {
  req->set_queue(args.positionals[0]);
  req->set_exchange(args.positionals[1]);
  if (args.positionals.size() > 2) req->set_routing_key(args.positionals[2]);
  return ParseFieldArgs(args.GetAll("arg"), "arg", req->mutable_arguments());
}

int RunBind(const Command& cmd, const ParsedArgs& args, Client& client) {
  v1::BindQueueRequest req;
  absl::Status st = FillBinding(args, &req);
  if (!st.ok()) return UsageError(cmd, st.message());
  v1::BindQueueResponse resp;
  auto ctx = client.NewContext();
  ::grpc::Status s = client.gateway().BindQueue(ctx.get(), req, &resp);
  if (!s.ok()) return ReportRpcError(client, s);
  return PrintDone(
      client, resp,
      absl::StrCat("bound queue ", req.queue(), " to exchange ", req.exchange(),
                   " with routing key '", req.routing_key(), "'"));
}

int RunUnbind(const Command& cmd, const ParsedArgs& args, Client& client) {
  v1::UnbindQueueRequest req;
  absl::Status st = FillBinding(args, &req);
  if (!st.ok()) return UsageError(cmd, st.message());
  v1::UnbindQueueResponse resp;
  auto ctx = client.NewContext();
  ::grpc::Status s = client.gateway().UnbindQueue(ctx.get(), req, &resp);
  if (!s.ok()) return ReportRpcError(client, s);
  return PrintDone(
      client, resp,
      absl::StrCat("unbound queue ", req.queue(), " from exchange ",
                   req.exchange(), " (routing key '", req.routing_key(), "')"));
}

}  // namespace

std::vector<Command> TopologyCommands() {
  std::vector<Command> out;
  out.push_back({
      "queue declare",
      "[NAME]",
      "declare a queue (durable by default)",
      "Declares a queue and prints its name and counts. Queues are durable "
      "unless --transient. Without NAME the broker picks one (amq.gen-...). "
      "A queue that exists with other settings is FAILED_PRECONDITION.",
      {{"transient", "", "not durable: gone when the broker restarts"},
       {"auto-delete", "", "deleted when its last consumer goes away"},
       {"type", "TYPE", "classic (default), quorum or stream"},
       kArgFlag},
      {"amqpgw queue declare orders",
       "amqpgw queue declare jobs --type quorum --arg x-max-length:int=10000",
       "amqpgw queue declare --transient --auto-delete --json"},
      0,
      1,
      RunQueueDeclare,
  });
  out.push_back({
      "queue inspect",
      "NAME",
      "ready messages and consumers of a queue",
      "Prints a queue's ready message count and consumer count without "
      "creating it (passive declare). NOT_FOUND (exit 1) when it does not "
      "exist. When the broker's management API answers, also its type, "
      "unacknowledged messages, rates in and out, and state (as 'queue "
      "list' shows them).",
      {},
      {"amqpgw queue inspect orders", "amqpgw queue inspect orders --json"},
      1,
      1,
      RunQueueInspect,
  });
  out.push_back({
      "queue delete",
      "NAME",
      "delete a queue",
      "Deletes a queue and prints how many messages went with it. A queue "
      "that does not exist is reported (\"queue NAME did not exist\") with "
      "exit code 1, or 0 with --if-exists.",
      {{"if-unused", "", "only when it has no consumers"},
       {"if-empty", "", "only when it has no messages"},
       kIfExistsFlag},
      {"amqpgw queue delete orders", "amqpgw queue delete orders --if-empty",
       "amqpgw queue delete scratch --if-exists"},
      1,
      1,
      RunQueueDelete,
  });
  out.push_back({
      "queue purge",
      "NAME",
      "remove a queue's ready messages",
      "Removes the ready messages of a queue (not those delivered and "
      "unacknowledged) and prints how many.",
      {},
      {"amqpgw queue purge orders"},
      1,
      1,
      RunQueuePurge,
  });
  out.push_back({
      "exchange declare",
      "NAME",
      "declare an exchange",
      "Declares an exchange, durable unless --transient. Names starting with "
      "amq. are the broker's (PERMISSION_DENIED).",
      {{"type", "TYPE",
        "direct (default), fanout, topic, headers, or a plugin type such as "
        "x-delayed-message"},
       {"transient", "", "not durable"},
       {"auto-delete", "", "deleted when its last binding goes away"},
       {"internal", "", "only reachable through exchange bindings"},
       kArgFlag},
      {"amqpgw exchange declare events --type topic",
       "amqpgw exchange declare main --arg alternate-exchange=unrouted"},
      1,
      1,
      RunExchangeDeclare,
  });
  out.push_back({
      "exchange delete",
      "NAME",
      "delete an exchange",
      "Deletes an exchange. An exchange that does not exist is reported "
      "(\"exchange NAME did not exist\") with exit code 1, or 0 with "
      "--if-exists.",
      {{"if-unused", "", "only when no queue is bound to it"}, kIfExistsFlag},
      {"amqpgw exchange delete events",
       "amqpgw exchange delete scratch --if-exists"},
      1,
      1,
      RunExchangeDelete,
  });
  out.push_back({
      "bind",
      "QUEUE EXCHANGE [ROUTING_KEY]",
      "bind a queue to an exchange",
      "Binds QUEUE to EXCHANGE with ROUTING_KEY (default empty). For headers "
      "exchanges give the match with --arg (x-match=all, and the headers). "
      "NOT_FOUND when the queue or the exchange is absent.",
      {kArgFlag},
      {"amqpgw bind orders events 'order.*'",
       "amqpgw bind eu-orders by-header --arg x-match=all --arg region=eu"},
      2,
      3,
      RunBind,
  });
  out.push_back({
      "unbind",
      "QUEUE EXCHANGE [ROUTING_KEY]",
      "remove a binding",
      "Removes the binding of QUEUE to EXCHANGE with ROUTING_KEY (and "
      "--arg, which must match the binding's). A binding that does not exist "
      "is not an error.",
      {kArgFlag},
      {"amqpgw unbind orders events 'order.*'"},
      2,
      3,
      RunUnbind,
  });
  return out;
}

}  // namespace amqpgw::cli
