#include "server/amqp/broker_rules.h"

#include <variant>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace amqpgw::amqp {
namespace {

constexpr absl::string_view kDirectReplyToPrefix = "amq.rabbitmq.reply-to.";

std::optional<std::string> FindNonFinite(const FieldValue& v);

std::optional<std::string> FindNonFiniteIn(const FieldArray& a) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (auto p = FindNonFinite(a[i])) return absl::StrCat("[", i, "]", *p);
  }
  return std::nullopt;
}

std::optional<std::string> FindNonFinite(const FieldValue& v) {
  if (const double* d = std::get_if<double>(&v.value)) {
    if (!IsBrokerSafeDouble(*d)) return std::string();
  } else if (const FieldTable* t = std::get_if<FieldTable>(&v.value)) {
    return FindNonFiniteDouble(*t);
  } else if (const FieldArray* a = std::get_if<FieldArray>(&v.value)) {
    return FindNonFiniteIn(*a);
  }
  return std::nullopt;
}

// The text of a string or byte-array value; nullptr for other types.
const std::string* TextOf(const FieldValue& v) {
  if (const std::string* s = std::get_if<std::string>(&v.value)) return s;
  if (const Bytes* b = std::get_if<Bytes>(&v.value)) return &b->data;
  return nullptr;
}

bool StartsWithDigit(absl::string_view s) {
  return !s.empty() && absl::ascii_isdigit(static_cast<unsigned char>(s[0]));
}

bool IsOffsetWord(absl::string_view s) {
  return s == "first" || s == "last" || s == "next";
}

std::string Key(absl::string_view key) {
  return absl::StrCat("[\"", key, "\"]");
}

}  // namespace

bool IsBuiltinExchangeType(absl::string_view type) {
  return type == "direct" || type == "fanout" || type == "topic" ||
         type == "headers";
}

std::optional<std::string> FindNonFiniteDouble(const FieldTable& table) {
  for (const auto& [key, value] : table) {
    if (auto p = FindNonFinite(value)) return absl::StrCat(Key(key), *p);
  }
  return std::nullopt;
}

std::optional<Violation> CheckQueueArguments(const FieldTable& arguments) {
  if (const FieldValue* v = FindField(arguments, "x-queue-master-locator")) {
    const std::string* s = TextOf(*v);
    if (s == nullptr ||
        !(*s == "min-masters" || *s == "client-local" || *s == "random")) {
      return Violation{Key("x-queue-master-locator"),
                       "must be \"min-masters\", \"client-local\" or "
                       "\"random\" (RabbitMQ closes the whole connection on "
                       "any other value)"};
    }
  }
  if (const FieldValue* v = FindField(arguments, "x-max-age")) {
    const std::string* s = std::get_if<std::string>(&v->value);
    if (s != nullptr && !StartsWithDigit(*s)) {
      return Violation{Key("x-max-age"),
                       "must be a number followed by a unit, e.g. \"7D\" (Y, "
                       "M, D, h, m or s); RabbitMQ closes the whole connection "
                       "on a string that does not start with a digit"};
    }
  }
  return std::nullopt;
}

std::optional<Violation> CheckConsumerArguments(const FieldTable& arguments) {
  if (const FieldValue* v = FindField(arguments, kStreamOffsetKey)) {
    bool ok = false;
    if (std::holds_alternative<int64_t>(v->value) ||
        std::holds_alternative<Timestamp>(v->value)) {
      ok = true;
    } else if (const std::string* s = std::get_if<std::string>(&v->value)) {
      ok = IsOffsetWord(*s) || StartsWithDigit(*s);
    } else if (const Bytes* b = std::get_if<Bytes>(&v->value)) {
      ok = IsOffsetWord(b->data);
    }
    if (!ok) {
      return Violation{
          Key(kStreamOffsetKey),
          "must be an integer offset, a timestamp, \"first\", \"last\", "
          "\"next\" or an interval such as \"1h\" (RabbitMQ closes the whole "
          "connection on other values)"};
    }
  }
  return std::nullopt;
}

std::optional<Violation> CheckPublish(const OutgoingMessage& m) {
  const bool default_exchange = m.exchange.empty();
  if (default_exchange &&
      absl::StartsWith(m.routing_key, kDirectReplyToPrefix)) {
    return Violation{"routing_key",
                     "direct reply-to keys (amq.rabbitmq.reply-to.*) cannot "
                     "be published through the gateway: RabbitMQ closes the "
                     "whole connection when such a key is malformed or its "
                     "node has left"};
  }
  if (m.properties.reply_to == "amq.rabbitmq.reply-to") {
    return Violation{"properties.reply_to",
                     "direct reply-to (\"amq.rabbitmq.reply-to\") needs a "
                     "reply consumer on the publishing channel, which the "
                     "gateway does not have"};
  }
  if (!m.properties.headers.has_value()) return std::nullopt;
  for (const char* name : {"CC", "BCC"}) {
    const FieldValue* v = FindField(*m.properties.headers, name);
    if (v == nullptr) continue;
    std::string field = absl::StrCat("properties.headers", Key(name));
    const FieldArray* routes = std::get_if<FieldArray>(&v->value);
    if (routes == nullptr) {
      return Violation{field,
                       "must be an array of routing keys (RabbitMQ closes the "
                       "publishing channel on any other type)"};
    }
    if (!default_exchange) continue;
    for (size_t i = 0; i < routes->size(); ++i) {
      const std::string* s = std::get_if<std::string>(&(*routes)[i].value);
      if (s != nullptr && absl::StartsWith(*s, kDirectReplyToPrefix)) {
        return Violation{absl::StrCat(field, "[", i, "]"),
                         "direct reply-to keys (amq.rabbitmq.reply-to.*) "
                         "cannot be published through the gateway: RabbitMQ "
                         "closes the whole connection when such a key is "
                         "malformed or its node has left"};
      }
    }
  }
  return std::nullopt;
}

}  // namespace amqpgw::amqp
