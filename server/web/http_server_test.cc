// HttpServer on its own, with handlers of the test's and raw sockets:
// connection limits, keep-alive and its deadline, HEAD, HTTP/1.0, chunked
// request bodies, writes to a client that does not read, and Stop.
#include "server/web/http_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/support/raw_http.h"
#include "tests/support/wait.h"

namespace amqpgw::web {
namespace {

using ::amqpgw::testing::RawHttp;
using ::amqpgw::testing::RawResponse;
using ::amqpgw::testing::WaitFor;
using ::testing::HasSubstr;

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(HttpServer::Options o = {}) {
    o.listen = "127.0.0.1:0";
    server_ = std::make_unique<HttpServer>(
        o, [this](HttpExchange& ex) { Handle(ex); });
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Stop();
  }

  // GET /stream streams three pieces; GET /big writes until it fails;
  // POST echoes the body; anything else answers its path.
  void Handle(HttpExchange& ex) {
    const HttpRequest& r = ex.request();
    handled_.fetch_add(1);
    if (r.path == "/stream") {
      ex.BeginStream(200, "text/plain");
      for (const char* piece : {"one ", "two ", "three"}) ex.Write(piece);
      ex.End();
    } else if (r.path == "/big") {
      ex.BeginStream(200, "application/octet-stream");
      std::string chunk(1 << 20, 'x');
      absl::Time start = absl::Now();
      while (ex.Write(chunk)) {
      }
      big_write_failed_after_ = absl::Now() - start;
      big_done_.store(true);
    } else {
      HttpResponse resp;
      resp.body = r.method == "POST" ? r.body : r.path;
      ex.Respond(resp);
    }
  }

  std::unique_ptr<HttpServer> server_;
  std::atomic<int> handled_{0};
  std::atomic<bool> big_done_{false};
  absl::Duration big_write_failed_after_;
};

TEST_F(HttpServerTest, KeepAliveThenTheIdleDeadlineCloses) {
  HttpServer::Options o;
  o.idle_timeout = absl::Milliseconds(300);
  Start(o);
  RawHttp c(server_->port());
  ASSERT_TRUE(c.Send("GET /a HTTP/1.1\r\nHost: h\r\n\r\n"));
  ASSERT_TRUE(c.ReadResponses(1, absl::Seconds(5)));
  ASSERT_TRUE(c.Send("GET /b HTTP/1.1\r\nHost: h\r\n\r\n"));
  ASSERT_TRUE(c.ReadResponses(2, absl::Seconds(5)));
  std::vector<RawResponse> got = c.Responses();
  EXPECT_EQ(got[0].body, "/a");
  EXPECT_EQ(got[1].body, "/b");
  EXPECT_EQ(got[1].headers.count("connection"), 0u);  // kept alive
  EXPECT_TRUE(c.ReadUntilClosed(absl::Seconds(5)));   // then idle: closed
}

TEST_F(HttpServerTest, HeadHttp10AndChunkedRequests) {
  Start();
  RawHttp head(server_->port());
  head.Send("HEAD /path HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(head.ReadUntilClosed(absl::Seconds(5)));
  EXPECT_THAT(head.received(), HasSubstr("Content-Length: 5\r\n"));
  EXPECT_TRUE(absl::EndsWith(head.received(), "\r\n\r\n"));  // no body

  RawHttp old(server_->port());
  old.Send("GET /stream HTTP/1.0\r\n\r\n");
  EXPECT_TRUE(old.ReadUntilClosed(absl::Seconds(5)));
  EXPECT_THAT(old.received(), ::testing::Not(HasSubstr("chunked")));
  EXPECT_TRUE(absl::EndsWith(old.received(), "\r\n\r\none two three"));

  RawHttp chunked(server_->port());
  chunked.Send(
      "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nwiki\r\n6;ext=1\r\npedia \r\n0\r\nTrailer: t\r\n\r\n");
  ASSERT_TRUE(chunked.ReadResponses(1, absl::Seconds(5)));
  EXPECT_EQ(chunked.Responses()[0].body, "wikipedia ");

  RawHttp streamed(server_->port());
  streamed.Send("GET /stream HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(streamed.ReadResponses(1, absl::Seconds(5)));
  EXPECT_EQ(streamed.Responses()[0].headers["transfer-encoding"], "chunked");
  EXPECT_EQ(streamed.Responses()[0].body, "one two three");
}

TEST_F(HttpServerTest, BeyondMaxWaitingTheOldestIdleConnectionMakesRoom) {
  HttpServer::Options o;
  o.max_waiting = 4;
  o.idle_timeout = absl::Seconds(60);
  Start(o);
  std::vector<RawHttp> idle;
  for (int i = 0; i < 4; ++i) {
    idle.emplace_back(server_->port());
    ASSERT_TRUE(idle.back().connected());
  }
  ASSERT_TRUE(WaitFor([&] { return server_->waiting_connections() == 4; }));
  RawHttp fresh(server_->port());
  fresh.Send("GET /fresh HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(fresh.ReadResponses(1, absl::Seconds(5)));
  EXPECT_EQ(fresh.Responses()[0].body, "/fresh");
  // The oldest idle one was closed for it; the others still wait.
  EXPECT_TRUE(idle[0].ReadUntilClosed(absl::Seconds(5)));
  EXPECT_FALSE(idle[3].ReadUntilClosed(absl::Milliseconds(200)));
}

TEST_F(HttpServerTest, AWriteToAClientThatDoesNotReadFailsAfterWriteTimeout) {
  HttpServer::Options o;
  o.write_timeout = absl::Milliseconds(300);
  Start(o);
  RawHttp c(server_->port());
  c.Send("GET /big HTTP/1.1\r\nHost: h\r\n\r\n");
  // The client never reads: the socket buffers fill, the write stalls.
  ASSERT_TRUE(WaitFor([&] { return big_done_.load(); }, absl::Seconds(30)));
  EXPECT_GE(big_write_failed_after_, absl::Milliseconds(300));
  // The worker is free again.
  ASSERT_TRUE(WaitFor([&] { return server_->active_requests() == 0; }));
  RawHttp next(server_->port());
  next.Send("GET /next HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(next.ReadResponses(1, absl::Seconds(5)));
}

TEST_F(HttpServerTest, StopClosesWaitingConnections) {
  Start();
  RawHttp idle(server_->port());
  RawHttp half(server_->port());
  half.Send("GET / HTTP/1.1\r\n");
  ASSERT_TRUE(WaitFor([&] { return server_->waiting_connections() == 2; }));
  absl::Time start = absl::Now();
  server_->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_TRUE(idle.ReadUntilClosed(absl::Seconds(5)));
  EXPECT_TRUE(half.ReadUntilClosed(absl::Seconds(5)));
  EXPECT_EQ(handled_.load(), 0);
}

}  // namespace
}  // namespace amqpgw::web
