#include "server/daemon/flags.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "server/amqp/broker_address.h"
#include "server/base/host_port.h"
#include "server/base/http_url.h"
#include "server/trace/otlp_exporter.h"

extern char** environ;

namespace amqpgw::daemon {
namespace {

using Check = std::function<absl::Status(const Options&)>;

absl::Status Bad(absl::string_view flag, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", what));
}

// --- Value checks, composable per row. ------------------------------------

// An int64 in [lo, hi]; lo may come from another field (a flag that must
// not exceed this one).
std::function<absl::Status(const Options&)> IntRange(
    int64_t Options::*field, std::function<int64_t(const Options&)> lo,
    int64_t hi) {
  return [field, lo = std::move(lo), hi](const Options& o) {
    int64_t v = o.*field;
    int64_t low = lo(o);
    if (v < low || v > hi) {
      return absl::InvalidArgumentError(
          absl::StrCat("must be ", low, "..", hi, ", got ", v));
    }
    return absl::OkStatus();
  };
}

std::function<int64_t(const Options&)> Fixed(int64_t v) {
  return [v](const Options&) { return v; };
}

template <typename T>
std::function<T(const Options&)> FieldOf(T Options::*other) {
  return [other](const Options& o) { return o.*other; };
}

std::function<absl::Status(const Options&)> DurationRange(
    absl::Duration Options::*field,
    std::function<absl::Duration(const Options&)> lo, absl::Duration hi) {
  return [field, lo = std::move(lo), hi](const Options& o) {
    absl::Duration d = o.*field;
    absl::Duration low = lo(o);
    if (d < low || d > hi) {
      return absl::InvalidArgumentError(absl::StrCat(
          "must be between ", absl::FormatDuration(low), " and ",
          absl::FormatDuration(hi), ", got ", absl::FormatDuration(d)));
    }
    return absl::OkStatus();
  };
}

std::function<absl::Duration(const Options&)> FixedDuration(absl::Duration v) {
  return [v](const Options&) { return v; };
}

absl::Status HostPortOrEmpty(const std::string& value, bool need_host,
                             absl::string_view empty_means) {
  if (value.empty()) return absl::OkStatus();
  absl::StatusOr<HostPort> hp = ParseHostPort(value);
  if (!hp.ok() || (need_host && hp->host.empty())) {
    return absl::InvalidArgumentError(
        absl::StrCat("want host:port (port 0..65535)", empty_means, ", got '",
                     value.substr(0, 100), "'"));
  }
  return absl::OkStatus();
}

absl::Status OneOf(const std::string& value,
                   std::initializer_list<absl::string_view> allowed,
                   absl::string_view wanted) {
  for (absl::string_view a : allowed) {
    if (value == a) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("want ", wanted, ", got '", value.substr(0, 40), "'"));
}

// --- Row builders: the field's type gives parse and print. -----------------

FlagDef StringFlag(std::string name, std::string Options::*field,
                   std::string help, Check check = nullptr) {
  FlagDef f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = FlagDef::Type::kString;
  f.parse = [field](absl::string_view text, Options& o) {
    o.*field = std::string(text);
    return absl::OkStatus();
  };
  f.print = [field](const Options& o) { return o.*field; };
  f.check = std::move(check);
  return f;
}

absl::Status ParseBool(absl::string_view text, bool* out) {
  std::string t = absl::AsciiStrToLower(text);
  if (t == "true" || t == "1" || t == "yes" || t == "t" || t == "y") {
    *out = true;
  } else if (t == "false" || t == "0" || t == "no" || t == "f" || t == "n") {
    *out = false;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("want true or false, got '", text.substr(0, 40), "'"));
  }
  return absl::OkStatus();
}

FlagDef BoolFlag(std::string name, bool Options::*field, std::string help) {
  FlagDef f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = FlagDef::Type::kBool;
  f.parse = [field](absl::string_view text, Options& o) {
    return ParseBool(text, &(o.*field));
  };
  f.print = [field](const Options& o) {
    return std::string(o.*field ? "true" : "false");
  };
  return f;
}

FlagDef IntFlag(std::string name, int64_t Options::*field, std::string help,
                Check check) {
  FlagDef f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = FlagDef::Type::kInt;
  f.parse = [field](absl::string_view text, Options& o) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(text, &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("want an integer, got '", text.substr(0, 40), "'"));
    }
    o.*field = v;
    return absl::OkStatus();
  };
  f.print = [field](const Options& o) { return std::to_string(o.*field); };
  f.check = std::move(check);
  return f;
}

FlagDef DurationFlag(std::string name, absl::Duration Options::*field,
                     std::string help, Check check) {
  FlagDef f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = FlagDef::Type::kDuration;
  f.parse = [field](absl::string_view text, Options& o) {
    absl::Duration d;
    if (!absl::ParseDuration(std::string(text), &d)) {
      return absl::InvalidArgumentError(
          absl::StrCat("want a duration such as 10s, 500ms or 1m30s, got '",
                       text.substr(0, 40), "'"));
    }
    o.*field = d;
    return absl::OkStatus();
  };
  f.print = [field](const Options& o) {
    return absl::FormatDuration(o.*field);
  };
  f.check = std::move(check);
  return f;
}

FlagDef Section(FlagDef f, std::string heading) {
  f.section = std::move(heading);
  return f;
}

FlagDef Reloadable(FlagDef f) {
  f.reloadable = true;
  return f;
}

std::vector<FlagDef> BuildTable() {
  using O = Options;
  std::vector<FlagDef> t;
  t.push_back(Section(
      StringFlag("listen", &O::listen,
                 "gRPC listen address, host:port (port 0 picks a free port)",
                 [](const O& o) { return ParseHostPort(o.listen).status(); }),
      "The broker and the gRPC port"));
  t.push_back(StringFlag(
      "broker", &O::broker,
      "RabbitMQ node(s): comma-separated amqp:// or amqps:// URIs, tried "
      "in order on failover",
      [](const O& o) {
        if (!o.broker_file.empty()) return absl::OkStatus();  // not used
        return amqp::ParseBrokerList(o.broker).status();
      }));
  t.push_back(DurationFlag(
      "heartbeat", &O::heartbeat,
      "AMQP heartbeat to request (0 disables); a dead broker is noticed "
      "after about two intervals",
      DurationRange(&O::heartbeat, FixedDuration(absl::ZeroDuration()),
                    absl::Seconds(3600))));
  t.push_back(DurationFlag(
      "connect_timeout", &O::connect_timeout,
      "bound on TCP connect + login to one broker node",
      DurationRange(&O::connect_timeout, FixedDuration(absl::Milliseconds(100)),
                    absl::Seconds(600))));
  t.push_back(DurationFlag(
      "reconnect_initial_delay", &O::reconnect_initial_delay,
      "first wait between reconnect rounds (doubles, with jitter)",
      DurationRange(&O::reconnect_initial_delay,
                    FixedDuration(absl::Milliseconds(1)), absl::Seconds(600))));
  t.push_back(DurationFlag("reconnect_max_delay", &O::reconnect_max_delay,
                           "longest wait between reconnect rounds",
                           DurationRange(&O::reconnect_max_delay,
                                         FieldOf(&O::reconnect_initial_delay),
                                         absl::Seconds(3600))));
  t.push_back(
      IntFlag("max_message_bytes", &O::max_message_bytes,
              "largest message body accepted",
              IntRange(&O::max_message_bytes, Fixed(1), int64_t{512} << 20)));
  t.push_back(
      IntFlag("max_request_bytes", &O::max_request_bytes,
              "largest request (a whole PublishBatch), counted as protobuf "
              "on every port and protocol",
              IntRange(&O::max_request_bytes, FieldOf(&O::max_message_bytes),
                       int64_t{2047} << 20)));
  t.push_back(IntFlag(
      "confirm_window", &O::confirm_window,
      "most messages sent and not yet confirmed, per publisher connection",
      IntRange(&O::confirm_window, Fixed(1), 1 << 20)));
  t.push_back(BoolFlag(
      "default_message_id", &O::default_message_id,
      "give each published message that has no message_id a new UUID "
      "(off: such messages are published without one; the caller's own "
      "message_id is always kept)"));
  t.push_back(
      IntFlag("max_pending_bytes", &O::max_pending_bytes,
              "most message bytes held while waiting for the broker, over all "
              "callers; beyond it Publish answers RESOURCE_EXHAUSTED",
              IntRange(&O::max_pending_bytes, FieldOf(&O::max_request_bytes),
                       int64_t{1} << 40)));
  t.push_back(DurationFlag(
      "publish_timeout", &O::publish_timeout,
      "how long calls without a deadline wait for the broker",
      DurationRange(&O::publish_timeout, FixedDuration(absl::Milliseconds(10)),
                    absl::Hours(24))));
  t.push_back(DurationFlag(
      "shutdown_grace", &O::shutdown_grace,
      "on SIGTERM/SIGINT, how long calls in flight may finish",
      DurationRange(&O::shutdown_grace, FixedDuration(absl::ZeroDuration()),
                    absl::Seconds(3600))));
  t.push_back(
      IntFlag("publisher_connections", &O::publisher_connections,
              "AMQP connections (each with its own thread) for publishing",
              IntRange(&O::publisher_connections, Fixed(1), 64)));
  t.push_back(IntFlag(
      "consumer_connections", &O::consumer_connections,
      "AMQP connections (each with its own thread) carrying streams, one "
      "channel per stream",
      IntRange(&O::consumer_connections, Fixed(1), 256)));
  t.push_back(DurationFlag(
      "consumer_read_pause", &O::consumer_read_pause,
      "after a read that found 16 or more deliveries, a consumer "
      "connection waits up to this long (at most 2us per message of its "
      "streams' prefetch windows) before reading again, so that busy "
      "streams' deliveries travel in batches (fewer wake-ups, more "
      "throughput, up to this much latency); smaller reads are never "
      "followed by a pause; 0 reads at once; at most 100ms",
      DurationRange(&O::consumer_read_pause,
                    FixedDuration(absl::ZeroDuration()),
                    absl::Milliseconds(100))));
  t.push_back(StringFlag("instance_id", &O::instance_id,
                         "this instance's name in subscription ids (default "
                         "<hostname>:<port>)",
                         [](const O& o) {
                           return o.instance_id.find('/') == std::string::npos
                                      ? absl::OkStatus()
                                      : absl::InvalidArgumentError(
                                            "must not contain '/'");
                         }));
  t.push_back(StringFlag(
      "advertise_address", &O::advertise_address,
      "host:port at which the other instances reach this one's gRPC port: "
      "an Ack sent to another instance is forwarded here (needs "
      "--peer_secret_file)",
      [](const O& o) {
        if (o.advertise_address.find_first_of("/~") != std::string::npos) {
          return absl::InvalidArgumentError("must not contain '/' or '~'");
        }
        if (o.advertise_address.empty() != o.peer_secret_file.empty()) {
          return absl::InvalidArgumentError(
              "--advertise_address and --peer_secret_file go together");
        }
        return HostPortOrEmpty(o.advertise_address, true, "");
      }));
  t.push_back(StringFlag(
      "peer_secret_file", &O::peer_secret_file,
      "file holding a secret shared by every instance behind the same "
      "balancer; it seals subscription ids so that only Acks for ids an "
      "instance made are forwarded"));
  t.push_back(BoolFlag("connect_on_start", &O::connect_on_start,
                       "connect to the broker at start-up (else wait for "
                       "Connect)"));
  t.push_back(Reloadable(StringFlag(
      "log_level", &O::log_level,
      "trace, debug, info, warn or error (SIGHUP applies a new value from "
      "--flagfile)",
      [](const O& o) {
        return OneOf(o.log_level, {"trace", "debug", "info", "warn", "error"},
                     "trace, debug, info, warn or error");
      })));

  t.push_back(Section(
      StringFlag("log_format", &O::log_format,
                 "text (readable) or json (one object a line: ts, level, "
                 "logger, thread, msg)",
                 [](const O& o) {
                   return OneOf(o.log_format, {"text", "json"}, "text or json");
                 }),
      "Operating it: logs, metrics, tracing, TLS, authentication"));
  t.push_back(StringFlag(
      "metrics_listen", &O::metrics_listen,
      "host:port serving Prometheus metrics at /metrics (empty: off); it "
      "asks for no token, unlike /metrics on the HTTP port with "
      "--auth_tokens",
      [](const O& o) { return HostPortOrEmpty(o.metrics_listen, false, ""); }));
  t.push_back(
      StringFlag("otlp_endpoint", &O::otlp_endpoint,
                 "OpenTelemetry collector for spans, OTLP/HTTP JSON, e.g. "
                 "http://127.0.0.1:4318 (empty: no spans)",
                 [](const O& o) {
                   if (o.otlp_endpoint.empty()) return absl::OkStatus();
                   return trace::ParseEndpoint(o.otlp_endpoint).status();
                 }));
  t.push_back(StringFlag("tls_cert", &O::tls_cert,
                         "PEM certificate (chain) for gRPC over TLS"));
  t.push_back(
      StringFlag("tls_key", &O::tls_key, "PEM private key of --tls_cert"));
  t.push_back(StringFlag("tls_client_ca", &O::tls_client_ca,
                         "PEM CA bundle: require client certificates signed "
                         "by it (mutual TLS)"));
  t.push_back(Reloadable(StringFlag(
      "auth_tokens", &O::auth_tokens,
      "file of '<token> <role>' lines (roles publish, consume, admin): "
      "callers must send 'authorization: Bearer <token>' (empty: no "
      "authentication); SIGHUP re-reads the file")));
  t.push_back(StringFlag(
      "broker_file", &O::broker_file,
      "file holding the broker URI(s), instead of --broker, so the "
      "password is in neither the process list nor the environment"));
  t.push_back(
      StringFlag("broker_tls_ca", &O::broker_tls_ca,
                 "PEM CA bundle for amqps:// brokers (default: the system's)"));
  t.push_back(StringFlag(
      "broker_tls_cert", &O::broker_tls_cert,
      "PEM client certificate for amqps:// brokers that require one"));
  t.push_back(StringFlag("broker_tls_key", &O::broker_tls_key,
                         "PEM private key of --broker_tls_cert"));
  t.push_back(
      BoolFlag("broker_tls_verify_hostname", &O::broker_tls_verify_hostname,
               "check that an amqps:// broker's certificate names its host"));

  t.push_back(Section(
      StringFlag("http_listen", &O::http_listen,
                 "HTTP address for grpc-web, the Connect protocol (JSON) and "
                 "the browser view, host:port (port 0 picks a free port); "
                 "empty disables it",
                 [](const O& o) {
                   return HostPortOrEmpty(o.http_listen, true,
                                          " or empty to disable");
                 }),
      "The HTTP port: grpc-web, the browser view, /metrics"));
  t.push_back(StringFlag(
      "cors_origins", &O::cors_origins,
      "comma-separated origins (https://host[:port]) allowed to call "
      "grpc-web or Connect cross-origin; * allows any site (see "
      "docs/browser.md); "
      "same-origin needs nothing",
      [](const O& o) {
        for (const std::string& origin : CorsOrigins(o)) {
          if (origin == "*") continue;
          size_t scheme = origin.find("://");
          absl::string_view rest =
              scheme == std::string::npos
                  ? absl::string_view()
                  : absl::string_view(origin).substr(scheme + 3);
          bool ok = (absl::StartsWith(origin, "http://") ||
                     absl::StartsWith(origin, "https://")) &&
                    !rest.empty() &&
                    rest.find_first_of("/?#@ ") == std::string::npos;
          if (!ok) {
            return absl::InvalidArgumentError(absl::StrCat(
                "want comma-separated origins like "
                "https://app.example.com[:port] (no path), or *, got '",
                origin.substr(0, 100), "'"));
          }
        }
        return absl::OkStatus();
      }));
  t.push_back(StringFlag(
      "web_root", &O::web_root,
      "serve the browser view from this folder instead of the copy "
      "built into the binary (development)",
      [](const O& o) {
        struct stat st;
        if (o.web_root.empty() ||
            (stat(o.web_root.c_str(), &st) == 0 && S_ISDIR(st.st_mode))) {
          return absl::OkStatus();
        }
        return absl::InvalidArgumentError(
            absl::StrCat("not a folder: '", o.web_root, "'"));
      }));
  t.push_back(IntFlag(
      "http_max_connections", &O::http_max_connections,
      "most HTTP requests served at once, one thread each (a grpc-web or "
      "Connect call holds one until it ends); more wait; connections that "
      "are idle "
      "or still sending a request hold no thread (up to 4x this many are "
      "kept)",
      IntRange(&O::http_max_connections, Fixed(16), 65536)));
  t.push_back(
      StringFlag("http_tls_cert", &O::http_tls_cert,
                 "PEM certificate (chain) for HTTPS on the HTTP port (default: "
                 "--tls_cert)"));
  t.push_back(
      StringFlag("http_tls_key", &O::http_tls_key,
                 "PEM private key of --http_tls_cert (default: --tls_key)"));
  t.push_back(StringFlag(
      "http_tls_client_ca", &O::http_tls_client_ca,
      "PEM CA bundle: the HTTP port requires client certificates signed "
      "by it (default: --tls_client_ca)"));
  t.push_back(BoolFlag(
      "http_insecure", &O::http_insecure,
      "let the HTTP port be less protected than the gRPC port: it uses "
      "only the --http_tls_* flags given (none: plain HTTP), even when the "
      "gRPC port requires TLS or client certificates; logged as a "
      "warning"));
  t.push_back(DurationFlag(
      "http_header_timeout", &O::http_header_timeout,
      "an HTTP request's head (request line and headers) must arrive "
      "within this from its first byte, else 408 and the connection "
      "closes",
      DurationRange(&O::http_header_timeout,
                    FixedDuration(absl::Milliseconds(100)),
                    absl::Seconds(600))));
  t.push_back(DurationFlag(
      "http_body_timeout", &O::http_body_timeout,
      "an HTTP request's body must arrive within this after its head, "
      "else 408 and the connection closes",
      DurationRange(&O::http_body_timeout,
                    FixedDuration(absl::Milliseconds(100)),
                    absl::Seconds(3600))));

  t.push_back(Section(
      StringFlag(
          "management_url", &O::management_url,
          "RabbitMQ's management HTTP API, for the listing RPCs (ListQueues, "
          "...): http(s)://host:port/; https is trusted like the broker "
          "(--broker_tls_*); empty: http://<broker host>:15672/, tried once "
          "the session is up",
          [](const O& o) {
            if (o.management_url.empty()) return absl::OkStatus();
            return ParseHttpUrl(o.management_url).status();
          }),
      "Listing the broker (RabbitMQ's management API)"));
  t.push_back(StringFlag(
      "management_user", &O::management_user,
      "user for --management_url (default: the broker URI's); it needs a "
      "management tag, 'monitoring' to see other users' connections"));
  t.push_back(StringFlag("management_password_file",
                         &O::management_password_file,
                         "file holding the password of --management_user "
                         "(default: the broker URI's password)"));
  return t;
}

const FlagDef* FindFlag(absl::string_view name) {
  for (const FlagDef& f : FlagTable()) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

// One "--name[=value]" (value may come from `next`). Sets *used_next when
// it took the next argument.
absl::Status ApplyArg(absl::string_view arg, const std::string* next,
                      bool* used_next, CommandLine* out, int depth);

absl::Status ReadFlagFile(const std::string& path, CommandLine* out,
                          int depth) {
  if (depth > 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("--flagfile: '", path, "' nests flag files too deep"));
  }
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--flagfile: cannot read '", path, "'"));
  }
  out->flagfiles.push_back(path);
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    absl::string_view l = absl::StripAsciiWhitespace(line);
    if (l.empty() || l[0] == '#' || absl::StartsWith(l, "//")) continue;
    if (l[0] != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_no, ": want one --name=value a line"));
    }
    bool used_next = false;
    absl::Status s = ApplyArg(l, nullptr, &used_next, out, depth + 1);
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_no, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyArg(absl::string_view arg, const std::string* next,
                      bool* used_next, CommandLine* out, int depth) {
  absl::string_view body = arg;
  if (!absl::ConsumePrefix(&body, "--")) absl::ConsumePrefix(&body, "-");
  absl::string_view name = body;
  std::optional<std::string> value;
  if (size_t eq = body.find('='); eq != absl::string_view::npos) {
    name = body.substr(0, eq);
    value = std::string(body.substr(eq + 1));
  }
  if (name == "help" || name == "helpfull" || name == "h") {
    out->help = true;
    return absl::OkStatus();
  }
  if (name == "version") {
    out->version = true;
    return absl::OkStatus();
  }
  if (name == "flagfile") {
    if (!value.has_value()) {
      if (next == nullptr) return Bad("flagfile", "missing file name");
      value = *next;
      *used_next = true;
    }
    for (absl::string_view file : absl::StrSplit(*value, ',')) {
      if (file.empty()) continue;
      absl::Status s = ReadFlagFile(std::string(file), out, depth);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }
  const FlagDef* flag = FindFlag(name);
  if (flag == nullptr && absl::StartsWith(name, "no") && !value.has_value()) {
    const FlagDef* negated = FindFlag(name.substr(2));
    if (negated != nullptr && negated->type == FlagDef::Type::kBool) {
      return negated->parse("false", out->options);
    }
  }
  if (flag == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown flag --", name.substr(0, 60), " (amqpgwd --help lists them)"));
  }
  if (!value.has_value()) {
    if (flag->type == FlagDef::Type::kBool) {
      value = "true";
    } else if (next != nullptr) {
      value = *next;
      *used_next = true;
    } else {
      return Bad(flag->name, "missing value");
    }
  }
  absl::Status s = flag->parse(*value, out->options);
  if (!s.ok()) return Bad(flag->name, s.message());
  return absl::OkStatus();
}

}  // namespace

std::string FlagDef::EnvName() const {
  return "AMQPGW_" + absl::AsciiStrToUpper(name);
}

const std::vector<FlagDef>& FlagTable() {
  static const std::vector<FlagDef>* table =
      new std::vector<FlagDef>(BuildTable());
  return *table;
}

absl::Status ValidateOptions(const Options& o) {
  for (const FlagDef& f : FlagTable()) {
    if (!f.check) continue;
    absl::Status s = f.check(o);
    if (!s.ok()) {
      // A broker list is checked under the flag it came from.
      return Bad(f.name, s.message());
    }
  }
  // Rules across flags.
  auto pair = [](const std::string& a, absl::string_view a_name,
                 const std::string& b, absl::string_view b_name) {
    if (a.empty() == b.empty()) return absl::OkStatus();
    return Bad(a.empty() ? a_name : b_name,
               absl::StrCat("--", a_name, " and --", b_name, " go together"));
  };
  absl::Status s;
  if (!(s = pair(o.tls_cert, "tls_cert", o.tls_key, "tls_key")).ok() ||
      !(s = pair(o.http_tls_cert, "http_tls_cert", o.http_tls_key,
                 "http_tls_key"))
           .ok() ||
      !(s = pair(o.broker_tls_cert, "broker_tls_cert", o.broker_tls_key,
                 "broker_tls_key"))
           .ok()) {
    return s;
  }
  if (!o.tls_client_ca.empty() && o.tls_cert.empty()) {
    return Bad("tls_client_ca",
               "mutual TLS needs the server's own --tls_cert and --tls_key");
  }
  if (!o.http_tls_client_ca.empty() && EffectiveHttpTls(o).cert.empty()) {
    return Bad("http_tls_client_ca",
               "client certificates need HTTPS: set --http_tls_cert and "
               "--http_tls_key (or --tls_cert and --tls_key)");
  }
  return absl::OkStatus();
}

absl::StatusOr<CommandLine> ParseCommandLine(
    const std::vector<std::string>& args,
    const std::map<std::string, std::string>& environment) {
  CommandLine out;
  for (const FlagDef& f : FlagTable()) {
    auto it = environment.find(f.EnvName());
    if (it == environment.end()) continue;
    absl::Status s = f.parse(it->second, out.options);
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(f.EnvName(), " (--", f.name, "): ", s.message()));
    }
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      if (i + 1 < args.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("amqpgwd takes no arguments, got '",
                         args[i + 1].substr(0, 60), "'"));
      }
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      return absl::InvalidArgumentError(absl::StrCat(
          "amqpgwd takes no arguments, got '", arg.substr(0, 60), "'"));
    }
    bool used_next = false;
    absl::Status s = ApplyArg(arg, i + 1 < args.size() ? &args[i + 1] : nullptr,
                              &used_next, &out, 0);
    if (!s.ok()) return s;
    if (used_next) ++i;
  }
  return out;
}

std::map<std::string, std::string> AmqpgwEnvironment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    absl::string_view entry(*e);
    if (!absl::StartsWith(entry, "AMQPGW_")) continue;
    size_t eq = entry.find('=');
    if (eq == absl::string_view::npos) continue;
    env.emplace(std::string(entry.substr(0, eq)),
                std::string(entry.substr(eq + 1)));
  }
  return env;
}

std::string UsageText() {
  const Options defaults;
  std::string out =
      "amqpgwd: RabbitMQ behind gRPC.\n\n"
      "  amqpgwd --broker=amqp://guest:guest@127.0.0.1:5672/ "
      "--listen=127.0.0.1:50051 --http_listen=127.0.0.1:8080\n\n"
      "Every flag can also be set as AMQPGW_<FLAG> in the environment; the "
      "command line\nwins. --flagfile=FILE reads flags from FILE, one "
      "--name=value a line; SIGHUP\nre-reads the token file and the flag "
      "files, and applies the flags marked\n\"reloadable\".\n";
  auto type_name = [](FlagDef::Type t) {
    switch (t) {
      case FlagDef::Type::kString:
        return "string";
      case FlagDef::Type::kBool:
        return "bool";
      case FlagDef::Type::kInt:
        return "int";
      case FlagDef::Type::kDuration:
        return "duration";
    }
    return "";
  };
  for (const FlagDef& f : FlagTable()) {
    if (!f.section.empty()) absl::StrAppend(&out, "\n", f.section, ":\n");
    std::string def = f.print(defaults);
    absl::StrAppend(&out, "  --", f.name, " (", type_name(f.type), "; default ",
                    def.empty() ? "empty" : "\"" + def + "\"", "; ",
                    f.EnvName(), f.reloadable ? "; reloadable" : "", ")\n");
    // The help text, wrapped at 78 columns, indented.
    std::string line = "     ";
    for (absl::string_view word :
         absl::StrSplit(f.help, ' ', absl::SkipEmpty())) {
      if (line.size() + 1 + word.size() > 78 && line.size() > 5) {
        absl::StrAppend(&out, line, "\n");
        line = "     ";
      }
      absl::StrAppend(&line, " ", word);
    }
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

}  // namespace amqpgw::daemon
