// connect, disconnect, status, health, version.
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/commands.h"
#include "client/values.h"

namespace amqpgw::cli {
namespace {

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

void AddConnectionRows(const v1::ConnectionInfo& c, Table* t) {
  t->AddRow({"state", v1::ConnectionInfo::State_Name(c.state())});
  std::string broker = OrDash(c.broker());
  if (!c.vhost().empty()) absl::StrAppend(&broker, "  (vhost ", c.vhost(), ")");
  t->AddRow({"broker", broker});
  if (c.brokers_size() > 1) {
    t->AddRow({"brokers", absl::StrJoin(c.brokers(), ", ")});
  }
  if (!c.server_product().empty()) {
    std::string server =
        absl::StrCat(c.server_product(), " ", c.server_version());
    if (!c.cluster_name().empty()) {
      absl::StrAppend(&server, "  (cluster ", c.cluster_name(), ")");
    }
    t->AddRow({"server", server});
  }
  if (c.has_connected_since()) {
    t->AddRow({"connected since", FormatTimestamp(c.connected_since())});
  }
  t->AddRow({"reconnects", absl::StrCat(c.reconnects())});
  if (c.has_heartbeat())
    t->AddRow({"heartbeat", FormatDuration(c.heartbeat())});
  t->AddRow({"blocked",
             c.blocked() ? absl::StrCat("yes: ", c.blocked_reason()) : "no"});
  t->AddRow({"last error", OrDash(c.last_error())});
}

int PrintConnection(const Client& client, const v1::ConnectionInfo& c,
                    const google::protobuf::Message& response) {
  if (client.options().json) {
    PrintJson(response);
  } else {
    Table t;
    AddConnectionRows(c, &t);
    t.Print(stdout);
  }
  return kExitOk;
}

int RunConnect(const Command& cmd, const ParsedArgs& args, Client& client) {
  v1::ConnectRequest req;
  auto ctx = client.NewContext();
  if (args.Has("wait")) {
    absl::StatusOr<absl::Duration> wait = ParseDurationArg(args.Get("wait"));
    if (!wait.ok())
      return UsageError(cmd, absl::StrCat("--wait: ", wait.status().message()));
    req.mutable_wait()->set_seconds(absl::ToInt64Seconds(*wait));
    req.mutable_wait()->set_nanos(static_cast<int32_t>(
        absl::ToInt64Nanoseconds(*wait - absl::Seconds(req.wait().seconds()))));
    // The call must outlive the wait.
    if (client.options().timeout > absl::ZeroDuration() &&
        client.options().timeout < *wait + absl::Seconds(5)) {
      ctx->set_deadline(
          absl::ToChronoTime(absl::Now() + *wait + absl::Seconds(5)));
    }
  }
  v1::ConnectResponse resp;
  ::grpc::Status s = client.gateway().Connect(ctx.get(), req, &resp);
  if (!s.ok()) return ReportRpcError(client, s);
  return PrintConnection(client, resp.connection(), resp);
}

int RunDisconnect(const Command&, const ParsedArgs&, Client& client) {
  v1::DisconnectResponse resp;
  auto ctx = client.NewContext();
  ::grpc::Status s =
      client.gateway().Disconnect(ctx.get(), v1::DisconnectRequest(), &resp);
  if (!s.ok()) return ReportRpcError(client, s);
  return PrintConnection(client, resp.connection(), resp);
}

// "AVAILABLE at URL (user guest (tags: ...))", "UNAVAILABLE: why".
std::string ListingLine(const v1::ListingStatus& l) {
  std::string state = v1::ListingStatus::State_Name(l.state());
  switch (l.state()) {
    case v1::ListingStatus::AVAILABLE:
      return absl::StrCat(state, " at ", l.url(),
                          l.detail().empty() ? "" : "  (", l.detail(),
                          l.detail().empty() ? "" : ")");
    case v1::ListingStatus::UNAVAILABLE:
      return absl::StrCat(state, ": ", l.detail());
    case v1::ListingStatus::WAITING:
      return absl::StrCat(
          state, l.url().empty() ? "" : absl::StrCat(" (", l.url(), ")"));
    default:
      return "-";
  }
}

int StatusOnce(const Command&, const ParsedArgs&, Client& client) {
  v1::GetStatusResponse resp;
  auto ctx = client.NewContext();
  ::grpc::Status s =
      client.gateway().GetStatus(ctx.get(), v1::GetStatusRequest(), &resp);
  if (!s.ok()) return ReportRpcError(client, s);
  if (client.options().json) {
    PrintJson(resp);
    return kExitOk;
  }
  Table t;
  t.AddRow({"gateway", absl::StrCat(resp.version(), "  (instance ",
                                    resp.instance_id(), ")")});
  AddConnectionRows(resp.connection(), &t);
  if (resp.has_listing()) t.AddRow({"listing", ListingLine(resp.listing())});
  t.Print(stdout);
  const v1::Counters& c = resp.counters();
  std::printf("\n");
  Table counters;
  counters.AddRow(
      {"published", "confirmed", "nacked", "returned", "unconfirmed"});
  counters.AddRow({absl::StrCat(c.published()), absl::StrCat(c.confirmed()),
                   absl::StrCat(c.nacked()), absl::StrCat(c.returned()),
                   absl::StrCat(c.unconfirmed())});
  counters.Print(stdout);
  std::printf("\n");
  Table streams;
  streams.AddRow(
      {"streams", "delivered", "acked", "requeued", "rejected", "reconnects"});
  streams.AddRow({absl::StrCat(c.active_streams()), absl::StrCat(c.delivered()),
                  absl::StrCat(c.acked()), absl::StrCat(c.requeued()),
                  absl::StrCat(c.rejected()), absl::StrCat(c.reconnects())});
  streams.Print(stdout);
  std::printf("\n");
  Table rates;
  rates.AddRow({"msg/s", "published", "confirmed", "delivered", "acked"});
  for (const auto& [label, m] :
       {std::pair<const char*, const v1::MessageRates&>{"last 10 s",
                                                        resp.rates_10s()},
        {"last 1 min", resp.rates_1m()}}) {
    rates.AddRow({label, FormatRate(m.published()), FormatRate(m.confirmed()),
                  FormatRate(m.delivered()), FormatRate(m.acked())});
  }
  rates.Print(stdout);
  return kExitOk;
}

int RunStatus(const Command& cmd, const ParsedArgs& args, Client& client) {
  return RunWatched(cmd, args, client, &StatusOnce);
}

int RunHealth(const Command&, const ParsedArgs& args, Client& client) {
  ::grpc::health::v1::HealthCheckRequest req;
  req.set_service(args.Get("service"));
  ::grpc::health::v1::HealthCheckResponse resp;
  auto ctx = client.NewContext();
  ::grpc::Status s = client.health().Check(ctx.get(), req, &resp);
  if (!s.ok()) return ReportRpcError(client, s);
  const bool serving =
      resp.status() == ::grpc::health::v1::HealthCheckResponse::SERVING;
  if (client.options().json) {
    PrintJson(resp);
  } else {
    std::printf("%s\n",
                ::grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
                    resp.status())
                    .c_str());
    if (!serving) {
      std::fprintf(stderr,
                   "  hint: amqpgwd runs, but its broker session is not READY: "
                   "'amqpgw status' says why\n");
    }
  }
  return serving ? kExitOk : kExitRpcError;
}

int RunVersion(const Command&, const ParsedArgs&, Client&) {
  std::printf("amqpgw %s\n", AMQPGW_VERSION);
  return kExitOk;
}

}  // namespace

std::vector<Command> SessionCommands() {
  std::vector<Command> out;
  out.push_back({
      "connect",
      "",
      "start the broker session, wait for READY",
      "Starts the daemon's broker session if it is down (after 'disconnect' "
      "or --connect_on_start=false) and waits until it is READY, then prints "
      "the connection. The session keeps trying in the background when the "
      "wait ends first (DEADLINE_EXCEEDED or UNAVAILABLE, exit 1).",
      {{"wait", "DURATION",
        "how long to wait for READY (default: until --timeout; 0: return the "
        "current state at once)"}},
      {"amqpgw connect", "amqpgw connect --wait 2m --json"},
      0,
      0,
      RunConnect,
  });
  out.push_back({
      "disconnect",
      "",
      "close the broker session",
      "Closes the daemon's broker session gracefully: outstanding confirms "
      "are drained, open streams end with UNAVAILABLE, and commands that need "
      "the broker fail (FAILED_PRECONDITION, exit 1) until 'amqpgw connect'. "
      "Idempotent.",
      {},
      {"amqpgw disconnect"},
      0,
      0,
      RunDisconnect,
  });
  out.push_back({
      "status",
      "",
      "session state, counters, daemon version",
      "Prints the broker session (state, node, server, heartbeat, blocked, "
      "last error), whether listing works (RabbitMQ's management API), the "
      "daemon's counters since it started and its own message rates over "
      "the last 10 s and minute, its version and instance id. Works "
      "whatever the broker's state.",
      {WatchFlag()},
      {"amqpgw status", "amqpgw status --watch",
       "amqpgw status --json | jq .connection.state"},
      0,
      0,
      RunStatus,
  });
  out.push_back({
      "health",
      "",
      "grpc.health.v1 check (exit 0 only if SERVING)",
      "Asks grpc.health.v1.Health/Check and prints the status. The daemon "
      "answers SERVING only while its broker session is READY. Exit code 0 "
      "only for SERVING, so it fits a container health check.",
      {{"service", "NAME",
        "the service to check (default \"\": the whole daemon; also "
        "amqpgw.v1.Gateway)"}},
      {"amqpgw health", "amqpgw health --service amqpgw.v1.Gateway",
       "HEALTHCHECK CMD [\"amqpgw\", \"health\", \"--timeout\", \"3s\"]"},
      0,
      0,
      RunHealth,
  });
  out.push_back({
      "version",
      "",
      "this client's version",
      "Prints the version of this client (the daemon's is in 'amqpgw "
      "status').",
      {},
      {"amqpgw version"},
      0,
      0,
      RunVersion,
  });
  return out;
}

}  // namespace amqpgw::cli
