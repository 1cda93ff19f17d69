#include "server/grpc/listing.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/management/parse.h"

namespace amqpgw::grpc_api {
namespace {

constexpr uint32_t kDefaultPageSize = 100;

void ToProtoValue(const management::Value& v, v1::FieldValue* out) {
  using Kind = management::Value::Kind;
  switch (v.kind) {
    case Kind::kNull:
      out->set_null_value(google::protobuf::NULL_VALUE);
      break;
    case Kind::kBool:
      out->set_bool_value(v.bool_value);
      break;
    case Kind::kInt:
      out->set_int_value(v.int_value);
      break;
    case Kind::kDouble:
      out->set_double_value(v.double_value);
      break;
    case Kind::kString:
      out->set_string_value(SanitizeUtf8(v.string_value));
      break;
    case Kind::kList:
      for (const management::Value& e : v.list) {
        ToProtoValue(e, out->mutable_array_value()->add_values());
      }
      if (v.list.empty()) out->mutable_array_value();
      break;
    case Kind::kTable:
      ToProtoArguments(v.table, out->mutable_table_value()->mutable_fields());
      if (v.table.empty()) out->mutable_table_value();
      break;
  }
}

v1::QueueType ToQueueType(const std::string& type) {
  if (type == "classic") return v1::CLASSIC;
  if (type == "quorum") return v1::QUORUM;
  if (type == "stream") return v1::STREAM;
  return v1::QUEUE_TYPE_UNSPECIFIED;
}

}  // namespace

absl::StatusOr<management::ListQuery> ToListQuery(
    const v1::NameFilter* filter, uint32_t page_size,
    const std::string& page_token) {
  management::ListQuery q;
  if (filter != nullptr) {
    switch (filter->kind_case()) {
      case v1::NameFilter::kPrefix: {
        absl::Status s = ValidateName("filter.prefix", filter->prefix());
        if (!s.ok()) return s;
        if (!filter->prefix().empty()) {
          q.name_regex = management::PrefixRegex(filter->prefix());
        }
        break;
      }
      case v1::NameFilter::kRegex: {
        absl::Status s = ValidateName("filter.regex", filter->regex());
        if (!s.ok()) return s;
        q.name_regex = filter->regex();
        break;
      }
      case v1::NameFilter::KIND_NOT_SET:
        break;
    }
  }
  if (page_size > static_cast<uint32_t>(management::kMaxPageSize)) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be 0..", management::kMaxPageSize,
                     " (0: ", kDefaultPageSize, "), got ", page_size));
  }
  q.page_size = static_cast<int>(page_size == 0 ? kDefaultPageSize : page_size);
  if (!page_token.empty()) {
    int page = 0;
    if (page_token.size() > 9 ||
        !std::all_of(page_token.begin(), page_token.end(),
                     [](char c) { return absl::ascii_isdigit(c); }) ||
        !absl::SimpleAtoi(page_token, &page) || page < 2) {
      return absl::InvalidArgumentError(
          "page_token: not a next_page_token of this listing (leave it "
          "empty for the first page)");
    }
    q.page = page;
  }
  return q;
}

absl::StatusOr<management::BindingFilter> ToBindingFilter(
    const v1::ListBindingsRequest& request) {
  management::BindingFilter f;
  switch (request.of_case()) {
    case v1::ListBindingsRequest::kQueue: {
      absl::Status s = ValidateName("queue", request.queue(), false);
      if (!s.ok()) return s;
      f.kind = management::BindingFilter::Kind::kQueue;
      f.name = request.queue();
      break;
    }
    case v1::ListBindingsRequest::kExchange: {
      absl::Status s = ValidateName("exchange", request.exchange());
      if (!s.ok()) return s;
      f.kind = management::BindingFilter::Kind::kExchange;
      f.name = request.exchange();
      break;
    }
    case v1::ListBindingsRequest::OF_NOT_SET:
      break;
  }
  return f;
}

void ToProtoArguments(const management::Arguments& arguments, ProtoTable* out) {
  for (const auto& [key, value] : arguments) {
    ToProtoValue(value, &(*out)[SanitizeUtf8(key)]);
  }
}

void ToProtoQueue(const management::Queue& q, v1::QueueInfo* out) {
  out->set_name(SanitizeUtf8(q.name));
  out->set_type(ToQueueType(q.type));
  out->set_durable(q.durable);
  out->set_auto_delete(q.auto_delete);
  out->set_exclusive(q.exclusive);
  ToProtoArguments(q.arguments, out->mutable_arguments());
  out->set_policy(SanitizeUtf8(q.policy));
  out->set_ready(q.ready);
  out->set_unacked(q.unacked);
  out->set_total(q.total);
  out->set_consumers(q.consumers);
  if (q.consumer_utilisation.has_value()) {
    out->set_consumer_utilisation(*q.consumer_utilisation);
  }
  out->set_memory_bytes(q.memory);
  out->mutable_rates()->set_publish(q.rates.publish);
  out->mutable_rates()->set_deliver(q.rates.deliver);
  out->mutable_rates()->set_ack(q.rates.ack);
  out->mutable_rates()->set_redeliver(q.rates.redeliver);
  out->set_state(SanitizeUtf8(q.state));
  out->set_node(SanitizeUtf8(q.node));
  for (const std::string& m : q.members_down) {
    out->add_members_down(SanitizeUtf8(m));
  }
}

void ToProtoExchange(const management::Exchange& e, v1::ExchangeInfo* out) {
  out->set_name(SanitizeUtf8(e.name));
  if (e.type == "direct") {
    out->set_type(v1::DIRECT);
  } else if (e.type == "fanout") {
    out->set_type(v1::FANOUT);
  } else if (e.type == "topic") {
    out->set_type(v1::TOPIC);
  } else if (e.type == "headers") {
    out->set_type(v1::HEADERS);
  } else {
    out->set_type(v1::EXCHANGE_TYPE_UNSPECIFIED);
    out->set_custom_type(SanitizeUtf8(e.type));
  }
  out->set_durable(e.durable);
  out->set_auto_delete(e.auto_delete);
  out->set_internal(e.internal);
  ToProtoArguments(e.arguments, out->mutable_arguments());
  out->set_policy(SanitizeUtf8(e.policy));
  out->set_publish_in_rate(e.publish_in_rate);
  out->set_publish_out_rate(e.publish_out_rate);
}

void ToProtoBinding(const management::Binding& b, v1::BindingInfo* out) {
  out->set_exchange(SanitizeUtf8(b.source));
  out->set_destination(SanitizeUtf8(b.destination));
  if (b.destination_type == "queue") {
    out->set_destination_type(v1::BindingInfo::QUEUE);
  } else if (b.destination_type == "exchange") {
    out->set_destination_type(v1::BindingInfo::EXCHANGE);
  }
  out->set_routing_key(SanitizeUtf8(b.routing_key));
  ToProtoArguments(b.arguments, out->mutable_arguments());
}

void ToProtoConsumer(const management::Consumer& c, v1::ConsumerInfo* out) {
  out->set_consumer_tag(SanitizeUtf8(c.consumer_tag));
  out->set_connection_name(SanitizeUtf8(c.connection_name));
  out->set_connection(SanitizeUtf8(c.connection));
  out->set_user(SanitizeUtf8(c.user));
  out->set_prefetch(c.prefetch);
  out->set_ack_required(c.ack_required);
  out->set_exclusive(c.exclusive);
  out->set_active(c.active);
  ToProtoArguments(c.arguments, out->mutable_arguments());
  out->set_gateway_own(c.own);
}

void ToProtoListingStatus(const management::Backend::Status& s,
                          v1::ListingStatus* out) {
  using State = management::Backend::Status::State;
  switch (s.state) {
    case State::kWaiting:
      out->set_state(v1::ListingStatus::WAITING);
      break;
    case State::kAvailable:
      out->set_state(v1::ListingStatus::AVAILABLE);
      break;
    case State::kUnavailable:
      out->set_state(v1::ListingStatus::UNAVAILABLE);
      break;
  }
  out->set_url(s.url);
  out->set_detail(SanitizeUtf8(s.detail));
  if (s.checked != absl::InfinitePast()) {
    SetTimestamp(s.checked, out->mutable_checked_at());
  }
}

}  // namespace amqpgw::grpc_api
