#include "server/grpc/convert.h"

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/amqp/broker_rules.h"
#include "server/base/quote.h"
#include "server/core/ids.h"
#include "server/core/stats.h"
#include "server/grpc/tracing.h"
#include "server/trace/trace_context.h"

namespace amqpgw::grpc_api {
namespace {

constexpr size_t kMaxShortString = 255;
constexpr int64_t kMaxExpirationMs = 4294967295LL;  // 2^32 - 1

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::Status Invalid(absl::string_view prefix, const amqp::Violation& v) {
  return Invalid(absl::StrCat(prefix, v.field), v.problem);
}

// Bytes the value takes on the wire, roughly (for the frame size check).
size_t EncodedSize(const amqp::FieldValue& v);

size_t EncodedSize(const amqp::FieldTable& t) {
  size_t n = 4;
  for (const auto& [k, v] : t) n += 1 + k.size() + EncodedSize(v);
  return n;
}

size_t EncodedSize(const amqp::FieldValue& v) {
  struct Visitor {
    size_t operator()(const amqp::Void&) { return 1; }
    size_t operator()(bool) { return 2; }
    size_t operator()(int64_t) { return 9; }
    size_t operator()(double) { return 9; }
    size_t operator()(const std::string& s) { return 5 + s.size(); }
    size_t operator()(const amqp::Bytes& b) { return 5 + b.data.size(); }
    size_t operator()(const amqp::Timestamp&) { return 9; }
    size_t operator()(const amqp::Decimal&) { return 6; }
    size_t operator()(const amqp::FieldTable& t) { return 1 + EncodedSize(t); }
    size_t operator()(const amqp::FieldArray& a) {
      size_t n = 5;
      for (const auto& e : a) n += EncodedSize(e);
      return n;
    }
  };
  return std::visit(Visitor{}, v.value);
}

absl::StatusOr<amqp::FieldValue> ToAmqpValue(const v1::FieldValue& v,
                                             const std::string& field,
                                             int depth);

absl::StatusOr<amqp::FieldTable> ToAmqpTableAt(const ProtoTable& table,
                                               const std::string& field,
                                               int depth) {
  if (depth > amqp::kMaxTableDepth) {
    return Invalid(field, absl::StrCat("tables nested deeper than ",
                                       amqp::kMaxTableDepth, " levels"));
  }
  // Sorted keys: deterministic encoding whatever the map's order.
  std::vector<const std::string*> keys;
  keys.reserve(table.size());
  for (const auto& [k, v] : table) keys.push_back(&k);
  std::sort(keys.begin(), keys.end(),
            [](const std::string* a, const std::string* b) { return *a < *b; });
  amqp::FieldTable out;
  out.reserve(table.size());
  for (const std::string* key : keys) {
    if (key->empty()) return Invalid(field, "empty key");
    if (key->size() > kMaxShortString) {
      return Invalid(field, absl::StrCat("key ", QuoteInput(*key),
                                         " is longer than 255 bytes"));
    }
    std::string sub = absl::StrCat(field, "[\"", SanitizeUtf8(*key), "\"]");
    if (!IsValidUtf8(*key)) return Invalid(sub, "key is not valid UTF-8");
    absl::StatusOr<amqp::FieldValue> value =
        ToAmqpValue(table.at(*key), sub, depth);
    if (!value.ok()) return value.status();
    out.emplace_back(*key, *std::move(value));
  }
  return out;
}

absl::StatusOr<amqp::FieldValue> ToAmqpValue(const v1::FieldValue& v,
                                             const std::string& field,
                                             int depth) {
  switch (v.kind_case()) {
    case v1::FieldValue::kBoolValue:
      return amqp::FieldValue(v.bool_value());
    case v1::FieldValue::kIntValue:
      return amqp::FieldValue(static_cast<int64_t>(v.int_value()));
    case v1::FieldValue::kDoubleValue:
      if (!amqp::IsBrokerSafeDouble(v.double_value())) {
        return Invalid(field,
                       absl::StrCat(v.double_value(),
                                    " is not allowed: RabbitMQ closes the "
                                    "whole connection on NaN and infinite "
                                    "doubles"));
      }
      return amqp::FieldValue(v.double_value());
    case v1::FieldValue::kStringValue:
      return amqp::FieldValue(v.string_value());
    case v1::FieldValue::kBytesValue:
      return amqp::FieldValue(amqp::Bytes{v.bytes_value()});
    case v1::FieldValue::kTimestampValue:
      if (v.timestamp_value().seconds() < 0) {
        return Invalid(field, "timestamp before 1970");
      }
      return amqp::FieldValue(amqp::Timestamp{
          static_cast<uint64_t>(v.timestamp_value().seconds())});
    case v1::FieldValue::kTableValue: {
      absl::StatusOr<amqp::FieldTable> t =
          ToAmqpTableAt(v.table_value().fields(), field, depth + 1);
      if (!t.ok()) return t.status();
      return amqp::FieldValue(*std::move(t));
    }
    case v1::FieldValue::kArrayValue: {
      if (depth + 1 > amqp::kMaxTableDepth) {
        return Invalid(field, absl::StrCat("tables nested deeper than ",
                                           amqp::kMaxTableDepth, " levels"));
      }
      amqp::FieldArray a;
      a.reserve(v.array_value().values_size());
      for (int i = 0; i < v.array_value().values_size(); ++i) {
        absl::StatusOr<amqp::FieldValue> e =
            ToAmqpValue(v.array_value().values(i),
                        absl::StrCat(field, "[", i, "]"), depth + 1);
        if (!e.ok()) return e.status();
        a.push_back(*std::move(e));
      }
      return amqp::FieldValue(std::move(a));
    }
    case v1::FieldValue::kDecimalValue:
      if (v.decimal_value().scale() > 255) {
        return Invalid(field, "decimal scale must be 0..255");
      }
      return amqp::FieldValue(
          amqp::Decimal{static_cast<uint8_t>(v.decimal_value().scale()),
                        v.decimal_value().value()});
    case v1::FieldValue::kNullValue:
    case v1::FieldValue::KIND_NOT_SET:
      return amqp::FieldValue(amqp::Void{});
  }
  return Invalid(field, "unknown value kind");
}

absl::Status CheckShort(absl::string_view field, const std::string& value) {
  if (value.size() > kMaxShortString) {
    return Invalid(field,
                   absl::StrCat("longer than 255 bytes (", value.size(), ")"));
  }
  return absl::OkStatus();
}

// Why `user_id` is refused: the broker accepts only the connection's user.
std::string UserIdProblem(const std::string& user_id, const Limits& limits) {
  std::vector<std::string> users = limits.broker_users;
  std::sort(users.begin(), users.end());
  users.erase(std::unique(users.begin(), users.end()), users.end());
  std::string quoted;
  for (const std::string& u : users) {
    absl::StrAppend(&quoted, quoted.empty() ? "" : ", ", QuoteInput(u));
  }
  return absl::StrCat(
      "must be empty or ",
      users.size() == 1
          ? absl::StrCat("the broker user ", quoted)
          : absl::StrCat("one of the brokers' users (", quoted, ")"),
      ", got ", QuoteInput(user_id),
      " (RabbitMQ refuses a message whose user_id is not the connection's "
      "user by closing the publishing channel)");
}

void SetOptional(const std::string& in, std::optional<std::string>* out) {
  if (!in.empty()) *out = in;
}

// AMQP -> proto.
void ToProtoValue(const amqp::FieldValue& v, v1::FieldValue* out) {
  struct Visitor {
    v1::FieldValue* out;
    void operator()(const amqp::Void&) {
      out->set_null_value(google::protobuf::NULL_VALUE);
    }
    void operator()(bool b) { out->set_bool_value(b); }
    void operator()(int64_t i) { out->set_int_value(i); }
    void operator()(double d) { out->set_double_value(d); }
    void operator()(const std::string& s) {
      if (IsValidUtf8(s)) {
        out->set_string_value(s);
      } else {
        out->set_bytes_value(s);
      }
    }
    void operator()(const amqp::Bytes& b) { out->set_bytes_value(b.data); }
    void operator()(const amqp::Timestamp& t) {
      out->mutable_timestamp_value()->set_seconds(static_cast<int64_t>(
          std::min<uint64_t>(t.seconds, std::numeric_limits<int64_t>::max())));
    }
    void operator()(const amqp::Decimal& d) {
      out->mutable_decimal_value()->set_scale(d.scale);
      out->mutable_decimal_value()->set_value(d.value);
    }
    void operator()(const amqp::FieldTable& t) {
      ToProtoTable(t, out->mutable_table_value()->mutable_fields());
    }
    void operator()(const amqp::FieldArray& a) {
      auto* arr = out->mutable_array_value();
      for (const auto& e : a) ToProtoValue(e, arr->add_values());
    }
  };
  std::visit(Visitor{out}, v.value);
}

// `field` is the proto's mutable_x accessor, called only when `in` has a
// value: calling it allocates the field's string, and most properties are
// unset (eight allocations per delivery saved, bench/profile.sh stream).
template <typename MutableField>
void SetString(const std::optional<std::string>& in, MutableField field) {
  if (!in.has_value()) return;
  std::string* out = field();
  if (IsValidUtf8(*in)) {
    *out = *in;
  } else {
    *out = SanitizeUtf8(*in);
  }
}

}  // namespace

void SetTimestamp(absl::Time t, google::protobuf::Timestamp* out) {
  int64_t ns = absl::ToUnixNanos(t);
  out->set_seconds(ns / 1000000000);
  out->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

void ToProtoPublishResult(const absl::Status& status, absl::Time confirmed_at,
                          const std::string& message_id,
                          v1::PublishResult* out) {
  out->set_code(static_cast<int32_t>(status.code()));
  out->set_message_id(message_id);
  if (status.ok()) {
    SetTimestamp(confirmed_at, out->mutable_publish_time());
    out->clear_error();
  } else {
    out->set_error(std::string(status.message()));
    out->clear_publish_time();
  }
}

absl::Status ValidateName(absl::string_view field, absl::string_view value,
                          bool allow_empty) {
  if (!allow_empty && value.empty()) return Invalid(field, "must not be empty");
  if (value.size() > kMaxShortString) {
    return Invalid(field,
                   absl::StrCat("longer than 255 bytes (", value.size(), ")"));
  }
  if (!IsValidUtf8(value)) return Invalid(field, "not valid UTF-8");
  return absl::OkStatus();
}

absl::StatusOr<amqp::FieldTable> ToAmqpTable(const ProtoTable& table,
                                             absl::string_view field) {
  return ToAmqpTableAt(table, std::string(field), 1);
}

namespace {

// Arguments of a method (queue.declare, basic.consume, ...): a table that
// must fit in one frame with the method.
absl::StatusOr<amqp::FieldTable> ToAmqpArguments(const ProtoTable& table) {
  absl::StatusOr<amqp::FieldTable> args = ToAmqpTable(table, "arguments");
  if (args.ok() && EncodedSize(*args) > amqp::kMaxFieldTableBytes) {
    return Invalid("arguments",
                   absl::StrCat("larger than ", amqp::kMaxFieldTableBytes,
                                " bytes encoded"));
  }
  return args;
}

}  // namespace

absl::StatusOr<amqp::Properties> ToAmqpProperties(
    const v1::MessageProperties& p, absl::string_view field,
    const Limits& limits) {
  amqp::Properties out;
  struct Short {
    const char* name;
    const std::string& value;
    std::optional<std::string>* out;
  } shorts[] = {
      {"content_type", p.content_type(), &out.content_type},
      {"content_encoding", p.content_encoding(), &out.content_encoding},
      {"correlation_id", p.correlation_id(), &out.correlation_id},
      {"reply_to", p.reply_to(), &out.reply_to},
      {"message_id", p.message_id(), &out.message_id},
      {"type", p.type(), &out.type},
      {"user_id", p.user_id(), &out.user_id},
      {"app_id", p.app_id(), &out.app_id},
  };
  for (const Short& s : shorts) {
    // The field's name is built only for the error message.
    if (s.value.size() > kMaxShortString) {
      return CheckShort(absl::StrCat(field, ".", s.name), s.value);
    }
    SetOptional(s.value, s.out);
  }
  if (!p.user_id().empty() && !limits.broker_users.empty() &&
      std::find(limits.broker_users.begin(), limits.broker_users.end(),
                p.user_id()) == limits.broker_users.end()) {
    return Invalid(absl::StrCat(field, ".user_id"),
                   UserIdProblem(p.user_id(), limits));
  }
  switch (p.delivery_mode()) {
    case v1::DELIVERY_MODE_UNSPECIFIED:
    case v1::PERSISTENT:
      out.delivery_mode = 2;
      break;
    case v1::TRANSIENT:
      out.delivery_mode = 1;
      break;
    default:
      return Invalid(absl::StrCat(field, ".delivery_mode"),
                     absl::StrCat("unknown value ", p.delivery_mode(),
                                  " (use TRANSIENT or PERSISTENT)"));
  }
  if (p.has_priority()) {
    if (p.priority() > 255) {
      return Invalid(absl::StrCat(field, ".priority"),
                     absl::StrCat("must be 0..255, got ", p.priority()));
    }
    out.priority = static_cast<uint8_t>(p.priority());
  }
  if (p.has_expiration()) {
    const auto& d = p.expiration();
    if (d.seconds() < 0 || d.nanos() < 0) {
      return Invalid(absl::StrCat(field, ".expiration"),
                     "must not be negative");
    }
    int64_t ms = d.seconds() * 1000 + d.nanos() / 1000000;
    if (d.seconds() > kMaxExpirationMs / 1000 || ms > kMaxExpirationMs) {
      return Invalid(absl::StrCat(field, ".expiration"),
                     "must be at most 2^32-1 ms (about 49 days)");
    }
    out.expiration = absl::StrCat(ms);
  }
  if (p.has_timestamp()) {
    if (p.timestamp().seconds() < 0) {
      return Invalid(absl::StrCat(field, ".timestamp"), "before 1970");
    }
    out.timestamp = static_cast<uint64_t>(p.timestamp().seconds());
  }
  if (!p.headers().empty()) {
    absl::StatusOr<amqp::FieldTable> headers =
        ToAmqpTable(p.headers(), absl::StrCat(field, ".headers"));
    if (!headers.ok()) return headers.status();
    if (EncodedSize(*headers) > limits.max_properties_bytes) {
      return Invalid(absl::StrCat(field, ".headers"),
                     absl::StrCat("larger than ", limits.max_properties_bytes,
                                  " bytes encoded"));
    }
    out.headers = *std::move(headers);
  }
  return out;
}

namespace {

// ToOutgoingMessage; the body is moved from `*owned_body` when not null
// (the request's own body, of a request the caller owns), else copied.
absl::StatusOr<amqp::OutgoingMessage> ToOutgoing(const v1::PublishRequest& r,
                                                 absl::string_view field,
                                                 const Limits& limits,
                                                 std::string* owned_body) {
  // Field names ("messages[12].routing_key") are built only for an error:
  // the checks run with short names first and again with the full ones when
  // they fail (they have no side effects).
  auto name = [&](absl::string_view f) {
    return field.empty() ? std::string(f) : absl::StrCat(field, ".", f);
  };
  if (!ValidateName("exchange", r.exchange()).ok()) {
    return ValidateName(name("exchange"), r.exchange());
  }
  if (!ValidateName("routing_key", r.routing_key()).ok()) {
    return ValidateName(name("routing_key"), r.routing_key());
  }
  if (r.body().size() > limits.max_message_bytes) {
    return Invalid(name("body"), absl::StrCat(r.body().size(),
                                              " bytes is more than the "
                                              "daemon's --max_message_bytes (",
                                              limits.max_message_bytes, ")"));
  }
  absl::StatusOr<amqp::Properties> props =
      ToAmqpProperties(r.properties(), "properties", limits);
  if (!props.ok()) {
    return ToAmqpProperties(r.properties(), name("properties"), limits)
        .status();
  }
  amqp::OutgoingMessage m;
  m.exchange = r.exchange();
  m.routing_key = r.routing_key();
  m.mandatory = !r.allow_unroutable();
  m.properties = *std::move(props);
  if (limits.default_message_id && !m.properties.message_id.has_value()) {
    m.properties.message_id = core::NewUuid();
  }
  if (owned_body != nullptr) {
    m.body = std::move(*owned_body);
  } else {
    m.body = r.body();
  }
  if (std::optional<amqp::Violation> v = amqp::CheckPublish(m)) {
    return Invalid(name(v->field), v->problem);
  }
  return m;
}

}  // namespace

absl::StatusOr<amqp::OutgoingMessage> ToOutgoingMessage(
    const v1::PublishRequest& request, absl::string_view field,
    const Limits& limits) {
  return ToOutgoing(request, field, limits, nullptr);
}

absl::StatusOr<amqp::OutgoingMessage> ToOutgoingMessage(
    v1::PublishRequest&& request, absl::string_view field,
    const Limits& limits) {
  return ToOutgoing(request, field, limits, request.mutable_body());
}

absl::StatusOr<amqp::QueueDeclareArgs> ToQueueDeclareArgs(
    const v1::DeclareQueueRequest& r) {
  absl::Status s = ValidateName("name", r.name());
  if (!s.ok()) return s;
  absl::StatusOr<amqp::FieldTable> args = ToAmqpArguments(r.arguments());
  if (!args.ok()) return args.status();
  if (auto v = amqp::CheckQueueArguments(*args))
    return Invalid("arguments", *v);
  amqp::QueueDeclareArgs out;
  out.name = r.name();
  out.durable = r.has_durable() ? r.durable() : true;
  out.auto_delete = r.auto_delete();
  out.arguments = *std::move(args);
  const char* type = nullptr;
  switch (r.type()) {
    case v1::QUEUE_TYPE_UNSPECIFIED:
      break;
    case v1::CLASSIC:
      type = "classic";
      break;
    case v1::QUORUM:
      type = "quorum";
      break;
    case v1::STREAM:
      type = "stream";
      break;
    default:
      return Invalid("type", absl::StrCat("unknown queue type ", r.type()));
  }
  if (type != nullptr) {
    if (amqp::FindField(out.arguments, "x-queue-type") != nullptr) {
      return Invalid("arguments[\"x-queue-type\"]",
                     "set either `type` or this argument, not both");
    }
    out.arguments.emplace_back("x-queue-type", std::string(type));
  }
  return out;
}

absl::StatusOr<amqp::ExchangeDeclareArgs> ToExchangeDeclareArgs(
    const v1::DeclareExchangeRequest& r) {
  absl::Status s = ValidateName("name", r.name(), /*allow_empty=*/false);
  if (!s.ok()) return s;
  s = ValidateName("custom_type", r.custom_type());
  if (!s.ok()) return s;
  absl::StatusOr<amqp::FieldTable> args = ToAmqpArguments(r.arguments());
  if (!args.ok()) return args.status();
  amqp::ExchangeDeclareArgs out;
  out.name = r.name();
  out.durable = r.has_durable() ? r.durable() : true;
  out.auto_delete = r.auto_delete();
  out.internal = r.internal();
  out.arguments = *std::move(args);
  switch (r.type()) {
    case v1::EXCHANGE_TYPE_UNSPECIFIED:
    case v1::DIRECT:
      out.type = "direct";
      break;
    case v1::FANOUT:
      out.type = "fanout";
      break;
    case v1::TOPIC:
      out.type = "topic";
      break;
    case v1::HEADERS:
      out.type = "headers";
      break;
    default:
      return Invalid("type", absl::StrCat("unknown exchange type ", r.type()));
  }
  if (!r.custom_type().empty()) out.type = r.custom_type();
  return out;
}

template <typename BindRequest>
absl::StatusOr<amqp::BindArgs> ToBindArgs(const BindRequest& r) {
  absl::Status s = ValidateName("queue", r.queue(), /*allow_empty=*/false);
  if (!s.ok()) return s;
  s = ValidateName("exchange", r.exchange(), /*allow_empty=*/false);
  if (!s.ok()) {
    if (r.exchange().empty()) {
      return Invalid("exchange",
                     "must not be empty (every queue is bound to the default "
                     "exchange by its name already)");
    }
    return s;
  }
  s = ValidateName("routing_key", r.routing_key());
  if (!s.ok()) return s;
  absl::StatusOr<amqp::FieldTable> args = ToAmqpArguments(r.arguments());
  if (!args.ok()) return args.status();
  amqp::BindArgs out;
  out.queue = r.queue();
  out.exchange = r.exchange();
  out.routing_key = r.routing_key();
  out.arguments = *std::move(args);
  return out;
}

template absl::StatusOr<amqp::BindArgs> ToBindArgs(const v1::BindQueueRequest&);
template absl::StatusOr<amqp::BindArgs> ToBindArgs(
    const v1::UnbindQueueRequest&);

namespace {

// The fields StreamMessagesRequest and SubscribeStart share (same names).
template <typename Request>
absl::StatusOr<core::SubscribeOptions> ToCommonSubscribeOptions(
    const Request& r) {
  absl::Status s = ValidateName("queue", r.queue(), /*allow_empty=*/false);
  if (!s.ok()) return s;
  s = ValidateName("consumer_tag", r.consumer_tag());
  if (!s.ok()) return s;
  if (r.prefetch() > 65535) {
    return Invalid("prefetch", absl::StrCat("must be 1..65535 (0 for the "
                                            "default 100), got ",
                                            r.prefetch()));
  }
  if (r.max_batch() > 65535) {
    return Invalid("max_batch", absl::StrCat("must be 1..65535 (0 for one "
                                             "delivery per response), got ",
                                             r.max_batch()));
  }
  core::SubscribeOptions out;
  out.queue = r.queue();
  out.prefetch = r.prefetch() == 0 ? 100 : static_cast<uint16_t>(r.prefetch());
  out.max_messages = r.max_messages();
  if (r.max_outstanding_bytes() > 0) {
    out.max_outstanding_bytes = r.max_outstanding_bytes();
  }
  out.consumer_tag = r.consumer_tag();
  out.exclusive = r.exclusive();
  absl::StatusOr<amqp::FieldTable> args = ToAmqpArguments(r.arguments());
  if (!args.ok()) return args.status();
  if (auto v = amqp::CheckConsumerArguments(*args)) {
    return Invalid("arguments", *v);
  }
  out.arguments = *std::move(args);
  if (r.has_offset()) {
    // Wins over an x-stream-offset in `arguments` (the subscription
    // replaces it).
    absl::StatusOr<amqp::FieldValue> start = ToStreamOffset(r.offset());
    if (!start.ok()) return start.status();
    out.stream_offset = *std::move(start);
  }
  return out;
}

}  // namespace

absl::StatusOr<amqp::FieldValue> ToStreamOffset(const v1::StreamOffset& o) {
  switch (o.start_case()) {
    case v1::StreamOffset::kPosition:
      switch (o.position()) {
        case v1::StreamOffset::FIRST:
          return amqp::FieldValue(std::string("first"));
        case v1::StreamOffset::LAST:
          return amqp::FieldValue(std::string("last"));
        case v1::StreamOffset::NEXT:
          return amqp::FieldValue(std::string("next"));
        default:
          return Invalid(
              "offset.position",
              absl::StrCat("must be FIRST, LAST or NEXT, got ", o.position()));
      }
    case v1::StreamOffset::kOffset:
      if (o.offset() >
          static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Invalid("offset.offset",
                       absl::StrCat("at most 2^63 - 1 (an AMQP signed "
                                    "long), got ",
                                    o.offset()));
      }
      return amqp::FieldValue(static_cast<int64_t>(o.offset()));
    case v1::StreamOffset::kTimestamp:
      if (o.timestamp().seconds() < 0 || o.timestamp().nanos() < 0 ||
          o.timestamp().nanos() > 999999999) {
        return Invalid("offset.timestamp",
                       absl::StrCat("must be a time from 1970-01-01T00:00:00Z "
                                    "on, got ",
                                    o.timestamp().seconds(), " s ",
                                    o.timestamp().nanos(), " ns"));
      }
      // AMQP timestamps are whole seconds.
      return amqp::FieldValue(
          amqp::Timestamp{static_cast<uint64_t>(o.timestamp().seconds())});
    default:
      return Invalid("offset",
                     "set one of position (FIRST, LAST or NEXT), offset or "
                     "timestamp");
  }
}

absl::StatusOr<absl::Duration> ToRetryDuration(
    absl::string_view field, const google::protobuf::Duration& d) {
  if (d.seconds() < 0 || d.nanos() < 0 ||
      d.seconds() > absl::ToInt64Seconds(core::kMaxRetryDelay)) {
    return Invalid(field, absl::StrCat("must be 0 .. 24h, got ", d.seconds(),
                                       "s ", d.nanos(), "ns"));
  }
  absl::Duration out =
      absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  if (absl::Status s = core::CheckRetryDelay(field, out); !s.ok()) return s;
  return out;
}

absl::StatusOr<core::RetryOptions> ToRetryOptions(
    const v1::RetryPolicy& policy, bool has_policy,
    const v1::DeadLetter& dead_letter, bool has_dead_letter, core::AckMode mode,
    const std::string& queue) {
  const char* field = has_policy ? "retry_policy" : "dead_letter";
  if (mode != core::AckMode::kClient) {
    return Invalid(field,
                   "needs ack_mode CLIENT (the caller decides which "
                   "messages to retry)");
  }
  if (absl::Status s = core::CheckRetryQueue("queue", queue); !s.ok()) {
    return s;
  }
  core::RetryOptions out;
  if (has_policy) {
    core::RetryPolicy p;
    p.max_attempts = policy.max_attempts();
    if (policy.has_initial_backoff()) {
      absl::StatusOr<absl::Duration> d = ToRetryDuration(
          "retry_policy.initial_backoff", policy.initial_backoff());
      if (!d.ok()) return d.status();
      p.initial_backoff = *d;
    }
    if (policy.has_max_backoff()) {
      absl::StatusOr<absl::Duration> d =
          ToRetryDuration("retry_policy.max_backoff", policy.max_backoff());
      if (!d.ok()) return d.status();
      p.max_backoff = *d;
    } else {
      p.max_backoff = std::max(p.max_backoff, p.initial_backoff);
    }
    if (policy.multiplier() != 0) p.multiplier = policy.multiplier();
    p.jitter = policy.jitter();
    if (absl::Status s = core::CheckRetryPolicy(p); !s.ok()) return s;
    out.policy = p;
  }
  if (has_dead_letter) {
    if (!out.policy.has_value() || out.policy->max_attempts == 0) {
      return Invalid("dead_letter",
                     "needs retry_policy.max_attempts (messages go there "
                     "once they reach it)");
    }
    absl::Status s =
        ValidateName("dead_letter.exchange", dead_letter.exchange());
    if (!s.ok()) return s;
    s = ValidateName("dead_letter.routing_key", dead_letter.routing_key());
    if (!s.ok()) return s;
    out.dead_letter = core::DeadLetterTarget{dead_letter.exchange(),
                                             dead_letter.routing_key()};
  }
  return out;
}

template <typename AckMessage>
absl::StatusOr<core::AckCommand> ToAckCommand(const AckMessage& r) {
  absl::StatusOr<core::AckAction> action = ToAckAction(r.action());
  if (!action.ok()) return action.status();
  core::AckCommand out(*action);
  if (r.has_retry_delay()) {
    if (*action != core::AckAction::kRetry) {
      return Invalid("retry_delay", "applies to action RETRY only");
    }
    absl::StatusOr<absl::Duration> d =
        ToRetryDuration("retry_delay", r.retry_delay());
    if (!d.ok()) return d.status();
    out.retry_delay = *d;
  }
  if (r.error().size() > core::kMaxRetryErrorBytes) {
    return Invalid("error", absl::StrCat("at most ", core::kMaxRetryErrorBytes,
                                         " bytes, got ", r.error().size()));
  }
  out.error = r.error();
  return out;
}

template absl::StatusOr<core::AckCommand> ToAckCommand(const v1::AckRequest&);
template absl::StatusOr<core::AckCommand> ToAckCommand(const v1::SubscribeAck&);

namespace {

// Sets out->retry from the retry_policy and dead_letter of `r` (a
// StreamMessagesRequest or SubscribeStart: same names) when either is set;
// out->ack_mode and out->queue are set before.
template <typename Request>
absl::Status SetRetryOptions(const Request& r, core::SubscribeOptions* out) {
  if (!r.has_retry_policy() && !r.has_dead_letter()) return absl::OkStatus();
  absl::StatusOr<core::RetryOptions> retry =
      ToRetryOptions(r.retry_policy(), r.has_retry_policy(), r.dead_letter(),
                     r.has_dead_letter(), out->ack_mode, out->queue);
  if (!retry.ok()) return retry.status();
  out->retry = *std::move(retry);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<core::SubscribeOptions> ToSubscribeOptions(
    const v1::StreamMessagesRequest& r) {
  absl::StatusOr<core::SubscribeOptions> out = ToCommonSubscribeOptions(r);
  if (!out.ok()) return out;
  switch (r.ack_mode()) {
    case v1::StreamMessagesRequest::ACK_MODE_UNSPECIFIED:
    case v1::StreamMessagesRequest::AUTO:
      out->ack_mode = core::AckMode::kAuto;
      break;
    case v1::StreamMessagesRequest::CLIENT:
      out->ack_mode = core::AckMode::kClient;
      break;
    case v1::StreamMessagesRequest::NONE:
      out->ack_mode = core::AckMode::kNone;
      break;
    default:
      return Invalid("ack_mode", absl::StrCat("unknown value ", r.ack_mode(),
                                              " (AUTO, CLIENT or NONE)"));
  }
  absl::Status retry = SetRetryOptions(r, &*out);
  if (!retry.ok()) return retry;
  return out;
}

absl::StatusOr<core::SubscribeOptions> ToSubscribeOptions(
    const v1::SubscribeStart& r) {
  absl::StatusOr<core::SubscribeOptions> out = ToCommonSubscribeOptions(r);
  if (!out.ok()) return out;
  out->ack_mode = core::AckMode::kClient;  // acks come on the stream
  absl::Status retry = SetRetryOptions(r, &*out);
  if (!retry.ok()) return retry;
  return out;
}

absl::StatusOr<absl::Duration> ToDrainTimeout(const v1::SubscribeStart& r) {
  if (!r.has_drain_timeout()) return kDefaultDrainTimeout;
  const google::protobuf::Duration& d = r.drain_timeout();
  if (d.seconds() < 0 || d.nanos() < 0 || d.nanos() > 999999999) {
    return Invalid("drain_timeout", "must not be negative");
  }
  absl::Duration out =
      absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  if (out > kMaxDrainTimeout) {
    return Invalid("drain_timeout",
                   absl::StrCat("at most 1 hour, got ", d.seconds(), " s"));
  }
  return out;
}

absl::StatusOr<core::AckAction> ToAckAction(v1::AckRequest::Action action) {
  switch (action) {
    case v1::AckRequest::ACTION_UNSPECIFIED:
    case v1::AckRequest::ACK:
      return core::AckAction::kAck;
    case v1::AckRequest::REQUEUE:
      return core::AckAction::kRequeue;
    case v1::AckRequest::REJECT:
      return core::AckAction::kReject;
    case v1::AckRequest::RETRY:
      return core::AckAction::kRetry;
    default:
      return Invalid("action",
                     absl::StrCat("unknown value ", action,
                                  " (ACK, REQUEUE, REJECT or RETRY)"));
  }
}

absl::StatusOr<core::AckAction> ToAckAction(const v1::AckRequest& r) {
  return ToAckAction(r.action());
}

absl::StatusOr<core::GetRequest> ToGetRequest(const v1::GetMessagesRequest& r) {
  absl::Status s = ValidateName("queue", r.queue(), /*allow_empty=*/false);
  if (!s.ok()) return s;
  if (r.count() < 1 || r.count() > kMaxGetMessages) {
    return Invalid("count", absl::StrCat("must be 1..", kMaxGetMessages,
                                         ", got ", r.count()));
  }
  core::GetRequest out;
  out.queue = r.queue();
  out.count = r.count();
  out.ack = r.ack();
  return out;
}

void ToProtoTable(const amqp::FieldTable& table, ProtoTable* out) {
  for (const auto& [k, v] : table) {
    ToProtoValue(v, &(*out)[IsValidUtf8(k) ? k : SanitizeUtf8(k)]);
  }
}

void ToProtoProperties(const amqp::Properties& p, v1::MessageProperties* out) {
  SetString(p.content_type, [out] { return out->mutable_content_type(); });
  SetString(p.content_encoding,
            [out] { return out->mutable_content_encoding(); });
  if (p.headers.has_value()) ToProtoTable(*p.headers, out->mutable_headers());
  if (p.delivery_mode.has_value()) {
    out->set_delivery_mode(*p.delivery_mode == 1 ? v1::TRANSIENT
                           : *p.delivery_mode == 2
                               ? v1::PERSISTENT
                               : v1::DELIVERY_MODE_UNSPECIFIED);
  }
  if (p.priority.has_value()) out->set_priority(*p.priority);
  SetString(p.correlation_id, [out] { return out->mutable_correlation_id(); });
  SetString(p.reply_to, [out] { return out->mutable_reply_to(); });
  if (p.expiration.has_value()) {
    int64_t ms;
    if (absl::SimpleAtoi(*p.expiration, &ms) && ms >= 0) {
      out->mutable_expiration()->set_seconds(ms / 1000);
      out->mutable_expiration()->set_nanos(static_cast<int32_t>(ms % 1000) *
                                           1000000);
    }
  }
  SetString(p.message_id, [out] { return out->mutable_message_id(); });
  if (p.timestamp.has_value()) {
    out->mutable_timestamp()->set_seconds(static_cast<int64_t>(
        std::min<uint64_t>(*p.timestamp, std::numeric_limits<int64_t>::max())));
  }
  SetString(p.type, [out] { return out->mutable_type(); });
  SetString(p.user_id, [out] { return out->mutable_user_id(); });
  SetString(p.app_id, [out] { return out->mutable_app_id(); });
}

void ToProtoDelivery(core::StreamDelivery&& d, v1::Delivery* out) {
  const amqp::Delivery& m = d.get();
  out->set_delivery_id(d.delivery_id);
  out->set_redelivered(m.redelivered);
  out->set_delivery_attempt(d.delivery_attempt);
  if (d.stream_offset.has_value()) {
    out->set_stream_offset(static_cast<uint64_t>(*d.stream_offset));
  } else {
    out->clear_stream_offset();  // `out` may be reused
  }
  out->set_exchange(SanitizeUtf8(m.exchange));
  out->set_routing_key(SanitizeUtf8(m.routing_key));
  if (d.retained != nullptr) {
    // Shared with the subscription (kept for RETRY): copied, into the
    // buffer a reused `out` already has.
    out->set_body(m.body);
  } else {
    out->set_body(std::move(d.message.body));
  }
  ToProtoProperties(m.properties, out->mutable_properties());
  if (std::optional<trace::TraceContext> tc =
          TraceContextFromHeaders(m.properties)) {
    out->mutable_trace_context()->set_traceparent(tc->Traceparent());
    out->mutable_trace_context()->set_tracestate(tc->tracestate);
  }
}

void ToProtoDelivery(amqp::Delivery&& delivery, v1::Delivery* out) {
  core::StreamDelivery d;
  d.delivery_id = 0;
  d.delivery_attempt = amqp::DeliveryAttempt(delivery);
  d.stream_offset = amqp::DeliveryStreamOffset(delivery);
  d.message = std::move(delivery);
  ToProtoDelivery(std::move(d), out);
}

void ToProtoConnectionInfo(const core::ConnectionInfo& info,
                           v1::ConnectionInfo* out) {
  switch (info.state) {
    case core::SessionState::kConnecting:
      out->set_state(v1::ConnectionInfo::CONNECTING);
      break;
    case core::SessionState::kReady:
      out->set_state(v1::ConnectionInfo::READY);
      break;
    case core::SessionState::kReconnecting:
      out->set_state(v1::ConnectionInfo::RECONNECTING);
      break;
    case core::SessionState::kDisconnected:
      out->set_state(v1::ConnectionInfo::DISCONNECTED);
      break;
  }
  out->set_broker(info.broker);
  out->set_vhost(info.vhost);
  out->set_server_product(SanitizeUtf8(info.server.product));
  out->set_server_version(SanitizeUtf8(info.server.version));
  out->set_cluster_name(SanitizeUtf8(info.server.cluster_name));
  if (info.connected_since != absl::InfinitePast()) {
    SetTimestamp(info.connected_since, out->mutable_connected_since());
  }
  out->set_reconnects(info.reconnects);
  out->set_last_error(SanitizeUtf8(info.last_error));
  out->mutable_heartbeat()->set_seconds(absl::ToInt64Seconds(info.heartbeat));
  out->set_blocked(info.blocked);
  out->set_blocked_reason(SanitizeUtf8(info.blocked_reason));
  for (const auto& b : info.brokers) out->add_brokers(b);
}

void ToProtoCounters(const core::CountersSnapshot& c, v1::Counters* out) {
#define AMQPGW_SET_COUNTER(name, kind, metric, help) out->set_##name(c.name);
  AMQPGW_API_COUNTERS(AMQPGW_SET_COUNTER)
#undef AMQPGW_SET_COUNTER
}

void ToProtoRates(const RecentRates& r, v1::MessageRates* out) {
  const int64_t nanos = absl::ToInt64Nanoseconds(r.window);
  out->mutable_window()->set_seconds(nanos / 1000000000);
  out->mutable_window()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
  out->set_published(r.published);
  out->set_confirmed(r.confirmed);
  out->set_delivered(r.delivered);
  out->set_acked(r.acked);
}

}  // namespace amqpgw::grpc_api
