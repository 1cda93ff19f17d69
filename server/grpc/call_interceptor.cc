#include "server/grpc/call_interceptor.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/stubs/logging.h>

#include <chrono>
#include <mutex>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "server/base/quote.h"
#include "server/grpc/rpcs.h"
#include "spdlog/spdlog.h"

namespace amqpgw::grpc_api {
namespace {

using ::grpc::experimental::InterceptionHookPoints;

// Protobuf's complaint about the last failed parse on this thread.
thread_local std::string parse_complaint;

// "String field 'amqpgw.v1.PublishRequest.routing_key' contains invalid
// UTF-8 data when parsing a protocol buffer. Use the 'bytes' type if you
// intend to send raw bytes." -> "string field
// amqpgw.v1.PublishRequest.routing_key is not valid UTF-8".
std::string DescribeComplaint(const std::string& message) {
  constexpr absl::string_view kUtf8 = "contains invalid UTF-8 data";
  size_t open = message.find('\'');
  size_t close =
      open == std::string::npos ? open : message.find('\'', open + 1);
  if (absl::StrContains(message, kUtf8) && close != std::string::npos) {
    return absl::StrCat("string field ",
                        message.substr(open + 1, close - open - 1),
                        " is not valid UTF-8");
  }
  return message;
}

void ProtobufLog(google::protobuf::LogLevel level, const char* filename,
                 int line, const std::string& message) {
  if (absl::StrContains(message, "when parsing a protocol buffer")) {
    // The parse fails; the call's interceptor reports it to the caller.
    parse_complaint = DescribeComplaint(message);
    spdlog::debug("protobuf: {}", message);
    return;
  }
  spdlog::level::level_enum spd = spdlog::level::info;
  switch (level) {
    case google::protobuf::LOGLEVEL_INFO:
      spd = spdlog::level::info;
      break;
    case google::protobuf::LOGLEVEL_WARNING:
      spd = spdlog::level::warn;
      break;
    default:
      spd = spdlog::level::err;
      break;
  }
  spdlog::log(spd, "protobuf ({}:{}): {}", filename, line, message);
}

class CallInterceptor : public ::grpc::experimental::Interceptor {
 public:
  // `single_request`: the method takes one request message (unary or server
  // streaming), which gRPC deserializes before the handler runs.
  CallInterceptor(metrics::RpcMetrics* metrics, int method,
                  const char* full_method, bool single_request)
      : metrics_(metrics),
        method_(method),
        full_method_(full_method),
        single_request_(single_request),
        start_(std::chrono::steady_clock::now()) {
    metrics_->Started(method_);
  }
  ~CallInterceptor() override {
    // The call ended without sending a status (e.g. the server shut down).
    if (!recorded_) Record(::grpc::StatusCode::CANCELLED);
  }

  void Intercept(::grpc::experimental::InterceptorBatchMethods* m) override {
    if (single_request_ && !request_seen_ &&
        m->QueryInterceptionHookPoint(
            InterceptionHookPoints::POST_RECV_MESSAGE)) {
      request_seen_ = true;
      if (m->GetRecvMessage() == nullptr) {
        // gRPC could not deserialize the request; its handler will answer
        // UNIMPLEMENTED with no message. (For streamed requests a missing
        // message also means the end of the stream: those are left alone.)
        unparseable_ = true;
        why_ = std::exchange(parse_complaint, std::string());
      }
    }
    if (!recorded_ && m->QueryInterceptionHookPoint(
                          InterceptionHookPoints::PRE_SEND_STATUS)) {
      ::grpc::Status status = m->GetSendStatus();
      if (unparseable_ && status.error_code() == ::grpc::UNIMPLEMENTED) {
        status = ::grpc::Status(
            ::grpc::INVALID_ARGUMENT,
            UnparseableRequestMessage(
                full_method_ == nullptr ? "" : full_method_, why_));
        m->ModifySendStatus(status);
      }
      Record(status.error_code());
    }
    m->Proceed();
  }

 private:
  void Record(int code) {
    recorded_ = true;
    metrics_->Finished(
        method_, code,
        absl::FromChrono(std::chrono::steady_clock::now() - start_));
  }

  metrics::RpcMetrics* const metrics_;
  const int method_;
  const char* const full_method_;  // gRPC's, lives as long as the call
  const bool single_request_;
  const std::chrono::steady_clock::time_point start_;
  bool recorded_ = false;
  bool request_seen_ = false;
  bool unparseable_ = false;
  std::string why_;
};

}  // namespace

CallInterceptorFactory::CallInterceptorFactory(metrics::RpcMetrics* metrics)
    : metrics_(metrics) {
  InstallProtobufLogHandler();
}

::grpc::experimental::Interceptor*
CallInterceptorFactory::CreateServerInterceptor(
    ::grpc::experimental::ServerRpcInfo* info) {
  using Type = ::grpc::experimental::ServerRpcInfo::Type;
  return new CallInterceptor(
      metrics_, metrics_->MethodIndex(info->method()), info->method(),
      info->type() == Type::UNARY || info->type() == Type::SERVER_STREAMING);
}

std::vector<std::string> ServedMethodNames() {
  std::vector<std::string> names;
  for (const Rpc& rpc : GatewayRpcs()) names.push_back(rpc.full_name);
  names.push_back("/grpc.health.v1.Health/Check");
  names.push_back("/grpc.health.v1.Health/Watch");
  names.push_back(
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo");
  return names;
}

void InstallProtobufLogHandler() {
  static std::once_flag once;
  std::call_once(once, [] { google::protobuf::SetLogHandler(&ProtobufLog); });
}

std::string UnparseableRequestMessage(absl::string_view full_method,
                                      absl::string_view why) {
  // "/amqpgw.v1.Gateway/Publish" -> method "amqpgw.v1.Gateway.Publish".
  std::string name(absl::StripPrefix(full_method, "/"));
  absl::StrReplaceAll({{"/", "."}}, &name);
  const google::protobuf::MethodDescriptor* method =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(
          name);
  std::string message =
      method != nullptr
          ? method->input_type()->full_name()
          : absl::StrCat("the request message of ", QuoteInput(full_method));
  return absl::StrCat(
      "request could not be parsed as ", message, ": ",
      why.empty() ? "not valid protobuf binary encoding of it, or messages "
                    "nested deeper than 100 levels"
                  : why);
}

}  // namespace amqpgw::grpc_api
