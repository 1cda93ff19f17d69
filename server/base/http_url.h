// http:// and https:// URLs of the services the daemon calls (the OTLP
// collector, RabbitMQ's management API), split in one place (the authority
// with host_port.h).
//
// Header-only (Abseil strings and status only). Pure functions: any thread.
#ifndef AMQPGW_SERVER_BASE_HTTP_URL_H_
#define AMQPGW_SERVER_BASE_HTTP_URL_H_

#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "server/base/host_port.h"

namespace amqpgw {

struct HttpUrl {
  bool https = false;
  // As written: "host", "host:port" or "[v6]:port".
  std::string authority;
  // Without brackets.
  std::string host;
  // The port given, else 80 or 443.
  int port = 0;
  // "" or starting with '/'; query and fragment are not allowed.
  std::string path;

  // "http://host:port" as written, for cpp-httplib's Client.
  std::string SchemeHostPort() const {
    return absl::StrCat(https ? "https://" : "http://", authority);
  }
};

// Accepts "http://authority[/path]" and "https://...". INVALID_ARGUMENT says
// what is wrong; it never echoes the URL (it might carry credentials).
inline absl::StatusOr<HttpUrl> ParseHttpUrl(absl::string_view url) {
  url = absl::StripAsciiWhitespace(url);
  HttpUrl out;
  absl::string_view rest = url;
  if (absl::ConsumePrefix(&rest, "https://")) {
    out.https = true;
  } else if (!absl::ConsumePrefix(&rest, "http://")) {
    return absl::InvalidArgumentError(
        "want an http:// or https:// URL, e.g. http://127.0.0.1:4318");
  }
  size_t slash = rest.find('/');
  absl::string_view authority = rest.substr(0, slash);
  if (slash != absl::string_view::npos)
    out.path = std::string(rest.substr(slash));
  if (authority.find('@') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        "credentials in the URL are not supported");
  }
  if (out.path.find_first_of("?#") != std::string::npos ||
      authority.find_first_of("?#") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        "a query or fragment in the URL is not supported");
  }
  std::string host;
  std::optional<absl::string_view> port_text;
  if (!SplitHostPort(authority, &host, &port_text).ok()) {
    return absl::InvalidArgumentError("the URL's [IPv6] host is malformed");
  }
  if (host.empty()) return absl::InvalidArgumentError("the URL has no host");
  out.port = out.https ? 443 : 80;
  if (port_text.has_value()) {
    std::optional<int> port = ParsePort(*port_text, /*min_port=*/1);
    if (!port.has_value()) {
      return absl::InvalidArgumentError("the URL's port must be 1..65535");
    }
    out.port = *port;
  }
  out.authority = std::string(authority);
  out.host = std::move(host);
  return out;
}

}  // namespace amqpgw

#endif  // AMQPGW_SERVER_BASE_HTTP_URL_H_
