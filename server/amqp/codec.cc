#include "server/amqp/codec.h"

#include <amqp.h>
#include <amqp_framing.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "server/amqp/rabbitmq_convert.h"

namespace amqpgw::amqp {
namespace {

constexpr size_t kMaxEncodedSize = 64 << 20;

// A rabbitmq-c pool freed when it leaves scope.
struct ScopedPool {
  ScopedPool() { init_amqp_pool(&pool, 4096); }
  ~ScopedPool() { empty_amqp_pool(&pool); }
  amqp_pool_t pool;
};

}  // namespace

absl::StatusOr<std::string> EncodeFieldTable(const FieldTable& table) {
  ScopedPool pool;
  amqp_table_t t;
  absl::Status s = internal::ToAmqpTable(table, &pool.pool, &t);
  if (!s.ok()) return s;
  // Grow the buffer until the encoder fits.
  for (size_t size = 4096;; size *= 2) {
    std::string buf(size, '\0');
    size_t offset = 0;
    int res = amqp_encode_table(internal::Bytes(buf), &t, &offset);
    if (res == AMQP_STATUS_OK) {
      buf.resize(offset);
      return buf;
    }
    if (res != AMQP_STATUS_TABLE_TOO_BIG || size >= kMaxEncodedSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot encode field table: ", amqp_error_string2(res)));
    }
  }
}

absl::StatusOr<FieldTable> DecodeFieldTable(absl::string_view wire) {
  ScopedPool pool;
  amqp_table_t t;
  size_t offset = 0;
  int res = amqp_decode_table(internal::Bytes(wire), &pool.pool, &t, &offset);
  if (res != AMQP_STATUS_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed field table: ", amqp_error_string2(res)));
  }
  return internal::FromAmqpTable(t);
}

absl::StatusOr<std::string> EncodeProperties(const Properties& properties) {
  ScopedPool pool;
  amqp_basic_properties_t p;
  absl::Status s = internal::ToAmqpProperties(properties, &pool.pool, &p);
  if (!s.ok()) return s;
  for (size_t size = 4096;; size *= 2) {
    std::string buf(size, '\0');
    int res =
        amqp_encode_properties(AMQP_BASIC_CLASS, &p, internal::Bytes(buf));
    if (res >= 0) {
      buf.resize(static_cast<size_t>(res));
      return buf;
    }
    if ((res != AMQP_STATUS_TABLE_TOO_BIG &&
         res != AMQP_STATUS_BAD_AMQP_DATA) ||
        size >= kMaxEncodedSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot encode properties: ", amqp_error_string2(res)));
    }
  }
}

absl::StatusOr<Properties> DecodeProperties(absl::string_view wire) {
  ScopedPool pool;
  void* decoded = nullptr;
  int res = amqp_decode_properties(AMQP_BASIC_CLASS, &pool.pool,
                                   internal::Bytes(wire), &decoded);
  if (res != AMQP_STATUS_OK || decoded == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed properties: ", amqp_error_string2(res)));
  }
  return internal::FromAmqpProperties(
      *static_cast<amqp_basic_properties_t*>(decoded));
}

}  // namespace amqpgw::amqp
