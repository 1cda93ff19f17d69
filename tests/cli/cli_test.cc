// The real amqpgw binary, run as a user would run it, against an in-process
// daemon on the shared RabbitMQ node: publishing (argument, stdin, --file,
// --lines), typed headers, consume (human, --json, client acks, Ctrl-C),
// topology, session, health, ack, usage errors and exit codes, and the
// client side of TLS and bearer tokens.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/ext/health_check_service_server_builder_option.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/support/amqp_peer.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/subprocess.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// Lines of `text` without the trailing empty one.
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

google::protobuf::Struct ParseJson(const std::string& line) {
  google::protobuf::Struct s;
  auto status = google::protobuf::util::JsonStringToMessage(line, &s);
  EXPECT_TRUE(status.ok()) << status << ": " << line;
  return s;
}

// A consume --json line as the Delivery it describes (its body is base64
// unless --text was given; "body_encoding" is ignored here).
v1::Delivery ParseDelivery(const std::string& line) {
  v1::Delivery d;
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = true;
  auto status = google::protobuf::util::JsonStringToMessage(line, &d, o);
  EXPECT_TRUE(status.ok()) << status << ": " << line;
  return d;
}

bool HasControlCharacters(const std::string& s) {
  return s.find('\r') != std::string::npos ||
         s.find('\x1b') != std::string::npos;
}

std::string WriteTempFile(const std::string& content) {
  std::string path =
      absl::StrCat(AMQPGW_TEST_TMP_DIR, "/", UniqueName("cli-in"));
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

class CliTest : public SharedGatewayTest {
 protected:
  void SetUp() override {
    auto peer = AmqpPeer::Connect(node_->port());
    ASSERT_TRUE(peer.ok()) << peer.status();
    peer_ = *std::move(peer);
    queue_ = NewQueue("cli");
  }
  void TearDown() override {
    for (const std::string& q : queues_) {
      v1::DeleteQueueRequest req;
      req.set_name(q);
      v1::DeleteQueueResponse resp;
      (void)stub().DeleteQueue(Ctx().get(), req, &resp);
    }
  }

  std::string NewQueue(const std::string& prefix) {
    std::string q = UniqueName(prefix);
    v1::DeclareQueueRequest req;
    req.set_name(q);
    req.set_durable(false);
    v1::DeclareQueueResponse resp;
    EXPECT_TRUE(stub().DeclareQueue(Ctx().get(), req, &resp).ok());
    queues_.push_back(q);
    return q;
  }

  void Publish(const std::string& queue, const std::string& body) {
    v1::PublishRequest req;
    req.set_routing_key(queue);
    req.set_body(body);
    v1::PublishResponse resp;
    ASSERT_TRUE(stub().Publish(Ctx().get(), req, &resp).ok());
  }

  v1::InspectQueueResponse Inspect(const std::string& queue) {
    v1::InspectQueueRequest req;
    req.set_name(queue);
    v1::InspectQueueResponse resp;
    EXPECT_TRUE(stub().InspectQueue(Ctx().get(), req, &resp).ok());
    return resp;
  }

  // Bodies of every message left in `queue`, in order, read with the
  // independent AMQP client.
  std::vector<std::string> Drain(const std::string& queue) {
    std::vector<std::string> bodies;
    for (;;) {
      auto m = peer_->Get(queue);
      EXPECT_TRUE(m.ok()) << m.status();
      if (!m.ok() || !m->has_value()) return bodies;
      bodies.push_back((*m)->body);
    }
  }

  static Subprocess::Options CliOptions(const std::string& server,
                                        std::vector<std::string> args,
                                        std::string stdin_data = "",
                                        std::vector<std::string> env = {}) {
    Subprocess::Options o;
    o.argv = {AMQPGW_CLI_BINARY, "--server", server};
    o.argv.insert(o.argv.end(), args.begin(), args.end());
    o.stdin_data = std::move(stdin_data);
    o.env = std::move(env);
    o.unset_env_prefixes = {"AMQPGW_"};
    return o;
  }

  // Runs amqpgw against the shared gateway.
  static ProcessResult Cli(std::vector<std::string> args,
                           std::string stdin_data = "",
                           std::vector<std::string> env = {}) {
    return RunProcess(CliOptions(gateway_->address(), std::move(args),
                                 std::move(stdin_data), std::move(env)),
                      absl::Seconds(60));
  }

  std::unique_ptr<AmqpPeer> peer_;
  std::string queue_;
  std::vector<std::string> queues_;
};

TEST_F(CliTest, PublishesFromArgumentStdinAndFile) {
  ProcessResult r = Cli({"publish", queue_, "from the argument"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // No message_id unless asked for (the gateway adds none by default).
  EXPECT_THAT(r.out,
              AllOf(StartsWith("published exchange="),
                    HasSubstr(absl::StrCat("routing_key=\"", queue_, "\""))));
  r = Cli({"publish", queue_, "with an id", "--message-id", "m-7"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("published message_id=m-7 exchange="));

  r = Cli({"publish", queue_}, "from stdin\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;

  std::string binary;
  for (int i = 0; i < 256; ++i) binary += static_cast<char>(i);
  r = Cli({"publish", queue_, "--file", WriteTempFile(binary), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  google::protobuf::Struct json = ParseJson(r.out);
  EXPECT_EQ(json.fields().at("message_id").string_value(), "") << r.out;
  EXPECT_FALSE(json.fields().at("publish_time").string_value().empty());

  // Bodies are exactly what was given: nothing added, nothing trimmed.
  EXPECT_THAT(Drain(queue_), ElementsAre("from the argument", "with an id",
                                         "from stdin\n", binary));
}

TEST_F(CliTest, PublishLinesSendsEachLineInOrder) {
  constexpr int kLines = 1234;
  std::string text;
  std::vector<std::string> expected;
  for (int i = 1; i <= kLines; ++i) {
    expected.push_back(absl::StrFormat("line %04d", i));
    absl::StrAppend(&text, expected.back(), "\n");
  }
  ProcessResult r = Cli({"publish", queue_, "--lines", "--file",
                         WriteTempFile(text), "--max-in-flight", "100"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("sent 1,234, failed 0 in"));
  EXPECT_THAT(r.out, HasSubstr("msg/s"));
  // Not a terminal: no progress bar, no control characters anywhere.
  EXPECT_FALSE(HasControlCharacters(r.out)) << r.out;
  EXPECT_FALSE(HasControlCharacters(r.err)) << r.err;
  EXPECT_EQ(Inspect(queue_).message_count(), static_cast<uint32_t>(kLines));
  EXPECT_EQ(Drain(queue_), expected);
}

TEST_F(CliTest, PublishBatchFromStdinWithJsonSummary) {
  // CRLF line endings are dropped, a last line without '\n' counts.
  ProcessResult r = Cli({"publish-batch", queue_, "--json"}, "a\nb\r\n\nc");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  google::protobuf::Struct summary = ParseJson(r.out);
  EXPECT_EQ(summary.fields().at("sent").number_value(), 4);
  EXPECT_EQ(summary.fields().at("failed").number_value(), 0);
  EXPECT_FALSE(HasControlCharacters(r.out + r.err));
  EXPECT_THAT(Drain(queue_), ElementsAre("a", "b", "", "c"));
}

TEST_F(CliTest, ProgressBarOnlyOnATerminal) {
  std::string text;
  for (int i = 0; i < 3000; ++i) absl::StrAppend(&text, i, "\n");
  std::string file = WriteTempFile(text);
  Subprocess::Options o = CliOptions(
      gateway_->address(),
      {"publish", queue_, "--lines", "--file", file, "--max-in-flight", "100"});
  o.stderr_is_terminal = true;
  ProcessResult r = RunProcess(o);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Drawn in place on stderr, then cleared; the summary stays on stdout.
  EXPECT_THAT(r.err, AllOf(HasSubstr("\r["), HasSubstr("/3,000"),
                           HasSubstr("msg/s"), HasSubstr("\x1b[K")));
  EXPECT_THAT(r.out, HasSubstr("sent 3,000, failed 0"));
  EXPECT_FALSE(HasControlCharacters(r.out));

  o.argv.push_back("--no-progress");
  r = RunProcess(o);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(HasControlCharacters(r.err)) << r.err;
  EXPECT_EQ(Inspect(queue_).message_count(), 6000u);
}

TEST_F(CliTest, FailedMessagesOfABatchAreListedAndExitOne) {
  ProcessResult r = Cli({"publish", queue_, "--lines", "--exchange",
                         UniqueName("no-such-exchange")},
                        "x\ny\nz\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("message 1: NOT_FOUND"));
  EXPECT_THAT(r.err, HasSubstr("message 3: NOT_FOUND"));
  EXPECT_THAT(r.out, HasSubstr("sent 0, failed 3"));

  r = Cli(
      {"publish", queue_, "tick", "--count", "25", "--max-in-flight", "10"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("sent 25, failed 0"));
  EXPECT_EQ(Inspect(queue_).message_count(), 25u);
}

TEST_F(CliTest, TypedHeadersAndPropertiesRoundTripThroughConsumeJson) {
  ProcessResult r = Cli({
      "publish",
      queue_,
      "typed",
      "--header",
      "s=text",
      "--header",
      "n:int=5",
      "--header",
      "neg:int=-7",
      "--header",
      "f:float=1.5",
      "--header",
      "b:bool=true",
      "--header",
      "raw:bytes=AAH/",
      "--header",
      "ts:timestamp=2024-01-02T03:04:05Z",
      "--header",
      "dec:decimal=12.34",
      "--header",
      "nothing:null=",
      "--header",
      R"(nested:json={"region":"eu","tries":[1,2]})",
      "--priority",
      "7",
      "--content-type",
      "application/json",
      "--ttl",
      "60s",
      "--transient",
      "--correlation-id",
      "c-1",
      "--type",
      "order.created",
      "--app-id",
      "cli-test",
  });
  ASSERT_EQ(r.exit_code, 0) << r.err;

  r = Cli({"consume", queue_, "--max", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 1u) << r.out;
  v1::Delivery d = ParseDelivery(lines[0]);
  EXPECT_EQ(d.body(), "typed");
  EXPECT_EQ(d.routing_key(), queue_);
  const v1::MessageProperties& p = d.properties();
  EXPECT_EQ(p.content_type(), "application/json");
  EXPECT_EQ(p.delivery_mode(), v1::TRANSIENT);
  EXPECT_EQ(p.priority(), 7u);
  EXPECT_EQ(p.expiration().seconds(), 60);
  EXPECT_EQ(p.correlation_id(), "c-1");
  EXPECT_EQ(p.type(), "order.created");
  EXPECT_EQ(p.app_id(), "cli-test");
  const auto& h = p.headers();
  EXPECT_EQ(h.at("s").string_value(), "text");
  EXPECT_EQ(h.at("n").int_value(), 5);
  EXPECT_EQ(h.at("neg").int_value(), -7);
  EXPECT_EQ(h.at("f").double_value(), 1.5);
  EXPECT_TRUE(h.at("b").bool_value());
  EXPECT_EQ(h.at("raw").bytes_value(), std::string("\x00\x01\xff", 3));
  EXPECT_EQ(h.at("ts").timestamp_value().seconds(), 1704164645);
  EXPECT_EQ(h.at("dec").decimal_value().scale(), 2u);
  EXPECT_EQ(h.at("dec").decimal_value().value(), 1234u);
  EXPECT_TRUE(h.at("nothing").has_null_value());
  const auto& nested = h.at("nested").table_value().fields();
  EXPECT_EQ(nested.at("region").string_value(), "eu");
  EXPECT_EQ(nested.at("tries").array_value().values(1).int_value(), 2);
  // In the JSON itself the types are named.
  google::protobuf::Struct raw = ParseJson(lines[0]);
  const auto& headers = raw.fields()
                            .at("properties")
                            .struct_value()
                            .fields()
                            .at("headers")
                            .struct_value()
                            .fields();
  EXPECT_EQ(
      headers.at("n").struct_value().fields().at("int_value").string_value(),
      "5");
  EXPECT_TRUE(
      headers.at("b").struct_value().fields().at("bool_value").bool_value());
}

TEST_F(CliTest, ConsumeMaxJsonPrintsOneObjectPerLine) {
  std::vector<std::string> bodies = {"one", "twö", "three\nlines", "four",
                                     std::string("\xff\x00\x7f", 3)};
  for (const auto& b : bodies) Publish(queue_, b);
  ProcessResult r = Cli({"consume", queue_, "--max", "5", "--json", "--text"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 5u) << r.out;
  for (size_t i = 0; i < lines.size(); ++i) {
    google::protobuf::Struct json = ParseJson(lines[i]);
    EXPECT_EQ(json.fields().at("delivery_id").string_value(),
              absl::StrCat(i + 1));
    EXPECT_EQ(json.fields().at("routing_key").string_value(), queue_);
    bool binary = i == 4;
    EXPECT_EQ(json.fields().at("body_encoding").string_value(),
              binary ? "base64" : "text");
    if (binary) {
      EXPECT_EQ(ParseDelivery(lines[i]).body(), bodies[i]);
    } else {
      EXPECT_EQ(json.fields().at("body").string_value(), bodies[i]);
    }
  }
  EXPECT_THAT(r.err, HasSubstr("received 5 messages"));
  // AUTO acks: nothing left, and the consumer is gone.
  EXPECT_EQ(Inspect(queue_).message_count(), 0u);
  EXPECT_TRUE(WaitFor([&] { return Inspect(queue_).consumer_count() == 0; }));

  // Without --text every body is base64.
  Publish(queue_, "plain");
  r = Cli({"consume", queue_, "--max", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  google::protobuf::Struct json = ParseJson(Lines(r.out).at(0));
  EXPECT_EQ(json.fields().at("body").string_value(), "cGxhaW4=");
  EXPECT_EQ(json.fields().at("body_encoding").string_value(), "base64");
}

TEST_F(CliTest, ConsumeShowsBodiesSafelyOnOneLineEach) {
  Publish(queue_, "plain text");
  Publish(queue_, "\x1b[2Jclear\nscreen");
  Publish(queue_, std::string("\xff\xfe\x00", 3));
  ProcessResult r = Cli({"consume", queue_, "--max", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;
  EXPECT_THAT(lines[0],
              AllOf(StartsWith(absl::StrCat("#1 ", queue_, " persistent")),
                    HasSubstr("| plain text")));
  EXPECT_THAT(lines[1], HasSubstr(R"(| "\u001b[2Jclear\nscreen")"));
  EXPECT_THAT(lines[2], HasSubstr("| <binary 3 bytes> base64://4A"));
  EXPECT_FALSE(HasControlCharacters(r.out));
}

// Stream queues: --offset in each of its forms, with client and auto acks;
// each line says the message's offset.
TEST_F(CliTest, ConsumeAStreamFromAnOffset) {
  std::string q = UniqueName("cli-stream");
  v1::DeclareQueueRequest dq;
  dq.set_name(q);
  dq.set_type(v1::STREAM);
  v1::DeclareQueueResponse dq_resp;
  ASSERT_TRUE(stub().DeclareQueue(Ctx().get(), dq, &dq_resp).ok());
  queues_.push_back(q);
  for (int i = 0; i < 5; ++i) Publish(q, absl::StrCat("m", i));

  // first, with client acks (Subscribe): all five, offsets 0..4.
  ProcessResult r = Cli({"consume", q, "--offset", "first", "--max", "5"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 5u) << r.out;
  for (int i = 0; i < 5; ++i) {
    EXPECT_THAT(lines[i], AllOf(HasSubstr(absl::StrCat(" offset=", i, " ")),
                                HasSubstr(absl::StrCat("| m", i))));
  }
  // An absolute offset, auto acks (StreamMessages), --json.
  r = Cli(
      {"consume", q, "--offset", "3", "--max", "2", "--ack", "auto", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  for (int i = 0; i < 2; ++i) {
    v1::Delivery d = ParseDelivery(lines[i]);
    EXPECT_EQ(d.stream_offset(), static_cast<uint64_t>(3 + i));
    EXPECT_EQ(d.body(), absl::StrCat("m", 3 + i));
  }
  // A time: everything since an hour ago (all five), with manual acks.
  std::string hour_ago = absl::FormatTime(
      absl::RFC3339_sec, absl::Now() - absl::Hours(1), absl::UTCTimeZone());
  r = Cli({"consume", q, "--offset", hour_ago, "--max", "5", "--ack", "none"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 5u) << r.out;
  EXPECT_THAT(lines[0], HasSubstr(" offset=0 "));
  // On a queue that is not a stream: the gateway says so, nothing is taken.
  Publish(queue_, "stays");
  r = Cli({"consume", queue_, "--offset", "next", "--max", "1"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, AllOf(HasSubstr("FAILED_PRECONDITION"),
                           HasSubstr("is not a stream queue")));
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(WaitFor([&] { return Inspect(queue_).message_count() == 1; }));
}

TEST_F(CliTest, ConsumeWithClientAcksAcksWhatItPrinted) {
  for (int i = 0; i < 3; ++i) Publish(queue_, absl::StrCat("m", i));
  ProcessResult r = Cli({"consume", queue_, "--max", "3", "--ack", "client",
                         "--prefetch", "1", "--json", "--text"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lines(r.out).size(), 3u);
  EXPECT_THAT(r.err, AllOf(HasSubstr("ack CLIENT"), HasSubstr("(acked 3)")));
  EXPECT_TRUE(WaitFor([&] {
    v1::InspectQueueResponse q = Inspect(queue_);
    return q.message_count() == 0 && q.consumer_count() == 0;
  }));
}

// consume | head -5: a pipe's reader may exit before reading what was
// written into the pipe. amqpgw acks exactly the lines it wrote and flushed,
// says how many, and everything else stays in the queue.
TEST_F(CliTest, ConsumeIntoAClosedPipeAcksExactlyWhatItPrinted) {
  constexpr int kN = 1000;
  v1::PublishBatchRequest batch;
  for (int i = 0; i < kN; ++i) {
    auto* m = batch.add_messages();
    m->set_routing_key(queue_);
    m->set_body(absl::StrCat(i, ":", std::string(200, 'x')));
  }
  v1::PublishBatchResponse resp;
  ASSERT_TRUE(stub().PublishBatch(Ctx().get(), batch, &resp).ok());
  ASSERT_EQ(resp.ok_count(), static_cast<uint32_t>(kN));

  auto run_piped = [&](const std::string& consume_args,
                       const std::string& reader) {
    Subprocess::Options o;
    o.argv = {
        "/bin/sh", "-c",
        absl::StrCat("'", AMQPGW_CLI_BINARY, "' --server ", gateway_->address(),
                     " consume ", queue_, " ", consume_args, " | ", reader)};
    o.unset_env_prefixes = {"AMQPGW_"};
    return RunProcess(o, absl::Seconds(60));
  };
  // "received N messages from Q in S s (acked M)" -> {N, M}.
  auto counts = [](const std::string& err) -> std::pair<int64_t, int64_t> {
    std::pair<int64_t, int64_t> out{-1, -1};
    for (const std::string& line : Lines(err)) {
      size_t r = line.find("received ");
      size_t a = line.find("(acked ");
      if (r == std::string::npos || a == std::string::npos) continue;
      std::string n = line.substr(r + 9, line.find(' ', r + 9) - r - 9);
      std::string m = line.substr(a + 7, line.find(')', a) - a - 7);
      absl::StrReplaceAll({{",", ""}}, &n);
      absl::StrReplaceAll({{",", ""}}, &m);
      if (!absl::SimpleAtoi(n, &out.first)) out.first = -1;
      if (!absl::SimpleAtoi(m, &out.second)) out.second = -1;
    }
    return out;
  };

  ProcessResult r = run_piped("", "head -5");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lines(r.out).size(), 5u);
  EXPECT_THAT(r.err, HasSubstr("stdout closed: received "));
  EXPECT_THAT(r.err, HasSubstr("use --max N"));
  auto [printed, acked] = counts(r.err);
  // Printed and flushed = acked; at least what head read, fewer than all.
  EXPECT_EQ(printed, acked) << r.err;
  EXPECT_GE(acked, 5) << r.err;
  EXPECT_LT(acked, kN) << r.err;
  ASSERT_TRUE(WaitFor([&] {
    v1::InspectQueueResponse q = Inspect(queue_);
    return q.consumer_count() == 0 &&
           q.message_count() == static_cast<uint32_t>(kN - acked);
  })) << "ready "
      << Inspect(queue_).message_count() << ", acked " << acked;

  // --max 7 takes exactly 7 (a reader that reads everything).
  int64_t left = kN - acked;
  r = run_piped("--max 7", "wc -l");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(absl::StripAsciiWhitespace(r.out), "7");
  EXPECT_EQ(counts(r.err), (std::pair<int64_t, int64_t>{7, 7})) << r.err;
  EXPECT_TRUE(WaitFor([&] {
    v1::InspectQueueResponse q = Inspect(queue_);
    return q.consumer_count() == 0 &&
           q.message_count() == static_cast<uint32_t>(left - 7);
  }));
}

TEST_F(CliTest, GetPeeksInOrderAndAckTakesExactlyCount) {
  for (int i = 0; i < 5; ++i) Publish(queue_, absl::StrCat("m", i));
  // A peek: printed in order, left in the queue.
  ProcessResult r = Cli({"get", queue_, "--count", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;
  for (int i = 0; i < 3; ++i) {
    EXPECT_THAT(lines[i], AllOf(StartsWith(absl::StrCat(queue_, " ")),
                                HasSubstr(absl::StrCat("| m", i))));
  }
  EXPECT_THAT(r.err, AllOf(HasSubstr("peeked at 3 messages"),
                           HasSubstr("marked redelivered")));
  EXPECT_TRUE(WaitFor([&] { return Inspect(queue_).message_count() == 5; }));

  // --ack --json: takes exactly two, the first two, now redelivered.
  r = Cli({"get", queue_, "--count", "2", "--ack", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  for (int i = 0; i < 2; ++i) {
    v1::Delivery d = ParseDelivery(lines[i]);
    EXPECT_EQ(d.body(), absl::StrCat("m", i));
    EXPECT_TRUE(d.redelivered());
    EXPECT_EQ(d.delivery_attempt(), 2u);
  }
  EXPECT_THAT(r.err, HasSubstr("took 2 messages"));
  EXPECT_TRUE(WaitFor([&] { return Inspect(queue_).message_count() == 3; }));
  EXPECT_EQ(Drain(queue_), (std::vector<std::string>{"m2", "m3", "m4"}));

  // An empty queue: nothing printed, exit 0.
  r = Cli({"get", queue_, "--count", "10"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("peeked at 0 messages"));

  // --count out of range is a usage error; a missing queue exits 1.
  r = Cli({"get", queue_, "--count", "1001"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--count"));
  std::string missing = UniqueName("missing");
  r = Cli({"get", missing});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, AllOf(HasSubstr("NOT_FOUND"),
                           HasSubstr("amqpgw queue declare " + missing)));
}

TEST_F(CliTest, CtrlCEndsConsumeCleanlyWithASummary) {
  Publish(queue_, "first");
  Publish(queue_, "second");
  std::unique_ptr<Subprocess> p =
      Subprocess::Start(CliOptions(gateway_->address(), {"consume", queue_}));
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(
      p->WaitOutput([](const std::string& out,
                       const std::string&) { return Lines(out).size() == 2; },
                    absl::Seconds(30)))
      << p->out() << p->err();
  p->Signal(SIGINT);
  ProcessResult r = p->Wait(absl::Seconds(30));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("interrupted: received 2 messages from"));
  EXPECT_THAT(r.err, Not(HasSubstr("CANCELLED")));
  EXPECT_TRUE(WaitFor([&] { return Inspect(queue_).consumer_count() == 0; }));
}

TEST_F(CliTest, ManualAcksRetryWithADelayAndDeadLetterAtMaxAttempts) {
  const std::string dead = NewQueue("cli-dead");
  queues_.push_back(absl::StrCat("amqpgw.retry.", queue_, ".200"));
  Publish(queue_, "job");
  std::unique_ptr<Subprocess> p = Subprocess::Start(CliOptions(
      gateway_->address(), {"consume", queue_, "--ack", "manual",
                            "--retry-policy", "max=2,backoff=100ms..1s",
                            "--dead-letter", ":" + dead, "--json", "--text"}));
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(
      p->WaitOutput([](const std::string& out,
                       const std::string&) { return Lines(out).size() == 1; },
                    absl::Seconds(30)))
      << p->out() << p->err();
  // "subscribed to Q (subscription ID, consumer tag ...".
  std::string err = p->err();
  size_t at = err.find("(subscription ");
  ASSERT_NE(at, std::string::npos) << err;
  at += std::string("(subscription ").size();
  std::string sub = err.substr(at, err.find(',', at) - at);
  EXPECT_THAT(Lines(p->out())[0], HasSubstr("\"delivery_attempt\":1"));

  ProcessResult r = Cli({"ack", sub, "1", "--retry", "200ms"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "retry applied to 1 delivery\n");
  ASSERT_TRUE(
      p->WaitOutput([](const std::string& out,
                       const std::string&) { return Lines(out).size() == 2; },
                    absl::Seconds(30)))
      << p->out() << p->err();
  EXPECT_THAT(Lines(p->out())[1], HasSubstr("\"delivery_attempt\":2"));
  // The second delivery is the last (max=2): a requeue dead-letters it.
  r = Cli({"ack", sub, "2", "--requeue", "--error", "no luck"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> dead_bodies = Drain(dead);
  EXPECT_EQ(dead_bodies, std::vector<std::string>{"job"});
  p->Signal(SIGINT);
  r = p->Wait(absl::Seconds(30));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(WaitFor([&] { return Inspect(queue_).consumer_count() == 0; }));
  EXPECT_EQ(Inspect(queue_).message_count(), 0u);
  EXPECT_EQ(Lines(r.out).size(), 2u);
}

TEST_F(CliTest, BadUsageExitsTwoWithUsageOnStderr) {
  std::string file = WriteTempFile("x");
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  } cases[] = {
      {{}, "missing COMMAND"},
      {{"publish"}, "expected arguments ROUTING_KEY [BODY], got 0"},
      {{"queue"}, "missing SUBCOMMAND"},
      {{"queue", "inspect", "a", "b"}, "expected arguments NAME, got 2"},
      {{"publish", queue_, "x", "--header", "n:int=abc"},
       "--header 'n:int=abc': 'abc' is not a 64-bit integer"},
      {{"publish", queue_, "x", "--header", "n:itn=5"}, "unknown type 'itn'"},
      {{"publish", queue_, "x", "--priority", "300"}, "--priority"},
      {{"publish", queue_, "x", "--file", file}, "not both"},
      {{"publish", queue_, "--lines", "body"}, "--lines reads --file or stdin"},
      {{"publish", queue_, "--file", "/nonexistent/x"}, "--file: cannot open"},
      {{"publish", queue_, "x", "--ttl", "soon"}, "--ttl"},
      {{"publish", queue_, "x", "--count", "3", "--max-in-flight", "0"},
       "--max-in-flight: '0' is not 1..1048576"},
      {{"consume", queue_, "--ack", "sometimes"}, "--ack: 'sometimes'"},
      {{"consume", queue_, "--prefetch", "0"}, "--prefetch"},
      {{"consume", queue_, "--bogus"}, "unknown flag --bogus"},
      {{"consume", queue_, "--max"}, "--max needs a value"},
      {{"consume", queue_, "--offset", "yesterday"},
       "--offset: 'yesterday' is not first, last, next, an offset"},
      {{"ack", "sub", "one"}, "'one' is not a delivery id"},
      {{"ack", "sub", "1", "--retry", "soon"}, "--retry: 'soon' is not a"},
      {{"ack", "sub", "1", "--retry", "1s", "--reject"}, "exclude each other"},
      {{"consume", queue_, "--retry-policy", "max=x"}, "--retry-policy: max:"},
      {{"consume", queue_, "--retry-policy", "tries=3"},
       "'tries' is not max, backoff, multiplier or jitter"},
      {{"consume", queue_, "--retry-policy", "backoff=1s..later"},
       "--retry-policy: backoff: 'later'"},
      {{"status", "--timeout", "soon"}, "--timeout"},
      {{"status", "--tls_cert", file}, "--tls_cert and --tls_key go together"},
      {{"health", "--tls_ca", "/nonexistent/ca.pem"}, "--tls_ca: cannot read"},
      {{"health", "--tls_ca", file}, "is not a PEM file"},
      {{"health", "--tls_server_name", "gw"}, "needs TLS"},
      {{"exchange", "declare", "e", "--type", "sideways"}, "--type"},
  };
  for (const Case& c : cases) {
    ProcessResult r = Cli(c.args);
    EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(c.args, " ") << "\n" << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.expect)) << absl::StrJoin(c.args, " ");
    EXPECT_THAT(r.err, HasSubstr("Usage:")) << absl::StrJoin(c.args, " ");
    EXPECT_EQ(r.out, "") << absl::StrJoin(c.args, " ");
  }
  // Nothing was sent.
  EXPECT_EQ(Inspect(queue_).message_count(), 0u);
}

TEST_F(CliTest, UnknownCommandsGetOneLineWithTheClosest) {
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  } cases[] = {
      {{"purge", queue_}, "Did you mean 'amqpgw queue purge'?"},
      {{"pubish", queue_, "x"}, "Did you mean 'amqpgw publish'?"},
      {{"delete", queue_},
       "Did you mean 'amqpgw queue delete' or 'amqpgw exchange delete'?"},
      {{"frobnicate"}, "amqpgw: no command 'frobnicate'."},
      {{"help", "frobnicate"}, "amqpgw: no command 'frobnicate'."},
      {{"queue", "purgee", queue_},
       "amqpgw queue: no subcommand 'purgee'. Did you mean 'amqpgw queue "
       "purge'?"},
      {{"queue", "explode", "x"}, "Run 'amqpgw queue --help'"},
  };
  for (const Case& c : cases) {
    ProcessResult r = Cli(c.args);
    const std::string what = absl::StrJoin(c.args, " ");
    EXPECT_EQ(r.exit_code, 2) << what << "\n" << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.expect)) << what;
    EXPECT_THAT(r.err, HasSubstr("help' for")) << what;
    // One line: not the whole help.
    EXPECT_EQ(Lines(r.err).size(), 1u) << what << "\n" << r.err;
    EXPECT_EQ(r.out, "") << what;
  }
  ProcessResult r = Cli({"frobnicate"});
  EXPECT_THAT(r.err, HasSubstr("Run 'amqpgw help' for every command."));
  // Nothing was purged or deleted.
  Publish(queue_, "still here");
  EXPECT_EQ(Cli({"purge", queue_}).exit_code, 2);
  EXPECT_EQ(Inspect(queue_).message_count(), 1u);
}

TEST_F(CliTest, GrpcErrorsExitOneWithTheCodeNameAndTheCliWayOut) {
  const std::string absent = UniqueName("absent");
  ProcessResult r = Cli({"queue", "inspect", absent});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, StartsWith("amqpgw: NOT_FOUND: "));
  EXPECT_THAT(r.err, HasSubstr("\n  hint: declare it first: amqpgw queue "
                               "declare " +
                               absent + "\n"));

  r = Cli({"publish", "rk", "x", "--exchange", absent});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, StartsWith("amqpgw: NOT_FOUND: "));
  EXPECT_THAT(r.err, HasSubstr("hint: declare it first: amqpgw exchange "
                               "declare " +
                               absent));

  const std::string nobody = UniqueName("nobody-bound");
  r = Cli({"publish", nobody, "x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, AllOf(StartsWith("amqpgw: FAILED_PRECONDITION: "),
                           HasSubstr("NO_ROUTE"),
                           HasSubstr("hint: declare the queue (amqpgw queue "
                                     "declare " +
                                     nobody + ")"),
                           HasSubstr("--allow-unroutable")));

  // A batch gives the hint once, after the failures.
  r = Cli({"publish", "rk", "--lines", "--exchange", absent}, "a\nb\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("message 2: NOT_FOUND"));
  EXPECT_THAT(r.err, HasSubstr("  hint: declare it first: amqpgw exchange "
                               "declare " +
                               absent));
  EXPECT_EQ(r.err.find("hint:"), r.err.rfind("hint:")) << r.err;

  r = Cli({"consume", absent, "--max", "1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, StartsWith("amqpgw: NOT_FOUND: "));
  // It never ran: no "received 0 messages" summary.
  EXPECT_THAT(r.err, Not(HasSubstr("received")));
  EXPECT_THAT(r.err, HasSubstr("amqpgw queue declare " + absent));

  r = Cli({"exchange", "declare", "amq.mine"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, StartsWith("amqpgw: PERMISSION_DENIED: "));
  EXPECT_THAT(r.err, HasSubstr("hint: names starting with amq. belong to the "
                               "broker"));

  // Broker errors from the broker's own words: a queue that exists with
  // other settings.
  r = Cli({"queue", "declare", queue_, "--transient", "--arg",
           "x-max-length:int=5"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, AllOf(StartsWith("amqpgw: FAILED_PRECONDITION: "),
                           HasSubstr("hint: queue " + queue_ +
                                     " already exists with another "
                                     "'x-max-length'"),
                           HasSubstr("amqpgw queue delete " + queue_)));

  r = Cli({"ack", "nosuch-subscription", "1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("hint: subscription ids come from a running "
                               "'amqpgw consume QUEUE --ack client'"));
}

TEST_F(CliTest, NoDaemonThereIsSaidInPlainWords) {
  for (std::vector<std::string> args :
       {std::vector<std::string>{"status"},
        std::vector<std::string>{"publish", queue_, "x"},
        std::vector<std::string>{"consume", queue_, "--max", "1"}}) {
    ProcessResult r = RunProcess(CliOptions("127.0.0.1:1", args));
    const std::string what = absl::StrJoin(args, " ");
    EXPECT_EQ(r.exit_code, 1) << what;
    EXPECT_THAT(r.err, StartsWith("amqpgw: UNAVAILABLE: nothing answers at "
                                  "127.0.0.1:1 (from --server): connection "
                                  "refused\n"))
        << what;
    EXPECT_THAT(r.err, AllOf(HasSubstr("is amqpgwd running?"),
                             HasSubstr("--server HOST:PORT"),
                             HasSubstr("AMQPGW_SERVER")))
        << what;
    // Not gRPC's transport text, nor a summary of a consume that never ran.
    EXPECT_THAT(r.err,
                AllOf(Not(HasSubstr("failed to connect to all")),
                      Not(HasSubstr("ipv4:")), Not(HasSubstr("received"))))
        << what;
  }
  // A stream that never reached a gateway says so.
  ProcessResult r = RunProcess(
      CliOptions("127.0.0.1:1", {"publish", queue_, "--lines"}, "a\nb\n"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("nothing answers at 127.0.0.1:1"));
  EXPECT_THAT(r.err, HasSubstr("the stream never reached the gateway: "
                               "nothing was published"));

  // The address from the environment, or the default, is named as such.
  Subprocess::Options o;
  o.argv = {AMQPGW_CLI_BINARY, "status"};
  o.unset_env_prefixes = {"AMQPGW_"};
  o.env = {"AMQPGW_SERVER=127.0.0.1:1"};
  r = RunProcess(o);
  EXPECT_THAT(r.err, HasSubstr("nothing answers at 127.0.0.1:1 (from "
                               "AMQPGW_SERVER)"));
  // Something that is not gRPC: RabbitMQ's AMQP port.
  r = RunProcess(CliOptions(absl::StrCat("127.0.0.1:", node_->port()),
                            {"status", "--timeout", "10s"}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, AllOf(StartsWith("amqpgw: UNAVAILABLE: no gRPC server "
                                      "answers at 127.0.0.1:"),
                           HasSubstr("its --listen")));
}

TEST_F(CliTest, HelpListsEveryCommandWithExamples) {
  ProcessResult r = Cli({"help"});
  ASSERT_EQ(r.exit_code, 0);
  const std::vector<std::string> commands = {
      "connect",          "disconnect",      "status",       "health",
      "queue declare",    "queue inspect",   "queue delete", "queue purge",
      "exchange declare", "exchange delete", "bind",         "unbind",
      "queue list",       "exchange list",   "binding list", "consumer list",
      "publish",          "publish-batch",   "consume",      "ack"};
  for (const std::string& c : commands) {
    EXPECT_THAT(r.out, HasSubstr("\n  " + c + " ")) << c;
    std::vector<std::string> args = absl::StrSplit(c, ' ');
    args.push_back("--help");
    ProcessResult h = Cli(args);
    EXPECT_EQ(h.exit_code, 0) << c;
    EXPECT_THAT(h.out, AllOf(StartsWith("Usage: amqpgw " + c),
                             HasSubstr("Examples:\n  amqpgw")))
        << c;
    ProcessResult h2 = Cli({"help", c});
    EXPECT_EQ(h2.out, h.out) << c;
  }
  EXPECT_THAT(r.out, HasSubstr("Exit codes: 0 success; 1 a gRPC error"));
  r = Cli({"version"});
  EXPECT_THAT(r.out, StartsWith("amqpgw "));
}

TEST_F(CliTest, TopologyCommands) {
  std::string exchange = UniqueName("cli-x");
  std::string q = UniqueName("cli-bound");
  queues_.push_back(q);
  ProcessResult r =
      Cli({"exchange", "declare", exchange, "--type", "topic", "--transient"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Cli({"queue", "declare", q, "--transient", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ParseJson(r.out).fields().at("name").string_value(), q);
  // Global flags may come anywhere, and "_" works like "-".
  r = Cli({"--json", "bind", q, exchange, "order.*"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "{}\n");
  r = Cli({"publish", "order.created", "hi", "--exchange", exchange});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Cli({"queue", "inspect", q});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The AMQP counts, then what the management API adds.
  EXPECT_THAT(
      Lines(r.out),
      ElementsAre(::testing::MatchesRegex("queue +messages +consumers"),
                  ::testing::MatchesRegex(q + " +1 +0"), "",
                  ::testing::MatchesRegex("type +unacked +in/s +out/s +state"),
                  ::testing::MatchesRegex("classic +0 +.*")));
  r = Cli({"queue", "purge", q});
  EXPECT_EQ(r.out, "purged 1 message from " + q + "\n");
  r = Cli({"unbind", q, exchange, "order.*"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Cli({"publish", "order.created", "hi", "--exchange", exchange});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("NO_ROUTE"));
  r = Cli({"publish", "order.created", "hi", "--exchange", exchange,
           "--allow_unroutable"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = Cli({"queue", "delete", q, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(ParseJson(r.out).fields().at("existed").bool_value()) << r.out;
  r = Cli({"queue", "inspect", q});
  EXPECT_EQ(r.exit_code, 1);
  r = Cli({"exchange", "delete", exchange});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "deleted exchange " + exchange + "\n");

  // Typed arguments reach the broker: a queue of at most one message.
  std::string limited = UniqueName("cli-limited");
  queues_.push_back(limited);
  r = Cli({"queue", "declare", limited, "--transient", "--arg",
           "x-max-length:int=1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Publish(limited, "a");
  Publish(limited, "b");
  EXPECT_EQ(Inspect(limited).message_count(), 1u);
  EXPECT_THAT(Drain(limited), ElementsAre("b"));
}

TEST_F(CliTest, AckAcknowledgesDeliveriesOfAnOpenClientStream) {
  Publish(queue_, "a");
  Publish(queue_, "b");
  v1::StreamMessagesRequest req;
  req.set_queue(queue_);
  req.set_ack_mode(v1::StreamMessagesRequest::CLIENT);
  auto ctx = Ctx(absl::Seconds(60));
  auto reader = stub().StreamMessages(ctx.get(), req);
  v1::StreamMessagesResponse ev;
  std::string sub;
  int deliveries = 0;
  while (deliveries < 2 && reader->Read(&ev)) {
    if (ev.has_subscribed()) sub = ev.subscribed().subscription_id();
    if (ev.has_delivery()) ++deliveries;
  }
  ASSERT_EQ(deliveries, 2);

  ProcessResult r = Cli({"ack", sub, "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ParseJson(r.out).fields().at("applied_count").number_value(), 1);
  r = Cli({"ack", sub, "1", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, AllOf(HasSubstr("ack applied to 1 delivery;"),
                           HasSubstr("stale (delivered before a reconnect, or "
                                     "already acknowledged): 1")));
  r = Cli({"ack", sub, "99"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, StartsWith("amqpgw: INVALID_ARGUMENT: "));
  ctx->TryCancel();
  (void)reader->Finish();
  // Both were acknowledged: nothing comes back when the stream ends.
  EXPECT_TRUE(WaitFor([&] { return Inspect(queue_).consumer_count() == 0; }));
  EXPECT_EQ(Inspect(queue_).message_count(), 0u);
}

TEST_F(CliTest, HealthExitCodes) {
  ProcessResult r = Cli({"health"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");
  r = Cli({"health", "--service", "amqpgw.v1.Gateway", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"status\":\"SERVING\"}\n");
  r = Cli({"health", "--service", "no.such.Service"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, StartsWith("amqpgw: NOT_FOUND: "));

  // A daemon whose broker is unreachable is up but NOT_SERVING.
  auto lonely = TestGateway::Start("amqp://guest:guest@127.0.0.1:1/");
  r = RunProcess(CliOptions(lonely->address(), {"health"}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "NOT_SERVING\n");
  EXPECT_THAT(r.err, HasSubstr("hint: amqpgwd runs, but its broker session is "
                               "not READY: 'amqpgw status' says why"));
  // Its status says what is wrong, in words a RabbitMQ user knows.
  ASSERT_TRUE(WaitFor([&] {
    return !GatewayStatus(*lonely).connection().last_error().empty();
  }));
  r = RunProcess(CliOptions(lonely->address(), {"status"}));
  EXPECT_THAT(r.out, AllOf(HasSubstr(" connection: the TCP connection to "
                                     "127.0.0.1:1 failed"),
                           HasSubstr("is RabbitMQ listening on that port?")));
  r = RunProcess(CliOptions(lonely->address(), {"status", "--json"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::string state = ParseJson(r.out)
                          .fields()
                          .at("connection")
                          .struct_value()
                          .fields()
                          .at("state")
                          .string_value();
  EXPECT_THAT(state, ::testing::AnyOf("CONNECTING", "RECONNECTING"));
}

TEST_F(CliTest, DisconnectConnectAndStatus) {
  // A gateway of its own: disconnecting must not disturb the other tests.
  auto g = TestGateway::Start(node_->uri());
  ASSERT_TRUE(g->WaitReady());
  auto cli = [&](std::vector<std::string> args) {
    return RunProcess(CliOptions(g->address(), std::move(args)));
  };
  ProcessResult r = cli({"status"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::ContainsRegex("state +READY"));
  EXPECT_THAT(r.out, HasSubstr("RabbitMQ"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("published +confirmed"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex(
                         "msg/s +published +confirmed +delivered +acked\n"
                         "last 10 s +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+\n"
                         "last 1 min +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+\n"));

  r = cli({"disconnect", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"state\":\"DISCONNECTED\""));
  r = cli({"publish", queue_, "x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, StartsWith("amqpgw: FAILED_PRECONDITION: "));
  EXPECT_THAT(r.err, HasSubstr("\n  hint: run 'amqpgw connect'"));
  r = cli({"health"});
  EXPECT_EQ(r.exit_code, 1);

  r = cli({"connect", "--wait", "30s"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::ContainsRegex("state +READY"));
  r = cli({"health"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = cli({"status", "--json"});
  google::protobuf::Struct status = ParseJson(r.out);
  EXPECT_EQ(status.fields().at("version").string_value(), AMQPGW_VERSION);
  EXPECT_TRUE(status.fields()
                  .at("counters")
                  .struct_value()
                  .fields()
                  .count("published"));
  EXPECT_TRUE(
      status.fields().at("rates_1m").struct_value().fields().count("acked"));
  // Connect after Disconnect is a fresh start, not a reconnect after a loss.
  EXPECT_EQ(GatewayStatus(*g).connection().reconnects(), 0u);
  EXPECT_EQ(GatewayStatus(*g).counters().reconnects(), 0u);
  EXPECT_THAT(cli({"status"}).out, ::testing::ContainsRegex("reconnects +0"));
}

TEST_F(CliTest, DeletesSayWhetherItExisted) {
  const std::string q = UniqueName("cli-del");
  const std::string x = UniqueName("cli-delx");
  // Missing: said on stderr, exit 1, and nothing gets created.
  ProcessResult r = Cli({"queue", "delete", q});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, StartsWith("amqpgw: queue " + q + " did not exist\n"));
  EXPECT_THAT(r.err, HasSubstr("--if-exists"));
  r = Cli({"exchange", "delete", x});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, StartsWith("amqpgw: exchange " + x + " did not exist\n"));
  // --if-exists: the same words on stdout, exit 0.
  r = Cli({"queue", "delete", q, "--if-exists"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "queue " + q + " did not exist\n");
  r = Cli({"exchange", "delete", x, "--if-exists"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "exchange " + x + " did not exist\n");
  // --json carries it too.
  r = Cli({"queue", "delete", q, "--json", "--if-exists"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(ParseJson(r.out).fields().at("existed").bool_value()) << r.out;
  EXPECT_EQ(Cli({"queue", "inspect", q}).exit_code, 1);

  // Present: deleted, with its messages counted.
  queues_.push_back(q);
  ASSERT_EQ(Cli({"queue", "declare", q, "--transient"}).exit_code, 0);
  Publish(q, "one");
  r = Cli({"queue", "delete", q});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "deleted queue " + q + " (1 message)\n");
  EXPECT_EQ(Cli({"queue", "inspect", q}).exit_code, 1);
  ASSERT_EQ(Cli({"exchange", "declare", x, "--transient"}).exit_code, 0);
  r = Cli({"exchange", "delete", x, "--if-exists"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "deleted exchange " + x + "\n");
  r = Cli({"exchange", "delete", x});
  EXPECT_EQ(r.exit_code, 1);

  // A condition not met fails before anything is deleted, with the way out.
  ASSERT_EQ(Cli({"queue", "declare", q, "--transient"}).exit_code, 0);
  Publish(q, "two");
  r = Cli({"queue", "delete", q, "--if-empty"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, AllOf(StartsWith("amqpgw: FAILED_PRECONDITION: "),
                           HasSubstr("hint: it holds messages; without "
                                     "--if-empty")));
  EXPECT_EQ(Inspect(q).message_count(), 1u);
}

TEST_F(CliTest, ListsQueuesExchangesBindingsAndConsumers) {
  const std::string prefix = UniqueName("cli-list");
  const std::string q = prefix + "-q";
  const std::string x = prefix + "-x";
  queues_.push_back(q);
  ASSERT_EQ(Cli({"queue", "declare", q, "--transient"}).exit_code, 0);
  ASSERT_EQ(Cli({"exchange", "declare", x, "--type", "fanout", "--transient"})
                .exit_code,
            0);
  ASSERT_EQ(Cli({"bind", q, x}).exit_code, 0);
  for (int i = 0; i < 3; ++i) Publish(q, "m");
  // Another client consumes, holding 2 unacknowledged.
  auto holder = AmqpPeer::Connect(node_->port(), "cli-list holder");
  ASSERT_TRUE(holder.ok()) << holder.status();
  ASSERT_TRUE((*holder)->Consume(q, 2, "holder-tag").ok());

  // The broker's statistics catch up within a few seconds.
  ProcessResult r;
  EXPECT_TRUE(WaitFor([&] {
    r = Cli({"queue", "list", "--prefix", prefix});
    return r.exit_code == 0 &&
           ::testing::Matches(::testing::ContainsRegex(
               q + " +classic +1 +2 +1 +[0-9.]+ +[0-9.]+\n"))(r.out);
  })) << r.out
      << r.err;
  EXPECT_THAT(Lines(r.out),
              ElementsAre(::testing::MatchesRegex(
                              "name +type +ready +unacked +consumers +in/s "
                              "+out/s"),
                          ::testing::StartsWith(q + " "),
                          ::testing::MatchesRegex("1 of [0-9]+ queues")));
  // --filter takes a regular expression; --json one QueueInfo per line.
  r = Cli({"queue", "list", "--filter", "^" + prefix + "-[q]$", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(Lines(r.out).size(), 1u) << r.out;
  v1::QueueInfo info;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &info).ok())
      << r.out;
  EXPECT_EQ(info.name(), q);
  EXPECT_EQ(info.total(), 3u);

  r = Cli({"exchange", "list", "--prefix", x});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(
      Lines(r.out),
      ElementsAre(::testing::MatchesRegex("name +type +durable +in/s +out/s"),
                  ::testing::MatchesRegex(x + " +fanout +no +.*"),
                  ::testing::MatchesRegex("1 of [0-9]+ exchanges")));

  r = Cli({"binding", "list", "--queue", q});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(
      Lines(r.out),
      ElementsAre(
          ::testing::MatchesRegex("exchange +destination +kind +routing key "
                                  "+arguments"),
          ::testing::MatchesRegex("\\(default\\) +" + q + " +queue +" + q),
          ::testing::MatchesRegex(x + " +" + q + " +queue *"), "2 bindings"));
  r = Cli({"binding", "list", "--exchange", x, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ParseJson(r.out).fields().at("destination").string_value(), q);

  r = Cli({"consumer", "list", q});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(Lines(r.out),
              ElementsAre(::testing::MatchesRegex(
                              "tag +connection +user +prefetch +ack +gateway"),
                          ::testing::MatchesRegex(
                              "holder-tag +cli-list holder +guest +2 +manual"),
                          "1 consumers"));

  // Absent objects, and flags that do not go together.
  r = Cli({"consumer", "list", q + "-absent"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, StartsWith("amqpgw: NOT_FOUND: queue '" + q));
  r = Cli({"binding", "list", "--queue", q, "--exchange", x});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--queue or --exchange, not both"));
  r = Cli({"queue", "list", "--filter", "a", "--prefix", "b"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--filter or --prefix, not both"));
  EXPECT_EQ(Cli({"consumer", "list"}).exit_code, 2);
  holder->reset();
  (void)Cli({"exchange", "delete", x});
}

TEST_F(CliTest, WatchRedrawsOnATerminalAndPrintsRoundsIntoAPipe) {
  // Into a pipe: plain rounds, each after a "--- HH:MM:SS" line.
  Subprocess::Options o = CliOptions(
      gateway_->address(), {"queue", "list", "--watch", "--prefix", queue_});
  auto watch = Subprocess::Start(o);
  ASSERT_NE(watch, nullptr);
  EXPECT_TRUE(watch->WaitOutput(
      [](const std::string& out, const std::string&) {
        // Two rounds, the second complete.
        size_t first = out.find("--- ");
        size_t second = first == std::string::npos
                            ? std::string::npos
                            : out.find("--- ", first + 1);
        return second != std::string::npos &&
               out.find("queues\n", second) != std::string::npos;
      },
      absl::Seconds(20)))
      << watch->out() << watch->err();
  EXPECT_FALSE(HasControlCharacters(watch->out()));
  EXPECT_THAT(watch->out(), ::testing::ContainsRegex(
                                "--- [0-9:]{8}\nname +type +ready[^\n]*\n" +
                                queue_ + " +classic"));
  watch->Signal(SIGINT);
  watch->Wait(absl::Seconds(10));

  // On a terminal: each round homes the cursor and clears the screen.
  o = CliOptions(gateway_->address(), {"status", "--watch"});
  o.stdout_is_terminal = true;
  watch = Subprocess::Start(o);
  ASSERT_NE(watch, nullptr);
  const std::string clear = "\x1b[H\x1b[2J";
  EXPECT_TRUE(watch->WaitOutput(
      [&](const std::string& out, const std::string&) {
        size_t first = out.find(clear);
        return first != std::string::npos &&
               out.find(clear, first + 1) != std::string::npos;
      },
      absl::Seconds(20)))
      << watch->out() << watch->err();
  EXPECT_THAT(watch->out(),
              AllOf(HasSubstr("amqpgw status  "), HasSubstr("Ctrl-C stops"),
                    ::testing::ContainsRegex("state +READY"),
                    ::testing::ContainsRegex("listing +AVAILABLE at http")));
  watch->Signal(SIGINT);
  ProcessResult end = watch->Wait(absl::Seconds(10));
  EXPECT_FALSE(end.timed_out);
}

TEST_F(CliTest, ServerFromTheEnvironment) {
  Subprocess::Options o;
  o.argv = {AMQPGW_CLI_BINARY, "queue", "inspect", queue_};
  o.unset_env_prefixes = {"AMQPGW_"};
  o.env = {"AMQPGW_SERVER=" + gateway_->address()};
  ProcessResult r = RunProcess(o);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // The flag wins over the environment.
  o.argv = {AMQPGW_CLI_BINARY, "queue",      "inspect", queue_,
            "--server",        "127.0.0.1:1"};
  r = RunProcess(o);
  EXPECT_THAT(r.err, HasSubstr("UNAVAILABLE"));
}

// The node's Erlang VM stopped (SIGSTOP) or resumed (SIGCONT): frozen, its
// sockets stay open and the kernel still accepts TCP connections, but
// nothing answers, as with a broker that hangs.
void SignalNode(const BrokerNode& node, int sig) {
  std::ifstream in(node.dir() + "/rabbitmq.pid");
  pid_t pid = 0;
  in >> pid;
  ASSERT_GT(pid, 0) << node.dir();
  ASSERT_EQ(kill(pid, sig), 0);
}

TEST(CliFrozenBrokerTest, StatusSaysTheBrokerDidNotAnswerAndAtWhichStep) {
  auto node = BrokerNode::StartPrivate("cli-frozen");
  ASSERT_TRUE(node.ok()) << node.status();
  // Resumed and stopped whatever happens below.
  struct Cleanup {
    BrokerNode& node;
    ~Cleanup() {
      SignalNode(node, SIGCONT);
      (void)node.Stop();
    }
  } cleanup{*node};
  auto g = TestGateway::Start(node->uri(), [](daemon::Options& o) {
    o.heartbeat = absl::Seconds(2);
    o.connect_timeout = absl::Seconds(1);
    o.reconnect_max_delay = absl::Milliseconds(500);
  });
  ASSERT_TRUE(g->WaitReady());
  auto cli = [&](std::vector<std::string> args) {
    Subprocess::Options o;
    o.argv = {AMQPGW_CLI_BINARY, "--server", g->address()};
    o.argv.insert(o.argv.end(), args.begin(), args.end());
    o.unset_env_prefixes = {"AMQPGW_"};
    return RunProcess(o, absl::Seconds(60));
  };

  SignalNode(*node, SIGSTOP);
  // Heartbeats notice the loss; then every attempt gets a TCP connection
  // from the kernel and no AMQP answer.
  ASSERT_TRUE(WaitFor(
      [&] {
        return GatewayStatus(*g).connection().last_error().find(
                   "did not answer") != std::string::npos;
      },
      absl::Seconds(60)))
      << GatewayStatus(*g).connection().last_error();
  ProcessResult r = cli({"status"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::ContainsRegex("state +RECONNECTING"));
  EXPECT_THAT(r.out, AllOf(HasSubstr("did not answer within 1s during the "
                                     "AMQP handshake"),
                           HasSubstr("accepted the TCP connection"),
                           Not(HasSubstr("login"))))
      << r.out;
  // A call waits for the broker until its deadline, then fails with a way
  // out: the gateway's reason (UNAVAILABLE, "did not answer") and 'amqpgw
  // status', or, when the gateway's answer comes too late (its connection
  // thread is inside a connection attempt of up to --connect_timeout),
  // DEADLINE_EXCEEDED and --timeout.
  r = cli({"queue", "declare", UniqueName("frozen"), "--timeout", "3s"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, ::testing::AnyOf(
                         AllOf(StartsWith("amqpgw: UNAVAILABLE: "),
                               HasSubstr("did not answer"),
                               HasSubstr("hint: amqpgwd cannot reach RabbitMQ "
                                         "now: 'amqpgw status'")),
                         AllOf(StartsWith("amqpgw: DEADLINE_EXCEEDED: "),
                               HasSubstr("hint: no answer within --timeout"))))
      << r.err;

  SignalNode(*node, SIGCONT);
  ASSERT_TRUE(g->WaitReady(absl::Seconds(60)));
  // The loss counts as a reconnect ...
  const uint64_t reconnects = GatewayStatus(*g).connection().reconnects();
  EXPECT_GE(reconnects, 1u);
  EXPECT_EQ(GatewayStatus(*g).counters().reconnects(), reconnects);
  // ... Disconnect and Connect do not.
  ASSERT_EQ(cli({"disconnect"}).exit_code, 0);
  r = cli({"connect", "--wait", "30s"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(GatewayStatus(*g).connection().reconnects(), reconnects);
  EXPECT_EQ(GatewayStatus(*g).counters().reconnects(), reconnects);
}

// --- scripts/run.sh as a newcomer runs it. ---

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

// The words after --target in the `cmake --build` line of `log`.
std::vector<std::string> BuildTargets(const std::string& log) {
  for (const std::string& line : Lines(log)) {
    std::vector<std::string> words = absl::StrSplit(line, ' ');
    if (words.empty() || words[0] != "--build") continue;
    std::vector<std::string> targets;
    bool in = false;
    for (const std::string& w : words) {
      if (absl::StartsWith(w, "-")) {
        in = w == "--target";
        continue;
      }
      if (in) targets.push_back(w);
    }
    return targets;
  }
  return {};
}

// On a fresh clone, scripts/run.sh must build the CLI its banner shows as
// well as the daemon (checked through the targets it asks cmake for, so the
// test stays cheap), and the banner's lines must work as printed.
TEST(RunShTest, BuildsDaemonAndCliAndItsBannerLinesWork) {
  BrokerNode node = BrokerNode::Shared();
  const std::string dir =
      absl::StrCat(AMQPGW_TEST_TMP_DIR, "/", UniqueName("run-sh"));
  ASSERT_TRUE(RunCommand("mkdir -p " + dir).ok());
  // A cmake on PATH that notes what run.sh asks for, then runs the real one.
  {
    std::ofstream wrapper(dir + "/cmake");
    wrapper << "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '" << dir
            << "/cmake.log'\nexec '" << AMQPGW_CMAKE_COMMAND << "' \"$@\"\n";
  }
  ASSERT_EQ(chmod((dir + "/cmake").c_str(), 0755), 0);
  const char* path = std::getenv("PATH");
  Subprocess::Options o;
  o.argv = {AMQPGW_SOURCE_DIR "/scripts/run.sh", "--build-only"};
  o.unset_env_prefixes = {"AMQPGW_"};
  o.env = {absl::StrCat("PATH=", dir, ":", path != nullptr ? path : ""),
           "AMQPGW_BUILD_DIR=" AMQPGW_BUILD_ROOT};
  o.cwd = dir;
  ProcessResult r = RunProcess(o, absl::Minutes(20));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("run: built " AMQPGW_BUILD_ROOT
                               "/server/amqpgwd and " AMQPGW_BUILD_ROOT
                               "/client/amqpgw"));
  std::ifstream log_file(dir + "/cmake.log");
  std::stringstream log;
  log << log_file.rdbuf();
  EXPECT_THAT(BuildTargets(log.str()),
              ::testing::IsSupersetOf({"amqpgwd", "amqpgw"}))
      << log.str();

  // Started for real, on the shared node, stopped with SIGTERM.
  const int port = FreeLoopbackPort();
  ASSERT_GT(port, 0);
  const std::string server = absl::StrCat("127.0.0.1:", port);
  o.argv = {AMQPGW_SOURCE_DIR "/scripts/run.sh", "--listen=" + server,
            "--http_listen="};
  o.env = {"AMQPGW_BUILD_DIR=" AMQPGW_BUILD_ROOT,
           "AMQPGW_BROKER=" + node.uri()};
  std::unique_ptr<Subprocess> run = Subprocess::Start(o);
  ASSERT_NE(run, nullptr);
  ASSERT_TRUE(run->WaitOutput(
      [](const std::string&, const std::string& err) {
        return err.find("session: READY") != std::string::npos;
      },
      absl::Minutes(10)))
      << run->err();
  const std::string banner = run->err();
  EXPECT_THAT(banner,
              HasSubstr("CLI:     " AMQPGW_BUILD_ROOT "/client/amqpgw"));
  EXPECT_THAT(banner, Not(HasSubstr("grpcurl")));
  // The lines after "Try it", up to the blank line, then the reflection
  // example.
  std::vector<std::string> tries;
  std::string reflection;
  bool in_tries = false;
  for (const std::string& line : Lines(banner)) {
    std::string trimmed(absl::StripLeadingAsciiWhitespace(line));
    if (absl::StartsWith(trimmed, "Try it")) {
      in_tries = true;
    } else if (in_tries && trimmed.empty()) {
      in_tries = false;
    } else if (in_tries) {
      tries.push_back(trimmed);
    } else if (absl::StrContains(trimmed, "buf curl")) {
      reflection = trimmed;
    }
  }
  ASSERT_EQ(tries.size(), 3u) << banner;
  EXPECT_THAT(tries[0], HasSubstr("queue declare hello"));
  EXPECT_THAT(tries[1], HasSubstr("publish hello"));
  EXPECT_THAT(tries[2], HasSubstr("consume hello --max 1"));
  auto shell = [&](const std::string& line, const std::string& cwd,
                   std::vector<std::string> env) {
    Subprocess::Options sh;
    sh.argv = {"/bin/sh", "-c", line};
    sh.cwd = cwd;
    sh.unset_env_prefixes = {"AMQPGW_"};
    sh.env = std::move(env);
    return RunProcess(sh, absl::Seconds(60));
  };
  const std::string cli = AMQPGW_CLI_BINARY " --server " + server;
  (void)shell(cli + " queue delete hello --if-exists", dir, {});
  // As printed, from any folder.
  for (const std::string& line : tries) {
    ProcessResult t = shell(line, dir, {});
    EXPECT_EQ(t.exit_code, 0) << line << "\n" << t.out << t.err;
    if (absl::StrContains(line, "consume")) {
      EXPECT_THAT(t.out, HasSubstr("| Hello, RabbitMQ")) << t.out;
    }
  }
  (void)shell(cli + " queue delete hello --if-exists", dir, {});
  // The reflection example, offline, with the npm packages of the tests.
  const std::string tmp = dir + "/npm";
  ProcessResult b =
      shell(reflection, AMQPGW_SOURCE_DIR "/tests/polyglot/node",
            {"npm_config_offline=true", "npm_config_cache=" + tmp + "/cache",
             "BUF_CACHE_DIR=" + tmp + "/buf", "XDG_CONFIG_HOME=" + tmp});
  EXPECT_EQ(b.exit_code, 0) << reflection << "\n" << b.err;
  EXPECT_THAT(b.out, HasSubstr("amqpgw.v1.Gateway/Publish")) << reflection;

  // SIGTERM to run.sh (as a supervisor sends it) reaches the daemon, and its
  // log says it is shutting down.
  run->Signal(SIGTERM);
  ProcessResult end = run->Wait(absl::Seconds(60));
  EXPECT_EQ(end.exit_code, 0) << run->err();
  EXPECT_THAT(run->err(), HasSubstr("] stopped"));
  EXPECT_THAT(run->err(), HasSubstr("(the daemon is shutting down)"));
  EXPECT_THAT(run->err(), Not(HasSubstr("Disconnect call")));
}

// --- TLS and bearer tokens, against small gRPC servers of the test's own
// (the daemon does not speak TLS yet). ---

// grpc.health.v1 that answers SERVING only to "authorization: Bearer s3cret".
class TokenHealth final : public ::grpc::health::v1::Health::Service {
 public:
  ::grpc::Status Check(::grpc::ServerContext* ctx,
                       const ::grpc::health::v1::HealthCheckRequest*,
                       ::grpc::health::v1::HealthCheckResponse* resp) override {
    auto md = ctx->client_metadata();
    auto it = md.find("authorization");
    if (it == md.end() ||
        std::string(it->second.data(), it->second.size()) != "Bearer s3cret") {
      return ::grpc::Status(::grpc::StatusCode::UNAUTHENTICATED,
                            "missing or wrong bearer token");
    }
    resp->set_status(::grpc::health::v1::HealthCheckResponse::SERVING);
    return ::grpc::Status::OK;
  }
};

struct TestServer {
  TokenHealth service;
  std::unique_ptr<::grpc::Server> server;
  int port = 0;
  std::string address() const { return absl::StrCat("127.0.0.1:", port); }

  void Start(std::shared_ptr<::grpc::ServerCredentials> creds) {
    ::grpc::ServerBuilder b;
    // Our own health service instead of gRPC's default one.
    b.SetOption(std::make_unique<::grpc::HealthCheckServiceServerBuilderOption>(
        nullptr));
    b.AddListeningPort("127.0.0.1:0", creds, &port);
    b.RegisterService(&service);
    server = b.BuildAndStart();
    ASSERT_NE(server, nullptr);
  }
  ~TestServer() {
    if (server) server->Shutdown();
  }
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(CliTlsTest, TlsMutualTlsAndBearerToken) {
  // A CA, a server certificate for "gw.test" and a client certificate.
  std::string dir = absl::StrCat(AMQPGW_TEST_TMP_DIR, "/", UniqueName("tls"));
  auto made = RunCommand(absl::StrCat(
      "set -e; mkdir -p ", dir, "; cd ", dir, "; ",
      "K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'; "
      "openssl req -x509 $K -keyout ca.key -out ca.pem -days 2 "
      "-subj '/CN=amqpgw test CA' 2>/dev/null; "
      "openssl req $K -keyout server.key -out server.csr -subj '/CN=gw.test' "
      "2>/dev/null; "
      "printf 'subjectAltName=DNS:gw.test' > san.ext; "
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
      "-CAcreateserial -out server.pem -days 2 -extfile san.ext 2>/dev/null; "
      "openssl req $K -keyout client.key -out client.csr -subj '/CN=cli' "
      "2>/dev/null; "
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key "
      "-CAcreateserial -out client.pem -days 2 2>/dev/null"));
  ASSERT_TRUE(made.ok()) << made.status();
  const std::string ca = dir + "/ca.pem";

  ::grpc::SslServerCredentialsOptions tls_opts;
  tls_opts.pem_root_certs = ReadFile(ca);
  tls_opts.pem_key_cert_pairs.push_back(
      {ReadFile(dir + "/server.key"), ReadFile(dir + "/server.pem")});
  TestServer tls;
  tls.Start(::grpc::SslServerCredentials(tls_opts));
  ::grpc::SslServerCredentialsOptions mtls_opts = tls_opts;
  mtls_opts.client_certificate_request =
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  TestServer mtls;
  mtls.Start(::grpc::SslServerCredentials(mtls_opts));
  TestServer plain;
  plain.Start(::grpc::InsecureServerCredentials());

  auto run = [](const std::string& server, std::vector<std::string> args,
                std::vector<std::string> env = {}) {
    Subprocess::Options o;
    o.argv = {AMQPGW_CLI_BINARY, "health", "--server", server,
              "--timeout",       "10s"};
    o.argv.insert(o.argv.end(), args.begin(), args.end());
    o.unset_env_prefixes = {"AMQPGW_"};
    o.env = std::move(env);
    return RunProcess(o);
  };
  const std::vector<std::string> verify = {"--tls_ca", ca, "--tls_server_name",
                                           "gw.test"};
  auto with = [&](std::vector<std::string> more) {
    std::vector<std::string> args = verify;
    args.insert(args.end(), more.begin(), more.end());
    return args;
  };

  ProcessResult r = run(tls.address(), with({"--token", "s3cret"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");
  r = run(tls.address(), with({"--token", "wrong"}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, StartsWith("amqpgw: UNAUTHENTICATED: "));
  r = run(tls.address(), with({}));
  EXPECT_THAT(r.err, StartsWith("amqpgw: UNAUTHENTICATED: "));
  // Environment twins.
  r = run(tls.address(), {},
          {"AMQPGW_TLS_CA=" + ca, "AMQPGW_TLS_SERVER_NAME=gw.test",
           "AMQPGW_TOKEN=s3cret"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // The certificate is for gw.test, not 127.0.0.1.
  r = run(tls.address(), {"--tls_ca", ca, "--token", "s3cret"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, StartsWith("amqpgw: UNAVAILABLE: "));
  // Plaintext against TLS.
  r = run(tls.address(), {"--token", "s3cret"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, StartsWith("amqpgw: UNAVAILABLE: "));

  // Mutual TLS: only with the client certificate.
  r = run(mtls.address(),
          with({"--token", "s3cret", "--tls_cert", dir + "/client.pem",
                "--tls_key", dir + "/client.key"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = run(mtls.address(), with({"--token", "s3cret"}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, StartsWith("amqpgw: UNAVAILABLE: "));

  // The token travels on plaintext channels too.
  r = run(plain.address(), {"--token", "s3cret"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

}  // namespace
}  // namespace amqpgw::testing
