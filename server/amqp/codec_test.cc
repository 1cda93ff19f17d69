// Field tables and properties survive a round trip through rabbitmq-c's
// wire codec, for every value type.
#include "server/amqp/codec.h"

#include <gtest/gtest.h>

#include <cstring>
#include <limits>

namespace amqpgw::amqp {
namespace {

FieldTable EveryType() {
  FieldTable nested = {{"n", FieldValue(int64_t{1})},
                       {"s", FieldValue(std::string("x"))}};
  FieldArray array = {FieldValue(int64_t{1}), FieldValue(std::string("two")),
                      FieldValue(FieldTable{{"k", FieldValue(true)}})};
  return {
      {"void", FieldValue(Void{})},
      {"bool", FieldValue(true)},
      {"false", FieldValue(false)},
      {"int", FieldValue(int64_t{-42})},
      {"big", FieldValue(std::numeric_limits<int64_t>::max())},
      {"double", FieldValue(3.25)},
      {"string", FieldValue(std::string("héllo \0 world", 14))},
      {"bytes", FieldValue(Bytes{std::string("\x00\x01\xff", 3)})},
      {"time", FieldValue(Timestamp{1700000000})},
      {"decimal", FieldValue(Decimal{2, 12345})},
      {"table", FieldValue(nested)},
      {"array", FieldValue(array)},
      {"empty_table", FieldValue(FieldTable{})},
      {"empty_array", FieldValue(FieldArray{})},
  };
}

TEST(CodecTest, FieldTableRoundTripsEveryType) {
  FieldTable in = EveryType();
  auto wire = EncodeFieldTable(in);
  ASSERT_TRUE(wire.ok()) << wire.status();
  auto out = DecodeFieldTable(*wire);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, in);
}

// Found by amqp_field_table_fuzzer: a NaN double (here with payload bits)
// compares unequal to itself but must cross the codec bit for bit.
TEST(CodecTest, NanDoubleRoundTripsBitForBit) {
  const uint64_t bits = 0x7ff8000000012345ull;
  double nan;
  std::memcpy(&nan, &bits, sizeof(nan));
  auto wire = EncodeFieldTable({{"nan", FieldValue(nan)}});
  ASSERT_TRUE(wire.ok()) << wire.status();
  auto out = DecodeFieldTable(*wire);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 1u);
  const double* d = std::get_if<double>(&(*out)[0].second.value);
  ASSERT_NE(d, nullptr);
  uint64_t out_bits;
  std::memcpy(&out_bits, d, sizeof(out_bits));
  EXPECT_EQ(out_bits, bits);
  auto again = EncodeFieldTable(*out);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *wire);
}

TEST(CodecTest, PropertiesRoundTrip) {
  Properties p;
  p.content_type = "application/json";
  p.content_encoding = "gzip";
  p.headers = EveryType();
  p.delivery_mode = 2;
  p.priority = 9;
  p.correlation_id = "c";
  p.reply_to = "r";
  p.expiration = "60000";
  p.message_id = "m";
  p.timestamp = 1700000000;
  p.type = "t";
  p.user_id = "u";
  p.app_id = "a";
  p.cluster_id = "cl";
  auto wire = EncodeProperties(p);
  ASSERT_TRUE(wire.ok()) << wire.status();
  auto out = DecodeProperties(*wire);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, p);

  Properties empty;
  auto w2 = EncodeProperties(empty);
  ASSERT_TRUE(w2.ok());
  auto o2 = DecodeProperties(*w2);
  ASSERT_TRUE(o2.ok());
  EXPECT_EQ(*o2, empty);
  EXPECT_FALSE(o2->headers.has_value());
}

TEST(CodecTest, NarrowIntegersFromOtherClientsWidenToInt64) {
  // A table as another client encodes it: 'b' int8 -5, 'I' int32 7,
  // 'f' float 1.5.
  std::string wire;
  std::string body;
  auto key = [&](const std::string& k) {
    body.push_back(static_cast<char>(k.size()));
    body += k;
  };
  key("a");
  body += "b";
  body.push_back(static_cast<char>(-5));
  key("b");
  body += "I";
  body += std::string("\x00\x00\x00\x07", 4);
  key("c");
  body += "f";
  body += std::string("\x3f\xc0\x00\x00", 4);  // 1.5f big-endian
  uint32_t n = body.size();
  wire.push_back(static_cast<char>(n >> 24));
  wire.push_back(static_cast<char>(n >> 16));
  wire.push_back(static_cast<char>(n >> 8));
  wire.push_back(static_cast<char>(n));
  wire += body;
  auto out = DecodeFieldTable(wire);
  ASSERT_TRUE(out.ok()) << out.status();
  FieldTable want = {{"a", FieldValue(int64_t{-5})},
                     {"b", FieldValue(int64_t{7})},
                     {"c", FieldValue(1.5)}};
  EXPECT_EQ(*out, want);
}

TEST(CodecTest, TooDeepIsRefused) {
  FieldValue v(int64_t{1});
  for (int i = 0; i < kMaxTableDepth + 1; ++i) {
    v = FieldValue(FieldTable{{"n", v}});
  }
  auto wire = EncodeFieldTable(FieldTable{{"root", v}});
  EXPECT_EQ(wire.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CodecTest, MalformedInputIsAnError) {
  EXPECT_FALSE(DecodeFieldTable(std::string("\x00\x00\x00\x09\x01", 5)).ok());
  EXPECT_FALSE(DecodeFieldTable("").ok());
  EXPECT_FALSE(DecodeProperties(std::string("\xff\xff", 2)).ok());
}

}  // namespace
}  // namespace amqpgw::amqp
