// The checks that keep what RabbitMQ answers by closing a shared connection
// or channel away from it (broker_rules.h lists what was probed).
#include "server/amqp/broker_rules.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>

namespace amqpgw::amqp {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(BrokerRulesTest, BuiltinExchangeTypesAreExactLowerCaseNames) {
  for (const char* t : {"direct", "fanout", "topic", "headers"}) {
    EXPECT_TRUE(IsBuiltinExchangeType(t)) << t;
  }
  for (const char* t : {"DIRECT", "x-delayed-message", "", "match"}) {
    EXPECT_FALSE(IsBuiltinExchangeType(t)) << t;
  }
}

TEST(BrokerRulesTest, FindsNonFiniteDoublesAtAnyDepth) {
  EXPECT_EQ(FindNonFiniteDouble({{"a", 1.5}, {"b", int64_t{2}}}), std::nullopt);
  EXPECT_THAT(FindNonFiniteDouble({{"a", 1.0}, {"n", kNaN}}),
              Optional(std::string("[\"n\"]")));
  FieldTable nested = {
      {"t", FieldTable{{"arr", FieldArray{int64_t{1}, FieldArray{-kInf}}}}}};
  EXPECT_THAT(FindNonFiniteDouble(nested),
              Optional(std::string("[\"t\"][\"arr\"][1][0]")));
  EXPECT_THAT(FindNonFiniteDouble({{"i", kInf}}),
              Optional(std::string("[\"i\"]")));
  EXPECT_FALSE(IsBrokerSafeDouble(kNaN));
  EXPECT_TRUE(IsBrokerSafeDouble(std::numeric_limits<double>::max()));
}

TEST(BrokerRulesTest, QueueMasterLocatorMustBeAKnownString) {
  for (const char* ok : {"min-masters", "client-local", "random"}) {
    EXPECT_EQ(
        CheckQueueArguments({{"x-queue-master-locator", std::string(ok)}}),
        std::nullopt);
    EXPECT_EQ(CheckQueueArguments(
                  {{"x-queue-master-locator", Bytes{std::string(ok)}}}),
              std::nullopt);
  }
  for (FieldValue bad : {FieldValue(std::string("nope")),
                         FieldValue(int64_t{5}), FieldValue(Void{})}) {
    auto v = CheckQueueArguments({{"x-queue-master-locator", bad}});
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->field, "[\"x-queue-master-locator\"]");
    EXPECT_THAT(v->problem, HasSubstr("min-masters"));
  }
}

TEST(BrokerRulesTest, MaxAgeStringMustStartWithADigit) {
  EXPECT_EQ(CheckQueueArguments({{"x-max-age", std::string("7D")}}),
            std::nullopt);
  // RabbitMQ answers these itself without closing the connection (406).
  EXPECT_EQ(CheckQueueArguments({{"x-max-age", std::string("0D")}}),
            std::nullopt);
  EXPECT_EQ(CheckQueueArguments({{"x-max-age", int64_t{5}}}), std::nullopt);
  for (const char* bad : {"", "nope", "D7"}) {
    auto v = CheckQueueArguments({{"x-max-age", std::string(bad)}});
    ASSERT_TRUE(v.has_value()) << bad;
    EXPECT_EQ(v->field, "[\"x-max-age\"]");
  }
  EXPECT_EQ(CheckQueueArguments({}), std::nullopt);
}

TEST(BrokerRulesTest, StreamOffsetMustBeANumberTimestampWordOrInterval) {
  for (FieldValue ok :
       {FieldValue(int64_t{-5}), FieldValue(Timestamp{1700000000}),
        FieldValue(std::string("first")), FieldValue(std::string("last")),
        FieldValue(std::string("next")), FieldValue(std::string("1h")),
        FieldValue(std::string("5X")), FieldValue(Bytes{"first"})}) {
    EXPECT_EQ(CheckConsumerArguments({{"x-stream-offset", ok}}), std::nullopt);
  }
  for (FieldValue bad :
       {FieldValue(std::string("nope")), FieldValue(std::string()),
        FieldValue(1.5), FieldValue(true), FieldValue(Void{}),
        FieldValue(Decimal{1, 15}), FieldValue(FieldTable{}),
        FieldValue(FieldArray{}), FieldValue(Bytes{"5D"})}) {
    auto v = CheckConsumerArguments({{"x-stream-offset", bad}});
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->field, "[\"x-stream-offset\"]");
  }
}

OutgoingMessage Message(std::string exchange, std::string routing_key) {
  OutgoingMessage m;
  m.exchange = std::move(exchange);
  m.routing_key = std::move(routing_key);
  return m;
}

TEST(BrokerRulesTest, DirectReplyToKeysOnlyOnOtherExchanges) {
  auto v = CheckPublish(Message("", "amq.rabbitmq.reply-to.g2dk.abc"));
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->field, "routing_key");
  EXPECT_EQ(CheckPublish(Message("amq.direct", "amq.rabbitmq.reply-to.a.b")),
            std::nullopt);
  EXPECT_EQ(CheckPublish(Message("", "amq.rabbitmq.reply-to")), std::nullopt);
  EXPECT_EQ(CheckPublish(Message("", "orders")), std::nullopt);

  OutgoingMessage m = Message("", "orders");
  m.properties.headers =
      FieldTable{{"CC", FieldArray{std::string("a"),
                                   std::string("amq.rabbitmq.reply-to.x.y")}}};
  v = CheckPublish(m);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->field, "properties.headers[\"CC\"][1]");
  m.exchange = "amq.topic";
  EXPECT_EQ(CheckPublish(m), std::nullopt);
}

TEST(BrokerRulesTest, ReplyToOfDirectReplyToIsRefused) {
  OutgoingMessage m = Message("", "q");
  m.properties.reply_to = "amq.rabbitmq.reply-to";
  auto v = CheckPublish(m);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->field, "properties.reply_to");
  m.properties.reply_to = "amq.rabbitmq.reply-to.abc";  // a reply, fine
  EXPECT_EQ(CheckPublish(m), std::nullopt);
}

TEST(BrokerRulesTest, CcAndBccMustBeArrays) {
  OutgoingMessage m = Message("x", "k");
  m.properties.headers =
      FieldTable{{"CC", FieldArray{std::string("a"), int64_t{5}}},
                 {"cc", std::string("lower case is not CC")}};
  EXPECT_EQ(CheckPublish(m), std::nullopt);
  for (FieldValue bad : {FieldValue(std::string("q")), FieldValue(int64_t{5}),
                         FieldValue(FieldTable{})}) {
    m.properties.headers = FieldTable{{"BCC", bad}};
    auto v = CheckPublish(m);
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->field, "properties.headers[\"BCC\"]");
  }
}

}  // namespace
}  // namespace amqpgw::amqp
