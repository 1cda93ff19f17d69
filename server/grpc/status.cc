#include "server/grpc/status.h"

#include <string>

namespace amqpgw::grpc_api {

::grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return ::grpc::Status::OK;
  return ::grpc::Status(static_cast<::grpc::StatusCode>(status.code()),
                        std::string(status.message()));
}

}  // namespace amqpgw::grpc_api
