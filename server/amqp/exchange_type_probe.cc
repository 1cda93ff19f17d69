#include "server/amqp/exchange_type_probe.h"

#include <poll.h>

#include <cerrno>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/amqp/rabbit_connection.h"
#include "server/amqp/reply.h"

namespace amqpgw::amqp {
namespace {

constexpr uint16_t kChannel = 1;

// Waits for the next event until `deadline`. An error means the connection
// is gone (closed by the broker or lost).
absl::StatusOr<Event> NextEvent(Connection& conn, absl::Time deadline) {
  for (;;) {
    Event event;
    absl::StatusOr<bool> got = conn.Read(&event);
    if (!got.ok()) return got.status();
    if (*got) return event;
    if (conn.HasBufferedInput()) continue;
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError("no answer from the broker in time");
    }
    pollfd p{conn.fd(), POLLIN, 0};
    int ms = static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
    if (poll(&p, 1, ms) < 0 && errno != EINTR) {
      return absl::UnavailableError("poll failed");
    }
  }
}

}  // namespace

absl::StatusOr<bool> ProbeExchangeType(const BrokerAddress& address,
                                       OpenOptions options,
                                       absl::string_view type,
                                       absl::Duration timeout) {
  options.connection_name = "amqpgw exchange type check";
  // The probe's connection ends within `timeout`; no heartbeats needed.
  options.heartbeat = absl::ZeroDuration();
  absl::StatusOr<std::unique_ptr<Connection>> conn =
      RabbitConnection::Open(address, options);
  if (!conn.ok()) return conn.status();
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status s = (*conn)->OpenChannel(kChannel);
  for (; s.ok();) {
    absl::StatusOr<Event> e = NextEvent(**conn, deadline);
    if (!e.ok()) {
      s = e.status();
      break;
    }
    if (e->type == Event::Type::kChannelOpenOk) break;
  }
  if (s.ok()) {
    ExchangeDeclareArgs probe;
    probe.name = "";
    probe.type = std::string(type);
    probe.durable = false;
    s = (*conn)->DeclareExchange(kChannel, probe);
  }
  while (s.ok()) {
    absl::StatusOr<Event> e = NextEvent(**conn, deadline);
    if (!e.ok()) {
      // The broker closes the whole connection for a type it does not have:
      // "closed by the broker (503 COMMAND_INVALID - unknown exchange type
      // 'x-nope')" (RabbitConnection::Read).
      if (absl::StrContains(e.status().message(),
                            absl::StrCat("(", kCommandInvalid, " "))) {
        return false;
      }
      s = e.status();
      break;
    }
    if (e->type == Event::Type::kChannelClose) {
      (*conn)->Close(absl::Seconds(1));
      if (e->reply_code == kAccessRefused) return true;
      return absl::UnavailableError(
          absl::StrCat("exchange type check: unexpected answer ", e->reply_code,
                       " ", e->reply_text));
    }
    if (e->type == Event::Type::kExchangeDeclareOk) {
      (*conn)->Close(absl::Seconds(1));
      return true;
    }
  }
  return absl::UnavailableError(absl::StrCat(
      "exchange type check on ", address.HostPort(), " failed: ", s.message()));
}

}  // namespace amqpgw::amqp
