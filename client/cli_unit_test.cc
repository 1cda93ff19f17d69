// Unit tests of the CLI's parsing and formatting (no daemon needed).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include "client/args.h"
#include "client/client.h"
#include "client/delivery_format.h"
#include "client/progress.h"
#include "client/values.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace amqpgw::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::vector<const FlagSpec*> Ptrs(const std::vector<FlagSpec>& specs) {
  std::vector<const FlagSpec*> out;
  for (const auto& s : specs) out.push_back(&s);
  return out;
}

TEST(ArgsTest, ValuesBooleansRepeatsAndPositionals) {
  std::vector<FlagSpec> specs = {{"content-type", "TYPE", ""},
                                 {"json", "", ""},
                                 {"header", "H", "", true},
                                 {"tls_ca", "FILE", ""}};
  ParsedArgs a;
  ASSERT_TRUE(ParseArgs({"q", "--content_type", "text/plain", "--json",
                         "--header=a=1", "--header", "b:int=2", "--tls-ca=x",
                         "body", "--", "--not-a-flag"},
                        Ptrs(specs), &a)
                  .ok());
  EXPECT_EQ(a.Get("content-type"), "text/plain");
  EXPECT_TRUE(a.GetBool("json"));
  EXPECT_THAT(a.GetAll("header"), ::testing::ElementsAre("a=1", "b:int=2"));
  EXPECT_EQ(a.Get("tls_ca"), "x");
  EXPECT_THAT(a.positionals,
              ::testing::ElementsAre("q", "body", "--not-a-flag"));
}

TEST(ArgsTest, ErrorsNameTheFlag) {
  std::vector<FlagSpec> specs = {{"priority", "N", ""}, {"json", "", ""}};
  ParsedArgs a;
  absl::Status s = ParseArgs({"--bogus"}, Ptrs(specs), &a);
  EXPECT_THAT(std::string(s.message()), HasSubstr("unknown flag --bogus"));
  s = ParseArgs({"--priority"}, Ptrs(specs), &a);
  EXPECT_THAT(std::string(s.message()), HasSubstr("--priority needs a value"));
  ParsedArgs b;
  s = ParseArgs({"--priority=1", "--priority=2"}, Ptrs(specs), &b);
  EXPECT_THAT(std::string(s.message()), HasSubstr("given twice"));
  ParsedArgs c;
  s = ParseArgs({"--json=maybe"}, Ptrs(specs), &c);
  EXPECT_FALSE(s.ok());
  ParsedArgs d;
  s = ParseArgs({"-x"}, Ptrs(specs), &d);
  EXPECT_FALSE(s.ok());
}

TEST(ArgsTest, StopAtPositionalForGlobalFlags) {
  std::vector<FlagSpec> specs = {{"server", "ADDR", ""}};
  ParsedArgs a;
  size_t used = 0;
  ASSERT_TRUE(ParseArgs({"--server", "h:1", "publish", "--server", "h:2"},
                        Ptrs(specs), &a, true, &used)
                  .ok());
  EXPECT_EQ(used, 2u);
  EXPECT_EQ(a.Get("server"), "h:1");
}

TEST(ValuesTest, TypedFields) {
  auto f = ParseFieldArg("n:int=5");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->key, "n");
  EXPECT_EQ(f->value.int_value(), 5);
  f = ParseFieldArg("s=a=b");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->value.string_value(), "a=b");
  f = ParseFieldArg("ok:bool=true");
  EXPECT_TRUE(f->value.bool_value());
  f = ParseFieldArg("x:float=1.5");
  EXPECT_EQ(f->value.double_value(), 1.5);
  f = ParseFieldArg("b:bytes=AAH/");
  EXPECT_EQ(f->value.bytes_value(), std::string("\x00\x01\xff", 3));
  f = ParseFieldArg("t:timestamp=2024-01-02T03:04:05Z");
  EXPECT_EQ(f->value.timestamp_value().seconds(), 1704164645);
  f = ParseFieldArg("d:decimal=12.34");
  EXPECT_EQ(f->value.decimal_value().scale(), 2u);
  EXPECT_EQ(f->value.decimal_value().value(), 1234u);
  f = ParseFieldArg("z:null=");
  EXPECT_TRUE(f->value.has_null_value());
  f = ParseFieldArg("a:b:string=c");
  EXPECT_EQ(f->key, "a:b");
  f = ParseFieldArg(R"(m:json={"a":1,"b":[true,"x",1.5],"c":{}})");
  ASSERT_TRUE(f.ok()) << f.status();
  const auto& t = f->value.table_value().fields();
  EXPECT_EQ(t.at("a").int_value(), 1);
  EXPECT_TRUE(t.at("b").array_value().values(0).bool_value());
  EXPECT_EQ(t.at("b").array_value().values(2).double_value(), 1.5);
  EXPECT_TRUE(t.at("c").has_table_value());
}

TEST(ValuesTest, BadFieldsSayWhy) {
  EXPECT_THAT(std::string(ParseFieldArg("n:int=abc").status().message()),
              HasSubstr("not a 64-bit integer"));
  EXPECT_THAT(std::string(ParseFieldArg("n:itn=5").status().message()),
              HasSubstr("unknown type 'itn'"));
  EXPECT_THAT(std::string(ParseFieldArg("novalue").status().message()),
              HasSubstr("KEY=VALUE"));
  EXPECT_FALSE(ParseFieldArg("=v").ok());
  EXPECT_FALSE(ParseFieldArg("b:bytes=!!").ok());
  EXPECT_FALSE(ParseFieldArg("j:json={").ok());
  EXPECT_FALSE(ParseFieldArg("z:null=x").ok());
}

TEST(ValuesTest, Durations) {
  EXPECT_EQ(*ParseDurationArg("30s"), absl::Seconds(30));
  EXPECT_EQ(*ParseDurationArg("1.5"), absl::Milliseconds(1500));
  EXPECT_EQ(*ParseDurationArg("250ms"), absl::Milliseconds(250));
  EXPECT_FALSE(ParseDurationArg("soon").ok());
  EXPECT_FALSE(ParseDurationArg("-1s").ok());
  EXPECT_FALSE(ParseDurationArg("inf").ok());
}

TEST(ValuesTest, BodiesAreShownSafely) {
  EXPECT_EQ(HumanBody("héllo wörld"), "héllo wörld");
  EXPECT_EQ(HumanBody("a\nb\x1b[31m"), R"("a\nb\u001b[31m")");
  EXPECT_EQ(HumanBody(std::string("\xff\x00\x01", 3)),
            "<binary 3 bytes> base64:/wAB");
  EXPECT_EQ(HumanBody(""), "(empty body)");
  // A C1 control character (U+009B, CSI) is not printable either.
  EXPECT_EQ(HumanBody("x\xc2\x9b"), R"("x\u009b")");
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));  // surrogate
  EXPECT_TRUE(IsValidUtf8("\xf0\x9f\x90\x87"));
}

TEST(ValuesTest, FieldValuesFormat) {
  v1::FieldValue v;
  auto* t = v.mutable_table_value()->mutable_fields();
  (*t)["n"].set_int_value(5);
  (*t)["s"].set_string_value("a \"b\"");
  (*t)["x"].set_bytes_value("\x01");
  (*t)["d"].mutable_decimal_value()->set_scale(3);
  (*t)["d"].mutable_decimal_value()->set_value(5);
  EXPECT_EQ(FormatFieldValue(v), R"({d=0.005, n=5, s="a \"b\"", x=b64:AQ==})");
}

TEST(DeliveryFormatTest, HumanLine) {
  v1::Delivery d;
  d.set_delivery_id(3);
  d.set_routing_key("orders");
  d.set_body("hello");
  d.mutable_properties()->set_content_type("text/plain");
  (*d.mutable_properties()->mutable_headers())["n"].set_int_value(5);
  EXPECT_EQ(
      HumanDelivery(d),
      "#3 orders persistent content_type=text/plain headers={n=5} | hello");
  d.set_body("\x1b]0;pwned\x07");
  EXPECT_THAT(HumanDelivery(d), Not(HasSubstr("\x1b")));
}

TEST(DeliveryFormatTest, JsonLineParsesAndCarriesTheBody) {
  v1::Delivery d;
  d.set_delivery_id(1);
  d.set_routing_key("q");
  d.set_body("héllo\n");
  for (bool text : {false, true}) {
    std::string line = JsonDelivery(d, text);
    EXPECT_EQ(line.find('\n'), std::string::npos);
    google::protobuf::Struct s;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &s).ok())
        << line;
    EXPECT_EQ(s.fields().at("delivery_id").string_value(), "1");
    EXPECT_EQ(s.fields().at("body_encoding").string_value(),
              text ? "text" : "base64");
    EXPECT_EQ(s.fields().at("body").string_value(),
              text ? "héllo\n" : "aMOpbGxvCg==");
  }
  d.set_body("\xff");
  EXPECT_THAT(JsonDelivery(d, true), HasSubstr("\"body_encoding\":\"base64\""));
}

TEST(ProgressTest, LineHasCountRateAndEta) {
  std::string line = Progress::Line(2500, 10000, absl::Seconds(1));
  EXPECT_THAT(line, HasSubstr("2,500/10,000"));
  EXPECT_THAT(line, HasSubstr("25%"));
  EXPECT_THAT(line, HasSubstr("2,500 msg/s"));
  EXPECT_THAT(line, HasSubstr("ETA 3s"));
  EXPECT_THAT(Progress::Line(7, -1, absl::Seconds(1)), HasSubstr("7 messages"));
}

TEST(ProgressTest, DisabledPrintsNothing) {
  char buf[256] = {};
  FILE* f = fmemopen(buf, sizeof(buf), "w");
  {
    Progress p(f, /*enabled=*/false, 100);
    p.Update(50);
  }
  std::fclose(f);
  EXPECT_STREQ(buf, "");
}

TEST(GlobalOptionsTest, TlsFlagsAreChecked) {
  for (const char* env :
       {"AMQPGW_SERVER", "AMQPGW_TIMEOUT", "AMQPGW_TOKEN", "AMQPGW_TLS_CA",
        "AMQPGW_TLS_CERT", "AMQPGW_TLS_KEY", "AMQPGW_TLS_SERVER_NAME"}) {
    unsetenv(env);
  }
  std::vector<FlagSpec> specs = GlobalFlags();
  auto resolve = [&](std::vector<std::string> args) {
    ParsedArgs a;
    EXPECT_TRUE(ParseArgs(args, Ptrs(specs), &a).ok());
    return ResolveGlobalOptions(a);
  };
  EXPECT_THAT(std::string(resolve({"--tls_cert=/x"}).status().message()),
              HasSubstr("--tls_cert and --tls_key go together"));
  EXPECT_THAT(
      std::string(resolve({"--tls_ca=/nonexistent"}).status().message()),
      HasSubstr("--tls_ca: cannot read"));
  EXPECT_THAT(std::string(resolve({"--tls_server_name=x"}).status().message()),
              HasSubstr("needs TLS"));
  EXPECT_THAT(std::string(resolve({"--token=a b"}).status().message()),
              HasSubstr("--token"));
  EXPECT_THAT(std::string(resolve({"--timeout=soon"}).status().message()),
              HasSubstr("--timeout"));
  auto ok = resolve({"--tls", "--tls_server_name=gw", "--timeout=0",
                     "--server=h:1", "--token=abc"});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(ok->tls);
  EXPECT_EQ(ok->tls_server_name, "gw");
  EXPECT_EQ(ok->timeout, absl::ZeroDuration());
  EXPECT_EQ(ok->server, "h:1");
  EXPECT_EQ(ok->token, "abc");
}

}  // namespace
}  // namespace amqpgw::cli
