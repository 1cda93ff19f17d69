// Counts every RPC the server handles (Gateway, health, reflection) in a
// metrics::RpcMetrics: a server interceptor notes the start when the call
// arrives and the status code and latency when the status is sent. It sees
// calls from every transport (TCP, the in-process channel of the grpc-web
// bridge). Cost per call: one small allocation and a few relaxed atomics.
//
// Thread safety: the factory is shared by gRPC's threads (it only reads);
// each interceptor belongs to its call.
#ifndef AMQPGW_SERVER_GRPC_RPC_METRICS_INTERCEPTOR_H_
#define AMQPGW_SERVER_GRPC_RPC_METRICS_INTERCEPTOR_H_

#include <grpcpp/support/server_interceptor.h>

#include <string>
#include <vector>

#include "server/metrics/rpc_metrics.h"

namespace amqpgw::grpc_api {

class RpcMetricsInterceptorFactory
    : public ::grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  // `metrics` must outlive the server.
  explicit RpcMetricsInterceptorFactory(metrics::RpcMetrics* metrics)
      : metrics_(metrics) {}
  ::grpc::experimental::Interceptor* CreateServerInterceptor(
      ::grpc::experimental::ServerRpcInfo* info) override;

 private:
  metrics::RpcMetrics* const metrics_;
};

// Full names ("/pkg.Service/Method") of every method the daemon serves:
// amqpgw.v1.Gateway (from its descriptor), grpc.health.v1.Health and
// reflection.
std::vector<std::string> ServedMethodNames();

}  // namespace amqpgw::grpc_api

#endif  // AMQPGW_SERVER_GRPC_RPC_METRICS_INTERCEPTOR_H_
