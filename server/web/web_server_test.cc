// The grpc-web bridge against a gRPC server of the test's own: a generic
// echo service that serves any method name (so these tests also show that
// the bridge needs no per-method code). Real HTTP over loopback with
// cpp-httplib's client; no broker.
#include "server/web/web_server.h"

#include <gmock/gmock.h>
#include <google/protobuf/source_context.pb.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/base/sync.h"
#include "server/web/connect_protocol.h"
#include "server/web/grpc_web_frame.h"
#include "tests/support/grpc_web_client.h"
#include "tests/support/wait.h"

namespace amqpgw::web {
namespace {

using ::amqpgw::testing::WaitFor;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// ---------------------------------------------------------------------------
// The echo service.

class EchoReactor;

// What the echo service saw; shared by all its calls.
struct EchoState {
  amqpgw::Mutex mu;
  int started ABSL_GUARDED_BY(mu) = 0;
  int cancelled ABSL_GUARDED_BY(mu) = 0;
  int done ABSL_GUARDED_BY(mu) = 0;
  std::multimap<std::string, std::string> metadata ABSL_GUARDED_BY(mu);
  bool had_deadline ABSL_GUARDED_BY(mu) = false;
  absl::Duration deadline_left ABSL_GUARDED_BY(mu);
  // SlowUnary calls waiting for ReleaseSlow.
  std::set<EchoReactor*> slow ABSL_GUARDED_BY(mu);

  void ReleaseSlow();

  int Cancelled() {
    amqpgw::MutexLock lock(&mu);
    return cancelled;
  }
  int Done() {
    amqpgw::MutexLock lock(&mu);
    return done;
  }
};

std::string ToString(const ::grpc::ByteBuffer& buffer) {
  std::vector<::grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const auto& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

// Methods (any service name):
//   Unary      replies with the request; trailers echo request metadata as
//              "echo-<key>".
//   Stream     request "N": replies "0".."N-1", then OK.
//   Hold       replies "started" (unless the request contains "quiet"), then
//              waits until cancelled.
//   Fail, StreamFail
//              NOT_FOUND with a message that needs percent-encoding.
//   Count      counts request messages, replies with the count.
//   SlowUnary  replies with the request once the test calls ReleaseSlow.
class EchoReactor : public ::grpc::ServerGenericBidiReactor {
 public:
  EchoReactor(::grpc::GenericCallbackServerContext* ctx, EchoState* state)
      : ctx_(ctx), state_(state) {
    const std::string& m = ctx->method();
    method_ = m.substr(m.rfind('/') + 1);
    {
      amqpgw::MutexLock lock(&state_->mu);
      ++state_->started;
      state_->metadata.clear();
      for (const auto& [k, v] : ctx->client_metadata()) {
        state_->metadata.emplace(std::string(k.data(), k.size()),
                                 std::string(v.data(), v.size()));
      }
      auto deadline = ctx->deadline();
      state_->had_deadline = deadline < std::chrono::system_clock::now() +
                                            std::chrono::hours(24 * 365);
      if (state_->had_deadline) {
        state_->deadline_left = absl::FromChrono(deadline) - absl::Now();
      }
    }
    ctx->AddInitialMetadata("x-initial", "yes");
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (method_ == "Count") {
      if (ok) {
        ++count_;
        request_.Clear();
        StartRead(&request_);
      } else {
        Reply({std::to_string(count_)}, ::grpc::Status::OK);
      }
      return;
    }
    if (!ok) {
      if (!got_request_) {
        Reply({}, ::grpc::Status(::grpc::StatusCode::INVALID_ARGUMENT,
                                 "no request message"));
      }
      return;
    }
    got_request_ = true;
    std::string payload = ToString(request_);
    if (method_ == "Unary") {
      for (const auto& [k, v] : ctx_->client_metadata()) {
        std::string key(k.data(), k.size());
        if (key == "user-agent" || absl::StartsWith(key, "grpc-")) continue;
        ctx_->AddTrailingMetadata("echo-" + key,
                                  std::string(v.data(), v.size()));
      }
      Reply({payload}, ::grpc::Status::OK);
    } else if (method_ == "Stream") {
      int n = 0;
      (void)absl::SimpleAtoi(payload, &n);
      std::vector<std::string> out;
      for (int i = 0; i < n; ++i) out.push_back(std::to_string(i));
      Reply(out, ::grpc::Status::OK);
    } else if (method_ == "Hold") {
      amqpgw::MutexLock lock(&mu_);
      holding_ = true;
      if (payload.find("quiet") == std::string::npos) {
        pending_.push_back(Buffer("started"));
        StartWrite(&pending_.back());
      }
    } else if (method_ == "Fail" || method_ == "StreamFail") {
      ctx_->AddTrailingMetadata("x-detail", "more");
      Reply({}, ::grpc::Status(::grpc::StatusCode::NOT_FOUND,
                               "queue 'ä' 100% gone"));
    } else if (method_ == "SlowUnary") {
      amqpgw::MutexLock lock(&state_->mu);
      slow_payload_ = payload;
      state_->slow.insert(this);
    } else {
      Reply({}, ::grpc::Status(::grpc::StatusCode::UNIMPLEMENTED,
                               "echo has no " + method_));
    }
  }

  void OnWriteDone(bool ok) override {
    amqpgw::MutexLock lock(&mu_);
    if (!ok || holding_) return;
    if (++written_ < replies_.size()) {
      StartWrite(&replies_[written_]);
    } else {
      FinishLocked(status_);
    }
  }

  void OnCancel() override {
    {
      amqpgw::MutexLock lock(&state_->mu);
      ++state_->cancelled;
    }
    amqpgw::MutexLock lock(&mu_);
    FinishLocked(::grpc::Status::CANCELLED);
  }

  void OnDone() override {
    {
      amqpgw::MutexLock lock(&state_->mu);
      ++state_->done;
      state_->slow.erase(this);
    }
    delete this;
  }

  // SlowUnary: the reply, now. Called with state_->mu held, so OnDone
  // cannot delete the reactor meanwhile.
  void ReplySlow() { Reply({slow_payload_}, ::grpc::Status::OK); }

 private:
  static ::grpc::ByteBuffer Buffer(const std::string& s) {
    ::grpc::Slice slice(s);
    return ::grpc::ByteBuffer(&slice, 1);
  }

  void Reply(const std::vector<std::string>& messages, ::grpc::Status status) {
    amqpgw::MutexLock lock(&mu_);
    if (finished_) return;
    status_ = std::move(status);
    for (const auto& m : messages) replies_.push_back(Buffer(m));
    if (replies_.empty()) {
      FinishLocked(status_);
    } else {
      StartWrite(&replies_[0]);
    }
  }

  void FinishLocked(const ::grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  ::grpc::GenericCallbackServerContext* ctx_;
  EchoState* state_;
  std::string method_;
  ::grpc::ByteBuffer request_;
  bool got_request_ = false;
  int count_ = 0;
  std::string slow_payload_;
  amqpgw::Mutex mu_;
  std::vector<::grpc::ByteBuffer> replies_ ABSL_GUARDED_BY(mu_);
  std::vector<::grpc::ByteBuffer> pending_ ABSL_GUARDED_BY(mu_);
  size_t written_ ABSL_GUARDED_BY(mu_) = 0;
  ::grpc::Status status_ ABSL_GUARDED_BY(mu_);
  bool holding_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

void EchoState::ReleaseSlow() {
  amqpgw::MutexLock lock(&mu);
  for (EchoReactor* r : slow) r->ReplySlow();
  slow.clear();
}

class EchoService : public ::grpc::CallbackGenericService {
 public:
  explicit EchoService(EchoState* state) : state_(state) {}
  ::grpc::ServerGenericBidiReactor* CreateReactor(
      ::grpc::GenericCallbackServerContext* ctx) override {
    return new EchoReactor(ctx, state_);
  }

 private:
  EchoState* state_;
};

// The echo methods' shapes, as descriptors would give them. For Connect's
// JSON every method takes and returns google.protobuf.SourceContext (one
// string field, file_name), so an echo returns what it was sent; Unary has
// no side effects (GET).
MethodShape EchoShape(const std::string& method) {
  std::string name = method.substr(method.rfind('/') + 1);
  MethodShape shape;
  shape.known = absl::StartsWith(method, "/test.Echo/");
  shape.server_streaming =
      name == "Hold" || name == "Stream" || name == "StreamFail";
  shape.client_streaming = name == "Count";
  shape.no_side_effects = name == "Unary";
  shape.input = google::protobuf::SourceContext::descriptor();
  shape.output = google::protobuf::SourceContext::descriptor();
  return shape;
}

// The client (tests/support/grpc_web_client.h).
using Reply = ::amqpgw::testing::GrpcWebReply;
using CallOptions = ::amqpgw::testing::GrpcWebCallOptions;
using ::amqpgw::testing::CountDataFrames;

Reply Call(int port, const std::string& path,
           const std::vector<std::string>& messages,
           const CallOptions& options = {}) {
  return ::amqpgw::testing::GrpcWebPost(port, path, messages, options);
}

std::string Body(const std::vector<std::string>& messages) {
  return ::amqpgw::testing::GrpcWebBody(messages);
}

// ---------------------------------------------------------------------------

class WebServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    state_ = new EchoState();
    service_ = new EchoService(state_);
    ::grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", ::grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterCallbackGenericService(service_);
    server_ = builder.BuildAndStart().release();
    ASSERT_NE(server_, nullptr);
  }
  static void TearDownTestSuite() {
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(5));
    server_->Wait();
    delete server_;
    delete service_;
    delete state_;
  }

  std::unique_ptr<WebServer> StartWeb(
      const std::function<void(WebServer::Options&)>& tweak = {}) {
    WebServer::Options o;
    o.listen = "127.0.0.1:0";
    o.method_shape = EchoShape;
    if (tweak) tweak(o);
    ::grpc::ChannelArguments args;
    auto web = std::make_unique<WebServer>(o, server_->InProcessChannel(args));
    absl::Status s = web->Start();
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_GT(web->port(), 0);
    return web;
  }

  static EchoState* state_;
  static EchoService* service_;
  static ::grpc::Server* server_;
};

EchoState* WebServerTest::state_ = nullptr;
EchoService* WebServerTest::service_ = nullptr;
::grpc::Server* WebServerTest::server_ = nullptr;

TEST_F(WebServerTest, UnaryInBothContentTypes) {
  auto web = StartWeb();
  for (bool text : {false, true}) {
    std::string payload("hello \x00\xff world", 14);
    CallOptions o;
    o.text = text;
    Reply r = Call(web->port(), "/test.Echo/Unary", {payload}, o);
    ASSERT_TRUE(r.sent);
    EXPECT_EQ(r.http_status, 200);
    EXPECT_EQ(r.Header("Content-Type"), text ? "application/grpc-web-text+proto"
                                             : "application/grpc-web+proto");
    EXPECT_EQ(r.Header("Transfer-Encoding"), "chunked");
    EXPECT_THAT(r.decode_error, IsEmpty());
    ASSERT_EQ(r.messages.size(), 1u) << text;
    EXPECT_EQ(r.messages[0], payload);
    ASSERT_TRUE(r.has_trailer);
    EXPECT_EQ(r.Trailer("grpc-status"), "0");
    // The server's initial metadata travels in the trailer frame.
    EXPECT_EQ(r.Trailer("x-initial"), "yes");
  }
}

TEST_F(WebServerTest, EmptyMessageAndSeveralRequestFrames) {
  auto web = StartWeb();
  Reply empty = Call(web->port(), "/test.Echo/Unary", {""});
  ASSERT_EQ(empty.messages.size(), 1u);
  EXPECT_EQ(empty.messages[0], "");
  Reply count = Call(web->port(), "/test.Echo/Count", {"a", "b", "c"});
  ASSERT_EQ(count.messages.size(), 1u);
  EXPECT_EQ(count.messages[0], "3");
  Reply none = Call(web->port(), "/test.Echo/Count", {});
  ASSERT_EQ(none.messages.size(), 1u);
  EXPECT_EQ(none.messages[0], "0");
}

TEST_F(WebServerTest, RequestHeadersPassAsMetadataAndTimeoutAsDeadline) {
  auto web = StartWeb();
  CallOptions o;
  o.headers = {{"Authorization", "Bearer s3cret"},
               {"X-Custom", "custom value"},
               {"X-Blob-Bin", Base64Encode(std::string("\x00\x01\xfe", 3))},
               {"grpc-timeout", "5S"},
               {"Cookie", "session=abc"},
               {"Sec-Fetch-Mode", "cors"},
               {"X-Grpc-Web", "1"}};
  Reply r = Call(web->port(), "/test.Echo/Unary", {"x"}, o);
  ASSERT_EQ(r.GrpcStatus(), 0);
  EXPECT_EQ(r.Trailer("echo-authorization"), "Bearer s3cret");
  EXPECT_EQ(r.Trailer("echo-x-custom"), "custom value");
  // Binary metadata is base64 on the wire in both directions.
  EXPECT_EQ(r.Trailer("echo-x-blob-bin"),
            Base64Encode(std::string("\x00\x01\xfe", 3)));
  EXPECT_EQ(r.Trailer("echo-x-forwarded-for"), "127.0.0.1");
  amqpgw::MutexLock lock(&state_->mu);
  EXPECT_EQ(state_->metadata.count("cookie"), 0u);
  EXPECT_EQ(state_->metadata.count("sec-fetch-mode"), 0u);
  EXPECT_EQ(state_->metadata.count("x-grpc-web"), 0u);
  EXPECT_EQ(state_->metadata.count("host"), 0u);
  ASSERT_TRUE(state_->had_deadline);
  EXPECT_GT(state_->deadline_left, absl::Seconds(3));
  EXPECT_LE(state_->deadline_left, absl::Seconds(6));
}

TEST_F(WebServerTest, ExpiredDeadlineIsDeadlineExceeded) {
  auto web = StartWeb();
  CallOptions o;
  o.headers = {{"grpc-timeout", "1n"}};
  Reply r = Call(web->port(), "/test.Echo/Hold", {"quiet"}, o);
  EXPECT_EQ(r.http_status, 200);
  EXPECT_EQ(r.GrpcStatus(), static_cast<int>(::grpc::DEADLINE_EXCEEDED));
}

TEST_F(WebServerTest, ErrorsArriveInTheTrailerPercentEncoded) {
  auto web = StartWeb();
  for (bool text : {false, true}) {
    CallOptions o;
    o.text = text;
    Reply r = Call(web->port(), "/test.Echo/Fail", {"x"}, o);
    EXPECT_EQ(r.http_status, 200);
    EXPECT_TRUE(r.messages.empty());
    ASSERT_TRUE(r.has_trailer);
    EXPECT_EQ(r.Trailer("grpc-status"), "5");
    EXPECT_EQ(r.Trailer("grpc-message"), "queue '%C3%A4' 100%25 gone");
    EXPECT_EQ(PercentDecode(r.Trailer("grpc-message")), "queue 'ä' 100% gone");
    EXPECT_EQ(r.Trailer("x-detail"), "more");
  }
}

TEST_F(WebServerTest, HttpLevelErrorsAreClearAndNeverCrash) {
  auto web =
      StartWeb([](WebServer::Options& o) { o.max_request_bytes = 1000; });
  const int port = web->port();
  struct Case {
    const char* what;
    std::string path;
    CallOptions options;
    int http;
    int grpc;
    const char* message;
  };
  auto raw = [](std::string body, std::string type = "") {
    CallOptions o;
    o.use_raw_body = true;
    o.raw_body = std::move(body);
    o.content_type = std::move(type);
    return o;
  };
  auto with_header = [](std::string key, std::string value) {
    CallOptions o;
    o.headers = {{key, value}};
    return o;
  };
  std::vector<Case> cases = {
      {"text/plain", "/test.Echo/Unary", raw(Body({"x"}), "text/plain"), 415, 3,
       "content type"},
      {"grpc-web+json", "/test.Echo/Unary",
       raw(Body({"x"}), "application/grpc-web+json"), 415, 3, "content-type"},
      {"cut frame", "/test.Echo/Unary",
       raw(std::string("\0\0\0\0\x09"
                       "abc",
                       8)),
       400, 3, "cut short"},
      {"cut header", "/test.Echo/Unary", raw(std::string("\0\0", 2)), 400, 3,
       "cut short"},
      {"trailer frame", "/test.Echo/Unary", raw(std::string("\x80\0\0\0\0", 5)),
       400, 3, "trailers"},
      {"compressed", "/test.Echo/Unary", raw(std::string("\x01\0\0\0\0", 5)),
       400, 12, "compressed"},
      {"big frame", "/test.Echo/Unary", raw(Body({std::string(1001, 'x')})),
       413, 8, "limit"},
      {"huge body", "/test.Echo/Unary", raw(std::string(8000, '\0')), 413, 8,
       "too large"},
      {"bad base64", "/test.Echo/Unary",
       raw("AAAA$AAA", "application/grpc-web-text"), 400, 3, "base64"},
      {"bad timeout", "/test.Echo/Unary", with_header("grpc-timeout", "soon"),
       400, 3, "grpc-timeout"},
      {"non-ascii header", "/test.Echo/Unary",
       with_header("X-Name", "caf\xc3\xa9"), 400, 3, "x-name"},
      {"bad -bin header", "/test.Echo/Unary", with_header("X-Data-Bin", "%%%"),
       400, 3, "x-data-bin"},
      {"no method", "/test.Echo", {}, 404, 12, "no such method"},
      {"bad method chars", "/test.Echo/Un$ary", {}, 404, 12, "no such method"},
      {"root", "/", {}, 404, 12, "no such method"},
  };
  for (Case& c : cases) {
    Reply r = Call(port, c.path, {"x"}, c.options);
    EXPECT_TRUE(r.sent) << c.what;
    EXPECT_EQ(r.http_status, c.http) << c.what << ": " << r.raw;
    EXPECT_EQ(r.Header("grpc-status"), std::to_string(c.grpc)) << c.what;
    EXPECT_THAT(PercentDecode(r.Header("grpc-message")), HasSubstr(c.message))
        << c.what;
    EXPECT_THAT(r.raw, HasSubstr(c.message)) << c.what;
  }
  // The server is still fine.
  Reply ok = Call(port, "/test.Echo/Unary", {"still here"});
  ASSERT_EQ(ok.messages.size(), 1u);
  EXPECT_EQ(ok.messages[0], "still here");
}

TEST_F(WebServerTest, StreamMessagesArriveInOrderThenTrailer) {
  auto web = StartWeb();
  for (bool text : {false, true}) {
    CallOptions o;
    o.text = text;
    Reply r = Call(web->port(), "/test.Echo/Stream", {"50"}, o);
    ASSERT_EQ(r.messages.size(), 50u);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(r.messages[i], std::to_string(i));
    EXPECT_EQ(r.GrpcStatus(), 0);
  }
}

TEST_F(WebServerTest, StreamMessagesArriveAsProducedAndHangingUpCancels) {
  auto web = StartWeb();
  const int cancelled_before = state_->Cancelled();
  std::atomic<bool> got_started{false};
  CallOptions o;
  // The server sends "started" and then nothing until cancelled: the
  // message must reach us while the call is still open.
  o.on_data = [&](const std::string& raw) {
    if (raw.find("started") != std::string::npos) {
      got_started = true;
      return false;  // hang up
    }
    return true;
  };
  Reply r = Call(web->port(), "/test.Echo/Hold", {"x"}, o);
  EXPECT_TRUE(got_started.load());
  EXPECT_FALSE(r.has_trailer);
  // Closing the connection cancels the gRPC call promptly.
  EXPECT_TRUE(WaitFor([&] { return state_->Cancelled() > cancelled_before; },
                      absl::Seconds(10)));
  EXPECT_TRUE(
      WaitFor([&] { return web->active_calls() == 0; }, absl::Seconds(10)));
}

TEST_F(WebServerTest, IdleStreamsGetKeepAlivesUnaryCallsNever) {
  auto web = StartWeb([](WebServer::Options& o) {
    o.keepalive_interval = absl::Milliseconds(50);
  });
  // A unary call the server answers late...
  Reply unary;
  std::thread slow(
      [&] { unary = Call(web->port(), "/test.Echo/SlowUnary", {"late"}); });
  // ...while an idle stream receives keep-alives (empty messages).
  int empties = 0;
  CallOptions o;
  o.on_data = [&](const std::string& raw) {
    empties = 0;
    CountDataFrames(raw, &empties);
    return empties < 3;
  };
  Reply stream = Call(web->port(), "/test.Echo/Hold", {"quiet"}, o);
  EXPECT_GE(empties, 3);
  EXPECT_FALSE(stream.has_trailer);
  // Three keep-alive intervals have passed: release the unary reply.
  ASSERT_TRUE(WaitFor(
      [&] {
        amqpgw::MutexLock lock(&state_->mu);
        return !state_->slow.empty();
      },
      absl::Seconds(10)));
  state_->ReleaseSlow();
  slow.join();
  ASSERT_EQ(unary.messages.size(), 1u);
  EXPECT_EQ(unary.messages[0], "late");
  EXPECT_EQ(unary.GrpcStatus(), 0);
}

TEST_F(WebServerTest, CorsPreflightAndOrigins) {
  auto web = StartWeb(
      [](WebServer::Options& o) { o.cors_origins = {"https://app.example"}; });
  const int port = web->port();
  httplib::Client client("127.0.0.1", port);

  // Allowed origin: preflight answered, requested headers allowed.
  auto pre = client.Options(
      "/test.Echo/Unary", {{"Origin", "https://app.example"},
                           {"Access-Control-Request-Method", "POST"},
                           {"Access-Control-Request-Headers",
                            "content-type,x-grpc-web,authorization,x-custom"}});
  ASSERT_TRUE(pre);
  EXPECT_EQ(pre->status, 204);
  EXPECT_EQ(pre->get_header_value("Access-Control-Allow-Origin"),
            "https://app.example");
  EXPECT_THAT(pre->get_header_value("Access-Control-Allow-Methods"),
              HasSubstr("POST"));
  EXPECT_EQ(pre->get_header_value("Access-Control-Allow-Headers"),
            "content-type,x-grpc-web,authorization,x-custom");
  EXPECT_THAT(pre->get_header_value("Access-Control-Expose-Headers"),
              HasSubstr("grpc-status"));
  EXPECT_THAT(pre->get_header_value("Access-Control-Expose-Headers"),
              HasSubstr("grpc-message"));

  // The call itself from that origin: allowed, status headers exposed.
  CallOptions o;
  o.headers = {{"Origin", "https://app.example"}};
  Reply r = Call(port, "/test.Echo/Unary", {"x"}, o);
  EXPECT_EQ(r.GrpcStatus(), 0);
  EXPECT_EQ(r.Header("Access-Control-Allow-Origin"), "https://app.example");
  EXPECT_THAT(r.Header("Access-Control-Expose-Headers"),
              HasSubstr("grpc-status"));

  // Another origin: preflight and call refused.
  auto bad = client.Options("/test.Echo/Unary",
                            {{"Origin", "https://evil.example"},
                             {"Access-Control-Request-Method", "POST"}});
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 403);
  EXPECT_EQ(bad->get_header_value("Access-Control-Allow-Origin"), "");
  o.headers = {{"Origin", "https://evil.example"}};
  Reply refused = Call(port, "/test.Echo/Unary", {"x"}, o);
  EXPECT_EQ(refused.http_status, 403);
  EXPECT_EQ(refused.Header("grpc-status"), "7");

  // Same origin (the page served by this port) needs no flag.
  o.headers = {{"Origin", absl::StrCat("http://127.0.0.1:", port)}};
  Reply same = Call(port, "/test.Echo/Unary", {"x"}, o);
  EXPECT_EQ(same.GrpcStatus(), 0);
  EXPECT_EQ(same.Header("Access-Control-Allow-Origin"), "");
}

TEST_F(WebServerTest, CorsStarAllowsAnyOrigin) {
  auto web = StartWeb([](WebServer::Options& o) { o.cors_origins = {"*"}; });
  CallOptions o;
  o.headers = {{"Origin", "https://anyone.example"}};
  Reply r = Call(web->port(), "/test.Echo/Unary", {"x"}, o);
  EXPECT_EQ(r.GrpcStatus(), 0);
  EXPECT_EQ(r.Header("Access-Control-Allow-Origin"), "*");
}

TEST_F(WebServerTest, FilesFromWebRootAndExtraHandlers) {
  char dir_template[] = "/tmp/amqpgw-web-root-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  std::string dir = dir_template;
  std::ofstream(dir + "/index.html") << "<!doctype html><title>view</title>";
  std::ofstream(dir + "/app.js") << "console.log(1)";
  auto web = StartWeb([&](WebServer::Options& o) { o.web_root = dir; });
  web->AddHandler("/metrics", [](const HttpRequest& req) {
    HttpResponse r;
    r.body = absl::StrCat("metric 1 ", req.params.count("x"), "\n");
    r.content_type = "text/plain; version=0.0.4";
    return r;
  });
  httplib::Client client("127.0.0.1", web->port());

  auto index = client.Get("/");
  ASSERT_TRUE(index);
  EXPECT_EQ(index->status, 200);
  EXPECT_EQ(index->body, "<!doctype html><title>view</title>");
  EXPECT_EQ(index->get_header_value("Content-Type"),
            "text/html; charset=utf-8");
  EXPECT_THAT(index->get_header_value("Content-Security-Policy"),
              HasSubstr("default-src 'self'"));
  std::string etag = index->get_header_value("ETag");
  EXPECT_THAT(etag, Not(IsEmpty()));
  auto again = client.Get("/", {{"If-None-Match", etag}});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 304);

  auto js = client.Get("/app.js");
  ASSERT_TRUE(js);
  EXPECT_EQ(js->status, 200);
  EXPECT_EQ(js->get_header_value("Content-Type"),
            "text/javascript; charset=utf-8");

  auto metrics = client.Get("/metrics?x=1");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_EQ(metrics->body, "metric 1 1\n");
  EXPECT_EQ(metrics->get_header_value("Content-Type"),
            "text/plain; version=0.0.4");

  for (const char* path : {"/nope.js", "/../etc/passwd", "/a/../../x",
                           "/%2e%2e/x", "//etc/passwd"}) {
    auto r = client.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 404) << path;
  }
  unlink((dir + "/index.html").c_str());
  unlink((dir + "/app.js").c_str());
  rmdir(dir.c_str());
}

TEST_F(WebServerTest, StopEndsOpenStreamsWithATrailerAndRefusesNewCalls) {
  auto web = StartWeb();
  std::atomic<bool> started{false};
  Reply held;
  std::thread t([&] {
    CallOptions o;
    o.on_data = [&](const std::string& raw) {
      if (raw.find("started") != std::string::npos) started = true;
      return true;
    };
    held = Call(web->port(), "/test.Echo/Hold", {"x"}, o);
  });
  ASSERT_TRUE(WaitFor([&] { return started.load(); }, absl::Seconds(10)));
  web->BeginStop();
  Reply refused = Call(web->port(), "/test.Echo/Unary", {"x"});
  EXPECT_EQ(refused.http_status, 503);
  EXPECT_EQ(refused.Header("grpc-status"), "14");
  web->Stop(absl::ZeroDuration());
  t.join();
  ASSERT_EQ(held.messages.size(), 1u);
  ASSERT_TRUE(held.has_trailer);
  EXPECT_EQ(held.GrpcStatus(), static_cast<int>(::grpc::CANCELLED));
  EXPECT_EQ(web->active_calls(), 0u);
}

TEST_F(WebServerTest, PortInUseIsUnavailable) {
  auto first = StartWeb();
  WebServer::Options o;
  o.listen = absl::StrCat("127.0.0.1:", first->port());
  WebServer second(o, server_->InProcessChannel(::grpc::ChannelArguments()));
  absl::Status s = second.Start();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  o.listen = "no-port";
  WebServer third(o, server_->InProcessChannel(::grpc::ChannelArguments()));
  EXPECT_EQ(third.Start().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(WebServerTest, TwoHundredConcurrentStreams) {
  auto web = StartWeb();
  constexpr int kStreams = 200;
  const int cancelled_before = state_->Cancelled();
  std::atomic<int> open{0};
  amqpgw::Mutex mu;
  bool release = false;
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < kStreams; ++i) {
    clients.emplace_back([&] {
      CallOptions o;
      bool counted = false;
      o.on_data = [&](const std::string& raw) {
        if (!counted && raw.find("started") != std::string::npos) {
          counted = true;
          open.fetch_add(1);
          // Hold the stream until all are open at once.
          amqpgw::MutexLock lock(&mu);
          mu.Await(absl::Condition(&release));
          return false;
        }
        return true;
      };
      Call(web->port(), "/test.Echo/Hold", {"x"}, o);
      if (counted) ok.fetch_add(1);
    });
  }
  EXPECT_TRUE(WaitFor([&] { return open.load() == kStreams; },
                      absl::Seconds(120), absl::Milliseconds(50)))
      << open.load();
  EXPECT_EQ(web->active_calls(), static_cast<size_t>(kStreams));
  {
    amqpgw::MutexLock lock(&mu);
    release = true;
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), kStreams);
  EXPECT_TRUE(WaitFor(
      [&] { return state_->Cancelled() >= cancelled_before + kStreams; },
      absl::Seconds(30)));
  EXPECT_TRUE(
      WaitFor([&] { return web->active_calls() == 0; }, absl::Seconds(30)));
}

// ---------------------------------------------------------------------------
// The Connect protocol, through the same bridge.

// A Connect POST: `body` as is with `content_type`.
Reply ConnectPost(int port, const std::string& path, const std::string& body,
                  const std::string& content_type,
                  const ::amqpgw::testing::WebHeaders& headers = {},
                  std::function<bool(const std::string&)> on_data = {}) {
  CallOptions o;
  o.use_raw_body = true;
  o.raw_body = body;
  o.content_type = content_type;
  o.headers = headers;
  o.on_data = std::move(on_data);
  return Call(port, path, {}, o);
}

std::string Envelope(uint8_t flags, const std::string& payload) {
  std::string out;
  AppendEnvelope(flags, payload, &out);
  return out;
}

// The envelopes of a streamed Connect body: (flags, payload).
std::vector<std::pair<int, std::string>> Envelopes(const std::string& raw) {
  std::vector<std::pair<int, std::string>> out;
  size_t i = 0;
  while (i + 5 <= raw.size()) {
    size_t n = (size_t{static_cast<unsigned char>(raw[i + 1])} << 24) |
               (size_t{static_cast<unsigned char>(raw[i + 2])} << 16) |
               (size_t{static_cast<unsigned char>(raw[i + 3])} << 8) |
               static_cast<unsigned char>(raw[i + 4]);
    if (i + 5 + n > raw.size()) break;
    out.emplace_back(static_cast<unsigned char>(raw[i]), raw.substr(i + 5, n));
    i += 5 + n;
  }
  return out;
}

TEST_F(WebServerTest, ConnectUnaryJsonAndProto) {
  auto web = StartWeb();
  // JSON in either field spelling, JSON out (lowerCamelCase); the server's
  // initial metadata as headers, its trailing metadata as trailer- headers.
  for (const char* json :
       {R"({"fileName":"a.proto"})", R"({"file_name":"a.proto"})"}) {
    Reply r = ConnectPost(
        web->port(), "/test.Echo/Unary", json, "application/json",
        {{"Authorization", "Bearer t"}, {"Connect-Protocol-Version", "1"}});
    EXPECT_EQ(r.http_status, 200) << r.raw;
    EXPECT_EQ(r.Header("Content-Type"), "application/json");
    EXPECT_EQ(r.raw, R"({"fileName":"a.proto"})");
    EXPECT_EQ(r.Header("x-initial"), "yes");
    EXPECT_EQ(r.Header("trailer-echo-authorization"), "Bearer t");
    EXPECT_EQ(r.Header("trailer-echo-connect-protocol-version"), "");
  }
  // Protobuf: the bytes pass both ways untouched.
  std::string bytes("\x0a\x03\xff\x00z", 5);
  Reply r =
      ConnectPost(web->port(), "/test.Echo/Unary", bytes, "application/proto");
  EXPECT_EQ(r.http_status, 200);
  EXPECT_EQ(r.Header("Content-Type"), "application/proto");
  EXPECT_EQ(r.raw, bytes);
}

TEST_F(WebServerTest, ConnectErrorsAreJsonWithTheirHttpStatus) {
  auto web = StartWeb();
  Reply r =
      ConnectPost(web->port(), "/test.Echo/Fail", "{}", "application/json");
  EXPECT_EQ(r.http_status, 404);
  EXPECT_EQ(r.Header("Content-Type"), "application/json");
  EXPECT_EQ(r.raw,
            "{\"code\":\"not_found\",\"message\":\"queue '\xc3\xa4' "
            "100% gone\"}\n");
  EXPECT_EQ(r.Header("trailer-x-detail"), "more");
  // A method the server does not have: its UNIMPLEMENTED, 501.
  r = ConnectPost(web->port(), "/test.Echo/Other", "{}", "application/json");
  EXPECT_EQ(r.http_status, 501);
  EXPECT_THAT(r.raw, HasSubstr(R"("code":"unimplemented")"));
  // Refusals before the call: the same JSON shape.
  r = ConnectPost(web->port(), "/test.Echo/Unary", R"({"nope":1})",
                  "application/json");
  EXPECT_EQ(r.http_status, 400);
  EXPECT_THAT(r.raw, AllOf(HasSubstr(R"("code":"invalid_argument")"),
                           HasSubstr("google.protobuf.SourceContext"),
                           HasSubstr("nope")));
  r = ConnectPost(web->port(), "/test.Echo/Unary", "{}", "application/xml");
  EXPECT_EQ(r.http_status, 415);
  EXPECT_THAT(r.raw, HasSubstr("application/connect+json"));
  // Connect-Timeout-Ms is the call's deadline.
  r = ConnectPost(web->port(), "/test.Echo/SlowUnary", "{}", "application/json",
                  {{"Connect-Timeout-Ms", "200"}});
  EXPECT_EQ(r.http_status, 504);
  EXPECT_THAT(r.raw, HasSubstr(R"("code":"deadline_exceeded")"));
  {
    amqpgw::MutexLock lock(&state_->mu);
    EXPECT_TRUE(state_->had_deadline);
    EXPECT_GT(state_->deadline_left, absl::ZeroDuration());
    EXPECT_LE(state_->deadline_left, absl::Seconds(1));
  }
  state_->ReleaseSlow();
}

TEST_F(WebServerTest, ConnectStreamsEnvelopesAsProducedThenEndOfStream) {
  auto web = StartWeb();
  Reply r = ConnectPost(web->port(), "/test.Echo/Stream", Envelope(0, "3"),
                        "application/connect+proto");
  EXPECT_EQ(r.http_status, 200);
  EXPECT_EQ(r.Header("Content-Type"), "application/connect+proto");
  auto envelopes = Envelopes(r.raw);
  ASSERT_EQ(envelopes.size(), 4u) << r.raw;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(envelopes[i], std::make_pair(0, std::to_string(i)));
  }
  EXPECT_EQ(
      envelopes[3],
      std::make_pair(2, std::string(R"({"metadata":{"x-initial":["yes"]}})")));

  // A reply reaches the client while the call is still open; hanging up
  // cancels the call.
  const int cancelled_before = state_->Cancelled();
  bool got_started = false;
  r = ConnectPost(web->port(), "/test.Echo/Hold", Envelope(0, "x"),
                  "application/connect+proto", {}, [&](const std::string& raw) {
                    got_started = raw.find("started") != std::string::npos;
                    return !got_started;
                  });
  EXPECT_TRUE(got_started);
  EXPECT_TRUE(WaitFor([&] { return state_->Cancelled() > cancelled_before; },
                      absl::Seconds(10)));

  // An error ends the stream in the end-of-stream message, with the
  // server's metadata; HTTP says 200.
  r = ConnectPost(web->port(), "/test.Echo/StreamFail", Envelope(0, ""),
                  "application/connect+proto");
  EXPECT_EQ(r.http_status, 200);
  envelopes = Envelopes(r.raw);
  ASSERT_EQ(envelopes.size(), 1u);
  EXPECT_EQ(envelopes[0].first, kConnectEndStreamFlag);
  EXPECT_THAT(envelopes[0].second,
              AllOf(HasSubstr(R"("error":{"code":"not_found")"),
                    HasSubstr(R"("x-detail":["more"])"),
                    HasSubstr(R"("x-initial":["yes"])")));
}

TEST_F(WebServerTest, ConnectStreamKeepAlivesAndRepliesThatAreNotTheType) {
  auto web = StartWeb([](WebServer::Options& o) {
    o.keepalive_interval = absl::Milliseconds(50);
  });
  // An idle stream gets empty messages: {} in JSON.
  int empties = 0;
  ConnectPost(web->port(), "/test.Echo/Hold",
              Envelope(0, R"({"fileName":"quiet"})"),
              "application/connect+json", {}, [&](const std::string& raw) {
                empties = 0;
                for (const auto& [flags, payload] : Envelopes(raw)) {
                  if (flags == 0 && payload == R"({"fileName":""})") ++empties;
                }
                return empties < 3;
              });
  EXPECT_GE(empties, 3);
  // A reply that is not the method's type cannot be JSON: the stream ends
  // with INTERNAL and the call is cancelled.
  const int cancelled_before = state_->Cancelled();
  Reply r = ConnectPost(web->port(), "/test.Echo/Hold",
                        Envelope(0, R"({"fileName":"x"})"),
                        "application/connect+json");
  auto envelopes = Envelopes(r.raw);
  ASSERT_FALSE(envelopes.empty()) << r.raw;
  EXPECT_EQ(envelopes.back().first, kConnectEndStreamFlag);
  EXPECT_THAT(envelopes.back().second, HasSubstr(R"("code":"internal")"));
  EXPECT_TRUE(WaitFor([&] { return state_->Cancelled() > cancelled_before; },
                      absl::Seconds(10)));
}

TEST_F(WebServerTest, ConnectGetOnlyForMethodsWithoutSideEffects) {
  auto web = StartWeb(
      [](WebServer::Options& o) { o.cors_origins = {"https://app.example"}; });
  using ::amqpgw::testing::HttpGet;
  auto got = HttpGet(web->port(),
                     "/test.Echo/Unary?connect=v1&encoding=json&message="
                     "%7B%22fileName%22%3A%22a%22%7D");
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.body, R"({"fileName":"a"})");
  EXPECT_EQ(got.Header("Cache-Control"), "no-store");
  got = HttpGet(web->port(), "/test.Echo/Stream?encoding=proto&message=3");
  EXPECT_EQ(got.status, 405);
  EXPECT_EQ(got.Header("Allow"), "POST");
  EXPECT_THAT(got.body, HasSubstr(R"("code":"unimplemented")"));
  // From an allowed origin: readable; from another: refused, like a POST.
  got = HttpGet(web->port(), "/test.Echo/Unary?encoding=json&message=%7B%7D",
                {{"Origin", "https://app.example"}});
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.Header("Access-Control-Allow-Origin"), "https://app.example");
  got = HttpGet(web->port(), "/test.Echo/Unary?encoding=json&message=%7B%7D",
                {{"Origin", "https://evil.example"}});
  EXPECT_EQ(got.status, 403);
  // Preflights allow Connect's headers by default.
  httplib::Client client("127.0.0.1", web->port());
  auto pre = client.Options("/test.Echo/Unary",
                            {{"Origin", "https://app.example"},
                             {"Access-Control-Request-Method", "POST"}});
  ASSERT_TRUE(pre);
  EXPECT_THAT(pre->get_header_value("Access-Control-Allow-Headers"),
              AllOf(HasSubstr("connect-protocol-version"),
                    HasSubstr("connect-timeout-ms")));
  EXPECT_THAT(pre->get_header_value("Access-Control-Allow-Methods"),
              HasSubstr("GET"));
}

}  // namespace
}  // namespace amqpgw::web
