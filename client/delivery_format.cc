#include "client/delivery_format.h"

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/client.h"
#include "client/values.h"

namespace amqpgw::cli {
namespace {

// A word as is when it is printable and has no spaces, else quoted.
std::string Token(const std::string& s) {
  if (!s.empty() && IsPrintableText(s) && s.find(' ') == std::string::npos &&
      s.find('"') == std::string::npos) {
    return s;
  }
  return JsonString(s);
}

}  // namespace

std::string HumanDelivery(const v1::Delivery& d) {
  const v1::MessageProperties& p = d.properties();
  std::vector<std::string> parts;
  // GetMessages' messages have no delivery id (0): nothing to Ack.
  if (d.delivery_id() != 0) parts.push_back(absl::StrCat("#", d.delivery_id()));
  parts.push_back(Token(d.routing_key()));
  if (!d.exchange().empty()) {
    parts.push_back(absl::StrCat("exchange=", Token(d.exchange())));
  }
  if (d.redelivered()) {
    parts.push_back(absl::StrCat("redelivered attempt=", d.delivery_attempt()));
  }
  if (d.has_stream_offset()) {
    parts.push_back(absl::StrCat("offset=", d.stream_offset()));
  }
  parts.push_back(p.delivery_mode() == v1::TRANSIENT ? "transient"
                                                     : "persistent");
  auto add = [&](const char* name, const std::string& value) {
    if (!value.empty()) parts.push_back(absl::StrCat(name, "=", Token(value)));
  };
  add("content_type", p.content_type());
  add("content_encoding", p.content_encoding());
  if (p.has_priority())
    parts.push_back(absl::StrCat("priority=", p.priority()));
  add("correlation_id", p.correlation_id());
  add("reply_to", p.reply_to());
  if (p.has_expiration()) {
    parts.push_back(absl::StrCat("ttl=", FormatDuration(p.expiration())));
  }
  add("type", p.type());
  add("app_id", p.app_id());
  add("user_id", p.user_id());
  if (p.has_timestamp()) {
    parts.push_back(absl::StrCat("timestamp=", FormatTimestamp(p.timestamp())));
  }
  add("message_id", p.message_id());
  if (!p.headers().empty()) {
    parts.push_back(absl::StrCat("headers=", FormatFieldTable(p.headers())));
  }
  return absl::StrCat(absl::StrJoin(parts, " "), " | ", HumanBody(d.body()));
}

std::string JsonDelivery(const v1::Delivery& delivery, bool text) {
  v1::Delivery rest = delivery;
  rest.clear_body();
  std::string json = ToJsonLine(rest, /*print_defaults=*/false);
  bool as_text = text && IsValidUtf8(delivery.body());
  std::string body = absl::StrCat(
      "\"body\":",
      as_text ? JsonString(delivery.body())
              : absl::StrCat("\"", absl::Base64Escape(delivery.body()), "\""),
      ",\"body_encoding\":\"", as_text ? "text" : "base64", "\"}");
  // json is "{...}"; the body goes last.
  json.pop_back();
  if (json.size() > 1) json += ',';
  return json + body;
}

}  // namespace amqpgw::cli
