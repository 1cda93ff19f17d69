// API <-> AMQP conversion and request validation.
#include "server/grpc/convert.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/core/stats.h"

namespace amqpgw::grpc_api {
namespace {

using ::testing::HasSubstr;

v1::FieldValue Int(int64_t v) {
  v1::FieldValue f;
  f.set_int_value(v);
  return f;
}

TEST(ConvertTest, EveryFieldValueTypeRoundTrips) {
  ProtoTable in;
  in["b"].set_bool_value(true);
  in["i"].set_int_value(-7);
  in["d"].set_double_value(0.25);
  in["s"].set_string_value("ünïcode");
  in["x"].set_bytes_value(std::string("\x00\xff", 2));
  in["t"].mutable_timestamp_value()->set_seconds(1700000000);
  (*in["tab"].mutable_table_value()->mutable_fields())["k"] = Int(1);
  *in["arr"].mutable_array_value()->add_values() = Int(2);
  in["arr"].mutable_array_value()->add_values()->set_string_value("s");
  in["dec"].mutable_decimal_value()->set_scale(3);
  in["dec"].mutable_decimal_value()->set_value(1234);
  in["nul"].set_null_value(google::protobuf::NULL_VALUE);

  auto amqp = ToAmqpTable(in, "headers");
  ASSERT_TRUE(amqp.ok()) << amqp.status();
  ASSERT_EQ(amqp->size(), in.size());
  // Sorted keys: deterministic.
  EXPECT_EQ(amqp->front().first, "arr");

  ProtoTable out;
  ToProtoTable(*amqp, &out);
  ASSERT_EQ(out.size(), in.size());
  for (const auto& [k, v] : in) {
    EXPECT_EQ(out.at(k).SerializeAsString(), v.SerializeAsString()) << k;
  }
}

TEST(ConvertTest, InvalidUtf8FromTheBrokerBecomesBytes) {
  amqp::FieldTable t = {{"h", amqp::FieldValue(std::string("\xc3\x28", 2))}};
  ProtoTable out;
  ToProtoTable(t, &out);
  EXPECT_EQ(out.at("h").kind_case(), v1::FieldValue::kBytesValue);
  EXPECT_FALSE(IsValidUtf8("\xc3\x28"));
  EXPECT_TRUE(IsValidUtf8("h\xc3\xa9llo"));
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));  // a surrogate
  EXPECT_EQ(SanitizeUtf8("a\xff"
                         "b"),
            "a\xEF\xBF\xBD"
            "b");
}

TEST(ConvertTest, PropertiesBothWays) {
  v1::MessageProperties p;
  p.set_content_type("text/plain");
  p.set_delivery_mode(v1::TRANSIENT);
  p.set_priority(0);
  p.mutable_expiration()->set_seconds(2);
  p.mutable_expiration()->set_nanos(500000000);
  p.set_message_id("m");
  p.mutable_timestamp()->set_seconds(99);
  (*p.mutable_headers())["n"] = Int(5);
  auto a = ToAmqpProperties(p, "properties", Limits());
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->delivery_mode, 1);
  EXPECT_EQ(a->priority, 0);  // explicitly set, so present
  EXPECT_EQ(a->expiration, "2500");
  EXPECT_EQ(a->timestamp, 99u);
  EXPECT_FALSE(a->reply_to.has_value());  // empty means unset

  v1::MessageProperties back;
  ToProtoProperties(*a, &back);
  EXPECT_EQ(back.SerializeAsString(), p.SerializeAsString());
}

TEST(ConvertTest, UnsetDeliveryModeIsPersistentAndPriorityAbsent) {
  auto a = ToAmqpProperties(v1::MessageProperties(), "p", Limits());
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->delivery_mode, 2);
  EXPECT_FALSE(a->priority.has_value());
  EXPECT_FALSE(a->headers.has_value());
}

TEST(ConvertTest, ValidationNamesTheField) {
  Limits limits;
  limits.max_message_bytes = 10;
  struct Case {
    std::function<void(v1::PublishRequest&)> set;
    std::string want;
  } cases[] = {
      {[](auto& r) { r.set_routing_key(std::string(256, 'k')); },
       "m.routing_key: longer than 255 bytes (256)"},
      {[](auto& r) { r.set_exchange("\xff"); }, "m.exchange: not valid UTF-8"},
      {[](auto& r) { r.set_body(std::string(11, 'b')); }, "m.body: 11 bytes"},
      {[](auto& r) { r.mutable_properties()->set_priority(256); },
       "m.properties.priority: must be 0..255, got 256"},
      {[](auto& r) {
         r.mutable_properties()->mutable_expiration()->set_nanos(-1);
       },
       "m.properties.expiration: must not be negative"},
      {[](auto& r) {
         r.mutable_properties()->mutable_expiration()->set_seconds(5000000);
       },
       "m.properties.expiration: must be at most"},
      {[](auto& r) {
         r.mutable_properties()->set_delivery_mode(
             static_cast<v1::DeliveryMode>(3));
       },
       "m.properties.delivery_mode: unknown value 3"},
      {[](auto& r) {
         r.mutable_properties()->set_app_id(std::string(300, 'a'));
       },
       "m.properties.app_id: longer than 255"},
      {[](auto& r) {
         (*r.mutable_properties()->mutable_headers())[std::string(256, 'k')] =
             Int(1);
       },
       "m.properties.headers: key 'kkkk"},
      {[](auto& r) {
         v1::FieldValue* v = &(*r.mutable_properties()->mutable_headers())["h"];
         for (int i = 0; i < 16; ++i) {
           v = &(*v->mutable_table_value()->mutable_fields())["n"];
         }
         *v = Int(1);
       },
       "nested deeper than 16"},
      {[](auto& r) {
         (*r.mutable_properties()->mutable_headers())["big"].set_string_value(
             std::string(70000, 'x'));
       },
       "m.properties.headers: larger than"},
  };
  for (const Case& c : cases) {
    v1::PublishRequest r;
    c.set(r);
    auto m = ToOutgoingMessage(r, "m", limits);
    ASSERT_FALSE(m.ok()) << c.want;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(m.status().message()), HasSubstr(c.want));
  }
}

TEST(ConvertTest, NestingUpToTheLimitIsAccepted) {
  v1::PublishRequest r;
  v1::FieldValue* v = &(*r.mutable_properties()->mutable_headers())["h"];
  for (int i = 0; i < 15; ++i) {
    v = &(*v->mutable_table_value()->mutable_fields())["n"];
  }
  *v = Int(1);
  EXPECT_TRUE(ToOutgoingMessage(r, "", Limits()).ok());
}

TEST(ConvertTest, AnOwnedRequestsBodyIsMovedNotCopied) {
  v1::PublishRequest r;
  r.set_routing_key("q");
  r.set_body(std::string(1 << 16, 'b'));
  const char* data = r.body().data();
  auto m = ToOutgoingMessage(std::move(r), "message", Limits());
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->body.size(), size_t{1} << 16);
  EXPECT_EQ(m->body.data(), data);  // the same buffer
  // Errors name the field under the given prefix.
  v1::PublishRequest bad;
  bad.set_routing_key(std::string(300, 'k'));
  auto e = ToOutgoingMessage(std::move(bad), "message", Limits());
  EXPECT_EQ(e.status().message().substr(0, 20), "message.routing_key:");
}

TEST(ConvertTest, OutgoingMessageDefaults) {
  v1::PublishRequest r;
  r.set_routing_key("q");
  auto m = ToOutgoingMessage(r, "", Limits());
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->mandatory);
  EXPECT_FALSE(m->properties.message_id.has_value());  // nothing added
  Limits with_ids;
  with_ids.default_message_id = true;
  m = ToOutgoingMessage(r, "", with_ids);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->properties.message_id->size(), 36u);
  r.set_allow_unroutable(true);
  r.mutable_properties()->set_message_id("mine");
  m = ToOutgoingMessage(r, "", with_ids);
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->mandatory);
  EXPECT_EQ(m->properties.message_id, "mine");
}

TEST(ConvertTest, TopologyRequests) {
  v1::DeclareQueueRequest q;
  q.set_name("q");
  q.set_type(v1::QUORUM);
  auto a = ToQueueDeclareArgs(q);
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->durable);
  ASSERT_NE(amqp::FindField(a->arguments, "x-queue-type"), nullptr);
  EXPECT_EQ(*amqp::FindField(a->arguments, "x-queue-type"),
            amqp::FieldValue(std::string("quorum")));
  q.set_durable(false);
  EXPECT_FALSE(ToQueueDeclareArgs(q)->durable);
  (*q.mutable_arguments())["x-queue-type"].set_string_value("stream");
  EXPECT_THAT(std::string(ToQueueDeclareArgs(q).status().message()),
              HasSubstr("x-queue-type"));

  v1::DeclareExchangeRequest x;
  x.set_name("e");
  EXPECT_EQ(ToExchangeDeclareArgs(x)->type, "direct");
  x.set_type(v1::HEADERS);
  EXPECT_EQ(ToExchangeDeclareArgs(x)->type, "headers");
  x.set_custom_type("x-delayed-message");
  EXPECT_EQ(ToExchangeDeclareArgs(x)->type, "x-delayed-message");
  x.set_name("");
  EXPECT_FALSE(ToExchangeDeclareArgs(x).ok());

  v1::StreamMessagesRequest s;
  s.set_queue("q");
  auto o = ToSubscribeOptions(s);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->prefetch, 100);
  EXPECT_EQ(o->ack_mode, core::AckMode::kAuto);
  s.set_prefetch(65535);
  EXPECT_TRUE(ToSubscribeOptions(s).ok());
  s.set_prefetch(65536);
  EXPECT_THAT(std::string(ToSubscribeOptions(s).status().message()),
              HasSubstr("prefetch"));
  s.set_prefetch(0);
  s.set_max_batch(65535);
  EXPECT_TRUE(ToSubscribeOptions(s).ok());
  s.set_max_batch(65536);
  EXPECT_EQ(ToSubscribeOptions(s).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ToSubscribeOptions(s).status().message()),
              HasSubstr("max_batch"));
}

// Everything RabbitMQ answers by closing a connection or channel that other
// callers share is refused before sending (server/amqp/broker_rules.h).
TEST(ConvertTest, NonFiniteDoublesAreRefusedAnywhereInATable) {
  const double kBad[] = {std::numeric_limits<double>::quiet_NaN(),
                         std::numeric_limits<double>::infinity(),
                         -std::numeric_limits<double>::infinity()};
  for (double bad : kBad) {
    v1::PublishRequest p;
    v1::FieldValue* v = &(*p.mutable_properties()->mutable_headers())["t"];
    v1::FieldValue* arr = &(*v->mutable_table_value()->mutable_fields())["arr"];
    arr->mutable_array_value()->add_values()->set_double_value(1.5);
    arr->mutable_array_value()->add_values()->set_double_value(bad);
    auto m = ToOutgoingMessage(p, "messages[3]", Limits());
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(m.status().message()),
                HasSubstr("messages[3].properties.headers[\"t\"][\"arr\"][1]"));
    EXPECT_THAT(std::string(m.status().message()),
                HasSubstr("NaN and infinite doubles"));

    v1::DeclareQueueRequest q;
    q.set_name("q");
    (*q.mutable_arguments())["x-n"].set_double_value(bad);
    EXPECT_THAT(std::string(ToQueueDeclareArgs(q).status().message()),
                HasSubstr("arguments[\"x-n\"]"));
    v1::DeclareExchangeRequest x;
    x.set_name("e");
    (*x.mutable_arguments())["x-n"].set_double_value(bad);
    EXPECT_FALSE(ToExchangeDeclareArgs(x).ok());
    v1::BindQueueRequest b;
    b.set_queue("q");
    b.set_exchange("e");
    (*(*b.mutable_arguments())["t"]
          .mutable_table_value()
          ->mutable_fields())["d"]
        .set_double_value(bad);
    EXPECT_THAT(std::string(ToBindArgs(b).status().message()),
                HasSubstr("arguments[\"t\"][\"d\"]"));
    v1::UnbindQueueRequest u;
    u.set_queue("q");
    u.set_exchange("e");
    (*u.mutable_arguments())["d"].set_double_value(bad);
    EXPECT_FALSE(ToBindArgs(u).ok());
    v1::StreamMessagesRequest s;
    s.set_queue("q");
    (*s.mutable_arguments())["x-priority"].set_double_value(bad);
    EXPECT_THAT(std::string(ToSubscribeOptions(s).status().message()),
                HasSubstr("arguments[\"x-priority\"]"));
  }
  // Finite doubles are fine.
  v1::PublishRequest p;
  (*p.mutable_properties()->mutable_headers())["d"].set_double_value(-0.5);
  EXPECT_TRUE(ToOutgoingMessage(p, "", Limits()).ok());
}

TEST(ConvertTest, UserIdMustBeTheBrokerUser) {
  Limits limits;
  limits.broker_users = {"guest"};
  v1::PublishRequest p;
  p.mutable_properties()->set_user_id("guest");
  EXPECT_TRUE(ToOutgoingMessage(p, "", limits).ok());
  p.mutable_properties()->set_user_id("admin");
  auto m = ToOutgoingMessage(p, "", limits);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("properties.user_id: must be empty or the broker "
                        "user 'guest', got 'admin'"));
  // Brokers with different users: any of them.
  limits.broker_users = {"b", "a", "b"};
  p.mutable_properties()->set_user_id("a");
  EXPECT_TRUE(ToOutgoingMessage(p, "", limits).ok());
  p.mutable_properties()->set_user_id("c");
  EXPECT_THAT(std::string(ToOutgoingMessage(p, "", limits).status().message()),
              HasSubstr("one of the brokers' users ('a', 'b')"));
  // No broker users known: not checked.
  EXPECT_TRUE(ToOutgoingMessage(p, "", Limits()).ok());
}

TEST(ConvertTest, PublishRulesOfTheBroker) {
  struct Case {
    std::function<void(v1::PublishRequest&)> set;
    std::string want;
  } cases[] = {
      {[](auto& r) { r.set_routing_key("amq.rabbitmq.reply-to.g1h.k"); },
       "m.routing_key: direct reply-to keys"},
      {[](auto& r) {
         r.mutable_properties()->set_reply_to("amq.rabbitmq.reply-to");
       },
       "m.properties.reply_to: direct reply-to"},
      {[](auto& r) {
         (*r.mutable_properties()->mutable_headers())["CC"].set_string_value(
             "q");
       },
       "m.properties.headers[\"CC\"]: must be an array"},
      {[](auto& r) {
         (*r.mutable_properties()->mutable_headers())["BCC"]
             .mutable_array_value()
             ->add_values()
             ->set_string_value("amq.rabbitmq.reply-to.a.b");
       },
       "m.properties.headers[\"BCC\"][0]: direct reply-to keys"},
  };
  for (const Case& c : cases) {
    v1::PublishRequest r;
    c.set(r);
    auto m = ToOutgoingMessage(r, "m", Limits());
    ASSERT_FALSE(m.ok()) << c.want;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(m.status().message()), HasSubstr(c.want));
  }
  v1::PublishRequest ok;
  ok.set_exchange("amq.direct");
  ok.set_routing_key("amq.rabbitmq.reply-to.g1h.k");
  (*ok.mutable_properties()->mutable_headers())["CC"]
      .mutable_array_value()
      ->add_values()
      ->set_string_value("other");
  EXPECT_TRUE(ToOutgoingMessage(ok, "", Limits()).ok());
}

TEST(ConvertTest, ArgumentRulesOfTheBroker) {
  v1::DeclareQueueRequest q;
  q.set_name("q");
  (*q.mutable_arguments())["x-queue-master-locator"].set_string_value("nope");
  auto a = ToQueueDeclareArgs(q);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(a.status().message()),
              HasSubstr("arguments[\"x-queue-master-locator\"]: must be"));
  (*q.mutable_arguments())["x-queue-master-locator"].set_string_value(
      "min-masters");
  EXPECT_TRUE(ToQueueDeclareArgs(q).ok());
  q.set_type(v1::STREAM);
  q.mutable_arguments()->clear();
  (*q.mutable_arguments())["x-max-age"].set_string_value("");
  EXPECT_THAT(std::string(ToQueueDeclareArgs(q).status().message()),
              HasSubstr("arguments[\"x-max-age\"]"));
  (*q.mutable_arguments())["x-max-age"].set_string_value("7D");
  EXPECT_TRUE(ToQueueDeclareArgs(q).ok());

  v1::StreamMessagesRequest s;
  s.set_queue("q");
  (*s.mutable_arguments())["x-stream-offset"].set_string_value("nope");
  EXPECT_THAT(std::string(ToSubscribeOptions(s).status().message()),
              HasSubstr("arguments[\"x-stream-offset\"]: must be"));
  (*s.mutable_arguments())["x-stream-offset"].set_bool_value(true);
  EXPECT_FALSE(ToSubscribeOptions(s).ok());
  (*s.mutable_arguments())["x-stream-offset"].set_string_value("first");
  EXPECT_TRUE(ToSubscribeOptions(s).ok());
  (*s.mutable_arguments())["x-stream-offset"].set_int_value(42);
  EXPECT_TRUE(ToSubscribeOptions(s).ok());
  (*s.mutable_arguments())["x-stream-offset"]
      .mutable_timestamp_value()
      ->set_seconds(1700000000);
  EXPECT_TRUE(ToSubscribeOptions(s).ok());
}

TEST(ConvertTest, TypedStreamOffset) {
  auto code = [](const auto& r) {
    return ToSubscribeOptions(r).status().code();
  };
  auto message = [](const auto& r) {
    return std::string(ToSubscribeOptions(r).status().message());
  };
  v1::StreamMessagesRequest s;
  s.set_queue("q");
  // No offset: nothing added.
  ASSERT_TRUE(ToSubscribeOptions(s).ok());
  EXPECT_FALSE(ToSubscribeOptions(s)->stream_offset.has_value());
  // An empty StreamOffset says nothing: refused, naming the field.
  s.mutable_offset();
  EXPECT_EQ(code(s), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(message(s), HasSubstr("offset: set one of position"));
  s.mutable_offset()->set_position(v1::StreamOffset::POSITION_UNSPECIFIED);
  EXPECT_THAT(message(s), HasSubstr("offset.position: must be FIRST"));
  s.mutable_offset()->set_position(static_cast<v1::StreamOffset::Position>(9));
  EXPECT_THAT(message(s), HasSubstr("offset.position: must be FIRST"));
  const std::pair<v1::StreamOffset::Position, const char*> words[] = {
      {v1::StreamOffset::FIRST, "first"},
      {v1::StreamOffset::LAST, "last"},
      {v1::StreamOffset::NEXT, "next"}};
  for (const auto& [position, word] : words) {
    s.mutable_offset()->set_position(position);
    absl::StatusOr<core::SubscribeOptions> o = ToSubscribeOptions(s);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->stream_offset, amqp::FieldValue(std::string(word)));
  }
  s.mutable_offset()->set_offset(0);
  EXPECT_EQ(ToSubscribeOptions(s)->stream_offset, amqp::FieldValue(int64_t{0}));
  s.mutable_offset()->set_offset(uint64_t{1} << 63);
  EXPECT_THAT(message(s), HasSubstr("offset.offset: at most 2^63 - 1"));
  s.mutable_offset()->set_offset((uint64_t{1} << 63) - 1);
  EXPECT_TRUE(ToSubscribeOptions(s).ok());
  // Timestamps: whole seconds, from 1970 on.
  s.mutable_offset()->mutable_timestamp()->set_seconds(1700000000);
  s.mutable_offset()->mutable_timestamp()->set_nanos(999);
  EXPECT_EQ(ToSubscribeOptions(s)->stream_offset,
            amqp::FieldValue(amqp::Timestamp{1700000000}));
  s.mutable_offset()->mutable_timestamp()->set_seconds(-1);
  EXPECT_THAT(message(s), HasSubstr("offset.timestamp: must be a time from"));

  // The typed offset wins over the argument (the subscription replaces it);
  // a bad argument is still refused.
  s.mutable_offset()->set_position(v1::StreamOffset::FIRST);
  (*s.mutable_arguments())["x-stream-offset"].set_string_value("last");
  EXPECT_TRUE(ToSubscribeOptions(s).ok());
  (*s.mutable_arguments())["x-stream-offset"].set_string_value("nope");
  EXPECT_THAT(message(s), HasSubstr("arguments[\"x-stream-offset\"]"));

  // Subscribe's start alike.
  v1::SubscribeStart start;
  start.set_queue("q");
  start.mutable_offset()->set_offset(7);
  EXPECT_EQ(ToSubscribeOptions(start)->stream_offset,
            amqp::FieldValue(int64_t{7}));
  start.mutable_offset()->clear_offset();
  EXPECT_THAT(message(start), HasSubstr("offset: set one of"));
}

TEST(ConvertTest, DeliveriesFromAStreamCarryTheirOffset) {
  core::StreamDelivery d;
  d.delivery_id = 3;
  d.stream_offset = 41;
  v1::Delivery out;
  ToProtoDelivery(std::move(d), &out);
  ASSERT_TRUE(out.has_stream_offset());
  EXPECT_EQ(out.stream_offset(), 41u);
  // GetMessages' messages, from the header.
  amqp::Delivery m;
  m.properties.headers = amqp::FieldTable{{"x-stream-offset", int64_t{0}}};
  v1::Delivery got;
  ToProtoDelivery(std::move(m), &got);
  ASSERT_TRUE(got.has_stream_offset());
  EXPECT_EQ(got.stream_offset(), 0u);
  // Other queues' deliveries have none.
  v1::Delivery plain;
  ToProtoDelivery(amqp::Delivery{}, &plain);
  EXPECT_FALSE(plain.has_stream_offset());
}

TEST(ConvertTest, ArgumentsMustFitInOneFrame) {
  v1::DeclareQueueRequest q;
  q.set_name("q");
  (*q.mutable_arguments())["big"].set_string_value(std::string(70000, 'x'));
  EXPECT_THAT(std::string(ToQueueDeclareArgs(q).status().message()),
              HasSubstr("arguments: larger than 65536 bytes encoded"));
  v1::StreamMessagesRequest s;
  s.set_queue("q");
  (*s.mutable_arguments())["big"].set_bytes_value(std::string(70000, 'x'));
  EXPECT_FALSE(ToSubscribeOptions(s).ok());
  v1::BindQueueRequest b;
  b.set_queue("q");
  b.set_exchange("e");
  for (int i = 0; i < 300; ++i) {
    (*b.mutable_arguments())[absl::StrCat("k", i)].set_string_value(
        std::string(250, 'v'));
  }
  EXPECT_FALSE(ToBindArgs(b).ok());
}

TEST(ConvertTest, EchoedInputIsBounded) {
  v1::PublishRequest p;
  std::string key(1 << 20, 'k');
  (*p.mutable_properties()->mutable_headers())[key] = Int(1);
  auto m = ToOutgoingMessage(p, "", Limits());
  ASSERT_FALSE(m.ok());
  EXPECT_LT(m.status().message().size(), 400u);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("'... (1048576 bytes) is longer than 255 bytes"));
  Limits limits;
  limits.broker_users = {"guest"};
  p.Clear();
  p.mutable_properties()->set_user_id(std::string(255, '\x01'));
  m = ToOutgoingMessage(p, "", limits);
  ASSERT_FALSE(m.ok());
  EXPECT_LT(m.status().message().size(), 1000u);
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("\\x01\\x01"));
}

TEST(ConvertTest, TheApiCountersAreExactlyTheProtosCountersFields) {
  // Each API counter gets a distinct value; every field of the message must
  // carry the counter of its name, and every counter must have a field.
  core::CountersSnapshot c;
  std::set<std::string> names;
  uint64_t next = 1;
#define AMQPGW_FILL(name, kind, metric, help) \
  c.name = next++;                            \
  names.insert(#name);
  AMQPGW_API_COUNTERS(AMQPGW_FILL)
#undef AMQPGW_FILL
  v1::Counters out;
  ToProtoCounters(c, &out);
  const google::protobuf::Descriptor* d = v1::Counters::descriptor();
  const google::protobuf::Reflection* r = v1::Counters::GetReflection();
  EXPECT_EQ(static_cast<size_t>(d->field_count()), names.size());
  std::set<uint64_t> values;
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    EXPECT_EQ(names.count(f->name()), 1u) << f->name() << " has no counter";
    values.insert(r->GetUInt64(out, f));
  }
  EXPECT_EQ(values.size(), names.size());  // each its own counter
  EXPECT_EQ(values.count(0), 0u);
  // Spot check by name.
  EXPECT_EQ(out.published(), c.published);
  EXPECT_EQ(out.reconnects(), c.reconnects);
}

TEST(ConvertRetry, AckRetryDelayIsCheckedNamingTheField) {
  v1::AckRequest a;
  a.set_action(v1::AckRequest::RETRY);
  a.mutable_retry_delay()->set_nanos(200000000);
  absl::StatusOr<core::AckCommand> c = ToAckCommand(a);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->action, core::AckAction::kRetry);
  EXPECT_EQ(c->retry_delay, absl::Milliseconds(200));
  a.mutable_retry_delay()->set_seconds(25 * 3600);
  c = ToAckCommand(a);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(c.status().message(), "retry_delay: "))
      << c.status();
  a.mutable_retry_delay()->set_seconds(-1);
  EXPECT_FALSE(ToAckCommand(a).ok());
  a.mutable_retry_delay()->set_seconds(1);
  a.set_action(v1::AckRequest::ACK);
  EXPECT_TRUE(absl::StartsWith(ToAckCommand(a).status().message(),
                               "retry_delay: applies to action RETRY"));
  a.set_action(v1::AckRequest::RETRY);
  a.set_error(std::string(1025, 'e'));
  EXPECT_TRUE(absl::StartsWith(ToAckCommand(a).status().message(), "error: "));
}

TEST(ConvertRetry, RetryPolicyAndDeadLetterOfAStream) {
  v1::StreamMessagesRequest s;
  s.set_queue("orders");
  s.set_ack_mode(v1::StreamMessagesRequest::CLIENT);
  s.mutable_retry_policy()->set_max_attempts(5);
  s.mutable_retry_policy()->mutable_initial_backoff()->set_seconds(1);
  s.mutable_retry_policy()->mutable_max_backoff()->set_seconds(60);
  s.mutable_dead_letter()->set_exchange("dlx");
  absl::StatusOr<core::SubscribeOptions> o = ToSubscribeOptions(s);
  ASSERT_TRUE(o.ok()) << o.status();
  ASSERT_TRUE(o->retry.policy.has_value());
  EXPECT_EQ(o->retry.policy->max_attempts, 5u);
  EXPECT_EQ(o->retry.policy->initial_backoff, absl::Seconds(1));
  EXPECT_EQ(o->retry.policy->max_backoff, absl::Seconds(60));
  EXPECT_EQ(o->retry.policy->multiplier, 2.0);
  ASSERT_TRUE(o->retry.dead_letter.has_value());
  EXPECT_EQ(o->retry.dead_letter->exchange, "dlx");

  v1::StreamMessagesRequest bad = s;
  bad.set_ack_mode(v1::StreamMessagesRequest::AUTO);
  EXPECT_TRUE(absl::StartsWith(ToSubscribeOptions(bad).status().message(),
                               "retry_policy: needs ack_mode CLIENT"));
  bad = s;
  bad.mutable_retry_policy()->set_max_attempts(0);
  EXPECT_TRUE(absl::StartsWith(ToSubscribeOptions(bad).status().message(),
                               "dead_letter: needs retry_policy.max_attempts"));
  bad = s;
  bad.mutable_retry_policy()->set_jitter(1.5);
  EXPECT_TRUE(absl::StartsWith(ToSubscribeOptions(bad).status().message(),
                               "retry_policy.jitter: "));
  bad = s;
  bad.mutable_retry_policy()->mutable_max_backoff()->set_seconds(90000);
  EXPECT_TRUE(absl::StartsWith(ToSubscribeOptions(bad).status().message(),
                               "retry_policy.max_backoff: "));
  bad = s;
  bad.set_queue(std::string(234, 'q'));
  absl::Status st = ToSubscribeOptions(bad).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(st.message(), "queue: retries need")) << st;
}

}  // namespace
}  // namespace amqpgw::grpc_api
