#include "server/amqp/rabbitmq_convert.h"

#include <limits>

#include "absl/strings/str_cat.h"

namespace amqpgw::amqp::internal {
namespace {

absl::Status ToAmqpValue(const FieldValue& v, amqp_pool_t* pool, int depth,
                         amqp_field_value_t* out);

absl::Status TooDeep() {
  return absl::InvalidArgumentError(absl::StrCat(
      "field table nested deeper than ", kMaxTableDepth, " levels"));
}

absl::Status ToAmqpTableAt(const FieldTable& table, amqp_pool_t* pool,
                           int depth, amqp_table_t* out) {
  if (depth > kMaxTableDepth) return TooDeep();
  out->num_entries = static_cast<int>(table.size());
  out->entries = nullptr;
  if (table.empty()) return absl::OkStatus();
  out->entries = static_cast<amqp_table_entry_t*>(
      amqp_pool_alloc(pool, sizeof(amqp_table_entry_t) * table.size()));
  if (out->entries == nullptr)
    return absl::ResourceExhaustedError("out of memory");
  for (size_t i = 0; i < table.size(); ++i) {
    out->entries[i].key = Bytes(table[i].first);
    absl::Status s =
        ToAmqpValue(table[i].second, pool, depth, &out->entries[i].value);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ToAmqpValue(const FieldValue& v, amqp_pool_t* pool, int depth,
                         amqp_field_value_t* out) {
  struct Visitor {
    amqp_pool_t* pool;
    int depth;
    amqp_field_value_t* out;
    absl::Status operator()(const Void&) {
      out->kind = AMQP_FIELD_KIND_VOID;
      return absl::OkStatus();
    }
    absl::Status operator()(bool b) {
      out->kind = AMQP_FIELD_KIND_BOOLEAN;
      out->value.boolean = b ? 1 : 0;
      return absl::OkStatus();
    }
    absl::Status operator()(int64_t i) {
      out->kind = AMQP_FIELD_KIND_I64;
      out->value.i64 = i;
      return absl::OkStatus();
    }
    absl::Status operator()(double d) {
      out->kind = AMQP_FIELD_KIND_F64;
      out->value.f64 = d;
      return absl::OkStatus();
    }
    absl::Status operator()(const std::string& s) {
      out->kind = AMQP_FIELD_KIND_UTF8;
      out->value.bytes = Bytes(s);
      return absl::OkStatus();
    }
    absl::Status operator()(const amqp::Bytes& b) {
      out->kind = AMQP_FIELD_KIND_BYTES;
      out->value.bytes = internal::Bytes(b.data);
      return absl::OkStatus();
    }
    absl::Status operator()(const Timestamp& t) {
      out->kind = AMQP_FIELD_KIND_TIMESTAMP;
      out->value.u64 = t.seconds;
      return absl::OkStatus();
    }
    absl::Status operator()(const Decimal& d) {
      out->kind = AMQP_FIELD_KIND_DECIMAL;
      out->value.decimal.decimals = d.scale;
      out->value.decimal.value = d.value;
      return absl::OkStatus();
    }
    absl::Status operator()(const FieldTable& t) {
      out->kind = AMQP_FIELD_KIND_TABLE;
      return ToAmqpTableAt(t, pool, depth + 1, &out->value.table);
    }
    absl::Status operator()(const FieldArray& a) {
      if (depth + 1 > kMaxTableDepth) return TooDeep();
      out->kind = AMQP_FIELD_KIND_ARRAY;
      out->value.array.num_entries = static_cast<int>(a.size());
      out->value.array.entries = nullptr;
      if (a.empty()) return absl::OkStatus();
      out->value.array.entries = static_cast<amqp_field_value_t*>(
          amqp_pool_alloc(pool, sizeof(amqp_field_value_t) * a.size()));
      if (out->value.array.entries == nullptr) {
        return absl::ResourceExhaustedError("out of memory");
      }
      for (size_t i = 0; i < a.size(); ++i) {
        absl::Status s =
            ToAmqpValue(a[i], pool, depth + 1, &out->value.array.entries[i]);
        if (!s.ok()) return s;
      }
      return absl::OkStatus();
    }
  };
  return std::visit(Visitor{pool, depth, out}, v.value);
}

FieldTable FromAmqpTableAt(const amqp_table_t& table, int depth);

FieldValue FromAmqpValue(const amqp_field_value_t& v, int depth) {
  switch (v.kind) {
    case AMQP_FIELD_KIND_BOOLEAN:
      return FieldValue(v.value.boolean != 0);
    case AMQP_FIELD_KIND_I8:
      return FieldValue(static_cast<int64_t>(v.value.i8));
    case AMQP_FIELD_KIND_U8:
      return FieldValue(static_cast<int64_t>(v.value.u8));
    case AMQP_FIELD_KIND_I16:
      return FieldValue(static_cast<int64_t>(v.value.i16));
    case AMQP_FIELD_KIND_U16:
      return FieldValue(static_cast<int64_t>(v.value.u16));
    case AMQP_FIELD_KIND_I32:
      return FieldValue(static_cast<int64_t>(v.value.i32));
    case AMQP_FIELD_KIND_U32:
      return FieldValue(static_cast<int64_t>(v.value.u32));
    case AMQP_FIELD_KIND_I64:
      return FieldValue(static_cast<int64_t>(v.value.i64));
    case AMQP_FIELD_KIND_U64: {
      uint64_t u = v.value.u64;
      constexpr uint64_t kMax = std::numeric_limits<int64_t>::max();
      return FieldValue(static_cast<int64_t>(u > kMax ? kMax : u));
    }
    case AMQP_FIELD_KIND_F32:
      return FieldValue(static_cast<double>(v.value.f32));
    case AMQP_FIELD_KIND_F64:
      return FieldValue(v.value.f64);
    case AMQP_FIELD_KIND_DECIMAL:
      return FieldValue(
          Decimal{v.value.decimal.decimals, v.value.decimal.value});
    case AMQP_FIELD_KIND_UTF8:
      return FieldValue(String(v.value.bytes));
    case AMQP_FIELD_KIND_BYTES:
      return FieldValue(amqp::Bytes{String(v.value.bytes)});
    case AMQP_FIELD_KIND_TIMESTAMP:
      return FieldValue(Timestamp{v.value.u64});
    case AMQP_FIELD_KIND_TABLE:
      if (depth + 1 > 2 * kMaxTableDepth) return FieldValue(Void{});
      return FieldValue(FromAmqpTableAt(v.value.table, depth + 1));
    case AMQP_FIELD_KIND_ARRAY: {
      if (depth + 1 > 2 * kMaxTableDepth) return FieldValue(Void{});
      FieldArray a;
      a.reserve(v.value.array.num_entries);
      for (int i = 0; i < v.value.array.num_entries; ++i) {
        a.push_back(FromAmqpValue(v.value.array.entries[i], depth + 1));
      }
      return FieldValue(std::move(a));
    }
    case AMQP_FIELD_KIND_VOID:
    default:
      return FieldValue(Void{});
  }
}

FieldTable FromAmqpTableAt(const amqp_table_t& table, int depth) {
  FieldTable out;
  out.reserve(table.num_entries);
  for (int i = 0; i < table.num_entries; ++i) {
    out.emplace_back(String(table.entries[i].key),
                     FromAmqpValue(table.entries[i].value, depth));
  }
  return out;
}

void SetString(const std::optional<std::string>& in, amqp_flags_t flag,
               amqp_bytes_t* out, amqp_flags_t* flags) {
  if (!in.has_value()) return;
  *out = Bytes(*in);
  *flags |= flag;
}

void GetString(const amqp_basic_properties_t& p, amqp_flags_t flag,
               const amqp_bytes_t& in, std::optional<std::string>* out) {
  if (p._flags & flag) *out = String(in);
}

}  // namespace

absl::Status ToAmqpTable(const FieldTable& table, amqp_pool_t* pool,
                         amqp_table_t* out) {
  return ToAmqpTableAt(table, pool, 1, out);
}

FieldTable FromAmqpTable(const amqp_table_t& table) {
  return FromAmqpTableAt(table, 1);
}

absl::Status ToAmqpProperties(const Properties& p, amqp_pool_t* pool,
                              amqp_basic_properties_t* out) {
  out->_flags = 0;
  SetString(p.content_type, AMQP_BASIC_CONTENT_TYPE_FLAG, &out->content_type,
            &out->_flags);
  SetString(p.content_encoding, AMQP_BASIC_CONTENT_ENCODING_FLAG,
            &out->content_encoding, &out->_flags);
  if (p.headers.has_value()) {
    absl::Status s = ToAmqpTable(*p.headers, pool, &out->headers);
    if (!s.ok()) return s;
    out->_flags |= AMQP_BASIC_HEADERS_FLAG;
  }
  if (p.delivery_mode.has_value()) {
    out->delivery_mode = *p.delivery_mode;
    out->_flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
  }
  if (p.priority.has_value()) {
    out->priority = *p.priority;
    out->_flags |= AMQP_BASIC_PRIORITY_FLAG;
  }
  SetString(p.correlation_id, AMQP_BASIC_CORRELATION_ID_FLAG,
            &out->correlation_id, &out->_flags);
  SetString(p.reply_to, AMQP_BASIC_REPLY_TO_FLAG, &out->reply_to, &out->_flags);
  SetString(p.expiration, AMQP_BASIC_EXPIRATION_FLAG, &out->expiration,
            &out->_flags);
  SetString(p.message_id, AMQP_BASIC_MESSAGE_ID_FLAG, &out->message_id,
            &out->_flags);
  if (p.timestamp.has_value()) {
    out->timestamp = *p.timestamp;
    out->_flags |= AMQP_BASIC_TIMESTAMP_FLAG;
  }
  SetString(p.type, AMQP_BASIC_TYPE_FLAG, &out->type, &out->_flags);
  SetString(p.user_id, AMQP_BASIC_USER_ID_FLAG, &out->user_id, &out->_flags);
  SetString(p.app_id, AMQP_BASIC_APP_ID_FLAG, &out->app_id, &out->_flags);
  SetString(p.cluster_id, AMQP_BASIC_CLUSTER_ID_FLAG, &out->cluster_id,
            &out->_flags);
  return absl::OkStatus();
}

Properties FromAmqpProperties(const amqp_basic_properties_t& p) {
  Properties out;
  GetString(p, AMQP_BASIC_CONTENT_TYPE_FLAG, p.content_type, &out.content_type);
  GetString(p, AMQP_BASIC_CONTENT_ENCODING_FLAG, p.content_encoding,
            &out.content_encoding);
  if (p._flags & AMQP_BASIC_HEADERS_FLAG)
    out.headers = FromAmqpTable(p.headers);
  if (p._flags & AMQP_BASIC_DELIVERY_MODE_FLAG)
    out.delivery_mode = p.delivery_mode;
  if (p._flags & AMQP_BASIC_PRIORITY_FLAG) out.priority = p.priority;
  GetString(p, AMQP_BASIC_CORRELATION_ID_FLAG, p.correlation_id,
            &out.correlation_id);
  GetString(p, AMQP_BASIC_REPLY_TO_FLAG, p.reply_to, &out.reply_to);
  GetString(p, AMQP_BASIC_EXPIRATION_FLAG, p.expiration, &out.expiration);
  GetString(p, AMQP_BASIC_MESSAGE_ID_FLAG, p.message_id, &out.message_id);
  if (p._flags & AMQP_BASIC_TIMESTAMP_FLAG) out.timestamp = p.timestamp;
  GetString(p, AMQP_BASIC_TYPE_FLAG, p.type, &out.type);
  GetString(p, AMQP_BASIC_USER_ID_FLAG, p.user_id, &out.user_id);
  GetString(p, AMQP_BASIC_APP_ID_FLAG, p.app_id, &out.app_id);
  GetString(p, AMQP_BASIC_CLUSTER_ID_FLAG, p.cluster_id, &out.cluster_id);
  return out;
}

}  // namespace amqpgw::amqp::internal
