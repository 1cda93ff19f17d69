#include "server/management/parse.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace amqpgw::management {
namespace {

using Json = nlohmann::json;

// Argument tables deeper than this are cut (the rest shown as JSON text):
// the gateway's own field tables stop at 16 levels too.
constexpr int kMaxValueDepth = 16;

absl::Status Unexpected(absl::string_view what) {
  return absl::InternalError(what);
}

absl::StatusOr<Json> ParseJson(absl::string_view body) {
  Json j = Json::parse(body.begin(), body.end(), /*cb=*/nullptr,
                       /*allow_exceptions=*/false);
  if (j.is_discarded()) return Unexpected("the body is not JSON");
  return j;
}

const Json* Field(const Json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::string String(const Json& object, const char* key) {
  const Json* v = Field(object, key);
  return v != nullptr && v->is_string() ? v->get<std::string>() : "";
}

bool Bool(const Json& object, const char* key, bool fallback = false) {
  const Json* v = Field(object, key);
  return v != nullptr && v->is_boolean() ? v->get<bool>() : fallback;
}

std::optional<double> OptionalNumber(const Json& object, const char* key) {
  const Json* v = Field(object, key);
  if (v == nullptr || !v->is_number()) return std::nullopt;
  double d = v->get<double>();
  if (!std::isfinite(d)) return std::nullopt;
  return d;
}

double Number(const Json& object, const char* key) {
  return OptionalNumber(object, key).value_or(0);
}

uint64_t Count(const Json& object, const char* key) {
  const Json* v = Field(object, key);
  if (v == nullptr) return 0;
  if (v->is_number_unsigned()) return v->get<uint64_t>();
  if (v->is_number_integer()) {
    int64_t i = v->get<int64_t>();
    return i > 0 ? static_cast<uint64_t>(i) : 0;
  }
  if (v->is_number_float()) {
    double d = v->get<double>();
    if (!(d > 0)) return 0;
    if (d >= 1.8e19) return std::numeric_limits<uint64_t>::max();
    return static_cast<uint64_t>(d);
  }
  return 0;
}

// message_stats.<key>_details.rate
double Rate(const Json& object, const char* stats_key, const char* key) {
  const Json* stats = Field(object, stats_key);
  if (stats == nullptr) return 0;
  const Json* details = Field(*stats, absl::StrCat(key, "_details").c_str());
  if (details == nullptr) return 0;
  return Number(*details, "rate");
}

Value ToValue(const Json& j, int depth) {
  Value v;
  switch (j.type()) {
    case Json::value_t::boolean:
      v.kind = Value::Kind::kBool;
      v.bool_value = j.get<bool>();
      break;
    case Json::value_t::number_integer:
      v.kind = Value::Kind::kInt;
      v.int_value = j.get<int64_t>();
      break;
    case Json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        v.kind = Value::Kind::kInt;
        v.int_value = static_cast<int64_t>(u);
      } else {
        v.kind = Value::Kind::kDouble;
        v.double_value = static_cast<double>(u);
      }
      break;
    }
    case Json::value_t::number_float:
      v.kind = Value::Kind::kDouble;
      v.double_value = j.get<double>();
      break;
    case Json::value_t::string:
      v.kind = Value::Kind::kString;
      v.string_value = j.get<std::string>();
      break;
    case Json::value_t::array:
    case Json::value_t::object:
      if (depth >= kMaxValueDepth) {
        v.kind = Value::Kind::kString;
        v.string_value = j.dump();
        break;
      }
      if (j.is_array()) {
        v.kind = Value::Kind::kList;
        for (const Json& e : j) v.list.push_back(ToValue(e, depth + 1));
      } else {
        v.kind = Value::Kind::kTable;
        for (auto it = j.begin(); it != j.end(); ++it) {
          v.table.emplace_back(it.key(), ToValue(it.value(), depth + 1));
        }
      }
      break;
    default:
      break;  // null, binary, discarded
  }
  return v;
}

Arguments ToArguments(const Json& object, const char* key) {
  Arguments out;
  const Json* args = Field(object, key);
  if (args == nullptr || !args->is_object()) return out;
  for (auto it = args->begin(); it != args->end(); ++it) {
    out.emplace_back(it.key(), ToValue(it.value(), 1));
  }
  return out;
}

Queue ToQueue(const Json& j) {
  Queue q;
  q.name = String(j, "name");
  q.type = String(j, "type");
  q.durable = Bool(j, "durable");
  q.auto_delete = Bool(j, "auto_delete");
  q.exclusive = Bool(j, "exclusive");
  q.arguments = ToArguments(j, "arguments");
  q.policy = String(j, "policy");
  q.ready = Count(j, "messages_ready");
  q.unacked = Count(j, "messages_unacknowledged");
  q.total = Count(j, "messages");
  q.consumers = Count(j, "consumers");
  if (q.consumers > 0) {
    q.consumer_utilisation = OptionalNumber(j, "consumer_utilisation");
  }
  q.memory = Count(j, "memory");
  q.rates.publish = Rate(j, "message_stats", "publish");
  q.rates.deliver = Rate(j, "message_stats", "deliver_get");
  q.rates.ack = Rate(j, "message_stats", "ack");
  q.rates.redeliver = Rate(j, "message_stats", "redeliver");
  q.state = String(j, "state");
  q.node = String(j, "leader");
  if (q.node.empty()) q.node = String(j, "node");
  const Json* members = Field(j, "members");
  const Json* online = Field(j, "online");
  if (members != nullptr && members->is_array()) {
    for (const Json& m : *members) {
      if (!m.is_string()) continue;
      bool up = online != nullptr && online->is_array() &&
                std::find(online->begin(), online->end(), m) != online->end();
      if (!up) q.members_down.push_back(m.get<std::string>());
    }
  }
  return q;
}

Exchange ToExchange(const Json& j) {
  Exchange e;
  e.name = String(j, "name");
  e.type = String(j, "type");
  e.durable = Bool(j, "durable");
  e.auto_delete = Bool(j, "auto_delete");
  e.internal = Bool(j, "internal");
  e.arguments = ToArguments(j, "arguments");
  e.policy = String(j, "policy");
  e.publish_in_rate = Rate(j, "message_stats", "publish_in");
  e.publish_out_rate = Rate(j, "message_stats", "publish_out");
  return e;
}

Consumer ToConsumer(const Json& j) {
  Consumer c;
  if (const Json* q = Field(j, "queue")) c.queue = String(*q, "name");
  c.consumer_tag = String(j, "consumer_tag");
  if (const Json* ch = Field(j, "channel_details")) {
    c.connection = String(*ch, "connection_name");
    c.user = String(*ch, "user");
  }
  c.prefetch = static_cast<uint32_t>(
      std::min<uint64_t>(Count(j, "prefetch_count"), UINT32_MAX));
  c.ack_required = Bool(j, "ack_required");
  c.exclusive = Bool(j, "exclusive");
  c.active = Bool(j, "active", true);
  c.arguments = ToArguments(j, "arguments");
  return c;
}

template <typename T>
absl::StatusOr<Page<T>> ToPage(absl::string_view body, T (*item)(const Json&)) {
  absl::StatusOr<Json> j = ParseJson(body);
  if (!j.ok()) return j.status();
  const Json* items = Field(*j, "items");
  if (items == nullptr || !items->is_array()) {
    return Unexpected("not a page of items (no `items` list)");
  }
  Page<T> page;
  for (const Json& e : *items) {
    if (e.is_object()) page.items.push_back(item(e));
  }
  page.page =
      static_cast<int>(std::min<uint64_t>(Count(*j, "page"), INT32_MAX));
  page.page_count =
      static_cast<int>(std::min<uint64_t>(Count(*j, "page_count"), INT32_MAX));
  page.filtered_count = Count(*j, "filtered_count");
  page.total_count = Count(*j, "total_count");
  return page;
}

}  // namespace

absl::StatusOr<Page<Queue>> ParseQueuePage(absl::string_view body) {
  return ToPage<Queue>(body, &ToQueue);
}

absl::StatusOr<Page<Exchange>> ParseExchangePage(absl::string_view body) {
  return ToPage<Exchange>(body, &ToExchange);
}

absl::StatusOr<QueueDetails> ParseQueueDetails(absl::string_view body) {
  absl::StatusOr<Json> j = ParseJson(body);
  if (!j.ok()) return j.status();
  if (!j->is_object() || Field(*j, "name") == nullptr) {
    return Unexpected("not a queue (no `name`)");
  }
  QueueDetails out;
  out.queue = ToQueue(*j);
  if (const Json* list = Field(*j, "consumer_details");
      list != nullptr && list->is_array()) {
    for (const Json& c : *list) {
      if (!c.is_object()) continue;
      out.consumers.push_back(ToConsumer(c));
      if (out.consumers.back().queue.empty()) {
        out.consumers.back().queue = out.queue.name;
      }
    }
  }
  return out;
}

absl::StatusOr<std::vector<Binding>> ParseBindings(absl::string_view body) {
  absl::StatusOr<Json> j = ParseJson(body);
  if (!j.ok()) return j.status();
  if (!j->is_array()) return Unexpected("not a list of bindings");
  std::vector<Binding> out;
  for (const Json& b : *j) {
    if (!b.is_object()) continue;
    Binding x;
    x.source = String(b, "source");
    x.destination = String(b, "destination");
    x.destination_type = String(b, "destination_type");
    x.routing_key = String(b, "routing_key");
    x.arguments = ToArguments(b, "arguments");
    x.properties_key = String(b, "properties_key");
    out.push_back(std::move(x));
  }
  return out;
}

absl::StatusOr<ConnectionNames> ParseConnectionNames(absl::string_view body) {
  absl::StatusOr<Json> j = ParseJson(body);
  if (!j.ok()) return j.status();
  if (!j->is_array()) return Unexpected("not a list of connections");
  ConnectionNames out;
  for (const Json& c : *j) {
    std::string given = String(c, "user_provided_name");
    if (given.empty()) continue;
    out.emplace_back(String(c, "name"), std::move(given));
  }
  return out;
}

void NameConsumers(const ConnectionNames& names, absl::string_view own_prefix,
                   std::vector<Consumer>* consumers) {
  for (Consumer& c : *consumers) {
    for (const auto& [broker_name, given] : names) {
      if (broker_name == c.connection) {
        c.connection_name = given;
        break;
      }
    }
    c.own =
        !own_prefix.empty() && absl::StartsWith(c.connection_name, own_prefix);
  }
}

absl::StatusOr<std::string> ParseName(absl::string_view body) {
  absl::StatusOr<Json> j = ParseJson(body);
  if (!j.ok()) return j.status();
  const Json* name = Field(*j, "name");
  if (name == nullptr || !name->is_string()) {
    return Unexpected("not an object with a `name`");
  }
  return name->get<std::string>();
}

absl::StatusOr<User> ParseUser(absl::string_view body) {
  absl::StatusOr<Json> j = ParseJson(body);
  if (!j.ok()) return j.status();
  if (!j->is_object() || Field(*j, "name") == nullptr) {
    return Unexpected("not a user (no `name`)");
  }
  User u;
  u.name = String(*j, "name");
  // 3.10 gives a list; older releases a comma-separated string.
  if (const Json* tags = Field(*j, "tags"); tags != nullptr) {
    if (tags->is_array()) {
      for (const Json& t : *tags) {
        if (t.is_string()) u.tags.push_back(t.get<std::string>());
      }
    } else if (tags->is_string()) {
      std::string s = tags->get<std::string>();
      size_t start = 0;
      while (start <= s.size()) {
        size_t comma = s.find(',', start);
        if (comma == std::string::npos) comma = s.size();
        if (comma > start) u.tags.push_back(s.substr(start, comma - start));
        start = comma + 1;
      }
    }
  }
  return u;
}

ErrorBody ParseErrorBody(absl::string_view body) {
  ErrorBody out;
  Json j = Json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return out;
  out.error = String(j, "error");
  out.reason = String(j, "reason");
  return out;
}

std::string PrefixRegex(absl::string_view prefix) {
  std::string out = "^";
  for (char c : prefix) {
    if (absl::string_view("\\^$.|?*+()[]{}/-#").find(c) !=
        absl::string_view::npos) {
      out.push_back('\\');
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace amqpgw::management
