#include "tests/support/amqp_peer.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include "absl/strings/str_cat.h"
#include "server/base/hex.h"

namespace amqpgw::testing {
namespace {

std::string Str(amqp_bytes_t b) {
  return std::string(static_cast<const char*>(b.bytes), b.len);
}

std::string Hex(amqp_bytes_t b) { return HexEncode(Str(b)); }

std::string Render(const amqp_field_value_t& v);

std::string RenderTable(const amqp_table_t& t) {
  std::string out = "{";
  for (int i = 0; i < t.num_entries; ++i) {
    if (i > 0) out += ",";
    out += Str(t.entries[i].key) + "=" + Render(t.entries[i].value);
  }
  return out + "}";
}

std::string Render(const amqp_field_value_t& v) {
  std::string k(1, static_cast<char>(v.kind));
  switch (v.kind) {
    case AMQP_FIELD_KIND_BOOLEAN:
      return k + ":" + (v.value.boolean ? "1" : "0");
    case AMQP_FIELD_KIND_I8:
      return k + ":" + std::to_string(v.value.i8);
    case AMQP_FIELD_KIND_U8:
      return k + ":" + std::to_string(v.value.u8);
    case AMQP_FIELD_KIND_I16:
      return k + ":" + std::to_string(v.value.i16);
    case AMQP_FIELD_KIND_U16:
      return k + ":" + std::to_string(v.value.u16);
    case AMQP_FIELD_KIND_I32:
      return k + ":" + std::to_string(v.value.i32);
    case AMQP_FIELD_KIND_U32:
      return k + ":" + std::to_string(v.value.u32);
    case AMQP_FIELD_KIND_I64:
      return k + ":" + std::to_string(v.value.i64);
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP:
      return k + ":" + std::to_string(v.value.u64);
    case AMQP_FIELD_KIND_F32:
      return absl::StrCat(k, ":", v.value.f32);
    case AMQP_FIELD_KIND_F64:
      return absl::StrCat(k, ":", v.value.f64);
    case AMQP_FIELD_KIND_DECIMAL:
      return absl::StrCat(k, ":", v.value.decimal.decimals, ",",
                          v.value.decimal.value);
    case AMQP_FIELD_KIND_UTF8:
      return k + ":" + Str(v.value.bytes);
    case AMQP_FIELD_KIND_BYTES:
      return k + ":" + Hex(v.value.bytes);
    case AMQP_FIELD_KIND_TABLE:
      return k + ":" + RenderTable(v.value.table);
    case AMQP_FIELD_KIND_ARRAY: {
      std::string out = k + ":[";
      for (int i = 0; i < v.value.array.num_entries; ++i) {
        if (i > 0) out += ",";
        out += Render(v.value.array.entries[i]);
      }
      return out + "]";
    }
    case AMQP_FIELD_KIND_VOID:
      return k + ":";
    default:
      return k + ":?";
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<AmqpPeer>> AmqpPeer::Connect(
    int port, const std::string& connection_name) {
  amqp_connection_state_t conn = amqp_new_connection();
  amqp_socket_t* socket = amqp_tcp_socket_new(conn);
  if (amqp_socket_open(socket, "127.0.0.1", port) != AMQP_STATUS_OK) {
    amqp_destroy_connection(conn);
    return absl::UnavailableError(
        absl::StrCat("peer: cannot connect to ", port));
  }
  amqp_table_entry_t name_entry;
  name_entry.key = amqp_cstring_bytes("connection_name");
  name_entry.value.kind = AMQP_FIELD_KIND_UTF8;
  name_entry.value.value.bytes = amqp_cstring_bytes(connection_name.c_str());
  amqp_table_t properties{connection_name.empty() ? 0 : 1, &name_entry};
  amqp_rpc_reply_t r =
      amqp_login_with_properties(conn, "/", 0, 131072, 0, &properties,
                                 AMQP_SASL_METHOD_PLAIN, "guest", "guest");
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    amqp_destroy_connection(conn);
    return absl::UnavailableError("peer: login failed");
  }
  amqp_channel_open(conn, 1);
  auto peer = std::unique_ptr<AmqpPeer>(new AmqpPeer(conn));
  absl::Status s = peer->Check("channel.open");
  if (!s.ok()) return s;
  return peer;
}

AmqpPeer::~AmqpPeer() {
  amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn_);
}

absl::Status AmqpPeer::Check(const char* what) {
  amqp_rpc_reply_t r = amqp_get_rpc_reply(conn_);
  if (r.reply_type == AMQP_RESPONSE_NORMAL) return absl::OkStatus();
  std::string detail = "error";
  if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
      r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    auto* m = static_cast<amqp_channel_close_t*>(r.reply.decoded);
    detail = absl::StrCat(m->reply_code, " ", Str(m->reply_text));
    amqp_channel_close_ok_t ok{};
    amqp_send_method(conn_, 1, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    amqp_channel_open(conn_, 1);  // usable again for the next call
  }
  return absl::InternalError(absl::StrCat("peer: ", what, ": ", detail));
}

absl::Status AmqpPeer::DeclareQueue(const std::string& name, bool durable) {
  amqp_queue_declare(conn_, 1, amqp_cstring_bytes(name.c_str()), 0, durable, 0,
                     0, amqp_empty_table);
  return Check("queue.declare");
}

absl::Status AmqpPeer::DeclareExchange(const std::string& name,
                                       const std::string& type) {
  amqp_exchange_declare(conn_, 1, amqp_cstring_bytes(name.c_str()),
                        amqp_cstring_bytes(type.c_str()), 0, /*durable=*/0,
                        /*auto_delete=*/0, 0, amqp_empty_table);
  return Check("exchange.declare");
}

absl::Status AmqpPeer::Bind(const std::string& queue,
                            const std::string& exchange,
                            const std::string& routing_key) {
  amqp_queue_bind(conn_, 1, amqp_cstring_bytes(queue.c_str()),
                  amqp_cstring_bytes(exchange.c_str()),
                  amqp_cstring_bytes(routing_key.c_str()), amqp_empty_table);
  return Check("queue.bind");
}

absl::Status AmqpPeer::Consume(const std::string& queue, uint16_t prefetch,
                               const std::string& consumer_tag) {
  amqp_basic_qos(conn_, 1, 0, prefetch, 0);
  absl::Status s = Check("basic.qos");
  if (!s.ok()) return s;
  amqp_basic_consume(conn_, 1, amqp_cstring_bytes(queue.c_str()),
                     amqp_cstring_bytes(consumer_tag.c_str()), 0,
                     /*no_ack=*/0, 0, amqp_empty_table);
  return Check("basic.consume");
}

absl::Status AmqpPeer::DeleteQueue(const std::string& name) {
  amqp_queue_delete(conn_, 1, amqp_cstring_bytes(name.c_str()), 0, 0);
  return Check("queue.delete");
}

absl::Status AmqpPeer::Publish(const std::string& exchange,
                               const std::string& routing_key,
                               const std::string& body, bool persistent) {
  amqp_basic_properties_t props;
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.delivery_mode = persistent ? 2 : 1;
  amqp_bytes_t b{body.size(), const_cast<char*>(body.data())};
  int rc = amqp_basic_publish(conn_, 1, amqp_cstring_bytes(exchange.c_str()),
                              amqp_cstring_bytes(routing_key.c_str()), 0, 0,
                              &props, b);
  if (rc != AMQP_STATUS_OK) return absl::InternalError("peer: publish failed");
  return absl::OkStatus();
}

absl::StatusOr<std::optional<PeerMessage>> AmqpPeer::Get(
    const std::string& queue) {
  amqp_maybe_release_buffers(conn_);
  amqp_rpc_reply_t r =
      amqp_basic_get(conn_, 1, amqp_cstring_bytes(queue.c_str()), /*no_ack=*/1);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) return Check("basic.get");
  if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return std::nullopt;
  auto* ok = static_cast<amqp_basic_get_ok_t*>(r.reply.decoded);
  PeerMessage m;
  m.exchange = Str(ok->exchange);
  m.routing_key = Str(ok->routing_key);
  m.redelivered = ok->redelivered;
  amqp_message_t msg;
  r = amqp_read_message(conn_, 1, &msg, 0);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) return Check("read message");
  m.body = Str(msg.body);
  const amqp_basic_properties_t& p = msg.properties;
  auto set = [&](amqp_flags_t flag, const char* name, amqp_bytes_t v) {
    if (p._flags & flag) m.properties[name] = Str(v);
  };
  set(AMQP_BASIC_CONTENT_TYPE_FLAG, "content_type", p.content_type);
  set(AMQP_BASIC_CONTENT_ENCODING_FLAG, "content_encoding", p.content_encoding);
  set(AMQP_BASIC_CORRELATION_ID_FLAG, "correlation_id", p.correlation_id);
  set(AMQP_BASIC_REPLY_TO_FLAG, "reply_to", p.reply_to);
  set(AMQP_BASIC_EXPIRATION_FLAG, "expiration", p.expiration);
  set(AMQP_BASIC_MESSAGE_ID_FLAG, "message_id", p.message_id);
  set(AMQP_BASIC_TYPE_FLAG, "type", p.type);
  set(AMQP_BASIC_USER_ID_FLAG, "user_id", p.user_id);
  set(AMQP_BASIC_APP_ID_FLAG, "app_id", p.app_id);
  if (p._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) {
    m.properties["delivery_mode"] = std::to_string(p.delivery_mode);
  }
  if (p._flags & AMQP_BASIC_PRIORITY_FLAG) {
    m.properties["priority"] = std::to_string(p.priority);
  }
  if (p._flags & AMQP_BASIC_TIMESTAMP_FLAG) {
    m.properties["timestamp"] = std::to_string(p.timestamp);
  }
  if (p._flags & AMQP_BASIC_HEADERS_FLAG) {
    for (int i = 0; i < p.headers.num_entries; ++i) {
      m.headers[Str(p.headers.entries[i].key)] =
          Render(p.headers.entries[i].value);
    }
  }
  amqp_destroy_message(&msg);
  return m;
}

absl::StatusOr<uint32_t> AmqpPeer::MessageCount(const std::string& queue) {
  amqp_queue_declare_ok_t* ok =
      amqp_queue_declare(conn_, 1, amqp_cstring_bytes(queue.c_str()),
                         /*passive=*/1, 0, 0, 0, amqp_empty_table);
  absl::Status s = Check("queue.declare passive");
  if (!s.ok()) return s;
  return ok->message_count;
}

absl::StatusOr<uint32_t> AmqpPeer::ConsumerCount(const std::string& queue) {
  amqp_queue_declare_ok_t* ok =
      amqp_queue_declare(conn_, 1, amqp_cstring_bytes(queue.c_str()),
                         /*passive=*/1, 0, 0, 0, amqp_empty_table);
  absl::Status s = Check("queue.declare passive");
  if (!s.ok()) return s;
  return ok->consumer_count;
}

}  // namespace amqpgw::testing
