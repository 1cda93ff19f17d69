// A hostile caller beside innocent ones (issue 18): every request that
// RabbitMQ would answer by closing a connection or channel other callers
// share is refused before it is sent, with the documented code and a message
// naming the field; unparseable requests answer INVALID_ARGUMENT; echoed
// input stays short; refused tokens are counted and logged, rate-limited.
//
// Each case runs innocent callers on the same gateway while the hostile one
// calls, and counts: the innocents' errors (publish, stream, inspect), their
// messages confirmed and delivered (none lost, none twice), the stream's
// RECONNECTING events, the session's reconnects (GetStatus) and the
// gateway's connections as the broker lists them (same connections before
// and after).
#include <fcntl.h>
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/base/sync.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/grpc_web_client.h"
#include "tests/support/http_client.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

using ::grpc::StatusCode;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

std::unique_ptr<::grpc::ClientContext> As(
    const std::string& token, absl::Duration timeout = absl::Seconds(30)) {
  auto ctx = Ctx(timeout);
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  return ctx;
}

// Innocent callers on their own channel (HTTP/2 connection): a publisher
// (unary Publish of numbered bodies), a consumer (an AUTO stream of the same
// queue) and an inspector (InspectQueue and GetStatus), each on a thread of
// its own, paced so that they keep running beside the hostile calls.
class Innocents {
 public:
  struct Report {
    int confirmed = 0;
    int publish_errors = 0;
    int inspections = 0;
    int inspect_errors = 0;
    int delivered = 0;
    int missing = 0;               // confirmed, never delivered
    int duplicates = 0;            // delivered more than once
    int stream_status_events = 0;  // RECONNECTING / RESUMED
    bool stream_ended = false;     // the stream ended before we stopped it
    std::string first_error;
  };

  Innocents(TestGateway& g, std::string token = "")
      : stub_(g.NewStub()),
        token_(std::move(token)),
        queue_(UniqueName("innocent")) {
    v1::DeclareQueueRequest dq;
    dq.set_name(queue_);
    dq.set_durable(false);
    v1::DeclareQueueResponse dr;
    ::grpc::Status s = stub_->DeclareQueue(As(token_).get(), dq, &dr);
    EXPECT_TRUE(s.ok()) << s.error_message();

    v1::StreamMessagesRequest sr;
    sr.set_queue(queue_);
    sr.set_prefetch(500);
    stream_ctx_ = As(token_, absl::Minutes(10));
    reader_ = stub_->StreamMessages(stream_ctx_.get(), sr);
    consumer_ = std::thread([this] { Consume(); });
    EXPECT_TRUE(WaitFor([this] { return subscribed_.load(); }))
        << "innocent stream never subscribed";
    publisher_ = std::thread([this] { Publish(); });
    inspector_ = std::thread([this] { Inspect(); });
  }

  ~Innocents() {
    StopCallers();
    stream_ctx_->TryCancel();
    if (consumer_.joinable()) consumer_.join();
  }

  // Waits until `n` more messages were confirmed and `n` more inspections
  // done than when called: the innocents kept working.
  bool WaitProgress(int n) {
    int c = confirmed_count_.load() + n;
    int i = inspections_.load() + n;
    return WaitFor(
        [&] {
          return confirmed_count_.load() >= c && inspections_.load() >= i;
        },
        absl::Seconds(60));
  }

  // Stops the callers, waits until every confirmed message was delivered,
  // and counts.
  Report Finish() {
    StopCallers();
    std::set<int> confirmed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      confirmed = confirmed_;
    }
    WaitFor(
        [&] {
          std::lock_guard<std::mutex> lock(mu_);
          for (int n : confirmed) {
            if (delivered_.find(n) == delivered_.end()) return false;
          }
          return true;
        },
        absl::Seconds(60));
    Report r;
    std::lock_guard<std::mutex> lock(mu_);
    r.confirmed = static_cast<int>(confirmed.size());
    r.publish_errors = publish_errors_;
    r.inspections = inspections_.load();
    r.inspect_errors = inspect_errors_;
    r.stream_status_events = status_events_;
    r.stream_ended = stream_ended_;
    r.first_error = first_error_;
    for (const auto& [n, times] : delivered_) {
      r.delivered += times;
      if (times > 1) r.duplicates += times - 1;
    }
    for (int n : confirmed) {
      if (delivered_.find(n) == delivered_.end()) ++r.missing;
    }
    std::printf(
        "[innocents] confirmed=%d publish_errors=%d delivered=%d missing=%d "
        "duplicates=%d inspections=%d inspect_errors=%d status_events=%d\n",
        r.confirmed, r.publish_errors, r.delivered, r.missing, r.duplicates,
        r.inspections, r.inspect_errors, r.stream_status_events);
    return r;
  }

 private:
  void StopCallers() {
    stop_ = true;
    if (publisher_.joinable()) publisher_.join();
    if (inspector_.joinable()) inspector_.join();
  }

  void Error(const ::grpc::Status& s, const char* what) {
    if (first_error_.empty()) {
      first_error_ =
          absl::StrCat(what, ": ", s.error_code(), " ", s.error_message());
    }
  }

  void Publish() {
    for (int n = 0; !stop_; ++n) {
      v1::PublishRequest req;
      req.set_routing_key(queue_);
      req.set_body(absl::StrCat(n));
      (*req.mutable_properties()->mutable_headers())["innocent"]
          .set_double_value(0.5);
      v1::PublishResponse resp;
      ::grpc::Status s = stub_->Publish(As(token_).get(), req, &resp);
      std::lock_guard<std::mutex> lock(mu_);
      if (s.ok()) {
        confirmed_.insert(n);
        ++confirmed_count_;
      } else {
        ++publish_errors_;
        Error(s, "publish");
      }
      mu_.unlock();
      absl::SleepFor(absl::Milliseconds(3));  // pacing, not synchronisation
      mu_.lock();
    }
  }

  void Inspect() {
    while (!stop_) {
      v1::InspectQueueRequest req;
      req.set_name(queue_);
      v1::InspectQueueResponse resp;
      ::grpc::Status s = stub_->InspectQueue(As(token_).get(), req, &resp);
      v1::GetStatusResponse status;
      ::grpc::Status g =
          stub_->GetStatus(As(token_).get(), v1::GetStatusRequest(), &status);
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!s.ok()) {
          ++inspect_errors_;
          Error(s, "inspect");
        }
        if (!g.ok()) {
          ++inspect_errors_;
          Error(g, "status");
        }
      }
      ++inspections_;
      absl::SleepFor(absl::Milliseconds(5));  // pacing
    }
  }

  void Consume() {
    v1::StreamMessagesResponse ev;
    while (reader_->Read(&ev)) {
      if (ev.has_subscribed()) subscribed_ = true;
      std::lock_guard<std::mutex> lock(mu_);
      if (ev.has_status()) ++status_events_;
      if (ev.has_delivery()) {
        int n = -1;
        if (absl::SimpleAtoi(ev.delivery().body(), &n)) ++delivered_[n];
      }
    }
    ::grpc::Status s = reader_->Finish();
    std::lock_guard<std::mutex> lock(mu_);
    if (!stop_) {
      stream_ended_ = true;
      Error(s, "stream");
    }
  }

  std::unique_ptr<v1::Gateway::Stub> stub_;
  const std::string token_;
  const std::string queue_;
  std::unique_ptr<::grpc::ClientContext> stream_ctx_;
  std::unique_ptr<::grpc::ClientReader<v1::StreamMessagesResponse>> reader_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> subscribed_{false};
  std::atomic<int> confirmed_count_{0};
  std::atomic<int> inspections_{0};
  std::mutex mu_;
  std::set<int> confirmed_;
  std::map<int, int> delivered_;
  int publish_errors_ = 0;
  int inspect_errors_ = 0;
  int status_events_ = 0;
  bool stream_ended_ = false;
  std::string first_error_;
  std::thread publisher_;
  std::thread inspector_;
  std::thread consumer_;
};

// What must not change while a hostile caller calls: the session's
// reconnects and the gateway's AMQP connections as the broker lists them.
struct Connections {
  uint64_t reconnects = 0;
  uint64_t counted_reconnects = 0;
  // "<pid> <client properties>" of this gateway's connections (their
  // connection_name holds the instance id).
  std::set<std::string> broker_list;
  bool operator==(const Connections& o) const {
    return reconnects == o.reconnects &&
           counted_reconnects == o.counted_reconnects &&
           broker_list == o.broker_list;
  }
};

std::ostream& operator<<(std::ostream& out, const Connections& c) {
  out << "reconnects=" << c.reconnects
      << " counters.reconnects=" << c.counted_reconnects << " connections={";
  for (const auto& l : c.broker_list) out << l << "; ";
  return out << "}";
}

// A raw request of `bytes` to `method`, as a unary call.
::grpc::Status RawCall(const std::string& address, const std::string& method,
                       const std::string& bytes,
                       const std::string& token = "") {
  auto channel =
      ::grpc::CreateChannel(address, ::grpc::InsecureChannelCredentials());
  ::grpc::GenericStub generic(channel);
  auto ctx = As(token, absl::Seconds(10));
  ::grpc::Slice slice(bytes);
  ::grpc::ByteBuffer request(&slice, 1);
  ::grpc::ByteBuffer response;
  amqpgw::Notification done;
  ::grpc::Status status;
  generic.UnaryCall(ctx.get(), method, ::grpc::StubOptions(), &request,
                    &response, [&](::grpc::Status s) {
                      status = std::move(s);
                      done.Notify();
                    });
  done.WaitForNotification();
  return status;
}

// Everything written to the process's stderr (fd 2) while it lives.
class CaptureStderr {
 public:
  CaptureStderr()
      : path_(absl::StrCat(AMQPGW_TEST_TMP_DIR, "/", UniqueName("stderr"))) {
    std::fflush(stderr);
    saved_ = dup(2);
    int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
  }
  ~CaptureStderr() { Stop(); }
  std::string Stop() {
    if (saved_ >= 0) {
      std::fflush(stderr);
      dup2(saved_, 2);
      close(saved_);
      saved_ = -1;
    }
    std::ifstream in(path_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  std::string path_;
  int saved_ = -1;
};

class HostileInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    node_ = new BrokerNode(BrokerNode::Shared());
    instance_ = new std::string(UniqueName("hostile"));
    gateway_ = TestGateway::Start(node_->uri(), [](daemon::Options& o) {
                 o.instance_id = *instance_;
               }).release();
    ASSERT_TRUE(gateway_->WaitReady());
  }
  static void TearDownTestSuite() {
    delete gateway_;
    delete instance_;
    delete node_;
  }

  v1::Gateway::Stub& stub() { return gateway_->stub(); }

  static Connections Snapshot(TestGateway& g, const std::string& instance,
                              const std::string& token) {
    Connections c;
    v1::GetStatusResponse s;
    ::grpc::Status st =
        g.stub().GetStatus(As(token).get(), v1::GetStatusRequest(), &s);
    EXPECT_TRUE(st.ok()) << st.error_message();
    c.reconnects = s.connection().reconnects();
    c.counted_reconnects = s.counters().reconnects();
    absl::StatusOr<std::string> list = node_->Ctl(
        {"list_connections", "pid", "client_properties", "--silent"});
    EXPECT_TRUE(list.ok()) << list.status();
    if (list.ok()) {
      for (absl::string_view line : absl::StrSplit(*list, '\n')) {
        if (absl::StrContains(line, instance)) c.broker_list.emplace(line);
      }
    }
    return c;
  }

  // Runs `hostile` while innocents publish, consume and inspect beside it,
  // and checks that they noticed nothing.
  static void BesideInnocents(const std::function<void()>& hostile,
                              TestGateway* g = nullptr,
                              const std::string& token = "",
                              const std::string& instance = "") {
    if (g == nullptr) g = gateway_;
    const std::string& id = instance.empty() ? *instance_ : instance;
    Connections before = Snapshot(*g, id, token);
    // publisher, control and two consumer connections
    EXPECT_GE(before.broker_list.size(), 4u) << before;
    Innocents innocents(*g, token);
    ASSERT_TRUE(innocents.WaitProgress(10));
    hostile();
    // The innocents keep working after the hostile calls.
    EXPECT_TRUE(innocents.WaitProgress(30));
    Innocents::Report r = innocents.Finish();
    EXPECT_EQ(r.publish_errors, 0) << r.first_error;
    EXPECT_EQ(r.inspect_errors, 0) << r.first_error;
    EXPECT_FALSE(r.stream_ended) << r.first_error;
    EXPECT_EQ(r.stream_status_events, 0);
    EXPECT_EQ(r.missing, 0);
    EXPECT_EQ(r.duplicates, 0);
    EXPECT_GE(r.confirmed, 40);
    Connections after = Snapshot(*g, id, token);
    EXPECT_EQ(before, after) << "before: " << before << "\nafter: " << after;
    EXPECT_EQ(g->Health(), "SERVING");  // health needs no token
  }

  static BrokerNode* node_;
  static std::string* instance_;
  static TestGateway* gateway_;
};

BrokerNode* HostileInputTest::node_ = nullptr;
std::string* HostileInputTest::instance_ = nullptr;
TestGateway* HostileInputTest::gateway_ = nullptr;

void ExpectRefused(const ::grpc::Status& s, StatusCode code,
                   const std::string& field, const std::string& label) {
  EXPECT_EQ(s.error_code(), code) << label << ": " << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr(field)) << label;
}

// A (un)bind of `queue` to amq.headers matching header "h" = `value`.
template <typename Request>
Request HeadersBinding(const std::string& queue, double value) {
  Request r;
  r.set_queue(queue);
  r.set_exchange("amq.headers");
  (*r.mutable_arguments())["h"].set_double_value(value);
  return r;
}

// Declares an exchange (UniqueName(prefix), not durable) of `custom_type`,
// which must succeed, and deletes it again.
void ExpectCustomTypeDeclared(v1::Gateway::Stub& stub,
                              const std::string& prefix,
                              const std::string& custom_type) {
  v1::DeclareExchangeRequest dx;
  dx.set_name(UniqueName(prefix));
  dx.set_durable(false);
  dx.set_custom_type(custom_type);
  v1::DeclareExchangeResponse r;
  ::grpc::Status s = stub.DeclareExchange(Ctx().get(), dx, &r);
  EXPECT_TRUE(s.ok()) << custom_type << ": " << s.error_message();
  v1::DeleteExchangeRequest del;
  del.set_name(dx.name());
  v1::DeleteExchangeResponse delr;
  EXPECT_TRUE(stub.DeleteExchange(Ctx().get(), del, &delr).ok()) << custom_type;
}

// StreamMessages that must end before `subscribed` with `code`.
::grpc::Status OpenStream(v1::Gateway::Stub& stub,
                          const v1::StreamMessagesRequest& req,
                          bool* subscribed) {
  auto ctx = Ctx(absl::Seconds(10));
  auto reader = stub.StreamMessages(ctx.get(), req);
  v1::StreamMessagesResponse ev;
  *subscribed = false;
  while (reader->Read(&ev)) {
    if (ev.has_subscribed()) {
      *subscribed = true;
      ctx->TryCancel();
    }
  }
  return reader->Finish();
}

// --- 1. Non-finite doubles anywhere in a field table. ---

TEST_F(HostileInputTest, NonFiniteDoublesAreRefusedInEveryTable) {
  std::string queue = UniqueName("hostile-nan");
  {
    v1::DeclareQueueRequest dq;
    dq.set_name(queue);
    dq.set_durable(false);
    v1::DeclareQueueResponse dr;
    ASSERT_TRUE(stub().DeclareQueue(Ctx().get(), dq, &dr).ok());
  }
  BesideInnocents([&] {
    for (int round = 0; round < 5; ++round) {
      double bad = round % 2 == 0 ? kNaN : -kInf;
      v1::PublishRequest p;
      p.set_routing_key(queue);
      (*p.mutable_properties()->mutable_headers())["n"].set_double_value(bad);
      v1::PublishResponse pr;
      ExpectRefused(stub().Publish(Ctx().get(), p, &pr),
                    StatusCode::INVALID_ARGUMENT, "properties.headers[\"n\"]",
                    "Publish");

      v1::PublishBatchRequest b;
      b.add_messages()->set_routing_key(queue);
      v1::PublishRequest* m = b.add_messages();
      m->set_routing_key(queue);
      v1::FieldValue* t = &(*m->mutable_properties()->mutable_headers())["t"];
      (*t->mutable_table_value()->mutable_fields())["a"]
          .mutable_array_value()
          ->add_values()
          ->set_double_value(kInf);
      v1::PublishBatchResponse br;
      ExpectRefused(stub().PublishBatch(Ctx().get(), b, &br),
                    StatusCode::INVALID_ARGUMENT,
                    "messages[1].properties.headers[\"t\"][\"a\"][0]",
                    "PublishBatch");

      v1::DeclareQueueRequest dq;
      dq.set_name(UniqueName("hostile-never"));
      (*dq.mutable_arguments())["x-message-ttl"].set_double_value(bad);
      v1::DeclareQueueResponse dr;
      ExpectRefused(stub().DeclareQueue(Ctx().get(), dq, &dr),
                    StatusCode::INVALID_ARGUMENT,
                    "arguments[\"x-message-ttl\"]", "DeclareQueue");

      v1::DeclareExchangeRequest dx;
      dx.set_name(UniqueName("hostile-never"));
      (*dx.mutable_arguments())["x"].set_double_value(bad);
      v1::DeclareExchangeResponse dxr;
      ExpectRefused(stub().DeclareExchange(Ctx().get(), dx, &dxr),
                    StatusCode::INVALID_ARGUMENT, "arguments[\"x\"]",
                    "DeclareExchange");

      auto bq = HeadersBinding<v1::BindQueueRequest>(queue, bad);
      v1::BindQueueResponse bqr;
      ExpectRefused(stub().BindQueue(Ctx().get(), bq, &bqr),
                    StatusCode::INVALID_ARGUMENT, "arguments[\"h\"]",
                    "BindQueue");
      auto uq = HeadersBinding<v1::UnbindQueueRequest>(queue, bad);
      v1::UnbindQueueResponse uqr;
      ExpectRefused(stub().UnbindQueue(Ctx().get(), uq, &uqr),
                    StatusCode::INVALID_ARGUMENT, "arguments[\"h\"]",
                    "UnbindQueue");

      v1::StreamMessagesRequest sr;
      sr.set_queue(queue);
      (*sr.mutable_arguments())["x-priority"].set_double_value(bad);
      bool subscribed = false;
      ExpectRefused(OpenStream(stub(), sr, &subscribed),
                    StatusCode::INVALID_ARGUMENT, "arguments[\"x-priority\"]",
                    "StreamMessages");
      EXPECT_FALSE(subscribed);
    }
  });
  // Nothing of the hostile caller reached the queue.
  v1::InspectQueueRequest iq;
  iq.set_name(queue);
  v1::InspectQueueResponse ir;
  ASSERT_TRUE(stub().InspectQueue(Ctx().get(), iq, &ir).ok());
  EXPECT_EQ(ir.message_count(), 0u);
}

// --- 2. user_id other than the broker user. ---

TEST_F(HostileInputTest, UserIdOtherThanTheBrokerUserIsRefused) {
  std::string queue = UniqueName("hostile-user");
  v1::DeclareQueueRequest dq;
  dq.set_name(queue);
  dq.set_durable(false);
  v1::DeclareQueueResponse dr;
  ASSERT_TRUE(stub().DeclareQueue(Ctx().get(), dq, &dr).ok());
  BesideInnocents([&] {
    for (int i = 0; i < 20; ++i) {
      v1::PublishRequest p;
      p.set_routing_key(queue);
      p.mutable_properties()->set_user_id("admin");
      v1::PublishResponse pr;
      ::grpc::Status s = stub().Publish(Ctx().get(), p, &pr);
      ExpectRefused(s, StatusCode::INVALID_ARGUMENT, "properties.user_id",
                    "Publish user_id");
      EXPECT_THAT(s.error_message(), HasSubstr("'guest'"));
    }
  });
  // The broker user itself is fine.
  v1::PublishRequest p;
  p.set_routing_key(queue);
  p.mutable_properties()->set_user_id("guest");
  v1::PublishResponse pr;
  EXPECT_TRUE(stub().Publish(Ctx().get(), p, &pr).ok());
  v1::InspectQueueRequest iq;
  iq.set_name(queue);
  v1::InspectQueueResponse ir;
  ASSERT_TRUE(stub().InspectQueue(Ctx().get(), iq, &ir).ok());
  EXPECT_EQ(ir.message_count(), 1u);
}

// --- 3. Exchange types the broker does not have. ---

TEST_F(HostileInputTest, UnknownExchangeTypesAreCheckedOffTheSharedConnection) {
  BesideInnocents([&] {
    for (int i = 0; i < 10; ++i) {
      v1::DeclareExchangeRequest dx;
      dx.set_name(UniqueName("hostile-x"));
      dx.set_custom_type(i % 2 == 0 ? "x-nope" : "DIRECT");
      v1::DeclareExchangeResponse r;
      ::grpc::Status s = stub().DeclareExchange(Ctx().get(), dx, &r);
      ExpectRefused(s, StatusCode::FAILED_PRECONDITION, "custom_type",
                    "DeclareExchange");
      EXPECT_THAT(s.error_message(), HasSubstr(dx.custom_type()));
    }
  });
  // A built-in type named as custom_type is declared as usual.
  ExpectCustomTypeDeclared(stub(), "hostile-topic", "topic");
}

TEST_F(HostileInputTest, APluginExchangeTypeIsDeclaredOnceTheBrokerHasIt) {
  // rabbitmq_random_exchange ships with RabbitMQ; enabling it on the running
  // node adds the type "x-random" and nothing else.
  absl::StatusOr<std::string> out =
      node_->Plugins({"enable", "rabbitmq_random_exchange"});
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectCustomTypeDeclared(stub(), "hostile-random", "x-random");
}

// --- 4. Everything else that closes a shared connection or the publish
// channel (server/amqp/broker_rules.h has the list and how it was found). ---

TEST_F(HostileInputTest, OtherConnectionAndChannelClosersAreRefused) {
  std::string queue = UniqueName("hostile-other");
  std::string stream_queue = UniqueName("hostile-stream");
  for (const auto& [name, type] :
       {std::pair(queue, v1::CLASSIC), std::pair(stream_queue, v1::STREAM)}) {
    v1::DeclareQueueRequest dq;
    dq.set_name(name);
    dq.set_type(type);
    dq.set_durable(type == v1::STREAM);
    v1::DeclareQueueResponse dr;
    ASSERT_TRUE(stub().DeclareQueue(Ctx().get(), dq, &dr).ok());
  }
  BesideInnocents([&] {
    for (int round = 0; round < 3; ++round) {
      // Connection closers (541 INTERNAL_ERROR in RabbitMQ 3.10).
      v1::DeclareQueueRequest locator;
      locator.set_name(UniqueName("hostile-never"));
      (*locator.mutable_arguments())["x-queue-master-locator"].set_string_value(
          "nope");
      v1::DeclareQueueResponse dr;
      ExpectRefused(stub().DeclareQueue(Ctx().get(), locator, &dr),
                    StatusCode::INVALID_ARGUMENT,
                    "arguments[\"x-queue-master-locator\"]", "master locator");

      v1::DeclareQueueRequest max_age;
      max_age.set_name(UniqueName("hostile-never"));
      max_age.set_type(v1::STREAM);
      (*max_age.mutable_arguments())["x-max-age"].set_string_value("forever");
      ExpectRefused(stub().DeclareQueue(Ctx().get(), max_age, &dr),
                    StatusCode::INVALID_ARGUMENT, "arguments[\"x-max-age\"]",
                    "x-max-age");

      v1::StreamMessagesRequest offset;
      offset.set_queue(stream_queue);
      (*offset.mutable_arguments())["x-stream-offset"].set_string_value(
          "yesterday");
      bool subscribed = false;
      ExpectRefused(OpenStream(stub(), offset, &subscribed),
                    StatusCode::INVALID_ARGUMENT,
                    "arguments[\"x-stream-offset\"]", "x-stream-offset");
      (*offset.mutable_arguments())["x-stream-offset"].set_bool_value(true);
      ExpectRefused(OpenStream(stub(), offset, &subscribed),
                    StatusCode::INVALID_ARGUMENT,
                    "arguments[\"x-stream-offset\"]", "x-stream-offset bool");

      v1::PublishRequest reply_key;
      reply_key.set_routing_key(
          "amq.rabbitmq.reply-to.g2dkAA5yYWJiaXRAbG9jYWxob3N0.abc");
      v1::PublishResponse pr;
      ExpectRefused(stub().Publish(Ctx().get(), reply_key, &pr),
                    StatusCode::INVALID_ARGUMENT, "routing_key",
                    "reply-to routing key");
      v1::PublishRequest cc_reply;
      cc_reply.set_routing_key(queue);
      (*cc_reply.mutable_properties()->mutable_headers())["CC"]
          .mutable_array_value()
          ->add_values()
          ->set_string_value("amq.rabbitmq.reply-to.a.b");
      ExpectRefused(stub().Publish(Ctx().get(), cc_reply, &pr),
                    StatusCode::INVALID_ARGUMENT,
                    "properties.headers[\"CC\"][0]", "CC reply-to");

      // A method larger than frame_max would fail the gateway's own send.
      v1::DeclareQueueRequest big;
      big.set_name(UniqueName("hostile-never"));
      (*big.mutable_arguments())["x-big"].set_string_value(
          std::string(200 << 10, 'x'));
      ExpectRefused(stub().DeclareQueue(Ctx().get(), big, &dr),
                    StatusCode::INVALID_ARGUMENT, "arguments: larger than",
                    "big arguments");
      v1::StreamMessagesRequest big_stream;
      big_stream.set_queue(queue);
      (*big_stream.mutable_arguments())["x-big"].set_bytes_value(
          std::string(200 << 10, 'x'));
      ExpectRefused(OpenStream(stub(), big_stream, &subscribed),
                    StatusCode::INVALID_ARGUMENT, "arguments: larger than",
                    "big consumer arguments");

      // Publish channel closers (406 PRECONDITION_FAILED).
      v1::PublishRequest reply_to;
      reply_to.set_routing_key(queue);
      reply_to.mutable_properties()->set_reply_to("amq.rabbitmq.reply-to");
      ExpectRefused(stub().Publish(Ctx().get(), reply_to, &pr),
                    StatusCode::INVALID_ARGUMENT, "properties.reply_to",
                    "reply_to");
      v1::PublishRequest cc;
      cc.set_routing_key(queue);
      (*cc.mutable_properties()->mutable_headers())["BCC"].set_string_value(
          queue);
      ExpectRefused(stub().Publish(Ctx().get(), cc, &pr),
                    StatusCode::INVALID_ARGUMENT, "properties.headers[\"BCC\"]",
                    "BCC string");
    }
  });
  // The broker's own refusals that close only the caller's channel still
  // come back as before (here 406 for an unknown x-overflow).
  v1::DeclareQueueRequest overflow;
  overflow.set_name(UniqueName("hostile-never"));
  (*overflow.mutable_arguments())["x-overflow"].set_string_value("nope");
  v1::DeclareQueueResponse dr;
  EXPECT_EQ(stub().DeclareQueue(Ctx().get(), overflow, &dr).error_code(),
            StatusCode::FAILED_PRECONDITION);
  v1::DeleteQueueRequest del;
  del.set_name(stream_queue);
  v1::DeleteQueueResponse delr;
  EXPECT_TRUE(stub().DeleteQueue(Ctx().get(), del, &delr).ok());
}

// --- 5. Requests that are not protobuf of the method's message. ---

std::string DeeplyNestedPublish(int levels) {
  v1::PublishRequest r;
  r.set_routing_key("q");
  v1::FieldValue* v = &(*r.mutable_properties()->mutable_headers())["h"];
  for (int i = 0; i < levels; ++i) {
    v = &(*v->mutable_table_value()->mutable_fields())["n"];
  }
  v->set_int_value(1);
  return r.SerializeAsString();
}

TEST_F(HostileInputTest, UnparseableRequestsAreInvalidArgument) {
  // PublishRequest.routing_key (field 2, a string) holding 0xff.
  const std::string bad_utf8("\x12\x03q\xffq", 5);
  const std::string deep = DeeplyNestedPublish(40);  // > 100 message levels
  const std::string garbage("\xff\xff\xff", 3);
  const std::string publish = "/amqpgw.v1.Gateway/Publish";
  BesideInnocents([&] {
    CaptureStderr capture;
    for (int i = 0; i < 5; ++i) {
      ::grpc::Status s = RawCall(gateway_->address(), publish, bad_utf8);
      EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT)
          << s.error_message();
      EXPECT_THAT(s.error_message(),
                  HasSubstr("request could not be parsed as "
                            "amqpgw.v1.PublishRequest: string field "
                            "amqpgw.v1.PublishRequest.routing_key is not valid "
                            "UTF-8"));
      s = RawCall(gateway_->address(), publish, deep);
      EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT);
      EXPECT_THAT(s.error_message(),
                  HasSubstr("could not be parsed as amqpgw.v1.PublishRequest"));
      s = RawCall(gateway_->address(), "/amqpgw.v1.Gateway/StreamMessages",
                  garbage);
      EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT);
      EXPECT_THAT(
          s.error_message(),
          HasSubstr("could not be parsed as amqpgw.v1.StreamMessagesRequest"));
      // The same over grpc-web.
      GrpcWebReply w =
          GrpcWebPost(gateway_->daemon().http_port(), publish, {bad_utf8});
      EXPECT_EQ(w.GrpcStatus(), static_cast<int>(StatusCode::INVALID_ARGUMENT));
      EXPECT_THAT(w.GrpcMessage(), HasSubstr("routing_key is not valid UTF-8"));
    }
    std::string err = capture.Stop();
    EXPECT_THAT(err, Not(HasSubstr("libprotobuf")));
    EXPECT_THAT(err, Not(HasSubstr("invalid UTF-8")));
  });
  // Unknown methods stay UNIMPLEMENTED.
  ::grpc::Status s =
      RawCall(gateway_->address(), "/amqpgw.v1.Gateway/NoSuchMethod", "");
  EXPECT_EQ(s.error_code(), StatusCode::UNIMPLEMENTED);
  // And the metrics count the refusals as INVALID_ARGUMENT.
  std::string page = gateway_->daemon().RenderMetrics();
  EXPECT_GE(MetricValue(page,
                        "amqpgw_rpc_handled_total{service=\"amqpgw.v1."
                        "Gateway\",method=\"Publish\",code=\"INVALID_"
                        "ARGUMENT\"}"),
            15);
}

// --- 6. Echoed input is capped. ---

TEST_F(HostileInputTest, ErrorsEchoAtMostABoundedPartOfTheInput) {
  BesideInnocents([&] {
    std::string huge(1 << 20, 's');
    v1::AckRequest ack;
    ack.set_subscription_id(huge);
    ack.add_delivery_ids(1);
    v1::AckResponse ar;
    ::grpc::Status s = stub().Ack(Ctx().get(), ack, &ar);
    EXPECT_EQ(s.error_code(), StatusCode::NOT_FOUND) << s.error_message();
    EXPECT_LT(s.error_message().size(), 600u);
    EXPECT_THAT(s.error_message(), HasSubstr("... (1048576 bytes)"));
    // Another instance's id: FAILED_PRECONDITION, also bounded.
    ack.set_subscription_id(huge + "/x");
    s = stub().Ack(Ctx().get(), ack, &ar);
    EXPECT_EQ(s.error_code(), StatusCode::FAILED_PRECONDITION);
    EXPECT_LT(s.error_message().size(), 800u);

    v1::PublishRequest p;
    p.set_routing_key("q");
    (*p.mutable_properties()->mutable_headers())[huge].set_int_value(1);
    v1::PublishResponse pr;
    s = stub().Publish(Ctx().get(), p, &pr);
    EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT);
    EXPECT_LT(s.error_message().size(), 600u);

    v1::DeclareQueueRequest dq;
    dq.set_name(huge);
    v1::DeclareQueueResponse dr;
    s = stub().DeclareQueue(Ctx().get(), dq, &dr);
    EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT);
    EXPECT_LT(s.error_message().size(), 200u);
  });
}

// --- 7. Refused tokens: counted, logged without the token, rate-limited. ---

TEST_F(HostileInputTest, RefusedTokensAreCountedAndLoggedRateLimited) {
  const std::string publisher = "pub-3b9f0c1e7a5d4286";
  const std::string admin = "adm-9e41c07d2b8a3f65";
  const std::string wrong = "wrong-5d1e8a0c3f7b9264";
  std::string tokens =
      absl::StrCat(AMQPGW_TEST_TMP_DIR, "/", UniqueName("tokens"));
  std::ofstream(tokens) << publisher << " publish\n" << admin << " admin\n";
  std::string instance = UniqueName("hostile-auth");
  auto g = TestGateway::Start(node_->uri(), [&](daemon::Options& o) {
    o.auth_tokens = tokens;
    o.instance_id = instance;
  });
  ASSERT_TRUE(WaitFor([&] {
    v1::GetStatusResponse r;
    return g->stub()
               .GetStatus(As(admin).get(), v1::GetStatusRequest(), &r)
               .ok() &&
           r.connection().state() == v1::ConnectionInfo::READY;
  }));
  constexpr int kEach = 100;
  std::string log;
  absl::Time start;
  absl::Time end;
  BesideInnocents(
      [&] {
        CaptureStderr capture;
        start = absl::Now();
        for (int i = 0; i < kEach; ++i) {
          v1::InspectQueueRequest iq;
          iq.set_name("q");
          v1::InspectQueueResponse ir;
          EXPECT_EQ(g->stub().InspectQueue(As("").get(), iq, &ir).error_code(),
                    StatusCode::UNAUTHENTICATED);
          EXPECT_EQ(
              g->stub().InspectQueue(As(wrong).get(), iq, &ir).error_code(),
              StatusCode::UNAUTHENTICATED);
          v1::PurgeQueueRequest pq;
          pq.set_name("q");
          v1::PurgeQueueResponse pqr;
          EXPECT_EQ(
              g->stub().PurgeQueue(As(publisher).get(), pq, &pqr).error_code(),
              StatusCode::PERMISSION_DENIED);
        }
        end = absl::Now();
        log = capture.Stop();
      },
      g.get(), admin, instance);
  std::string page = g->daemon().RenderMetrics();
  EXPECT_EQ(
      MetricValue(page, "amqpgw_auth_failures_total{reason=\"missing_token\"}"),
      kEach);
  EXPECT_EQ(
      MetricValue(page, "amqpgw_auth_failures_total{reason=\"unknown_token\"}"),
      kEach);
  EXPECT_EQ(
      MetricValue(page, "amqpgw_auth_failures_total{reason=\"role_denied\"}"),
      kEach);
  EXPECT_EQ(
      MetricValue(page, "amqpgw_auth_failures_total{reason=\"malformed\"}"), 0);
  int lines = 0;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    if (absl::StrContains(line, "auth: refused")) {
      ++lines;
      EXPECT_THAT(line, HasSubstr("ipv4:127.0.0.1:")) << line;
    }
  }
  // A burst of 20, then one a second.
  EXPECT_GE(lines, 20);
  EXPECT_LE(lines, 20 + absl::ToInt64Seconds(end - start) + 2) << log;
  EXPECT_THAT(log, HasSubstr("refused InspectQueue"));
  EXPECT_THAT(log, HasSubstr("refused PurgeQueue"));
  EXPECT_THAT(log, Not(HasSubstr(wrong)));
  EXPECT_THAT(log, Not(HasSubstr(publisher)));
  g.reset();
}

}  // namespace
}  // namespace amqpgw::testing
