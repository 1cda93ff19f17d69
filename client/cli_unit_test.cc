// Unit tests of the CLI's parsing and formatting (no daemon needed).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include "client/args.h"
#include "client/client.h"
#include "client/commands.h"
#include "client/delivery_format.h"
#include "client/hints.h"
#include "client/progress.h"
#include "client/values.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace amqpgw::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

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

TEST(ValuesTest, StreamOffset) {
  EXPECT_EQ(ParseStreamOffset("first")->position(), v1::StreamOffset::FIRST);
  EXPECT_EQ(ParseStreamOffset("LAST")->position(), v1::StreamOffset::LAST);
  EXPECT_EQ(ParseStreamOffset("next")->position(), v1::StreamOffset::NEXT);
  absl::StatusOr<v1::StreamOffset> o = ParseStreamOffset("0");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->start_case(), v1::StreamOffset::kOffset);
  EXPECT_EQ(o->offset(), 0u);
  EXPECT_EQ(ParseStreamOffset("18446744073709551615")->offset(), UINT64_MAX);
  o = ParseStreamOffset("2026-12-06T20:00:00+01:00");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->timestamp().seconds(), 1796583600);
  for (const char* bad : {"", "-1", "1h", "yesterday", "2026-12-06"}) {
    EXPECT_THAT(std::string(ParseStreamOffset(bad).status().message()),
                HasSubstr("is not first, last, next, an offset"))
        << bad;
  }
}

TEST(ValuesTest, RetryPolicyAndDeadLetter) {
  absl::StatusOr<v1::RetryPolicy> p =
      ParseRetryPolicy("max=5,backoff=1s..1m,multiplier=3,jitter=0.25");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->max_attempts(), 5u);
  EXPECT_EQ(p->initial_backoff().seconds(), 1);
  EXPECT_EQ(p->max_backoff().seconds(), 60);
  EXPECT_EQ(p->multiplier(), 3);
  EXPECT_EQ(p->jitter(), 0.25);
  p = ParseRetryPolicy("backoff=250ms");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->initial_backoff().nanos(), 250000000);
  EXPECT_FALSE(p->has_max_backoff());
  EXPECT_EQ(p->max_attempts(), 0u);
  EXPECT_THAT(std::string(ParseRetryPolicy("max=-1").status().message()),
              HasSubstr("max: "));
  EXPECT_THAT(std::string(ParseRetryPolicy("jitter=lots").status().message()),
              HasSubstr("jitter: 'lots' is not a number"));
  EXPECT_THAT(std::string(ParseRetryPolicy("retries=3").status().message()),
              HasSubstr("'retries' is not max, backoff"));
  v1::DeadLetter d = ParseDeadLetter("dlx:failed.orders");
  EXPECT_EQ(d.exchange(), "dlx");
  EXPECT_EQ(d.routing_key(), "failed.orders");
  d = ParseDeadLetter(":orders.dead");
  EXPECT_EQ(d.exchange(), "");
  EXPECT_EQ(d.routing_key(), "orders.dead");
  d = ParseDeadLetter("dlx");
  EXPECT_EQ(d.exchange(), "dlx");
  EXPECT_EQ(d.routing_key(), "");
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

TEST(ValuesTest, RatesAreShort) {
  EXPECT_EQ(FormatRate(0), "0");
  EXPECT_EQ(FormatRate(-1), "0");
  EXPECT_EQ(FormatRate(0.04), "0.0");
  EXPECT_EQ(FormatRate(0.42), "0.4");
  EXPECT_EQ(FormatRate(9.94), "9.9");
  EXPECT_EQ(FormatRate(9.96), "10");
  EXPECT_EQ(FormatRate(1499.6), "1500");
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

TEST(PluralTest, OneIsSingularEverythingElsePlural) {
  EXPECT_EQ(Plural(1, "message"), "1 message");
  EXPECT_EQ(Plural(0, "message"), "0 messages");
  EXPECT_EQ(Plural(2, "message"), "2 messages");
  EXPECT_EQ(Plural(12345, "message"), "12,345 messages");
  EXPECT_EQ(Plural(1, "delivery", "deliveries"), "1 delivery");
  EXPECT_EQ(Plural(3, "delivery", "deliveries"), "3 deliveries");
  EXPECT_THAT(Progress::Line(1, -1, absl::Seconds(1)), HasSubstr("1 message "));
}

// Each rule of the hint table against a message the gateway (or RabbitMQ
// through it) really sends.
TEST(HintTest, GatewayWordsGetTheCliWayOut) {
  using Code = ::grpc::StatusCode;
  struct Case {
    Code code;
    std::string message;
    std::string hint;
  } cases[] = {
      {Code::FAILED_PRECONDITION,
       "disconnected from the broker by a Disconnect call; call Connect",
       "run 'amqpgw connect'"},
      {Code::NOT_FOUND,
       "exchange 'orders' does not exist; declare it first "
       "(DeclareExchange) or publish to an existing one",
       "amqpgw exchange declare orders"},
      {Code::NOT_FOUND,
       "bind queue 'q1' to exchange 'nox': NOT_FOUND - no exchange 'nox' in "
       "vhost '/'",
       "amqpgw exchange declare nox"},
      {Code::NOT_FOUND,
       "purge queue 'jobs': NOT_FOUND - no queue 'jobs' in vhost '/'",
       "amqpgw queue declare jobs"},
      {Code::NOT_FOUND,
       "get messages from queue 'jobs': NOT_FOUND - no queue 'jobs' in "
       "vhost '/'",
       "amqpgw queue declare jobs"},
      {Code::FAILED_PRECONDITION,
       "NO_ROUTE: no queue named 'jobs' exists (the default exchange routes "
       "by queue name); declare and bind a queue, or set allow_unroutable to "
       "let the broker drop such messages",
       "(amqpgw queue declare jobs), or add --allow-unroutable"},
      {Code::FAILED_PRECONDITION,
       "NO_ROUTE: no queue is bound to exchange 'events' for routing key "
       "'a.b'; declare and bind a queue, or set allow_unroutable to let the "
       "broker drop such messages",
       "amqpgw bind QUEUE events ROUTING_KEY), or add --allow-unroutable"},
      {Code::FAILED_PRECONDITION,
       "declare queue 'q2': PRECONDITION_FAILED - inequivalent arg "
       "'x-max-length' for queue 'q2' in vhost '/': received none but "
       "current is the value '1' of type 'long'",
       "queue q2 already exists with another 'x-max-length'"},
      {Code::FAILED_PRECONDITION,
       "declare exchange 'e1': PRECONDITION_FAILED - inequivalent arg 'type' "
       "for exchange 'e1' in vhost '/': received 'topic' but current is "
       "'fanout'",
       "amqpgw exchange delete e1"},
      {Code::FAILED_PRECONDITION,
       "delete queue 'q': PRECONDITION_FAILED - queue 'q' in vhost '/' in use",
       "without --if-unused"},
      {Code::FAILED_PRECONDITION,
       "delete queue 'q': PRECONDITION_FAILED - queue 'q' in vhost '/' not "
       "empty",
       "without --if-empty"},
      {Code::PERMISSION_DENIED,
       "declare exchange 'amq.x': ACCESS_REFUSED - exchange name 'amq.x' "
       "contains reserved prefix 'amq.*'",
       "pick another name"},
      {Code::UNAUTHENTICATED,
       "this gateway requires a token: send the metadata 'authorization: "
       "Bearer <token>'",
       "--token TOKEN or AMQPGW_TOKEN"},
      {Code::PERMISSION_DENIED,
       "the token's role 'consume' may not call Publish",
       "whose role allows this command"},
      {Code::NOT_FOUND,
       "no subscription 'abc' on this gateway: the stream ended (its "
       "unacknowledged messages went back to the queue) or never existed",
       "'amqpgw consume QUEUE --ack client'"},
      {Code::UNAVAILABLE,
       "publish: broker unreachable within the deadline (not connected yet)",
       "'amqpgw status'"},
      {Code::DEADLINE_EXCEEDED, "Deadline Exceeded", "--timeout 2m"},
      {Code::INVALID_ARGUMENT,
       "properties.headers[\"k\"]: key longer than 255 bytes (300)",
       "--header"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(HintFor(c.code, c.message), HasSubstr(c.hint)) << c.message;
  }
  // The code must match too, and unknown messages get no hint.
  EXPECT_EQ(HintFor(::grpc::StatusCode::INTERNAL, "call Connect"), "");
  EXPECT_EQ(HintFor(::grpc::StatusCode::NOT_FOUND, "something else"), "");
}

TEST(HintTest, NamesAreShellQuotedWhenNeeded) {
  EXPECT_EQ(ShellQuote("orders.eu-1"), "orders.eu-1");
  EXPECT_EQ(ShellQuote("my queue"), "'my queue'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
  EXPECT_EQ(ShellQuote(""), "''");
  EXPECT_THAT(HintFor(::grpc::StatusCode::NOT_FOUND,
                      "NOT_FOUND - no queue 'my queue' in vhost '/'"),
              HasSubstr("amqpgw queue declare 'my queue'"));
}

TEST(HintTest, ADaemonThatDoesNotAnswerIsSaidInPlainWords) {
  const ::grpc::Status refused(
      ::grpc::StatusCode::UNAVAILABLE,
      "failed to connect to all addresses; last error: UNKNOWN: "
      "ipv4:127.0.0.1:50051: Failed to connect to remote host: Connection "
      "refused");
  std::string text = DescribeRpcError(refused, "127.0.0.1:50051", "");
  EXPECT_THAT(text, StartsWith("amqpgw: UNAVAILABLE: nothing answers at "
                               "127.0.0.1:50051 (the default address)"));
  EXPECT_THAT(text,
              AllOf(HasSubstr("is amqpgwd running?"),
                    HasSubstr("--server HOST:PORT"), HasSubstr("AMQPGW_SERVER"),
                    Not(HasSubstr("failed to connect to all"))));
  EXPECT_THAT(DescribeRpcError(refused, "gw:1", "AMQPGW_SERVER"),
              HasSubstr("nothing answers at gw:1 (from AMQPGW_SERVER)"));

  const ::grpc::Status dns(::grpc::StatusCode::UNAVAILABLE,
                           "DNS resolution failed for nosuch.invalid:1: C-ares "
                           "status is not ARES_SUCCESS");
  EXPECT_THAT(*DescribeUnreachable(dns, "nosuch.invalid:1", "--server"),
              StartsWith("cannot resolve the host of nosuch.invalid:1 (from "
                         "--server)"));
  const ::grpc::Status http1(
      ::grpc::StatusCode::UNAVAILABLE,
      "failed to connect to all addresses; last error: UNAVAILABLE: "
      "ipv4:127.0.0.1:8080: Failed parsing HTTP/2");
  EXPECT_THAT(*DescribeUnreachable(http1, "127.0.0.1:8080", "--server"),
              AllOf(StartsWith("no gRPC server answers at 127.0.0.1:8080"),
                    HasSubstr("not its HTTP port")));
  const ::grpc::Status plain_tls(
      ::grpc::StatusCode::UNAVAILABLE,
      "failed to connect to all addresses; last error: UNKNOWN: "
      "ipv4:127.0.0.1:1: Ssl handshake failed: SSL_ERROR_SSL: "
      "error:0A00010B:SSL routines::wrong version number");
  EXPECT_THAT(*DescribeUnreachable(plain_tls, "127.0.0.1:1", ""),
              HasSubstr("drop --tls"));
  const ::grpc::Status untrusted(
      ::grpc::StatusCode::UNAVAILABLE,
      "failed to connect to all addresses; last error: UNKNOWN: "
      "ipv4:127.0.0.1:1: Ssl handshake failed: SSL_ERROR_SSL: "
      "error:0A000086:SSL routines::certificate verify failed");
  EXPECT_THAT(*DescribeUnreachable(untrusted, "127.0.0.1:1", ""),
              HasSubstr("--tls_ca FILE"));

  // The gateway's own UNAVAILABLE (it answered) keeps its words.
  const ::grpc::Status broker(
      ::grpc::StatusCode::UNAVAILABLE,
      "publish: broker unreachable within the deadline (not connected yet)");
  EXPECT_FALSE(DescribeUnreachable(broker, "127.0.0.1:50051", "").has_value());
  EXPECT_EQ(DescribeRpcError(broker, "127.0.0.1:50051", "", "ack"),
            "amqpgw: ack failed: UNAVAILABLE: publish: broker unreachable "
            "within the deadline (not connected yet)\n  hint: amqpgwd cannot "
            "reach RabbitMQ now: 'amqpgw status' shows its last error");
}

TEST(SuggestTest, ClosestCommandsForWhatWasTyped) {
  EXPECT_THAT(SuggestCommands({"purge", "q"}), ElementsAre("queue purge"));
  EXPECT_THAT(SuggestCommands({"pubish", "q", "x"}), ElementsAre("publish"));
  EXPECT_THAT(SuggestCommands({"consmue", "q"}), ElementsAre("consume"));
  EXPECT_THAT(SuggestCommands({"stats"}), ElementsAre("status"));
  EXPECT_THAT(SuggestCommands({"delete", "x"}),
              ElementsAre("queue delete", "exchange delete"));
  EXPECT_THAT(SuggestCommands({"queues", "declare", "x"}),
              ElementsAre("queue declare"));
  EXPECT_THAT(SuggestCommands({"queue", "purgee", "q"}),
              ElementsAre("queue purge"));
  EXPECT_THAT(SuggestCommands({"frobnicate"}), IsEmpty());
  EXPECT_THAT(SuggestCommands({"queue", "explode"}), IsEmpty());

  EXPECT_EQ(UnknownCommandLine({"purge", "q"}),
            "amqpgw: no command 'purge'. Did you mean 'amqpgw queue purge'? "
            "Run 'amqpgw help' for every command.");
  EXPECT_EQ(UnknownCommandLine({"delete", "x"}),
            "amqpgw: no command 'delete'. Did you mean 'amqpgw queue delete' "
            "or 'amqpgw exchange delete'? Run 'amqpgw help' for every "
            "command.");
  EXPECT_EQ(UnknownCommandLine({"queue", "explode", "x"}),
            "amqpgw queue: no subcommand 'explode'. Run 'amqpgw queue --help' "
            "for its subcommands.");
}

}  // namespace
}  // namespace amqpgw::cli
