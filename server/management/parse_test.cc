#include "server/management/parse.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace amqpgw::management {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

// Answers of RabbitMQ 3.10.8 (trimmed to the columns the client asks for).
constexpr char kQueuePage[] = R"json({
  "filtered_count": 3, "item_count": 3, "page": 1, "page_count": 2,
  "page_size": 3, "total_count": 7,
  "items": [
    {"arguments": {}, "auto_delete": false, "consumer_utilisation": 0.628,
     "consumers": 1, "durable": true, "exclusive": false, "memory": 41222672,
     "message_stats": {"ack_details": {"rate": 2.5},
                       "deliver_get_details": {"rate": 1744.0},
                       "publish_details": {"rate": 3085.4},
                       "redeliver_details": {"rate": 0.2}},
     "messages": 34532, "messages_ready": 34529,
     "messages_unacknowledged": 3, "name": "cq1",
     "node": "rabbit@a", "policy": null, "state": "running",
     "type": "classic"},
    {"arguments": {"x-max-length": 1000, "x-queue-type": "quorum"},
     "auto_delete": false, "consumer_utilisation": 1.0, "consumers": 0,
     "durable": true, "exclusive": false, "leader": "rabbit@b",
     "members": ["rabbit@a", "rabbit@b", "rabbit@c"],
     "online": ["rabbit@b"], "memory": 689740, "messages": 961,
     "messages_ready": 958, "messages_unacknowledged": 3, "name": "qq1",
     "node": "rabbit@a", "policy": "ha-all", "state": "running",
     "type": "quorum"},
    {"arguments": {"x-queue-type": "stream"}, "auto_delete": false,
     "consumers": 0, "durable": true, "exclusive": false,
     "members": ["rabbit@a"], "online": ["rabbit@a"], "memory": 42568,
     "messages": 0, "messages_ready": 0, "messages_unacknowledged": 0,
     "name": "sq1", "node": "rabbit@a", "state": "running",
     "type": "stream"}
  ]})json";

TEST(ParseTest, QueuePageMapsCountsRatesTypesAndMembers) {
  absl::StatusOr<Page<Queue>> page = ParseQueuePage(kQueuePage);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->page, 1);
  EXPECT_EQ(page->page_count, 2);
  EXPECT_EQ(page->filtered_count, 3u);
  EXPECT_EQ(page->total_count, 7u);
  ASSERT_EQ(page->items.size(), 3u);

  const Queue& cq = page->items[0];
  EXPECT_EQ(cq.name, "cq1");
  EXPECT_EQ(cq.type, "classic");
  EXPECT_TRUE(cq.durable);
  EXPECT_FALSE(cq.auto_delete);
  EXPECT_FALSE(cq.exclusive);
  EXPECT_THAT(cq.arguments, IsEmpty());
  EXPECT_EQ(cq.policy, "");  // null
  EXPECT_EQ(cq.ready, 34529u);
  EXPECT_EQ(cq.unacked, 3u);
  EXPECT_EQ(cq.total, 34532u);
  EXPECT_EQ(cq.consumers, 1u);
  ASSERT_TRUE(cq.consumer_utilisation.has_value());
  EXPECT_DOUBLE_EQ(*cq.consumer_utilisation, 0.628);
  EXPECT_EQ(cq.memory, 41222672u);
  EXPECT_DOUBLE_EQ(cq.rates.publish, 3085.4);
  EXPECT_DOUBLE_EQ(cq.rates.deliver, 1744.0);
  EXPECT_DOUBLE_EQ(cq.rates.ack, 2.5);
  EXPECT_DOUBLE_EQ(cq.rates.redeliver, 0.2);
  EXPECT_EQ(cq.state, "running");
  EXPECT_EQ(cq.node, "rabbit@a");
  EXPECT_THAT(cq.members_down, IsEmpty());

  const Queue& qq = page->items[1];
  EXPECT_EQ(qq.type, "quorum");
  EXPECT_EQ(qq.policy, "ha-all");
  // Without consumers, utilisation means nothing (the broker says 1.0).
  EXPECT_FALSE(qq.consumer_utilisation.has_value());
  // No traffic: no message_stats at all.
  EXPECT_EQ(qq.rates.publish, 0);
  EXPECT_EQ(qq.node, "rabbit@b");  // the leader
  EXPECT_THAT(qq.members_down, ElementsAre("rabbit@a", "rabbit@c"));
  ASSERT_EQ(qq.arguments.size(), 2u);
  EXPECT_EQ(qq.arguments[0].first, "x-max-length");
  EXPECT_EQ(qq.arguments[0].second.kind, Value::Kind::kInt);
  EXPECT_EQ(qq.arguments[0].second.int_value, 1000);
  EXPECT_EQ(qq.arguments[1].second.kind, Value::Kind::kString);
  EXPECT_EQ(qq.arguments[1].second.string_value, "quorum");

  EXPECT_EQ(page->items[2].type, "stream");
  EXPECT_THAT(page->items[2].members_down, IsEmpty());
}

TEST(ParseTest, ArgumentValuesKeepTheirTypesAndNesting) {
  absl::StatusOr<std::vector<Binding>> b = ParseBindings(R"json([
    {"source": "ex1", "vhost": "/", "destination": "cq1",
     "destination_type": "queue", "routing_key": "a.#",
     "arguments": {"big": 1099511627776, "huge": 18446744073709551615,
                   "neg": -3, "f": 1.5, "t": true, "n": null,
                   "nested": {"k": [1, "s", true]}},
     "properties_key": "a.%23~wuygVw"},
    {"source": "", "vhost": "/", "destination": "cq1",
     "destination_type": "queue", "routing_key": "cq1", "arguments": {},
     "properties_key": "cq1"}])json");
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(b->size(), 2u);
  const Binding& x = (*b)[0];
  EXPECT_EQ(x.source, "ex1");
  EXPECT_EQ(x.destination, "cq1");
  EXPECT_EQ(x.destination_type, "queue");
  EXPECT_EQ(x.routing_key, "a.#");
  EXPECT_EQ(x.properties_key, "a.%23~wuygVw");
  ASSERT_EQ(x.arguments.size(), 7u);
  auto arg = [&](const std::string& key) {
    for (const auto& [k, v] : x.arguments) {
      if (k == key) return v;
    }
    ADD_FAILURE() << "no argument " << key;
    return Value();
  };
  EXPECT_EQ(arg("big").kind, Value::Kind::kInt);
  EXPECT_EQ(arg("big").int_value, int64_t{1} << 40);
  // Beyond int64: a double rather than a wrong integer.
  EXPECT_EQ(arg("huge").kind, Value::Kind::kDouble);
  EXPECT_EQ(arg("neg").int_value, -3);
  EXPECT_EQ(arg("f").kind, Value::Kind::kDouble);
  EXPECT_EQ(arg("f").double_value, 1.5);
  EXPECT_EQ(arg("t").kind, Value::Kind::kBool);
  EXPECT_TRUE(arg("t").bool_value);
  EXPECT_EQ(arg("n").kind, Value::Kind::kNull);
  Value nested = arg("nested");
  ASSERT_EQ(nested.kind, Value::Kind::kTable);
  ASSERT_EQ(nested.table.size(), 1u);
  const Value& list = nested.table[0].second;
  ASSERT_EQ(list.kind, Value::Kind::kList);
  ASSERT_EQ(list.list.size(), 3u);
  EXPECT_EQ(list.list[0].int_value, 1);
  EXPECT_EQ(list.list[1].string_value, "s");
  EXPECT_TRUE(list.list[2].bool_value);
  EXPECT_EQ((*b)[1].source, "");
}

TEST(ParseTest, DeepArgumentsAreCutIntoText) {
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += R"json({"a":)json";
  deep += "1";
  for (int i = 0; i < 40; ++i) deep += "}";
  absl::StatusOr<std::vector<Binding>> b =
      ParseBindings(R"json([{"source":"x","arguments":)json" + deep + "}]");
  ASSERT_TRUE(b.ok()) << b.status();
  const Value* v = &(*b)[0].arguments[0].second;
  int depth = 1;
  while (v->kind == Value::Kind::kTable) {
    v = &v->table[0].second;
    ++depth;
  }
  EXPECT_EQ(v->kind, Value::Kind::kString);
  EXPECT_LE(depth, 17);
  EXPECT_EQ(v->string_value.front(), '{');
}

TEST(ParseTest, QueueDetailsCarryConsumers) {
  absl::StatusOr<QueueDetails> d = ParseQueueDetails(R"json({
    "consumer_details": [
      {"arguments": {"x-priority": 5},
       "channel_details": {"connection_name": "127.0.0.1:45522 -> 127.0.0.1:26738",
                           "name": "127.0.0.1:45522 -> 127.0.0.1:26738 (1)",
                           "number": 1, "user": "guest"},
       "ack_required": true, "active": true, "consumer_tag": "tag-1",
       "exclusive": false, "prefetch_count": 3,
       "queue": {"name": "cq1", "vhost": "/"}},
      {"channel_details": {"connection_name": "10.0.0.9:1 -> 10.0.0.1:5672",
                           "user": "app"},
       "ack_required": false, "active": false, "consumer_tag": "tag-2",
       "exclusive": true, "prefetch_count": 0,
       "queue": {"name": "cq1", "vhost": "/"}}],
    "consumers": 2, "messages": 5, "messages_ready": 2,
    "messages_unacknowledged": 3, "name": "cq1", "type": "classic",
    "durable": true, "state": "running"})json");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->queue.name, "cq1");
  EXPECT_EQ(d->queue.unacked, 3u);
  ASSERT_EQ(d->consumers.size(), 2u);
  const Consumer& c = d->consumers[0];
  EXPECT_EQ(c.queue, "cq1");
  EXPECT_EQ(c.consumer_tag, "tag-1");
  EXPECT_EQ(c.connection, "127.0.0.1:45522 -> 127.0.0.1:26738");
  EXPECT_EQ(c.user, "guest");
  EXPECT_EQ(c.prefetch, 3u);
  EXPECT_TRUE(c.ack_required);
  EXPECT_FALSE(c.exclusive);
  EXPECT_TRUE(c.active);
  ASSERT_EQ(c.arguments.size(), 1u);
  EXPECT_EQ(c.arguments[0].second.int_value, 5);
  EXPECT_FALSE(d->consumers[1].ack_required);
  EXPECT_FALSE(d->consumers[1].active);
  EXPECT_TRUE(d->consumers[1].exclusive);

  absl::StatusOr<ConnectionNames> names = ParseConnectionNames(R"json([
    {"name": "127.0.0.1:45522 -> 127.0.0.1:26738",
     "user_provided_name": "amqpgw gw-1:50051 consumer-0"},
    {"name": "10.0.0.9:1 -> 10.0.0.1:5672"},
    {"name": "10.0.0.7:1 -> 10.0.0.1:5672",
     "user_provided_name": "amqpgw gw-10:50051 consumer-0"}])json");
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_THAT(*names, ElementsAre(Pair("127.0.0.1:45522 -> 127.0.0.1:26738",
                                       "amqpgw gw-1:50051 consumer-0"),
                                  Pair("10.0.0.7:1 -> 10.0.0.1:5672",
                                       "amqpgw gw-10:50051 consumer-0")));
  std::vector<Consumer> consumers = d->consumers;
  NameConsumers(*names, "amqpgw gw-1:50051 ", &consumers);
  EXPECT_EQ(consumers[0].connection_name, "amqpgw gw-1:50051 consumer-0");
  EXPECT_TRUE(consumers[0].own);
  EXPECT_EQ(consumers[1].connection_name, "");
  EXPECT_FALSE(consumers[1].own);
  // gw-10 is not gw-1: the prefix ends with a space.
  consumers[1].connection = "10.0.0.7:1 -> 10.0.0.1:5672";
  NameConsumers(*names, "amqpgw gw-1:50051 ", &consumers);
  EXPECT_FALSE(consumers[1].own);
  NameConsumers(*names, "", &consumers);
  EXPECT_FALSE(consumers[0].own);
}

TEST(ParseTest, ExchangePage) {
  absl::StatusOr<Page<Exchange>> page = ParseExchangePage(R"json({
    "filtered_count": 2, "item_count": 2, "page": 1, "page_count": 1,
    "page_size": 100, "total_count": 9, "items": [
      {"arguments": {}, "auto_delete": false, "durable": true,
       "internal": false,
       "message_stats": {"publish_in_details": {"rate": 12.5},
                         "publish_out_details": {"rate": 10.0}},
       "name": "", "type": "direct"},
      {"arguments": {"alternate-exchange": "amq.fanout"},
       "auto_delete": true, "durable": false, "internal": true,
       "name": "ex1", "type": "x-delayed-message", "policy": "p1"}]})json");
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->total_count, 9u);
  ASSERT_EQ(page->items.size(), 2u);
  EXPECT_EQ(page->items[0].name, "");
  EXPECT_EQ(page->items[0].type, "direct");
  EXPECT_DOUBLE_EQ(page->items[0].publish_in_rate, 12.5);
  EXPECT_DOUBLE_EQ(page->items[0].publish_out_rate, 10.0);
  const Exchange& e = page->items[1];
  EXPECT_EQ(e.type, "x-delayed-message");
  EXPECT_TRUE(e.auto_delete);
  EXPECT_FALSE(e.durable);
  EXPECT_TRUE(e.internal);
  EXPECT_EQ(e.policy, "p1");
  ASSERT_EQ(e.arguments.size(), 1u);
  EXPECT_EQ(e.arguments[0].second.string_value, "amq.fanout");
}

TEST(ParseTest, UserTagsAsListOrText) {
  absl::StatusOr<User> u =
      ParseUser(R"json({"name":"guest","tags":["administrator"]})json");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->name, "guest");
  EXPECT_THAT(u->tags, ElementsAre("administrator"));
  u = ParseUser(R"json({"name":"mon","tags":"monitoring,policymaker"})json");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_THAT(u->tags, ElementsAre("monitoring", "policymaker"));
  u = ParseUser(R"json({"name":"plain","tags":[]})json");
  ASSERT_TRUE(u.ok());
  EXPECT_THAT(u->tags, IsEmpty());
}

TEST(ParseTest, WrongShapesAreErrorsNotCrashes) {
  for (const char* body :
       {"", "<html>not json</html>", "[]", "{}", R"json({"items": 3})json",
        R"json({"items": {"a": 1}})json", "null", "\"text\"", "[1, 2"}) {
    EXPECT_FALSE(ParseQueuePage(body).ok()) << body;
    EXPECT_FALSE(ParseExchangePage(body).ok()) << body;
    EXPECT_FALSE(ParseQueueDetails(body).ok()) << body;
    EXPECT_FALSE(ParseUser(body).ok()) << body;
  }
  for (const char* body : {"", "{}", "<html/>", R"json({"items": []})json"}) {
    EXPECT_FALSE(ParseBindings(body).ok()) << body;
    EXPECT_FALSE(ParseConnectionNames(body).ok()) << body;
  }
  // Fields of the wrong type fall back to their defaults.
  absl::StatusOr<Page<Queue>> page = ParseQueuePage(
      R"json({"items": [{"name": 5, "messages": "many", "durable": "yes",
                     "consumers": -2, "memory": 1e300, "arguments": [1],
                     "message_stats": {"publish_details": {"rate": "x"}},
                     "members": "a", "online": 3}, 7]})json");
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->items.size(), 1u);
  const Queue& q = page->items[0];
  EXPECT_EQ(q.name, "");
  EXPECT_EQ(q.total, 0u);
  EXPECT_FALSE(q.durable);
  EXPECT_EQ(q.consumers, 0u);
  EXPECT_EQ(q.memory, UINT64_MAX);
  EXPECT_THAT(q.arguments, IsEmpty());
  EXPECT_EQ(q.rates.publish, 0);
  EXPECT_THAT(q.members_down, IsEmpty());
}

TEST(ParseTest, Names) {
  EXPECT_EQ(ParseName(R"json({"name":"cq1"})json").value_or("?"), "cq1");
  EXPECT_EQ(ParseName(R"json({"name":""})json").value_or("?"), "");
  EXPECT_FALSE(ParseName(R"json({"name":1})json").ok());
  EXPECT_FALSE(ParseName("[]").ok());
}

TEST(ParseTest, ErrorBodies) {
  ErrorBody e = ParseErrorBody(
      R"json({"error":"not_authorised","reason":"Not management user"})json");
  EXPECT_EQ(e.error, "not_authorised");
  EXPECT_EQ(e.reason, "Not management user");
  e = ParseErrorBody("<html>502 Bad Gateway</html>");
  EXPECT_EQ(e.error, "");
  EXPECT_EQ(e.reason, "");
}

TEST(ParseTest, PrefixRegexEscapesEveryMetacharacter) {
  EXPECT_EQ(PrefixRegex("orders"), "^orders");
  EXPECT_EQ(PrefixRegex("a.b*c(d)[e]{f}|g?h+i^j$k\\l"),
            "^a\\.b\\*c\\(d\\)\\[e\\]\\{f\\}\\|g\\?h\\+i\\^j\\$k\\\\l");
  EXPECT_EQ(PrefixRegex(""), "^");
}

}  // namespace
}  // namespace amqpgw::management
