// Protobuf's canonical JSON mapping (proto3 JSON) for the Connect protocol,
// with protobuf's own util/json_util: requests are read as JSON (proto field
// names and lowerCamelCase both accepted, enums by name or number, bytes as
// base64, 64-bit integers as strings or numbers) into the binary form the
// gRPC server takes, and replies are written back as JSON (lowerCamelCase
// names, every field without presence printed, zeros included).
//
// The message types come from descriptors of the generated pool (the
// binary's linked .pb.cc files: rpc_method.h's LookUpMethod). Stateless:
// any thread.
#ifndef AMQPGW_SERVER_WEB_JSON_CODEC_H_
#define AMQPGW_SERVER_WEB_JSON_CODEC_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace google::protobuf {
class Descriptor;
}  // namespace google::protobuf

namespace amqpgw::web {

// `json` (one JSON object; empty text counts as {}) as the serialized
// `type`. INVALID_ARGUMENT naming the type and quoting what protobuf's
// parser said (an unknown field, a wrong type, broken JSON; cut to a bounded
// length); unknown fields are refused, not dropped.
absl::StatusOr<std::string> JsonToBinary(
    const google::protobuf::Descriptor& type, absl::string_view json);

// Serialized `type` as JSON. INTERNAL when `binary` is not a `type`.
absl::StatusOr<std::string> BinaryToJson(
    const google::protobuf::Descriptor& type, absl::string_view binary);

}  // namespace amqpgw::web

#endif  // AMQPGW_SERVER_WEB_JSON_CODEC_H_
