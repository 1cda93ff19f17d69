#include "server/amqp/broker_address.h"

#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace amqpgw::amqp {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

absl::StatusOr<std::string> PercentDecode(absl::string_view in,
                                          absl::string_view what) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    int hi = i + 2 < in.size() ? HexValue(in[i + 1]) : -1;
    int lo = i + 2 < in.size() ? HexValue(in[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad percent-encoding in the ", what));
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

std::string PercentEncode(absl::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : in) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace

std::string BrokerAddress::HostPort() const {
  if (host.find(':') != std::string::npos) {
    return absl::StrCat("[", host, "]:", port);
  }
  return absl::StrCat(host, ":", port);
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
  absl::string_view port_text;
  if (absl::ConsumePrefix(&authority, "[")) {
    size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("broker URI: unterminated [IPv6] host");
    }
    a.host = std::string(authority.substr(0, close));
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (!absl::ConsumePrefix(&after, ":")) {
        return absl::InvalidArgumentError("broker URI: junk after [IPv6] host");
      }
      port_text = after;
    }
  } else {
    size_t colon = authority.rfind(':');
    if (colon != absl::string_view::npos) {
      port_text = authority.substr(colon + 1);
      authority = authority.substr(0, colon);
    }
    a.host = std::string(authority);
  }
  if (a.host.empty()) {
    return absl::InvalidArgumentError("broker URI has no host");
  }
  if (!port_text.empty()) {
    int port = 0;
    if (!absl::SimpleAtoi(port_text, &port) || port <= 0 || port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(
          "broker URI port must be 1..65535, got '", port_text, "'"));
    }
    a.port = port;
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
