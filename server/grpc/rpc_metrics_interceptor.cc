#include "server/grpc/rpc_metrics_interceptor.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "amqpgw/v1/gateway.pb.h"

namespace amqpgw::grpc_api {
namespace {

using ::grpc::experimental::InterceptionHookPoints;

class RpcMetricsInterceptor : public ::grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(metrics::RpcMetrics* metrics, int method)
      : metrics_(metrics),
        method_(method),
        start_(std::chrono::steady_clock::now()) {
    metrics_->Started(method_);
  }
  ~RpcMetricsInterceptor() override {
    // The call ended without sending a status (e.g. the server shut down).
    if (!recorded_) Record(::grpc::StatusCode::CANCELLED);
  }

  void Intercept(::grpc::experimental::InterceptorBatchMethods* m) override {
    if (!recorded_ && m->QueryInterceptionHookPoint(
                          InterceptionHookPoints::PRE_SEND_STATUS)) {
      Record(m->GetSendStatus().error_code());
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
  const std::chrono::steady_clock::time_point start_;
  bool recorded_ = false;
};

}  // namespace

::grpc::experimental::Interceptor*
RpcMetricsInterceptorFactory::CreateServerInterceptor(
    ::grpc::experimental::ServerRpcInfo* info) {
  return new RpcMetricsInterceptor(metrics_,
                                   metrics_->MethodIndex(info->method()));
}

std::vector<std::string> ServedMethodNames() {
  std::vector<std::string> names;
  const google::protobuf::ServiceDescriptor* gateway =
      v1::PublishRequest::descriptor()->file()->FindServiceByName("Gateway");
  for (int i = 0; gateway != nullptr && i < gateway->method_count(); ++i) {
    names.push_back(absl::StrCat("/", gateway->full_name(), "/",
                                 gateway->method(i)->name()));
  }
  names.push_back("/grpc.health.v1.Health/Check");
  names.push_back("/grpc.health.v1.Health/Watch");
  names.push_back(
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo");
  return names;
}

}  // namespace amqpgw::grpc_api
