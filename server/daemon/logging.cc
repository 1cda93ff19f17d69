// Logging: spdlog on stderr, readable text or one JSON object a line, with
// gRPC's own messages routed through the same sink.
#include <grpc/support/log.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>

#include "server/daemon/daemon.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace amqpgw::daemon {
namespace {

// %* in a pattern: the message as a JSON string (quoted and escaped).
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    dest.push_back('"');
    for (char c : msg.payload) {
      switch (c) {
        case '"':
          dest.append(std::string_view("\\\""));
          break;
        case '\\':
          dest.append(std::string_view("\\\\"));
          break;
        case '\n':
          dest.append(std::string_view("\\n"));
          break;
        case '\r':
          dest.append(std::string_view("\\r"));
          break;
        case '\t':
          dest.append(std::string_view("\\t"));
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", c);
            dest.append(std::string_view(buf));
          } else {
            dest.push_back(c);
          }
      }
    }
    dest.push_back('"');
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

std::unique_ptr<spdlog::formatter> MakeFormatter(const std::string& format) {
  auto f = std::make_unique<spdlog::pattern_formatter>();
  if (format == "json") {
    f->add_flag<JsonMessageFlag>('*').set_pattern(
        R"({"ts":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","logger":"%n",)"
        R"("thread":%t,"msg":%*})");
  } else {
    f->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ [%n] %v");
  }
  return f;
}

// gRPC core's log lines (transport errors, TLS handshake failures) in the
// same format, logger "grpc". gRPC may log from its own threads at any time,
// even while the process exits and static objects (spdlog's console mutex
// among them) are being destroyed, so this path uses no spdlog object: it
// formats into a local buffer and writes the line with one write(2).
// Which lines gRPC emits is its own setting (GRPC_VERBOSITY, default ERROR).
// Set once by InitLogging, before gRPC starts.
bool grpc_json = false;

void AppendJsonEscaped(std::string_view in, std::string* out) {
  for (char c : in) {
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out->append(buf);
    } else {
      out->push_back(c);
    }
  }
}

void GrpcLog(gpr_log_func_args* args) {
  const char* level = args->severity == GPR_LOG_SEVERITY_ERROR  ? "error"
                      : args->severity == GPR_LOG_SEVERITY_INFO ? "info"
                                                                : "debug";
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  std::tm tm;
  localtime_r(&now.tv_sec, &tm);
  char ts[64];
  size_t n = std::strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
  long offset = tm.tm_gmtoff / 60;
  std::snprintf(ts + n, sizeof(ts) - n, ".%03ld%c%02ld:%02ld",
                now.tv_nsec / 1000000, offset < 0 ? '-' : '+',
                std::labs(offset) / 60, std::labs(offset) % 60);
  std::string line;
  if (grpc_json) {
    line = std::string("{\"ts\":\"") + ts + "\",\"level\":\"" + level +
           "\",\"logger\":\"grpc\",\"thread\":" +
           std::to_string(static_cast<long>(syscall(SYS_gettid))) +
           ",\"msg\":\"";
    AppendJsonEscaped(args->message, &line);
    line += "\"}\n";
  } else {
    line = std::string(ts) + " " + level + " [grpc] " + args->message + "\n";
  }
  ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace

void InitLogging(const std::string& level, const std::string& format) {
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  sink->set_formatter(MakeFormatter(format));
  auto logger = std::make_shared<spdlog::logger>("amqpgw", sink);
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);

  grpc_json = format == "json";
  gpr_set_log_function(GrpcLog);
}

void SetLogLevel(const std::string& level) {
  spdlog::default_logger()->set_level(spdlog::level::from_str(level));
}

}  // namespace amqpgw::daemon
