// Logging: spdlog on stderr, readable text or one JSON object a line, with
// gRPC's own messages routed through the same sink.
#include <grpc/support/log.h>

#include <cstdio>
#include <memory>
#include <string>

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

// gRPC core's log lines (transport errors, TLS handshake failures) go to
// the "grpc" logger. Kept alive until exit: gRPC may log from its threads
// while statics are destroyed.
std::shared_ptr<spdlog::logger>* grpc_logger = nullptr;

void GrpcLog(gpr_log_func_args* args) {
  if (grpc_logger == nullptr) return;
  spdlog::level::level_enum level = spdlog::level::info;
  switch (args->severity) {
    case GPR_LOG_SEVERITY_DEBUG:
      level = spdlog::level::debug;
      break;
    case GPR_LOG_SEVERITY_INFO:
      level = spdlog::level::info;
      break;
    case GPR_LOG_SEVERITY_ERROR:
      level = spdlog::level::err;
      break;
  }
  (*grpc_logger)->log(level, "{}", args->message);
}

}  // namespace

void InitLogging(const std::string& level, const std::string& format) {
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  sink->set_formatter(MakeFormatter(format));
  auto logger = std::make_shared<spdlog::logger>("amqpgw", sink);
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);

  auto grpc = std::make_shared<spdlog::logger>("grpc", sink);
  grpc->set_level(spdlog::level::from_str(level));
  grpc->flush_on(spdlog::level::trace);
  grpc_logger = new std::shared_ptr<spdlog::logger>(std::move(grpc));
  gpr_set_log_function(GrpcLog);
}

}  // namespace amqpgw::daemon
