// One server interceptor per call, for every method the server serves
// (amqpgw.v1.Gateway, grpc.health.v1, reflection) and every transport (TCP,
// the in-process channel of the grpc-web bridge):
//   - It counts the call in a metrics::RpcMetrics: the start when the call
//     arrives, the status code and latency when the status is sent.
//   - It answers a request that gRPC could not parse as the method's message
//     (not protobuf, invalid UTF-8 in a string field, messages nested deeper
//     than protobuf's limit of 100) with INVALID_ARGUMENT "request could not
//     be parsed as <message>: <why>" instead of gRPC's own UNIMPLEMENTED with
//     no message. gRPC's callback handlers give such a call no handler; the
//     interceptor sees the missing request (POST_RECV_MESSAGE without a
//     message, for methods that take one request: unary and server
//     streaming) and rewrites the status it sends.
// The why comes from protobuf's own complaint (InstallProtobufLogHandler):
// protobuf logs it on the thread that parses, which is the thread that then
// runs this call's interceptors, so it is handed over in a thread-local.
// Cost per call: one small allocation, a few relaxed atomics and two hook
// checks; parse failures cost a descriptor lookup.
//
// Thread safety: the factory is shared by gRPC's threads (it only reads);
// each interceptor belongs to its call.
#ifndef AMQPGW_SERVER_GRPC_CALL_INTERCEPTOR_H_
#define AMQPGW_SERVER_GRPC_CALL_INTERCEPTOR_H_

#include <grpcpp/support/server_interceptor.h>

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "server/metrics/rpc_metrics.h"

namespace amqpgw::grpc_api {

class CallInterceptorFactory
    : public ::grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  // `metrics` must outlive the server. Installs the protobuf log handler.
  explicit CallInterceptorFactory(metrics::RpcMetrics* metrics);
  ::grpc::experimental::Interceptor* CreateServerInterceptor(
      ::grpc::experimental::ServerRpcInfo* info) override;

 private:
  metrics::RpcMetrics* const metrics_;
};

// Full names ("/pkg.Service/Method") of every method the daemon serves:
// amqpgw.v1.Gateway (rpcs.h), grpc.health.v1.Health and reflection.
std::vector<std::string> ServedMethodNames();

// Routes libprotobuf's log lines (which would go raw to stderr) through the
// daemon's log, and keeps the complaint of a failed parse for the call's
// interceptor instead of logging it. Idempotent; any thread.
void InstallProtobufLogHandler();

// The INVALID_ARGUMENT message for a request of `full_method` that could not
// be parsed; `why` is protobuf's complaint, empty when it gave none.
std::string UnparseableRequestMessage(absl::string_view full_method,
                                      absl::string_view why);

}  // namespace amqpgw::grpc_api

#endif  // AMQPGW_SERVER_GRPC_CALL_INTERCEPTOR_H_
