#include "server/core/publish_risk.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace amqpgw::core {
namespace {

// RabbitMQ names the default exchange so in its texts.
constexpr absl::string_view kDefaultExchangeName = "amq.default";

void ExchangeKey(const amqp::OutgoingMessage& m,
                 const absl::flat_hash_set<std::string>& per_routing_key,
                 std::string* out) {
  if (per_routing_key.contains(m.exchange)) {
    out->assign("t:");
    out->append(m.exchange);
    out->push_back('\0');
    out->append(m.routing_key);
  } else {
    out->assign("e:");
    out->append(m.exchange);
  }
}

bool IsDirectReplyTo(const amqp::OutgoingMessage& m) {
  return m.properties.reply_to.has_value() &&
         absl::StartsWith(*m.properties.reply_to, kDirectReplyTo);
}

// The text between `open` and the last `close` after it; false when either
// is missing.
bool Between(absl::string_view text, absl::string_view open,
             absl::string_view close, std::string* out,
             absl::string_view* rest = nullptr) {
  size_t start = text.find(open);
  if (start == absl::string_view::npos) return false;
  start += open.size();
  size_t end = text.find(close, start);
  if (end == absl::string_view::npos) return false;
  *out = std::string(text.substr(start, end - start));
  if (rest != nullptr) *rest = text.substr(end + close.size());
  return true;
}

std::string FromBrokerName(std::string name) {
  return name == kDefaultExchangeName ? std::string() : name;
}

}  // namespace

bool ForEachRiskKey(const amqp::OutgoingMessage& m,
                    const absl::flat_hash_set<std::string>& per_routing_key,
                    std::string* scratch,
                    absl::FunctionRef<bool(const std::string&)> fn) {
  ExchangeKey(m, per_routing_key, scratch);
  if (!fn(*scratch)) return false;
  if (m.properties.user_id.has_value()) {
    scratch->assign("u:");
    scratch->append(*m.properties.user_id);
    if (!fn(*scratch)) return false;
  }
  if (IsDirectReplyTo(m)) {
    scratch->assign("r:");
    if (!fn(*scratch)) return false;
  }
  return true;
}

std::vector<std::string> RiskKeys(
    const amqp::OutgoingMessage& m,
    const absl::flat_hash_set<std::string>& per_routing_key) {
  std::vector<std::string> keys;
  std::string scratch;
  ForEachRiskKey(m, per_routing_key, &scratch, [&](const std::string& key) {
    keys.push_back(key);
    return true;
  });
  return keys;
}

bool Refusal::Matches(const amqp::OutgoingMessage& m) const {
  switch (kind) {
    case Kind::kUnknown:
      return false;
    case Kind::kExchange:
      return m.exchange == exchange;
    case Kind::kTopic:
      return m.exchange == exchange && m.routing_key == value;
    case Kind::kUserId:
      return m.properties.user_id.has_value() && *m.properties.user_id == value;
    case Kind::kReplyTo:
      return IsDirectReplyTo(m);
    case Kind::kExpiration:
      return m.properties.expiration.has_value() &&
             *m.properties.expiration == value;
    case Kind::kSize:
      return m.body.size() == size;
  }
  return false;
}

std::string Refusal::Key(
    const amqp::OutgoingMessage& m,
    const absl::flat_hash_set<std::string>& per_routing_key) const {
  switch (kind) {
    case Kind::kExchange:
    case Kind::kTopic: {
      std::string key;
      ExchangeKey(m, per_routing_key, &key);
      return key;
    }
    case Kind::kUserId:
      return absl::StrCat("u:", value);
    case Kind::kReplyTo:
      return "r:";
    case Kind::kUnknown:
    case Kind::kExpiration:
    case Kind::kSize:
      return "";
  }
  return "";
}

Refusal ParseRefusal(absl::string_view text) {
  Refusal r;
  absl::string_view rest;
  if (Between(text, "access to topic '", "' in exchange '", &r.value, &rest) &&
      Between(absl::StrCat("'", rest), "'", "' in vhost '", &r.exchange)) {
    r.kind = Refusal::Kind::kTopic;
    r.exchange = FromBrokerName(std::move(r.exchange));
    return r;
  }
  if (Between(text, "exchange '", "' in vhost '", &r.exchange)) {
    r.kind = Refusal::Kind::kExchange;
    r.exchange = FromBrokerName(std::move(r.exchange));
    return r;
  }
  if (Between(text, "user_id property set to '", "' but ", &r.value)) {
    r.kind = Refusal::Kind::kUserId;
    return r;
  }
  if (absl::StrContains(text, "fast reply consumer does not exist")) {
    r.kind = Refusal::Kind::kReplyTo;
    return r;
  }
  if (Between(text, "invalid expiration '", "'", &r.value)) {
    r.kind = Refusal::Kind::kExpiration;
    return r;
  }
  std::string size, max_size;
  if (Between(text, "message size ", " is larger than ", &size, &rest) &&
      absl::SimpleAtoi(size, &r.size)) {
    size_t at = rest.rfind(' ');
    if (at != absl::string_view::npos &&
        absl::SimpleAtoi(rest.substr(at + 1), &r.max_size)) {
      r.kind = Refusal::Kind::kSize;
      return r;
    }
  }
  return Refusal{};
}

}  // namespace amqpgw::core
