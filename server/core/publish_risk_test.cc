#include "server/core/publish_risk.h"

#include <gtest/gtest.h>

namespace amqpgw::core {
namespace {

amqp::OutgoingMessage Msg(std::string exchange, std::string routing_key) {
  amqp::OutgoingMessage m;
  m.exchange = std::move(exchange);
  m.routing_key = std::move(routing_key);
  return m;
}

// The texts are RabbitMQ 3.10.8's, as its channel.close carries them.
TEST(PublishRiskTest, ParsesRabbitMqRefusals) {
  Refusal r = ParseRefusal("NOT_FOUND - no exchange 'gone' in vhost '/'");
  EXPECT_EQ(r.kind, Refusal::Kind::kExchange);
  EXPECT_EQ(r.exchange, "gone");

  r = ParseRefusal(
      "ACCESS_REFUSED - cannot publish to internal exchange 'in' in vhost "
      "'/'");
  EXPECT_EQ(r.kind, Refusal::Kind::kExchange);
  EXPECT_EQ(r.exchange, "in");

  r = ParseRefusal(
      "ACCESS_REFUSED - access to exchange 'amq.default' in vhost '/' "
      "refused for user 'u'");
  EXPECT_EQ(r.kind, Refusal::Kind::kExchange);
  EXPECT_EQ(r.exchange, "");  // the default exchange

  r = ParseRefusal(
      "ACCESS_REFUSED - access to topic 'bad.1' in exchange 'amq.topic' in "
      "vhost '/' refused for user 'u'");
  EXPECT_EQ(r.kind, Refusal::Kind::kTopic);
  EXPECT_EQ(r.exchange, "amq.topic");
  EXPECT_EQ(r.value, "bad.1");

  r = ParseRefusal(
      "PRECONDITION_FAILED - user_id property set to 'admin' but "
      "authenticated user was 'guest'");
  EXPECT_EQ(r.kind, Refusal::Kind::kUserId);
  EXPECT_EQ(r.value, "admin");

  r = ParseRefusal("PRECONDITION_FAILED - fast reply consumer does not exist");
  EXPECT_EQ(r.kind, Refusal::Kind::kReplyTo);

  r = ParseRefusal(
      "PRECONDITION_FAILED - message size 2000 is larger than configured max "
      "size 1000");
  EXPECT_EQ(r.kind, Refusal::Kind::kSize);
  EXPECT_EQ(r.size, 2000u);
  EXPECT_EQ(r.max_size, 1000u);

  EXPECT_EQ(ParseRefusal("PRECONDITION_FAILED - something new").kind,
            Refusal::Kind::kUnknown);
  EXPECT_EQ(ParseRefusal("").kind, Refusal::Kind::kUnknown);
}

TEST(PublishRiskTest, MatchesOnlyTheMessagesItDescribes) {
  Refusal r = ParseRefusal(
      "ACCESS_REFUSED - access to topic 'bad.1' in exchange 'amq.topic' in "
      "vhost '/' refused for user 'u'");
  EXPECT_TRUE(r.Matches(Msg("amq.topic", "bad.1")));
  EXPECT_FALSE(r.Matches(Msg("amq.topic", "ok.1")));
  EXPECT_FALSE(r.Matches(Msg("other", "bad.1")));

  r = ParseRefusal(
      "PRECONDITION_FAILED - user_id property set to 'admin' but "
      "authenticated user was 'guest'");
  amqp::OutgoingMessage with = Msg("", "q");
  with.properties.user_id = "admin";
  EXPECT_TRUE(r.Matches(with));
  EXPECT_FALSE(r.Matches(Msg("", "q")));
  with.properties.user_id = "guest";
  EXPECT_FALSE(r.Matches(with));
}

TEST(PublishRiskTest, RiskKeysNameExchangeUserIdAndDirectReplyTo) {
  absl::flat_hash_set<std::string> per_routing_key;
  amqp::OutgoingMessage m = Msg("x", "k");
  EXPECT_EQ(RiskKeys(m, per_routing_key).size(), 1u);
  m.properties.user_id = "guest";
  m.properties.reply_to = std::string(kDirectReplyTo);
  EXPECT_EQ(RiskKeys(m, per_routing_key).size(), 3u);

  // Once an exchange refused a routing key, each routing key is its own key.
  Refusal topic = ParseRefusal(
      "ACCESS_REFUSED - access to topic 'k' in exchange 'x' in vhost '/' "
      "refused for user 'u'");
  std::string before = topic.Key(m, per_routing_key);
  per_routing_key.insert("x");
  std::string after = topic.Key(m, per_routing_key);
  EXPECT_NE(before, after);
  EXPECT_NE(RiskKeys(Msg("x", "k"), per_routing_key)[0],
            RiskKeys(Msg("x", "other"), per_routing_key)[0]);
  EXPECT_EQ(RiskKeys(Msg("x", "k"), per_routing_key)[0], after);
}

}  // namespace
}  // namespace amqpgw::core
