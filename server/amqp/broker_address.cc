#include "server/amqp/broker_address.h"

#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/base/hex.h"
#include "server/base/host_port.h"

namespace amqpgw::amqp {
namespace {

absl::StatusOr<std::string> PercentDecode(absl::string_view in,
                                          absl::string_view what) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    int byte = i + 2 < in.size() ? HexByte(in[i + 1], in[i + 2]) : -1;
    if (byte < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad percent-encoding in the ", what));
    }
    out.push_back(static_cast<char>(byte));
    i += 2;
  }
  return out;
}

std::string PercentEncode(absl::string_view in) {
  std::string out;
  for (char c : in) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      AppendHex(absl::string_view(&c, 1), &out, /*upper=*/true);
    }
  }
  return out;
}

}  // namespace

std::string BrokerAddress::HostPort() const {
  return amqpgw::HostPort{host, port}.ToString();
}

std::string BrokerAddress::Redacted() const {
  return absl::StrCat(tls ? "amqps://" : "amqp://", user, "@", HostPort(), "/",
                      PercentEncode(vhost));
}

absl::StatusOr<BrokerAddress> ParseBrokerUri(absl::string_view uri) {
  BrokerAddress a;
  absl::string_view rest = absl::StripAsciiWhitespace(uri);
  // Never echo the URI back: it may hold a password.
  if (absl::ConsumePrefix(&rest, "amqps://")) {
    a.tls = true;
    a.port = 5671;
  } else if (!absl::ConsumePrefix(&rest, "amqp://")) {
    return absl::InvalidArgumentError(
        "broker URI must start with amqp:// or amqps://");
  }
  if (rest.find('?') != absl::string_view::npos ||
      rest.find('#') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        "broker URI query parameters are not supported; use the daemon's "
        "flags (--heartbeat, --connect_timeout, TLS flags)");
  }
  absl::string_view authority = rest;
  absl::string_view path;
  if (size_t slash = rest.find('/'); slash != absl::string_view::npos) {
    authority = rest.substr(0, slash);
    path = rest.substr(slash + 1);
  }
  if (size_t at = authority.rfind('@'); at != absl::string_view::npos) {
    absl::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    absl::string_view user = userinfo, password;
    bool has_password = false;
    if (size_t colon = userinfo.find(':'); colon != absl::string_view::npos) {
      user = userinfo.substr(0, colon);
      password = userinfo.substr(colon + 1);
      has_password = true;
    }
    auto u = PercentDecode(user, "user name");
    if (!u.ok()) return u.status();
    a.user = *u;
    if (has_password) {
      auto p = PercentDecode(password, "password");
      if (!p.ok()) return p.status();
      a.password = *p;
    } else {
      a.password.clear();
    }
  }
  std::optional<absl::string_view> port_text;
  if (absl::Status split = SplitHostPort(authority, &a.host, &port_text);
      !split.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("broker URI: ", split.message()));
  }
  if (a.host.empty()) {
    return absl::InvalidArgumentError("broker URI has no host");
  }
  if (port_text.has_value() && !port_text->empty()) {
    std::optional<int> port = ParsePort(*port_text, /*min_port=*/1);
    if (!port.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("broker URI port must be 1..65535, got '",
                       port_text->substr(0, 20), "'"));
    }
    a.port = *port;
  }
  if (!path.empty()) {
    auto v = PercentDecode(path, "vhost");
    if (!v.ok()) return v.status();
    a.vhost = *v;
  }
  return a;
}

absl::StatusOr<std::vector<BrokerAddress>> ParseBrokerList(
    absl::string_view uris) {
  std::vector<BrokerAddress> out;
  int index = 0;
  for (absl::string_view part :
       absl::StrSplit(uris, ',', absl::SkipWhitespace())) {
    auto a = ParseBrokerUri(part);
    if (!a.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("broker #", index + 1, ": ", a.status().message()));
    }
    out.push_back(*std::move(a));
    ++index;
  }
  if (out.empty()) {
    return absl::InvalidArgumentError("no broker URI given");
  }
  return out;
}

}  // namespace amqpgw::amqp
