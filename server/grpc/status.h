// The one place where absl::Status becomes grpc::Status.
#ifndef AMQPGW_SERVER_GRPC_STATUS_H_
#define AMQPGW_SERVER_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace amqpgw::grpc_api {

// Same code, same message. absl and gRPC share the canonical code numbers.
::grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace amqpgw::grpc_api

#endif  // AMQPGW_SERVER_GRPC_STATUS_H_
