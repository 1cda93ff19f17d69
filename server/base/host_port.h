// host:port addresses, parsed in one place: listen flags (--listen,
// --http_listen, --metrics_listen), the URI authority of a broker, and the
// addresses printed in logs. IPv6 hosts are written in brackets
// ("[::1]:8080"); the brackets are not part of HostPort::host.
//
// Header-only (Abseil strings and status only), so any target may include
// it without a new link dependency. Pure functions: any thread.
#ifndef AMQPGW_SERVER_BASE_HOST_PORT_H_
#define AMQPGW_SERVER_BASE_HOST_PORT_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace amqpgw {

struct HostPort {
  // Without brackets; empty means every local address (listeners only).
  std::string host;
  int port = 0;

  // "host:port", "[v6]:port"; an empty host stays empty (":8080").
  std::string ToString() const {
    if (host.find(':') != std::string::npos) {
      return absl::StrCat("[", host, "]:", port);
    }
    return absl::StrCat(host, ":", port);
  }
  // The host to bind: an empty host is every IPv4 address.
  std::string BindHost() const { return host.empty() ? "0.0.0.0" : host; }
  // Only this machine can reach it: 127.0.0.0/8, ::1, localhost.
  bool IsLoopback() const {
    return host == "localhost" || host == "::1" ||
           absl::StartsWith(host, "127.");
  }
};

// Splits a URI authority or address, "host", "host:port", "[v6]" or
// "[v6]:port", into the host (brackets removed) and the port text (nullopt
// when there is none; it is not checked here). INVALID_ARGUMENT for an
// unterminated bracket or junk after "]".
inline absl::Status SplitHostPort(absl::string_view text, std::string* host,
                                  std::optional<absl::string_view>* port) {
  *port = std::nullopt;
  if (absl::ConsumePrefix(&text, "[")) {
    size_t close = text.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("unterminated [IPv6] host");
    }
    *host = std::string(text.substr(0, close));
    absl::string_view after = text.substr(close + 1);
    if (after.empty()) return absl::OkStatus();
    if (!absl::ConsumePrefix(&after, ":")) {
      return absl::InvalidArgumentError("junk after [IPv6] host");
    }
    *port = after;
    return absl::OkStatus();
  }
  size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos) {
    *host = std::string(text);
    return absl::OkStatus();
  }
  *host = std::string(text.substr(0, colon));
  *port = text.substr(colon + 1);
  return absl::OkStatus();
}

// A port number in [min_port, 65535]; nullopt otherwise.
inline std::optional<int> ParsePort(absl::string_view text, int min_port = 0) {
  int port = -1;
  if (text.empty() || text.size() > 5 || !absl::ascii_isdigit(text[0]) ||
      !absl::SimpleAtoi(text, &port) || port < min_port || port > 65535) {
    return std::nullopt;
  }
  return port;
}

// A listen address, "host:port" or "[v6]:port", port 0..65535 (0: any free
// port). The host may be empty (every address). INVALID_ARGUMENT says what
// is wanted and echoes the text (an address, never a secret), cut to 100
// characters.
inline absl::StatusOr<HostPort> ParseHostPort(absl::string_view text) {
  std::string host;
  std::optional<absl::string_view> port_text;
  absl::Status s = SplitHostPort(text, &host, &port_text);
  std::optional<int> port;
  if (s.ok() && port_text.has_value()) port = ParsePort(*port_text);
  if (!port.has_value() || host.find_first_of(" /@") != std::string::npos ||
      (host.find(':') != std::string::npos && !absl::StartsWith(text, "["))) {
    return absl::InvalidArgumentError(
        absl::StrCat("want host:port or [IPv6]:port (port 0..65535), got '",
                     text.substr(0, 100), text.size() > 100 ? "...'" : "'"));
  }
  return HostPort{std::move(host), *port};
}

}  // namespace amqpgw

#endif  // AMQPGW_SERVER_BASE_HOST_PORT_H_
