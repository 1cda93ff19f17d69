#include "server/daemon/options.h"

#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/amqp/broker_address.h"

namespace amqpgw::daemon {
namespace {

absl::Status Bad(absl::string_view flag, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", what));
}

absl::Status CheckRange(absl::string_view flag, int64_t v, int64_t lo,
                        int64_t hi) {
  if (v < lo || v > hi) {
    return Bad(flag, absl::StrCat("must be ", lo, "..", hi, ", got ", v));
  }
  return absl::OkStatus();
}

absl::Status CheckDuration(absl::string_view flag, absl::Duration d,
                           absl::Duration lo, absl::Duration hi) {
  if (d < lo || d > hi) {
    return Bad(flag, absl::StrCat("must be between ", absl::FormatDuration(lo),
                                  " and ", absl::FormatDuration(hi), ", got ",
                                  absl::FormatDuration(d)));
  }
  return absl::OkStatus();
}

std::string ListenPort(const std::string& listen) {
  size_t colon = listen.rfind(':');
  return colon == std::string::npos ? listen : listen.substr(colon + 1);
}

}  // namespace

absl::Status ValidateOptions(const Options& o) {
  size_t colon = o.listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(o.listen.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return Bad("listen", absl::StrCat("want host:port (port 0..65535), got '",
                                      o.listen, "'"));
  }
  absl::StatusOr<std::vector<amqp::BrokerAddress>> brokers =
      amqp::ParseBrokerList(o.broker);
  if (!brokers.ok()) return Bad("broker", brokers.status().message());
  absl::Status s;
  if (!(s = CheckDuration("heartbeat", o.heartbeat, absl::ZeroDuration(),
                          absl::Seconds(3600)))
           .ok() ||
      !(s = CheckDuration("connect_timeout", o.connect_timeout,
                          absl::Milliseconds(100), absl::Seconds(600)))
           .ok() ||
      !(s = CheckDuration("reconnect_initial_delay", o.reconnect_initial_delay,
                          absl::Milliseconds(1), absl::Seconds(600)))
           .ok() ||
      !(s = CheckDuration("reconnect_max_delay", o.reconnect_max_delay,
                          o.reconnect_initial_delay, absl::Seconds(3600)))
           .ok() ||
      !(s = CheckDuration("publish_timeout", o.publish_timeout,
                          absl::Milliseconds(10), absl::Hours(24)))
           .ok() ||
      !(s = CheckDuration("shutdown_grace", o.shutdown_grace,
                          absl::ZeroDuration(), absl::Seconds(3600)))
           .ok() ||
      !(s = CheckRange("max_message_bytes", o.max_message_bytes, 1,
                       int64_t{512} << 20))
           .ok() ||
      !(s = CheckRange("max_request_bytes", o.max_request_bytes,
                       o.max_message_bytes, int64_t{2047} << 20))
           .ok() ||
      !(s = CheckRange("confirm_window", o.confirm_window, 1, 1 << 20)).ok() ||
      !(s = CheckRange("publisher_connections", o.publisher_connections, 1, 64))
           .ok() ||
      !(s = CheckRange("consumer_connections", o.consumer_connections, 1, 256))
           .ok()) {
    return s;
  }
  if (!o.http_listen.empty()) {
    size_t http_colon = o.http_listen.rfind(':');
    int http_port = -1;
    if (http_colon == std::string::npos || http_colon == 0 ||
        !absl::SimpleAtoi(o.http_listen.substr(http_colon + 1), &http_port) ||
        http_port < 0 || http_port > 65535) {
      return Bad("http_listen",
                 absl::StrCat("want host:port (port 0..65535) or empty to "
                              "disable, got '",
                              o.http_listen, "'"));
    }
  }
  for (const std::string& origin : CorsOrigins(o)) {
    if (origin == "*") continue;
    size_t scheme = origin.find("://");
    absl::string_view rest = scheme == std::string::npos
                                 ? absl::string_view()
                                 : absl::string_view(origin).substr(scheme + 3);
    bool ok = (absl::StartsWith(origin, "http://") ||
               absl::StartsWith(origin, "https://")) &&
              !rest.empty() && rest.find_first_of("/?#@ ") == std::string::npos;
    if (!ok) {
      return Bad("cors_origins",
                 absl::StrCat("want comma-separated origins like "
                              "https://app.example.com[:port] (no path), or "
                              "*, got '",
                              origin, "'"));
    }
  }
  if (!o.web_root.empty()) {
    struct stat st;
    if (stat(o.web_root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return Bad("web_root", absl::StrCat("not a folder: '", o.web_root, "'"));
    }
  }
  if (!(s = CheckRange("http_max_connections", o.http_max_connections, 16,
                       65536))
           .ok()) {
    return s;
  }
  if (o.instance_id.find('/') != std::string::npos) {
    return Bad("instance_id", "must not contain '/'");
  }
  if (o.log_level != "trace" && o.log_level != "debug" &&
      o.log_level != "info" && o.log_level != "warn" &&
      o.log_level != "error") {
    return Bad("log_level", absl::StrCat("want trace, debug, info, warn or "
                                         "error, got '", o.log_level, "'"));
  }
  return absl::OkStatus();
}

std::vector<std::string> CorsOrigins(const Options& o) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(o.cors_origins, ',')) {
    absl::string_view origin = absl::StripAsciiWhitespace(part);
    while (absl::ConsumeSuffix(&origin, "/")) {
    }
    if (!origin.empty()) out.emplace_back(origin);
  }
  return out;
}

absl::StatusOr<core::SessionOptions> ToSessionOptions(const Options& o) {
  absl::Status s = ValidateOptions(o);
  if (!s.ok()) return s;
  core::SessionOptions out;
  out.brokers = *amqp::ParseBrokerList(o.broker);
  out.open.heartbeat = o.heartbeat;
  out.open.connect_timeout = o.connect_timeout;
  out.backoff.initial = o.reconnect_initial_delay;
  out.backoff.max = o.reconnect_max_delay;
  out.publisher_connections = static_cast<int>(o.publisher_connections);
  out.consumer_connections = static_cast<int>(o.consumer_connections);
  out.confirm_window = static_cast<uint32_t>(o.confirm_window);
  out.default_timeout = o.publish_timeout;
  out.connect_on_start = o.connect_on_start;
  out.instance_id = o.instance_id;
  if (out.instance_id.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    out.instance_id = absl::StrCat(host, ":", ListenPort(o.listen));
  }
  return out;
}

}  // namespace amqpgw::daemon
