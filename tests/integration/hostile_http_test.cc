// The HTTP port against hostile callers, with an innocent caller beside them
// that is counted: its grpc-web calls on the HTTP port and its gRPC
// publishes must all succeed, each within a bound, whatever the others do.
// A real daemon on a real RabbitMQ node; hostile bytes on raw sockets.
//
// One case per way in: slow heads and slow bodies (slowloris) with more
// connections than --http_max_connections, ambiguous framing (Content-Length
// with Transfer-Encoding, conflicting lengths, unknown codings), a declared
// body far over the limit, pipelined requests, oversize heads, and
// grpc-web bodies with no message or two for a method that takes one.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "amqpgw/v1/gateway.pb.h"
#include "server/base/sync.h"
#include "server/web/grpc_web_frame.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/grpc_web_client.h"
#include "tests/support/raw_http.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kHeaderTimeout = absl::Seconds(2);
constexpr absl::Duration kBodyTimeout = absl::Seconds(2);
// How long one innocent call may take, whatever the hostile ones do.
constexpr absl::Duration kInnocentBound = absl::Seconds(2);
constexpr int kMaxConnections = 16;

std::string GrpcWebPostBytes(const std::string& method, const std::string& body,
                             const std::string& extra_headers = "") {
  return absl::StrCat("POST /amqpgw.v1.Gateway/", method,
                      " HTTP/1.1\r\nHost: gw\r\n"
                      "Content-Type: application/grpc-web+proto\r\n"
                      "Content-Length: ",
                      body.size(), "\r\n", extra_headers, "\r\n", body);
}

// Calls the gateway over both ports in a loop on its own threads, and
// counts: calls, failures, the slowest call.
class Innocent {
 public:
  Innocent(TestGateway* gateway, std::string queue)
      : gateway_(gateway), queue_(std::move(queue)) {
    http_ = std::thread([this] { Run(true); });
    grpc_ = std::thread([this] { Run(false); });
  }
  ~Innocent() { Stop(); }

  void Stop() {
    {
      amqpgw::MutexLock lock(&mu_);
      stop_ = true;
    }
    if (http_.joinable()) http_.join();
    if (grpc_.joinable()) grpc_.join();
  }

  // Waits until both threads made `n` more calls than now.
  bool WaitForMoreCalls(int n) {
    int http0, grpc0;
    {
      amqpgw::MutexLock lock(&mu_);
      http0 = http_calls_;
      grpc0 = grpc_calls_;
    }
    return WaitFor(
        [&] {
          amqpgw::MutexLock lock(&mu_);
          return http_calls_ >= http0 + n && grpc_calls_ >= grpc0 + n;
        },
        absl::Seconds(30));
  }

  int http_calls() {
    amqpgw::MutexLock lock(&mu_);
    return http_calls_;
  }
  int published() {
    amqpgw::MutexLock lock(&mu_);
    return grpc_calls_ - grpc_failures_;
  }
  int failures() {
    amqpgw::MutexLock lock(&mu_);
    return http_failures_ + grpc_failures_;
  }
  absl::Duration slowest() {
    amqpgw::MutexLock lock(&mu_);
    return slowest_;
  }
  std::string last_failure() {
    amqpgw::MutexLock lock(&mu_);
    return last_failure_;
  }

 private:
  void Run(bool http) {
    while (true) {
      {
        amqpgw::MutexLock lock(&mu_);
        if (stop_) return;
      }
      absl::Time start = absl::Now();
      std::string failure;
      if (http) {
        GrpcWebReply r = GrpcWebPost(
            gateway_->daemon().http_port(), "/amqpgw.v1.Gateway/GetStatus",
            {v1::GetStatusRequest().SerializeAsString()});
        if (r.GrpcStatus() != 0) {
          failure = absl::StrCat("grpc-web GetStatus: HTTP ", r.http_status,
                                 ", ", r.GrpcMessage());
        }
      } else {
        v1::PublishRequest p;
        p.set_routing_key(queue_);
        p.set_body("innocent");
        v1::PublishResponse resp;
        ::grpc::Status s =
            gateway_->stub().Publish(Ctx(absl::Seconds(10)).get(), p, &resp);
        if (!s.ok()) failure = absl::StrCat("Publish: ", s.error_message());
      }
      absl::Duration took = absl::Now() - start;
      amqpgw::MutexLock lock(&mu_);
      (http ? http_calls_ : grpc_calls_)++;
      if (!failure.empty()) {
        (http ? http_failures_ : grpc_failures_)++;
        last_failure_ = failure;
      }
      if (took > slowest_) slowest_ = took;
    }
  }

  TestGateway* const gateway_;
  const std::string queue_;
  amqpgw::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int http_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int grpc_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int http_failures_ ABSL_GUARDED_BY(mu_) = 0;
  int grpc_failures_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration slowest_ ABSL_GUARDED_BY(mu_);
  std::string last_failure_ ABSL_GUARDED_BY(mu_);
  std::thread http_;
  std::thread grpc_;
};

class HostileHttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    node_ = new BrokerNode(BrokerNode::Shared());
    gateway_ = TestGateway::Start(node_->uri(), [](daemon::Options& o) {
                 o.http_max_connections = kMaxConnections;
                 o.http_header_timeout = kHeaderTimeout;
                 o.http_body_timeout = kBodyTimeout;
               }).release();
    ASSERT_TRUE(gateway_->WaitReady());
  }
  static void TearDownTestSuite() {
    delete gateway_;
    delete node_;
  }

  void SetUp() override {
    queue_ = UniqueName("innocent");
    v1::DeclareQueueRequest d;
    d.set_name(queue_);
    v1::DeclareQueueResponse r;
    ASSERT_TRUE(gateway_->stub().DeclareQueue(Ctx().get(), d, &r).ok());
    innocent_ = std::make_unique<Innocent>(gateway_, queue_);
    ASSERT_TRUE(innocent_->WaitForMoreCalls(3));
  }

  // The innocent caller: every call succeeded within the bound, and every
  // message it published is in its queue, once.
  void TearDown() override {
    ASSERT_TRUE(innocent_->WaitForMoreCalls(3));
    innocent_->Stop();
    EXPECT_EQ(innocent_->failures(), 0) << innocent_->last_failure();
    EXPECT_LT(innocent_->slowest(), kInnocentBound);
    EXPECT_GT(innocent_->http_calls(), 0);
    EXPECT_EQ(QueueDepth(queue_),
              static_cast<uint32_t>(innocent_->published()));
    v1::DeleteQueueRequest d;
    d.set_name(queue_);
    v1::DeleteQueueResponse r;
    EXPECT_TRUE(gateway_->stub().DeleteQueue(Ctx().get(), d, &r).ok());
  }

  static uint32_t QueueDepth(const std::string& queue) {
    v1::InspectQueueRequest i;
    i.set_name(queue);
    v1::InspectQueueResponse r;
    EXPECT_TRUE(gateway_->stub().InspectQueue(Ctx().get(), i, &r).ok());
    return r.message_count();
  }

  static int port() { return gateway_->daemon().http_port(); }

  // One fresh well-formed request, timed.
  static absl::Duration TimedGetStatus(int* grpc_status) {
    absl::Time start = absl::Now();
    GrpcWebReply r = GrpcWebPost(port(), "/amqpgw.v1.Gateway/GetStatus",
                                 {v1::GetStatusRequest().SerializeAsString()});
    *grpc_status = r.GrpcStatus();
    return absl::Now() - start;
  }

  static BrokerNode* node_;
  static TestGateway* gateway_;
  std::string queue_;
  std::unique_ptr<Innocent> innocent_;
};

BrokerNode* HostileHttpTest::node_ = nullptr;
TestGateway* HostileHttpTest::gateway_ = nullptr;

// Sends a header line on every connection every `interval` until stopped:
// a slowloris that never finishes its heads.
class Dribbler {
 public:
  Dribbler(std::vector<RawHttp>* connections, absl::Duration interval,
           std::string line)
      : thread_([this, connections, interval, line] {
          amqpgw::MutexLock lock(&mu_);
          while (!stop_) {
            for (RawHttp& c : *connections) c.Send(line);
            // The attacker's pace (not synchronisation): wake at the next
            // round, or at once when stopped.
            mu_.AwaitWithTimeout(absl::Condition(&stop_), interval);
          }
        }) {}
  ~Dribbler() {
    {
      amqpgw::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }

 private:
  amqpgw::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

TEST_F(HostileHttpTest, SlowHeadsHoldNoWorkerAndEndWith408) {
  // Three times more slow connections than worker threads.
  std::vector<RawHttp> slow;
  for (int i = 0; i < 3 * kMaxConnections; ++i) {
    slow.emplace_back(port());
    ASSERT_TRUE(slow.back().connected());
    ASSERT_TRUE(slow.back().Send("GET / HTTP/1.1\r\nHost: gw\r\n"));
  }
  int served_while_slow = 0;
  {
    Dribbler dribble(&slow, absl::Milliseconds(300), "X-Slow: 1\r\n");
    // While every slow head is still open, a new request is served at once.
    for (int i = 0; i < 5; ++i) {
      int status = -1;
      EXPECT_LT(TimedGetStatus(&status), absl::Seconds(1));
      EXPECT_EQ(status, 0);
      ++served_while_slow;
    }
    ASSERT_TRUE(innocent_->WaitForMoreCalls(5));
    // Each slow head runs out of time: 408, and the connection closes.
    for (RawHttp& c : slow) {
      EXPECT_TRUE(c.ReadUntilClosed(kHeaderTimeout + absl::Seconds(5)));
      std::vector<RawResponse> got = c.Responses();
      ASSERT_EQ(got.size(), 1u) << c.received();
      EXPECT_EQ(got[0].status, 408);
      EXPECT_EQ(got[0].headers["connection"], "close");
      EXPECT_THAT(got[0].body,
                  HasSubstr("request head not complete within 2s"));
    }
  }
  EXPECT_EQ(served_while_slow, 5);
}

TEST_F(HostileHttpTest, SlowBodiesEndWith408AndHoldNoWorker) {
  std::vector<RawHttp> slow;
  for (int i = 0; i < 2 * kMaxConnections; ++i) {
    slow.emplace_back(port());
    ASSERT_TRUE(slow.back().Send(
        "POST /amqpgw.v1.Gateway/GetStatus HTTP/1.1\r\nHost: gw\r\n"
        "Content-Type: application/grpc-web+proto\r\n"
        "Content-Length: 1000\r\n\r\nabc"));
  }
  {
    Dribbler dribble(&slow, absl::Milliseconds(300), "x");
    int status = -1;
    EXPECT_LT(TimedGetStatus(&status), absl::Seconds(1));
    EXPECT_EQ(status, 0);
    for (RawHttp& c : slow) {
      EXPECT_TRUE(c.ReadUntilClosed(kBodyTimeout + absl::Seconds(5)));
      std::vector<RawResponse> got = c.Responses();
      ASSERT_EQ(got.size(), 1u) << c.received();
      EXPECT_EQ(got[0].status, 408);
      EXPECT_THAT(got[0].body, HasSubstr("request body not complete"));
    }
  }
}

TEST_F(HostileHttpTest, AmbiguousFramingIsRefusedAtOnceAndNothingIsSmuggled) {
  // After each bad head comes a second request that must never be served.
  const std::string smuggled = "GET /smuggled HTTP/1.1\r\nHost: gw\r\n\r\n";
  struct Case {
    const char* what;
    std::string head;
    int status;
    const char* reason;
  } cases[] = {
      {"CL and TE",
       "POST /amqpgw.v1.Gateway/GetStatus HTTP/1.1\r\nHost: gw\r\n"
       "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       400, "both Content-Length and Transfer-Encoding"},
      {"two lengths",
       "POST /amqpgw.v1.Gateway/GetStatus HTTP/1.1\r\nHost: gw\r\n"
       "Content-Length: 0\r\nContent-Length: 39\r\n\r\n",
       400, "conflicting Content-Length"},
      {"unknown coding",
       "POST /amqpgw.v1.Gateway/GetStatus HTTP/1.1\r\nHost: gw\r\n"
       "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
       501, "not supported"},
      {"huge length",
       "POST /amqpgw.v1.Gateway/GetStatus HTTP/1.1\r\nHost: gw\r\n"
       "Content-Type: application/grpc-web+proto\r\n"
       "Content-Length: 99999999999\r\n\r\n",
       413, "request body too large"},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: gw\r\nX-A: 1\r\n folded\r\n\r\n",
       400, "folding"},
      {"space before colon",
       "GET / HTTP/1.1\r\nHost: gw\r\nContent-Length : 5\r\n\r\n", 400,
       "whitespace before ':'"},
      {"bare LF", "GET / HTTP/1.1\nHost: gw\n\n", 400, "CRLF"},
      {"no Host", "GET / HTTP/1.1\r\n\r\n", 400, "missing Host"},
      {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505,
       "not supported"},
  };
  for (const Case& c : cases) {
    RawHttp conn(port());
    absl::Time start = absl::Now();
    ASSERT_TRUE(conn.Send(c.head + smuggled)) << c.what;
    // Answered at once (not after a read timeout), then closed.
    EXPECT_TRUE(conn.ReadUntilClosed(absl::Seconds(5))) << c.what;
    EXPECT_LT(absl::Now() - start, absl::Seconds(1)) << c.what;
    std::vector<RawResponse> got = conn.Responses();
    ASSERT_EQ(got.size(), 1u) << c.what << ": " << conn.received();
    EXPECT_EQ(got[0].status, c.status) << c.what;
    EXPECT_EQ(got[0].headers["connection"], "close") << c.what;
    EXPECT_THAT(got[0].body, HasSubstr(c.reason)) << c.what;
    EXPECT_THAT(conn.received(), ::testing::Not(HasSubstr("smuggled")))
        << c.what;
  }
}

TEST_F(HostileHttpTest, OversizeHeadsAreRefused) {
  struct Case {
    std::string bytes;
    int status;
  } cases[] = {
      {"GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: gw\r\n\r\n", 414},
      {"GET / HTTP/1.1\r\nHost: gw\r\nX-Big: " + std::string(20000, 'b') +
           "\r\n\r\n",
       431},
  };
  std::string many = "GET / HTTP/1.1\r\nHost: gw\r\n";
  for (int i = 0; i < 150; ++i) absl::StrAppend(&many, "X-", i, ": v\r\n");
  for (Case& c : cases) {
    RawHttp conn(port());
    conn.Send(c.bytes);
    EXPECT_TRUE(conn.ReadResponses(1, absl::Seconds(5)));
    ASSERT_EQ(conn.Responses().size(), 1u) << conn.received().substr(0, 200);
    EXPECT_EQ(conn.Responses()[0].status, c.status);
  }
  RawHttp conn(port());
  conn.Send(many + "\r\n");
  EXPECT_TRUE(conn.ReadResponses(1, absl::Seconds(5)));
  ASSERT_EQ(conn.Responses().size(), 1u);
  EXPECT_EQ(conn.Responses()[0].status, 431);
  EXPECT_THAT(conn.Responses()[0].body, HasSubstr("more than 100 header"));
}

TEST_F(HostileHttpTest, PipelinedRequestsAreAllAnsweredInOrder) {
  RawHttp conn(port());
  std::string get_status = GrpcWebPostBytes(
      "GetStatus", GrpcWebBody({v1::GetStatusRequest().SerializeAsString()}));
  // Three requests in one write; the last closes the connection.
  ASSERT_TRUE(conn.Send(get_status +
                        "GET /metrics HTTP/1.1\r\nHost: gw\r\n\r\n" +
                        "GET /nope.js HTTP/1.1\r\nHost: gw\r\n"
                        "Connection: close\r\n\r\n"));
  EXPECT_TRUE(conn.ReadUntilClosed(absl::Seconds(10)));
  std::vector<RawResponse> got = conn.Responses();
  ASSERT_EQ(got.size(), 3u) << conn.received();
  EXPECT_EQ(got[0].status, 200);
  EXPECT_EQ(got[0].headers["content-type"], "application/grpc-web+proto");
  GrpcWebReply status;
  DecodeGrpcWebBody(got[0].body, false, &status);
  EXPECT_EQ(status.GrpcStatus(), 0);
  ASSERT_EQ(status.messages.size(), 1u);
  EXPECT_EQ(got[1].status, 200);
  EXPECT_THAT(got[1].body, HasSubstr("amqpgw_build_info"));
  EXPECT_EQ(got[2].status, 404);
  EXPECT_EQ(got[2].headers["connection"], "close");

  // Pipelined behind a body sent in pieces, and behind an Expect.
  RawHttp pieces(port());
  std::string two = get_status + get_status;
  for (size_t i = 0; i < two.size(); i += 7) {
    ASSERT_TRUE(pieces.Send(two.substr(i, 7)));
  }
  EXPECT_TRUE(pieces.ReadResponses(2, absl::Seconds(10)));
  ASSERT_EQ(pieces.Responses().size(), 2u);
  for (const RawResponse& r : pieces.Responses()) EXPECT_EQ(r.status, 200);
  RawHttp expect(port());
  std::string body = GrpcWebBody({v1::GetStatusRequest().SerializeAsString()});
  ASSERT_TRUE(expect.Send(absl::StrCat(
      "POST /amqpgw.v1.Gateway/GetStatus HTTP/1.1\r\nHost: gw\r\n"
      "Content-Type: application/grpc-web+proto\r\nExpect: 100-continue\r\n"
      "Content-Length: ",
      body.size(), "\r\n\r\n")));
  ASSERT_TRUE(WaitFor(
      [&] {
        expect.ReadResponses(1, absl::Milliseconds(100));
        return absl::StrContains(expect.received(), "HTTP/1.1 100 Continue");
      },
      absl::Seconds(5)));
  ASSERT_TRUE(expect.Send(body));
  EXPECT_TRUE(expect.ReadResponses(1, absl::Seconds(10)));
  ASSERT_EQ(expect.Responses().size(), 1u);
  EXPECT_EQ(expect.Responses()[0].status, 200);
}

TEST_F(HostileHttpTest, AGrpcWebCallTakesExactlyOneRequestMessage) {
  const std::string target = UniqueName("hostile");
  v1::DeclareQueueRequest d;
  d.set_name(target);
  v1::DeclareQueueResponse declared;
  ASSERT_TRUE(gateway_->stub().DeclareQueue(Ctx().get(), d, &declared).ok());
  v1::PublishRequest p;
  p.set_routing_key(target);
  p.set_body("hostile");
  const std::string m = p.SerializeAsString();
  struct Case {
    const char* what;
    std::vector<std::string> messages;
    const char* message;
  } cases[] = {
      {"two frames",
       {m, m},
       "holds 2 grpc-web messages; Publish takes exactly one"},
      {"empty body",
       {},
       "holds no grpc-web message; Publish takes exactly one"},
  };
  for (const Case& c : cases) {
    GrpcWebReply r =
        GrpcWebPost(port(), "/amqpgw.v1.Gateway/Publish", c.messages);
    EXPECT_EQ(r.http_status, 400) << c.what;
    EXPECT_EQ(r.GrpcStatus(), static_cast<int>(::grpc::INVALID_ARGUMENT))
        << c.what;
    EXPECT_THAT(r.GrpcMessage(), HasSubstr(c.message)) << c.what;
  }
  // Neither reached the broker, not even the first of the two frames; one
  // frame does.
  EXPECT_EQ(QueueDepth(target), 0u);
  GrpcWebReply one = GrpcWebPost(port(), "/amqpgw.v1.Gateway/Publish", {m});
  EXPECT_EQ(one.GrpcStatus(), 0) << one.GrpcMessage();
  EXPECT_EQ(QueueDepth(target), 1u);
  v1::DeleteQueueRequest del;
  del.set_name(target);
  v1::DeleteQueueResponse deleted;
  EXPECT_TRUE(gateway_->stub().DeleteQueue(Ctx().get(), del, &deleted).ok());
}

}  // namespace
}  // namespace amqpgw::testing
