#include "server/amqp/types.h"

#include <algorithm>
#include <cstdint>

namespace amqpgw::amqp {

bool Properties::operator==(const Properties& o) const {
  return content_type == o.content_type &&
         content_encoding == o.content_encoding && headers == o.headers &&
         delivery_mode == o.delivery_mode && priority == o.priority &&
         correlation_id == o.correlation_id && reply_to == o.reply_to &&
         expiration == o.expiration && message_id == o.message_id &&
         timestamp == o.timestamp && type == o.type && user_id == o.user_id &&
         app_id == o.app_id && cluster_id == o.cluster_id;
}

const FieldValue* FindField(const FieldTable& table, std::string_view key) {
  for (const auto& [k, v] : table) {
    if (k == key) return &v;
  }
  return nullptr;
}

uint32_t DeliveryAttempt(const Delivery& d) {
  int64_t before = 0;
  int64_t own = d.redelivered ? 2 : 1;
  if (d.properties.headers.has_value()) {
    const FieldValue* earlier =
        FindField(*d.properties.headers, kAttemptHeader);
    if (earlier != nullptr) {
      if (const int64_t* n = std::get_if<int64_t>(&earlier->value)) {
        before = std::max<int64_t>(0, *n);
      }
    }
    // Quorum queues count deliveries in x-delivery-count (absent on the
    // first one).
    const FieldValue* count =
        FindField(*d.properties.headers, "x-delivery-count");
    if (count != nullptr) {
      if (const int64_t* n = std::get_if<int64_t>(&count->value)) {
        own = std::max<int64_t>(0, *n) + 1;
      }
    }
  }
  return static_cast<uint32_t>(
      std::clamp<int64_t>(before + own, 1, int64_t{UINT32_MAX}));
}

std::optional<int64_t> DeliveryStreamOffset(const Delivery& d) {
  if (!d.properties.headers.has_value()) return std::nullopt;
  const FieldValue* v = FindField(*d.properties.headers, kStreamOffsetKey);
  if (v == nullptr) return std::nullopt;
  const int64_t* n = std::get_if<int64_t>(&v->value);
  if (n == nullptr || *n < 0) return std::nullopt;
  return *n;
}

}  // namespace amqpgw::amqp
