// Internal to server/amqp: conversions between amqpgw::amqp types and
// rabbitmq-c structures. Only server/amqp/*.cc may include this header.
#ifndef AMQPGW_SERVER_AMQP_RABBITMQ_CONVERT_H_
#define AMQPGW_SERVER_AMQP_RABBITMQ_CONVERT_H_

#include <amqp.h>
#include <amqp_framing.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/amqp/types.h"

namespace amqpgw::amqp::internal {

inline amqp_bytes_t Bytes(absl::string_view s) {
  amqp_bytes_t b;
  b.len = s.size();
  b.bytes = const_cast<char*>(s.data());
  return b;
}

inline std::string String(amqp_bytes_t b) {
  return b.len == 0 ? std::string()
                    : std::string(static_cast<const char*>(b.bytes), b.len);
}

// Builds a rabbitmq-c table in `pool`. Strings are not copied: `table` must
// outlive `out`. InvalidArgument when nesting exceeds kMaxTableDepth.
absl::Status ToAmqpTable(const FieldTable& table, amqp_pool_t* pool,
                         amqp_table_t* out);

// Copies a rabbitmq-c table out of its pool. Nesting deeper than
// 2 * kMaxTableDepth is replaced by void values.
FieldTable FromAmqpTable(const amqp_table_t& table);

// Builds rabbitmq-c properties in `pool`; strings point into `props`.
absl::Status ToAmqpProperties(const Properties& props, amqp_pool_t* pool,
                              amqp_basic_properties_t* out);

// Copies properties out of rabbitmq-c's buffers.
Properties FromAmqpProperties(const amqp_basic_properties_t& props);

}  // namespace amqpgw::amqp::internal

#endif  // AMQPGW_SERVER_AMQP_RABBITMQ_CONVERT_H_
