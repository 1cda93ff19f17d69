#include "server/grpc/listing.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace amqpgw::grpc_api {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(ListingTest, FiltersBecomeRegularExpressions) {
  v1::NameFilter f;
  auto q = ToListQuery(nullptr, 0, "");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->name_regex, "");
  EXPECT_EQ(q->page, 1);
  EXPECT_EQ(q->page_size, 100);

  f.set_prefix("orders.eu");
  q = ToListQuery(&f, 20, "");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->name_regex, "^orders\\.eu");
  EXPECT_EQ(q->page_size, 20);

  f.set_regex("^a|b$");
  q = ToListQuery(&f, 500, "3");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->name_regex, "^a|b$");
  EXPECT_EQ(q->page, 3);
  EXPECT_EQ(q->page_size, 500);

  f.set_prefix("");
  EXPECT_EQ(ToListQuery(&f, 0, "")->name_regex, "");
}

TEST(ListingTest, BadRequestsNameTheField) {
  v1::NameFilter f;
  f.set_regex(std::string(300, 'x'));
  absl::Status s = ToListQuery(&f, 0, "").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), StartsWith("filter.regex: "));
  f.set_prefix("\xff");
  EXPECT_THAT(std::string(ToListQuery(&f, 0, "").status().message()),
              StartsWith("filter.prefix: "));
  s = ToListQuery(nullptr, 501, "").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              StartsWith("page_size: must be 0..500"));
  for (const char* token :
       {"x", "1", "0", "-2", "+2", "2.5", "9999999999", "2 ", " 2"}) {
    s = ToListQuery(nullptr, 0, token).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << token;
    EXPECT_THAT(std::string(s.message()), StartsWith("page_token: ")) << token;
    // Never the caller's text.
    EXPECT_THAT(std::string(s.message()),
                ::testing::Not(HasSubstr("9999999999")));
  }

  v1::ListBindingsRequest b;
  EXPECT_EQ(ToBindingFilter(b)->kind, management::BindingFilter::Kind::kAll);
  b.set_queue("");
  EXPECT_THAT(std::string(ToBindingFilter(b).status().message()),
              StartsWith("queue: "));
  b.set_queue("q1");
  auto bf = ToBindingFilter(b);
  ASSERT_TRUE(bf.ok());
  EXPECT_EQ(bf->kind, management::BindingFilter::Kind::kQueue);
  EXPECT_EQ(bf->name, "q1");
  b.set_exchange("");  // the default exchange
  bf = ToBindingFilter(b);
  ASSERT_TRUE(bf.ok());
  EXPECT_EQ(bf->kind, management::BindingFilter::Kind::kExchange);
  EXPECT_EQ(bf->name, "");
  b.set_exchange(std::string(256, 'e'));
  EXPECT_THAT(std::string(ToBindingFilter(b).status().message()),
              StartsWith("exchange: "));
}

management::Value Int(int64_t i) {
  management::Value v;
  v.kind = management::Value::Kind::kInt;
  v.int_value = i;
  return v;
}

TEST(ListingTest, QueuesWithEveryField) {
  management::Queue q;
  q.name = "jobs";
  q.type = "quorum";
  q.durable = true;
  q.exclusive = true;
  q.arguments = {{"x-max-length", Int(1000)}};
  q.policy = "ha";
  q.ready = 4;
  q.unacked = 3;
  q.total = 7;
  q.consumers = 2;
  q.consumer_utilisation = 0.5;
  q.memory = 12345;
  q.rates = {10.5, 9.5, 9.0, 0.5};
  q.state = "minority";
  q.node = "rabbit@b";
  q.members_down = {"rabbit@a", "rabbit@c"};
  v1::QueueInfo out;
  ToProtoQueue(q, &out);
  EXPECT_EQ(out.name(), "jobs");
  EXPECT_EQ(out.type(), v1::QUORUM);
  EXPECT_TRUE(out.durable());
  EXPECT_FALSE(out.auto_delete());
  EXPECT_TRUE(out.exclusive());
  EXPECT_EQ(out.arguments().at("x-max-length").int_value(), 1000);
  EXPECT_EQ(out.policy(), "ha");
  EXPECT_EQ(out.ready(), 4u);
  EXPECT_EQ(out.unacked(), 3u);
  EXPECT_EQ(out.total(), 7u);
  EXPECT_EQ(out.consumers(), 2u);
  ASSERT_TRUE(out.has_consumer_utilisation());
  EXPECT_EQ(out.consumer_utilisation(), 0.5);
  EXPECT_EQ(out.memory_bytes(), 12345u);
  EXPECT_EQ(out.rates().publish(), 10.5);
  EXPECT_EQ(out.rates().deliver(), 9.5);
  EXPECT_EQ(out.rates().ack(), 9.0);
  EXPECT_EQ(out.rates().redeliver(), 0.5);
  EXPECT_EQ(out.state(), "minority");
  EXPECT_EQ(out.node(), "rabbit@b");
  EXPECT_THAT(out.members_down(),
              ::testing::ElementsAre("rabbit@a", "rabbit@c"));

  q.type = "x-future";
  q.consumer_utilisation.reset();
  v1::QueueInfo other;
  ToProtoQueue(q, &other);
  EXPECT_EQ(other.type(), v1::QUEUE_TYPE_UNSPECIFIED);
  EXPECT_FALSE(other.has_consumer_utilisation());
}

TEST(ListingTest, ArgumentsOfEveryKind) {
  using Kind = management::Value::Kind;
  management::Value list;
  list.kind = Kind::kList;
  list.list = {Int(1), management::Value()};
  management::Value table;
  table.kind = Kind::kTable;
  table.table = {{"k", Int(2)}};
  management::Value str;
  str.kind = Kind::kString;
  str.string_value = "bad \xff utf8";
  management::Value dbl;
  dbl.kind = Kind::kDouble;
  dbl.double_value = 1.5;
  management::Value yes;
  yes.kind = Kind::kBool;
  yes.bool_value = true;
  management::Value empty_list;
  empty_list.kind = Kind::kList;
  ProtoTable out;
  ToProtoArguments({{"list", list},
                    {"table", table},
                    {"str", str},
                    {"dbl", dbl},
                    {"yes", yes},
                    {"none", management::Value()},
                    {"empty", empty_list}},
                   &out);
  ASSERT_EQ(out.size(), 7u);
  ASSERT_EQ(out.at("list").array_value().values_size(), 2);
  EXPECT_EQ(out.at("list").array_value().values(0).int_value(), 1);
  EXPECT_TRUE(out.at("list").array_value().values(1).has_null_value());
  EXPECT_EQ(out.at("table").table_value().fields().at("k").int_value(), 2);
  EXPECT_TRUE(IsValidUtf8(out.at("str").string_value()));
  EXPECT_EQ(out.at("dbl").double_value(), 1.5);
  EXPECT_TRUE(out.at("yes").bool_value());
  EXPECT_TRUE(out.at("none").has_null_value());
  EXPECT_TRUE(out.at("empty").has_array_value());
}

TEST(ListingTest, ExchangesBindingsAndConsumers) {
  management::Exchange e;
  e.name = "events";
  e.type = "topic";
  e.internal = true;
  e.publish_in_rate = 3;
  e.publish_out_rate = 2;
  v1::ExchangeInfo x;
  ToProtoExchange(e, &x);
  EXPECT_EQ(x.type(), v1::TOPIC);
  EXPECT_EQ(x.custom_type(), "");
  EXPECT_TRUE(x.internal());
  EXPECT_EQ(x.publish_in_rate(), 3);
  EXPECT_EQ(x.publish_out_rate(), 2);
  e.type = "x-delayed-message";
  ToProtoExchange(e, &x);
  EXPECT_EQ(x.type(), v1::EXCHANGE_TYPE_UNSPECIFIED);
  EXPECT_EQ(x.custom_type(), "x-delayed-message");

  management::Binding b;
  b.source = "events";
  b.destination = "audit";
  b.destination_type = "exchange";
  b.routing_key = "#";
  v1::BindingInfo bi;
  ToProtoBinding(b, &bi);
  EXPECT_EQ(bi.exchange(), "events");
  EXPECT_EQ(bi.destination(), "audit");
  EXPECT_EQ(bi.destination_type(), v1::BindingInfo::EXCHANGE);
  EXPECT_EQ(bi.routing_key(), "#");

  management::Consumer c;
  c.consumer_tag = "amq.ctag-1";
  c.connection_name = "amqpgw gw:1 consumer-0";
  c.connection = "127.0.0.1:1 -> 127.0.0.1:5672";
  c.user = "guest";
  c.prefetch = 100;
  c.ack_required = true;
  c.active = false;
  c.own = true;
  v1::ConsumerInfo ci;
  ToProtoConsumer(c, &ci);
  EXPECT_EQ(ci.consumer_tag(), "amq.ctag-1");
  EXPECT_EQ(ci.connection_name(), "amqpgw gw:1 consumer-0");
  EXPECT_EQ(ci.connection(), "127.0.0.1:1 -> 127.0.0.1:5672");
  EXPECT_EQ(ci.user(), "guest");
  EXPECT_EQ(ci.prefetch(), 100u);
  EXPECT_TRUE(ci.ack_required());
  EXPECT_FALSE(ci.active());
  EXPECT_TRUE(ci.gateway_own());
}

TEST(ListingTest, PageTokensRoundTrip) {
  management::Page<management::Queue> p;
  p.page = 1;
  p.page_count = 3;
  std::string token = NextPageToken(p);
  auto q = ToListQuery(nullptr, 0, token);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->page, 2);
  p.page = 3;
  EXPECT_EQ(NextPageToken(p), "");
  p.page_count = 0;  // nothing matched
  p.page = 1;
  EXPECT_EQ(NextPageToken(p), "");
}

TEST(ListingTest, ListingStatus) {
  management::Backend::Status s;
  s.state = management::Backend::Status::State::kUnavailable;
  s.url = "http://127.0.0.1:15672/";
  s.detail = "management API: cannot connect";
  s.checked = absl::FromUnixSeconds(1700000000);
  v1::ListingStatus out;
  ToProtoListingStatus(s, &out);
  EXPECT_EQ(out.state(), v1::ListingStatus::UNAVAILABLE);
  EXPECT_EQ(out.url(), "http://127.0.0.1:15672/");
  EXPECT_EQ(out.detail(), "management API: cannot connect");
  EXPECT_EQ(out.checked_at().seconds(), 1700000000);
  management::Backend::Status waiting;
  v1::ListingStatus w;
  ToProtoListingStatus(waiting, &w);
  EXPECT_EQ(w.state(), v1::ListingStatus::WAITING);
  EXPECT_FALSE(w.has_checked_at());
}

}  // namespace
}  // namespace amqpgw::grpc_api
