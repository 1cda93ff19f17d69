// AMQP wire encoding of field tables and basic properties, through
// rabbitmq-c's own codec. Used by tests and fuzzers to prove that values
// survive a round trip, and by nothing on the hot path.
#ifndef AMQPGW_SERVER_AMQP_CODEC_H_
#define AMQPGW_SERVER_AMQP_CODEC_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/amqp/types.h"

namespace amqpgw::amqp {

// Encodes a table as on the wire (a 4-byte length, then the entries).
// InvalidArgument when nesting exceeds kMaxTableDepth.
absl::StatusOr<std::string> EncodeFieldTable(const FieldTable& table);

// Decodes a table as on the wire. InvalidArgument on malformed input.
absl::StatusOr<FieldTable> DecodeFieldTable(absl::string_view wire);

// Encodes and decodes basic properties (the content header's property list).
absl::StatusOr<std::string> EncodeProperties(const Properties& properties);
absl::StatusOr<Properties> DecodeProperties(absl::string_view wire);

}  // namespace amqpgw::amqp

#endif  // AMQPGW_SERVER_AMQP_CODEC_H_
