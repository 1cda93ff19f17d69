#include "server/daemon/options.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/amqp/broker_address.h"
#include "server/grpc/auth.h"
#include "server/trace/otlp_exporter.h"

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

absl::Status CheckHostPort(absl::string_view flag, const std::string& value) {
  size_t colon = value.rfind(':');
  int port = -1;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(value.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return Bad(flag, absl::StrCat("want host:port (port 0..65535), got '",
                                  value, "'"));
  }
  return absl::OkStatus();
}

absl::Status CheckReadable(absl::string_view flag, const std::string& path) {
  if (path.empty()) return absl::OkStatus();
  return ReadFileForFlag(flag, path).status();
}

std::string ListenPort(const std::string& listen) {
  size_t colon = listen.rfind(':');
  return colon == std::string::npos ? listen : listen.substr(colon + 1);
}

}  // namespace

absl::StatusOr<std::string> ReadFileForFlag(absl::string_view flag,
                                            const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Bad(flag, absl::StrCat("cannot read '", path, "'"));
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<std::string> BrokerUris(const Options& o) {
  if (o.broker_file.empty()) return o.broker;
  absl::StatusOr<std::string> text =
      ReadFileForFlag("broker_file", o.broker_file);
  if (!text.ok()) return text.status();
  std::vector<std::string> uris;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    uris.emplace_back(line);
  }
  return absl::StrJoin(uris, ",");
}

bool IsLoopbackListen(absl::string_view host_port) {
  absl::string_view host = host_port;
  if (size_t colon = host_port.rfind(':'); colon != absl::string_view::npos) {
    host = host_port.substr(0, colon);
  }
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

absl::Status ValidateOptions(const Options& o) {
  absl::Status s = CheckHostPort("listen", o.listen);
  if (!s.ok()) return s;
  absl::string_view broker_flag =
      o.broker_file.empty() ? "broker" : "broker_file";
  absl::StatusOr<std::string> uris = BrokerUris(o);
  if (!uris.ok()) return uris.status();
  absl::StatusOr<std::vector<amqp::BrokerAddress>> brokers =
      amqp::ParseBrokerList(*uris);
  if (!brokers.ok()) return Bad(broker_flag, brokers.status().message());
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
      !(s = CheckRange("max_pending_bytes", o.max_pending_bytes,
                       o.max_request_bytes, int64_t{1} << 40))
           .ok() ||
      !(s = CheckRange("publisher_connections", o.publisher_connections, 1, 64))
           .ok() ||
      !(s = CheckRange("consumer_connections", o.consumer_connections, 1, 256))
           .ok() ||
      !(s = CheckDuration("consumer_read_pause", o.consumer_read_pause,
                          absl::ZeroDuration(), absl::Milliseconds(100)))
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
                                         "error, got '",
                                         o.log_level, "'"));
  }
  if (o.log_format != "text" && o.log_format != "json") {
    return Bad("log_format",
               absl::StrCat("want text or json, got '", o.log_format, "'"));
  }
  if (!o.metrics_listen.empty() &&
      !(s = CheckHostPort("metrics_listen", o.metrics_listen)).ok()) {
    return s;
  }
  if (!o.otlp_endpoint.empty()) {
    absl::StatusOr<trace::Endpoint> e = trace::ParseEndpoint(o.otlp_endpoint);
    if (!e.ok()) return Bad("otlp_endpoint", e.status().message());
  }
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return Bad(o.tls_cert.empty() ? "tls_cert" : "tls_key",
               "--tls_cert and --tls_key go together");
  }
  if (!o.tls_client_ca.empty() && o.tls_cert.empty()) {
    return Bad("tls_client_ca",
               "mutual TLS needs the server's own --tls_cert and --tls_key");
  }
  if (o.broker_tls_cert.empty() != o.broker_tls_key.empty()) {
    return Bad(o.broker_tls_cert.empty() ? "broker_tls_cert" : "broker_tls_key",
               "--broker_tls_cert and --broker_tls_key go together");
  }
  if (!(s = CheckReadable("tls_cert", o.tls_cert)).ok() ||
      !(s = CheckReadable("tls_key", o.tls_key)).ok() ||
      !(s = CheckReadable("tls_client_ca", o.tls_client_ca)).ok() ||
      !(s = CheckReadable("broker_tls_ca", o.broker_tls_ca)).ok() ||
      !(s = CheckReadable("broker_tls_cert", o.broker_tls_cert)).ok() ||
      !(s = CheckReadable("broker_tls_key", o.broker_tls_key)).ok()) {
    return s;
  }
  if (!o.auth_tokens.empty()) {
    auto a = grpc_api::Authorizer::FromFile(o.auth_tokens);
    if (!a.ok()) return Bad("auth_tokens", a.status().message());
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
  absl::StatusOr<std::string> uris = BrokerUris(o);
  if (!uris.ok()) return uris.status();
  absl::StatusOr<std::vector<amqp::BrokerAddress>> brokers =
      amqp::ParseBrokerList(*uris);
  if (!brokers.ok()) return Bad("broker_file", brokers.status().message());
  out.brokers = *std::move(brokers);
  out.open.heartbeat = o.heartbeat;
  out.open.tls.ca_file = o.broker_tls_ca;
  out.open.tls.cert_file = o.broker_tls_cert;
  out.open.tls.key_file = o.broker_tls_key;
  out.open.tls.verify_hostname = o.broker_tls_verify_hostname;
  out.open.connect_timeout = o.connect_timeout;
  out.backoff.initial = o.reconnect_initial_delay;
  out.backoff.max = o.reconnect_max_delay;
  out.publisher_connections = static_cast<int>(o.publisher_connections);
  out.consumer_connections = static_cast<int>(o.consumer_connections);
  out.consumer_read_pause = o.consumer_read_pause;
  out.confirm_window = static_cast<uint32_t>(o.confirm_window);
  out.max_pending_bytes = o.max_pending_bytes;
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
