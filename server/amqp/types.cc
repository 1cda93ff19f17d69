#include "server/amqp/types.h"

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

}  // namespace amqpgw::amqp
