// One caller's publish that the broker refuses or chokes on must hurt no
// other caller (issue 18). Each case runs innocent callers beside a hostile
// one against a real RabbitMQ node and counts: the innocents' errors (zero),
// their confirmed messages found in the queue (all), duplicates (zero where
// the design promises none: every refusal sent alone), and the reconnects a
// single bad request caused.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/support/amqp_peer.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/tcp_proxy.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;

uint64_t Reconnects(TestGateway& g) {
  return GatewayStatus(g).connection().reconnects();
}

std::string DeclareQueue(v1::Gateway::Stub& stub, const std::string& prefix) {
  std::string q = UniqueName(prefix);
  v1::DeclareQueueRequest req;
  req.set_name(q);
  req.set_durable(false);
  v1::DeclareQueueResponse resp;
  ::grpc::Status s = stub.DeclareQueue(Ctx().get(), req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return q;
}

// Callers that publish numbered messages to one queue, each on its own
// channel to the gateway, and count what the gateway answered.
class Innocents {
 public:
  // `threads` unary Publish loops, plus one PublishBatch loop (batches of 20)
  // when `batches`.
  Innocents(TestGateway& g, std::string queue, int threads, bool batches = true)
      : queue_(std::move(queue)) {
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, stub = g.NewStub(), t]() mutable {
        for (int n = 0; !stop_.load(); ++n) {
          v1::PublishRequest req;
          req.set_routing_key(queue_);
          req.set_body(absl::StrCat("u", t, "-", n));
          v1::PublishResponse resp;
          Record(req.body(), stub->Publish(Ctx().get(), req, &resp));
        }
      });
    }
    if (batches) {
      threads_.emplace_back([this, stub = g.NewStub()]() mutable {
        for (int n = 0; !stop_.load(); ++n) {
          v1::PublishBatchRequest req;
          for (int i = 0; i < 20; ++i) {
            auto* m = req.add_messages();
            m->set_routing_key(queue_);
            m->set_body(absl::StrCat("b", n, "-", i));
          }
          v1::PublishBatchResponse resp;
          ::grpc::Status s = stub->PublishBatch(Ctx().get(), req, &resp);
          for (int i = 0; i < req.messages_size(); ++i) {
            ::grpc::Status one =
                !s.ok() ? s
                        : ::grpc::Status(static_cast<::grpc::StatusCode>(
                                             resp.results(i).code()),
                                         resp.results(i).error());
            Record(req.messages(i).body(), one);
          }
        }
      });
    }
  }
  ~Innocents() { Stop(); }

  void Stop() {
    stop_.store(true);
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  size_t confirmed_count() {
    std::lock_guard<std::mutex> lock(mu_);
    return confirmed_.size();
  }
  std::set<std::string> confirmed() {
    std::lock_guard<std::mutex> lock(mu_);
    return confirmed_;
  }
  int errors() {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(errors_.size());
  }
  std::string error_samples() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (size_t i = 0; i < errors_.size() && i < 5; ++i) {
      absl::StrAppend(&out, "\n  ", errors_[i]);
    }
    return out;
  }
  // Waits until `n` more messages than now were confirmed.
  bool WaitMore(size_t n) {
    size_t target = confirmed_count() + n;
    return WaitFor([&] { return confirmed_count() >= target; });
  }

 private:
  void Record(const std::string& body, const ::grpc::Status& s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (s.ok()) {
      confirmed_.insert(body);
    } else {
      errors_.push_back(
          absl::StrCat(body, ": ", s.error_code(), " ", s.error_message()));
    }
  }

  const std::string queue_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::set<std::string> confirmed_;
  std::vector<std::string> errors_;
};

// What a queue holds: body -> copies. Empties the queue.
std::map<std::string, int> Drain(int port, const std::string& queue) {
  std::map<std::string, int> counts;
  auto peer = AmqpPeer::Connect(port);
  EXPECT_TRUE(peer.ok()) << peer.status();
  if (!peer.ok()) return counts;
  for (;;) {
    auto m = (*peer)->Get(queue);
    EXPECT_TRUE(m.ok()) << m.status();
    if (!m.ok() || !m->has_value()) break;
    ++counts[(*m)->body];
  }
  return counts;
}

struct Tally {
  int lost = 0;         // confirmed, not in the queue
  int duplicates = 0;   // extra copies in the queue
  int unconfirmed = 0;  // in the queue, never answered OK
};

// Compares what the innocents were told with what the queue holds.
Tally Count(Innocents& innocents, int port, const std::string& queue,
            const std::string& label) {
  std::set<std::string> confirmed = innocents.confirmed();
  std::map<std::string, int> held = Drain(port, queue);
  Tally t;
  for (const std::string& body : confirmed) {
    if (held.find(body) == held.end()) ++t.lost;
  }
  for (const auto& [body, copies] : held) {
    t.duplicates += copies - 1;
    if (confirmed.find(body) == confirmed.end()) ++t.unconfirmed;
  }
  std::printf(
      "[%s] innocent calls confirmed=%zu errors=%d; queue holds %zu bodies: "
      "lost=%d duplicates=%d unconfirmed=%d\n",
      label.c_str(), confirmed.size(), innocents.errors(), held.size(), t.lost,
      t.duplicates, t.unconfirmed);
  return t;
}

// Stops the innocents and checks what every case promises them: no errors,
// none of their confirmed messages missing from the queue, and `unconfirmed`
// bodies there they were never told were confirmed. The tally, for the
// case's own checks.
Tally StopAndCount(Innocents& innocents, int port, const std::string& queue,
                   const std::string& label, int unconfirmed = 0) {
  innocents.Stop();
  EXPECT_EQ(innocents.errors(), 0) << innocents.error_samples();
  Tally t = Count(innocents, port, queue, label);
  EXPECT_EQ(t.lost, 0) << label;
  EXPECT_EQ(t.unconfirmed, unconfirmed) << label;
  return t;
}

// Best-effort clean-up of what a case declared.
void DeleteExchange(v1::Gateway::Stub& stub, const std::string& name) {
  v1::DeleteExchangeRequest req;
  req.set_name(name);
  v1::DeleteExchangeResponse resp;
  stub.DeleteExchange(Ctx().get(), req, &resp);
}
void DeleteQueue(v1::Gateway::Stub& stub, const std::string& name) {
  v1::DeleteQueueRequest req;
  req.set_name(name);
  v1::DeleteQueueResponse resp;
  stub.DeleteQueue(Ctx().get(), req, &resp);
}

v1::PublishRequest ToExchange(const std::string& exchange,
                              const std::string& routing_key,
                              const std::string& body) {
  v1::PublishRequest req;
  req.set_exchange(exchange);
  req.set_routing_key(routing_key);
  req.set_body(body);
  return req;
}

// A broker user of the test's own on the shared node, removed afterwards.
class BrokerUser {
 public:
  BrokerUser(BrokerNode& node, const std::string& prefix) : node_(node) {
    name_ = UniqueName(prefix);
    EXPECT_TRUE(node_.Ctl({"add_user", name_, "pw"}).ok());
  }
  ~BrokerUser() { node_.Ctl({"delete_user", name_}).IgnoreError(); }
  void Permit(const std::string& configure, const std::string& write,
              const std::string& read) {
    auto s = node_.Ctl(
        {"set_permissions", "-p", "/", name_, configure, write, read});
    EXPECT_TRUE(s.ok()) << s.status();
  }
  void PermitTopic(const std::string& exchange, const std::string& write) {
    auto s = node_.Ctl(
        {"set_topic_permissions", "-p", "/", name_, exchange, write, ".*"});
    EXPECT_TRUE(s.ok()) << s.status();
  }
  std::string uri() const {
    return absl::StrCat("amqp://", name_, ":pw@127.0.0.1:", node_.port(), "/");
  }

 private:
  BrokerNode& node_;
  std::string name_;
};

// --- Item 1: a refusal closes the channel under one message only. ---

TEST(HostilePublishTest, InternalExchangeRefusalFailsOnlyItsCaller) {
  BrokerNode node = BrokerNode::Shared();
  auto g = TestGateway::Start(node.uri());
  ASSERT_TRUE(g->WaitReady());
  std::string q = DeclareQueue(g->stub(), "hostile-internal");
  std::string internal = UniqueName("internal-x");
  {
    v1::DeclareExchangeRequest req;
    req.set_name(internal);
    req.set_type(v1::FANOUT);
    req.set_durable(false);
    req.set_internal(true);
    v1::DeclareExchangeResponse resp;
    ASSERT_TRUE(g->stub().DeclareExchange(Ctx().get(), req, &resp).ok());
  }
  uint64_t reconnects = Reconnects(*g);
  Innocents innocents(*g, q, 6);
  ASSERT_TRUE(innocents.WaitMore(300));

  auto hostile = g->NewStub();
  int refused = 0;
  for (int i = 0; i < 40; ++i) {
    v1::PublishResponse resp;
    ::grpc::Status s =
        hostile->Publish(Ctx().get(), ToExchange(internal, "", "bad"), &resp);
    EXPECT_EQ(s.error_code(), ::grpc::StatusCode::PERMISSION_DENIED)
        << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("internal exchange"));
    if (s.error_code() == ::grpc::StatusCode::PERMISSION_DENIED) ++refused;
    if (i % 10 == 9) {
      // A batch mixing good and refused messages: only the refused fails,
      // and its good messages land (counted with the innocents' below).
      v1::PublishBatchRequest batch;
      *batch.add_messages() = ToExchange("", q, absl::StrCat("h", i, "-a"));
      *batch.add_messages() = ToExchange(internal, "", "bad");
      *batch.add_messages() = ToExchange("", q, absl::StrCat("h", i, "-b"));
      v1::PublishBatchResponse bresp;
      ASSERT_TRUE(hostile->PublishBatch(Ctx().get(), batch, &bresp).ok());
      EXPECT_EQ(bresp.results(0).code(), 0) << bresp.results(0).error();
      EXPECT_EQ(bresp.results(1).code(),
                static_cast<int>(::grpc::StatusCode::PERMISSION_DENIED));
      EXPECT_EQ(bresp.results(2).code(), 0) << bresp.results(2).error();
    }
  }
  ASSERT_TRUE(innocents.WaitMore(300));
  // 8 unconfirmed: the hostile batches' good messages.
  Tally t = StopAndCount(innocents, node.port(), q, "internal exchange", 8);
  EXPECT_EQ(refused, 40);
  // Each refusal was sent alone: nothing else was in flight to duplicate.
  EXPECT_EQ(t.duplicates, 0);
  EXPECT_EQ(Reconnects(*g), reconnects);
}

TEST(HostilePublishTest, MissingWritePermissionFailsOnlyItsCaller) {
  BrokerNode node = BrokerNode::Shared();
  BrokerUser user(node, "hostile-user");
  std::string denied = UniqueName("denied-x");
  // May declare anything, read anything, write only to the default exchange
  // and its own queues.
  user.Permit(".*", "^(amq\\.default|hostile-perm-.*)$", ".*");
  auto g = TestGateway::Start(user.uri());
  ASSERT_TRUE(g->WaitReady());
  std::string q = DeclareQueue(g->stub(), "hostile-perm");
  {
    v1::DeclareExchangeRequest req;
    req.set_name(denied);
    req.set_type(v1::FANOUT);
    req.set_durable(false);
    v1::DeclareExchangeResponse resp;
    ASSERT_TRUE(g->stub().DeclareExchange(Ctx().get(), req, &resp).ok());
  }
  uint64_t reconnects = Reconnects(*g);
  Innocents innocents(*g, q, 6);
  ASSERT_TRUE(innocents.WaitMore(300));
  auto hostile = g->NewStub();
  for (int i = 0; i < 40; ++i) {
    v1::PublishResponse resp;
    ::grpc::Status s =
        hostile->Publish(Ctx().get(), ToExchange(denied, "", "bad"), &resp);
    EXPECT_EQ(s.error_code(), ::grpc::StatusCode::PERMISSION_DENIED)
        << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("refused for user"));
  }
  ASSERT_TRUE(innocents.WaitMore(300));
  Tally t = StopAndCount(innocents, node.port(), q, "write permission");
  EXPECT_EQ(t.duplicates, 0);
  EXPECT_EQ(Reconnects(*g), reconnects);
  DeleteExchange(g->stub(), denied);
}

// Properties RabbitMQ checks per message: a user_id that is not the
// connection's user, a direct reply-to without its consumer. Refused either
// before sending (input validation) or by the broker, alone.
TEST(HostilePublishTest, RefusedPropertiesFailOnlyTheirCaller) {
  BrokerNode node = BrokerNode::Shared();
  auto g = TestGateway::Start(node.uri());
  ASSERT_TRUE(g->WaitReady());
  std::string q = DeclareQueue(g->stub(), "hostile-props");
  uint64_t reconnects = Reconnects(*g);
  Innocents innocents(*g, q, 6);
  ASSERT_TRUE(innocents.WaitMore(300));
  auto hostile = g->NewStub();
  for (int i = 0; i < 30; ++i) {
    v1::PublishRequest req = ToExchange("", q, absl::StrCat("bad-", i));
    if (i % 2 == 0) {
      req.mutable_properties()->set_user_id("admin");
    } else {
      req.mutable_properties()->set_reply_to("amq.rabbitmq.reply-to");
    }
    v1::PublishResponse resp;
    ::grpc::Status s = hostile->Publish(Ctx().get(), req, &resp);
    EXPECT_THAT(s.error_code(), AnyOf(::grpc::StatusCode::FAILED_PRECONDITION,
                                      ::grpc::StatusCode::INVALID_ARGUMENT))
        << s.error_message();
  }
  ASSERT_TRUE(innocents.WaitMore(300));
  // 0 unconfirmed: no refused message reached the queue.
  Tally t = StopAndCount(innocents, node.port(), q, "user_id, reply-to");
  EXPECT_EQ(t.duplicates, 0);
  EXPECT_EQ(Reconnects(*g), reconnects);
}

// The refusal comes on the shared pipeline: the exchange was confirmed
// before (so its messages are pipelined) and is deleted under traffic. The
// refused message is pinned by the reply text and the order of the messages
// in flight; the innocents' messages in flight are published again (those
// the broker had routed may arrive twice: at-least-once, counted).
TEST(HostilePublishTest, ExchangeDeletedUnderTrafficFailsOnlyItsPublishers) {
  BrokerNode node = BrokerNode::Shared();
  auto g = TestGateway::Start(node.uri());
  ASSERT_TRUE(g->WaitReady());
  std::string q = DeclareQueue(g->stub(), "hostile-deleted");
  std::string qx = DeclareQueue(g->stub(), "hostile-deleted-x");
  std::string x = UniqueName("deleted-x");
  {
    v1::DeclareExchangeRequest req;
    req.set_name(x);
    req.set_type(v1::FANOUT);
    req.set_durable(false);
    v1::DeclareExchangeResponse resp;
    ASSERT_TRUE(g->stub().DeclareExchange(Ctx().get(), req, &resp).ok());
    v1::BindQueueRequest bind;
    bind.set_queue(qx);
    bind.set_exchange(x);
    v1::BindQueueResponse bind_resp;
    ASSERT_TRUE(g->stub().BindQueue(Ctx().get(), bind, &bind_resp).ok());
  }
  uint64_t reconnects = Reconnects(*g);
  Innocents innocents(*g, q, 6);
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, not_found{0}, no_route{0}, other{0};
  std::mutex other_mu;
  std::string other_sample;
  std::thread hostile([&, stub = g->NewStub()] {
    for (int n = 0; !stop.load(); ++n) {
      v1::PublishBatchRequest req;
      for (int i = 0; i < 50; ++i) {
        *req.add_messages() = ToExchange(x, "", absl::StrCat(n, "-", i));
      }
      v1::PublishBatchResponse resp;
      if (!stub->PublishBatch(Ctx().get(), req, &resp).ok()) continue;
      for (const v1::PublishResult& r : resp.results()) {
        if (r.code() == 0) {
          ++ok;
        } else if (r.code() ==
                   static_cast<int>(::grpc::StatusCode::NOT_FOUND)) {
          ++not_found;
        } else if (r.code() == static_cast<int>(
                                   ::grpc::StatusCode::FAILED_PRECONDITION) &&
                   absl::StrContains(r.error(), "NO_ROUTE")) {
          ++no_route;
        } else {
          ++other;
          std::lock_guard<std::mutex> lock(other_mu);
          other_sample = absl::StrCat(r.code(), " ", r.error());
        }
      }
    }
  });
  ASSERT_TRUE(WaitFor([&] { return ok.load() >= 1000; }));
  ASSERT_TRUE(innocents.WaitMore(300));
  {
    v1::DeleteExchangeRequest del;
    del.set_name(x);
    v1::DeleteExchangeResponse resp;
    ASSERT_TRUE(g->stub().DeleteExchange(Ctx().get(), del, &resp).ok());
  }
  ASSERT_TRUE(WaitFor([&] { return not_found.load() >= 200; }));
  ASSERT_TRUE(innocents.WaitMore(300));
  stop.store(true);
  hostile.join();
  std::printf(
      "[exchange deleted] hostile ok=%d not_found=%d no_route=%d other=%d\n",
      ok.load(), not_found.load(), no_route.load(), other.load());
  StopAndCount(innocents, node.port(), q, "exchange deleted");
  // OK or NOT_FOUND: the first unconfirmed message to the exchange takes
  // the blame (even if the broker routed it just before the delete), the
  // later ones were discarded and find the exchange gone. A message that
  // meets the delete half done (the exchange still there, its binding
  // gone: the broker reads them apart) comes back unroutable, NO_ROUTE: at
  // most the one batch in flight then.
  EXPECT_EQ(other.load(), 0) << other_sample;
  EXPECT_LE(no_route.load(), 50);
  EXPECT_EQ(Reconnects(*g), reconnects);
}

// Topic permissions refuse per routing key, so a topic exchange that works
// for one key can refuse the next on the shared pipeline; after the first
// refusal the gateway proves that exchange per routing key.
TEST(HostilePublishTest, TopicPermissionRefusalFailsOnlyItsRoutingKey) {
  BrokerNode node = BrokerNode::Shared();
  BrokerUser user(node, "hostile-topic");
  user.Permit(".*", ".*", ".*");
  user.PermitTopic("amq.topic", "^ok\\.");
  auto g = TestGateway::Start(user.uri());
  ASSERT_TRUE(g->WaitReady());
  std::string q = DeclareQueue(g->stub(), "hostile-topic");
  std::string qt = DeclareQueue(g->stub(), "hostile-topic-t");
  {
    v1::BindQueueRequest bind;
    bind.set_queue(qt);
    bind.set_exchange("amq.topic");
    bind.set_routing_key(absl::StrCat("ok.", qt));
    v1::BindQueueResponse resp;
    ASSERT_TRUE(g->stub().BindQueue(Ctx().get(), bind, &resp).ok());
  }
  uint64_t reconnects = Reconnects(*g);
  Innocents innocents(*g, q, 6);
  // Innocents on the topic exchange too, with a permitted key.
  std::atomic<bool> stop{false};
  std::atomic<int> topic_ok{0}, topic_errors{0};
  std::thread topic_innocent([&, stub = g->NewStub()] {
    for (int n = 0; !stop.load(); ++n) {
      v1::PublishBatchRequest req;
      for (int i = 0; i < 20; ++i) {
        *req.add_messages() =
            ToExchange("amq.topic", absl::StrCat("ok.", qt), "t");
      }
      v1::PublishBatchResponse resp;
      if (!stub->PublishBatch(Ctx().get(), req, &resp).ok()) {
        topic_errors += 20;
        continue;
      }
      topic_ok += resp.ok_count();
      topic_errors += resp.results_size() - resp.ok_count();
    }
  });
  ASSERT_TRUE(WaitFor([&] { return topic_ok.load() >= 200; }));
  ASSERT_TRUE(innocents.WaitMore(300));
  auto hostile = g->NewStub();
  for (int i = 0; i < 30; ++i) {
    v1::PublishResponse resp;
    ::grpc::Status s = hostile->Publish(
        Ctx().get(), ToExchange("amq.topic", "denied.key", "bad"), &resp);
    EXPECT_EQ(s.error_code(), ::grpc::StatusCode::PERMISSION_DENIED)
        << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("topic 'denied.key'"));
  }
  ASSERT_TRUE(innocents.WaitMore(300));
  stop.store(true);
  topic_innocent.join();
  StopAndCount(innocents, node.port(), q, "topic permission");
  EXPECT_EQ(topic_errors.load(), 0);
  EXPECT_EQ(Reconnects(*g), reconnects);
  Drain(node.port(), qt);
}

// --- Item 2: a message the broker cannot handle closes the connection. ---

// Through a proxy that answers a marker in a message as RabbitMQ answers a
// message it cannot handle (connection.close 541): the message is failed
// after the second close, never sent a third time; the innocents' messages
// in flight at the closes are published again.
TEST(HostilePublishTest, PoisonMessageIsFailedAfterTwoConnectionCloses) {
  BrokerNode node = BrokerNode::Shared();
  TcpProxy proxy(node.port());
  const std::string marker = "POISON-7f3a9c";
  proxy.SetPoison(marker);
  auto g = TestGateway::Start(proxy.uri(), [](daemon::Options& o) {
    o.reconnect_initial_delay = absl::Milliseconds(50);
    o.reconnect_max_delay = absl::Milliseconds(500);
  });
  ASSERT_TRUE(g->WaitReady());
  std::string q = DeclareQueue(g->stub(), "hostile-poison");
  uint64_t reconnects = Reconnects(*g);
  Innocents innocents(*g, q, 6);
  ASSERT_TRUE(innocents.WaitMore(300));
  auto hostile = g->NewStub();
  v1::PublishResponse resp;
  ::grpc::Status s = hostile->Publish(Ctx(absl::Seconds(60)).get(),
                                      ToExchange("", q, marker), &resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT)
      << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("closed the connection each of"));
  EXPECT_EQ(proxy.poisoned(), 2);  // not sent a third time
  ASSERT_TRUE(g->WaitReady());
  ASSERT_TRUE(innocents.WaitMore(300));
  StopAndCount(innocents, node.port(), q, "poison");
  EXPECT_EQ(proxy.poisoned(), 2);
  std::printf("[poison] reconnects caused: %llu\n",
              static_cast<unsigned long long>(Reconnects(*g) - reconnects));
  EXPECT_LE(Reconnects(*g) - reconnects, 2u);
}

// The real thing: RabbitMQ 3.10 closes the connection (541) on a NaN in a
// header. Either the gateway refuses it before sending (INVALID_ARGUMENT,
// no reconnect) or it fails it as poison after two closes.
TEST(HostilePublishTest, NanHeaderNeverReachesTheBrokerAThirdTime) {
  BrokerNode node = BrokerNode::Shared();
  auto g = TestGateway::Start(node.uri(), [](daemon::Options& o) {
    o.reconnect_initial_delay = absl::Milliseconds(50);
    o.reconnect_max_delay = absl::Milliseconds(500);
  });
  ASSERT_TRUE(g->WaitReady());
  std::string q = DeclareQueue(g->stub(), "hostile-nan");
  uint64_t reconnects = Reconnects(*g);
  Innocents innocents(*g, q, 6);
  ASSERT_TRUE(innocents.WaitMore(300));
  v1::PublishRequest req = ToExchange("", q, "nan");
  (*req.mutable_properties()->mutable_headers())["x"].set_double_value(
      std::numeric_limits<double>::quiet_NaN());
  v1::PublishResponse resp;
  ::grpc::Status s =
      g->NewStub()->Publish(Ctx(absl::Seconds(60)).get(), req, &resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT)
      << s.error_message();
  ASSERT_TRUE(g->WaitReady());
  ASSERT_TRUE(innocents.WaitMore(300));
  StopAndCount(innocents, node.port(), q, "NaN header");
  std::printf("[NaN] reconnects caused: %llu\n",
              static_cast<unsigned long long>(Reconnects(*g) - reconnects));
  EXPECT_LE(Reconnects(*g) - reconnects, 2u);
}

// --- Items 3 and 5: a broker that blocks publishers (memory alarm). ---

class AlarmTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto node = BrokerNode::StartPrivate("alarm-hostile");
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = new BrokerNode(*std::move(node));
  }
  static void TearDownTestSuite() {
    if (node_ != nullptr) node_->Stop().IgnoreError();
    delete node_;
    node_ = nullptr;
  }
  void TearDown() override {
    node_->Ctl({"set_vm_memory_high_watermark", "0.4"}).IgnoreError();
  }
  static void Alarm() {
    ASSERT_TRUE(node_->Ctl({"set_vm_memory_high_watermark", "0.0000001"}).ok());
  }
  static BrokerNode* node_;
};
BrokerNode* AlarmTest::node_ = nullptr;

// Every answer is true: OK means in the queue, UNAVAILABLE ("not
// published") means not in the queue, DEADLINE_EXCEEDED "outcome unknown"
// either. The message that met the alarm is never a definite failure.
TEST_F(AlarmTest, AnswersDuringAnAlarmAreNeverWrong) {
  auto g = TestGateway::Start(node_->uri());
  ASSERT_TRUE(g->WaitReady());
  std::string q = DeclareQueue(g->stub(), "alarm-answers");
  Alarm();
  struct Answer {
    std::string body;
    ::grpc::Status status;
  };
  std::mutex mu;
  std::vector<Answer> answers;
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t, stub = g->NewStub()] {
      for (int n = 0; n < 5; ++n) {
        v1::PublishRequest req = ToExchange("", q, absl::StrCat(t, "-", n));
        v1::PublishResponse resp;
        ::grpc::Status s =
            stub->Publish(Ctx(absl::Seconds(2)).get(), req, &resp);
        std::lock_guard<std::mutex> lock(mu);
        answers.push_back({req.body(), s});
      }
    });
  }
  for (std::thread& t : callers) t.join();
  EXPECT_TRUE(GatewayStatus(*g).connection().blocked());
  ASSERT_TRUE(node_->Ctl({"set_vm_memory_high_watermark", "0.4"}).ok());
  ASSERT_TRUE(
      WaitFor([&] { return !GatewayStatus(*g).connection().blocked(); }));
  // What RabbitMQ still confirms after the alarm has arrived by now.
  v1::PublishResponse resp;
  ASSERT_TRUE(
      g->stub().Publish(Ctx().get(), ToExchange("", q, "after"), &resp).ok());
  std::map<std::string, int> held = Drain(node_->port(), q);
  int ok = 0, unknown = 0, not_published = 0;
  for (const Answer& a : answers) {
    bool in_queue = held.count(a.body) > 0;
    switch (a.status.error_code()) {
      case ::grpc::StatusCode::OK:
        ++ok;
        EXPECT_TRUE(in_queue) << a.body;
        break;
      case ::grpc::StatusCode::DEADLINE_EXCEEDED:
        ++unknown;
        EXPECT_THAT(a.status.error_message(), HasSubstr("outcome unknown"));
        break;
      case ::grpc::StatusCode::UNAVAILABLE:
        ++not_published;
        EXPECT_FALSE(in_queue) << a.body << ": " << a.status.error_message();
        EXPECT_THAT(a.status.error_message(), HasSubstr("not published"));
        break;
      default:
        ADD_FAILURE() << a.body << ": " << a.status.error_code() << " "
                      << a.status.error_message();
    }
  }
  std::printf("[alarm] ok=%d unknown=%d not_published=%d in_queue=%zu\n", ok,
              unknown, not_published, held.size() - 1);
  EXPECT_GE(unknown + ok, 1);  // the one that met the alarm
}

// Large messages fill the socket while the broker reads nothing: the
// publisher's thread must not sit in a write (rabbitmq-c waits inside it
// until every byte is out, and heartbeats keep arriving), so that deadlines
// are answered by the gateway on time.
TEST_F(AlarmTest, BlockedBrokerNeverHoldsThePublisherThread) {
  auto g = TestGateway::Start(node_->uri());  // default 10 s heartbeat
  ASSERT_TRUE(g->WaitReady());
  std::string q = DeclareQueue(g->stub(), "alarm-large");
  Alarm();
  v1::PublishBatchRequest batch;
  for (int i = 0; i < 32; ++i) {
    auto* m = batch.add_messages();
    m->set_routing_key(q);
    m->set_body(std::string(1 << 20, 'x'));
    m->mutable_properties()->set_delivery_mode(v1::TRANSIENT);
  }
  absl::Time start = absl::Now();
  v1::PublishBatchResponse resp;
  ::grpc::Status s =
      g->NewStub()->PublishBatch(Ctx(absl::Seconds(3)).get(), batch, &resp);
  absl::Duration took = absl::Now() - start;
  std::printf("[blocked, large] answered after %s: %d %s\n",
              absl::FormatDuration(took).c_str(), s.error_code(),
              s.error_message().c_str());
  // The gateway's own answer (its text, one result per message), not the
  // client library's bare DEADLINE_EXCEEDED.
  ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  EXPECT_LT(took, absl::Seconds(3));
  for (const v1::PublishResult& r : resp.results()) {
    EXPECT_THAT(r.code(),
                AnyOf(static_cast<int>(::grpc::StatusCode::DEADLINE_EXCEEDED),
                      static_cast<int>(::grpc::StatusCode::UNAVAILABLE)))
        << r.error();
  }
  // And the thread still answers the next call at its deadline.
  v1::PublishResponse one;
  start = absl::Now();
  ::grpc::Status s2 = g->NewStub()->Publish(Ctx(absl::Seconds(1)).get(),
                                            ToExchange("", q, "small"), &one);
  EXPECT_EQ(s2.error_code(), ::grpc::StatusCode::UNAVAILABLE)
      << s2.error_message();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  ASSERT_TRUE(node_->Ctl({"set_vm_memory_high_watermark", "0.4"}).ok());
  ASSERT_TRUE(
      WaitFor([&] { return !GatewayStatus(*g).connection().blocked(); }));
  Drain(node_->port(), q);
}

// --- Item 4: a slow reader's stream holds its byte budget, not more. ---

// Publishes `count` messages of `size` bytes to `queue`, `per_batch` per
// PublishBatch; each body starts with its number and a colon.
void PublishNumbered(v1::Gateway::Stub& stub, const std::string& queue,
                     int count, int size, int per_batch) {
  for (int b = 0; b < count / per_batch; ++b) {
    v1::PublishBatchRequest req;
    for (int i = 0; i < per_batch; ++i) {
      auto* m = req.add_messages();
      m->set_routing_key(queue);
      std::string body = absl::StrCat(b * per_batch + i, ":");
      body.resize(size, 'x');
      m->set_body(body);
    }
    v1::PublishBatchResponse resp;
    ASSERT_TRUE(stub.PublishBatch(Ctx().get(), req, &resp).ok());
    ASSERT_EQ(resp.ok_count(), static_cast<uint32_t>(per_batch));
  }
}

QueueCounts Counts(BrokerNode& node, const std::string& queue) {
  absl::StatusOr<QueueCounts> c = node.Counts(queue);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : QueueCounts();
}

// StreamMessages on `queue` with prefetch 65535 and a byte budget, on a
// channel of its own; counts the deliveries read and the distinct messages
// (PublishNumbered's numbers) among them.
class BudgetedStream {
 public:
  BudgetedStream(TestGateway& g, const std::string& queue, uint64_t budget)
      : stub_(g.NewStub()), ctx_(Ctx(absl::Seconds(120))) {
    v1::StreamMessagesRequest req;
    req.set_queue(queue);
    req.set_prefetch(65535);
    req.set_max_outstanding_bytes(budget);
    reader_ = stub_->StreamMessages(ctx_.get(), req);
  }
  // The next response; false once the stream has ended.
  bool Read(v1::StreamMessagesResponse* ev) { return reader_->Read(ev); }
  // Reads until `n` more deliveries came, or the stream ended.
  void ReadDeliveries(int n) {
    v1::StreamMessagesResponse ev;
    while (n > 0 && reader_->Read(&ev)) {
      if (!ev.has_delivery()) continue;
      --n;
      ++deliveries_;
      seen_.insert(ev.delivery().body().substr(0, 8));
    }
  }
  int deliveries() const { return deliveries_; }
  size_t distinct() const { return seen_.size(); }
  void Cancel() {
    ctx_->TryCancel();
    reader_->Finish();
  }

 private:
  std::unique_ptr<v1::Gateway::Stub> stub_;
  std::unique_ptr<::grpc::ClientContext> ctx_;
  std::unique_ptr<::grpc::ClientReader<v1::StreamMessagesResponse>> reader_;
  int deliveries_ = 0;
  std::set<std::string> seen_;
};

class StreamBudgetTest : public ::testing::TestWithParam<v1::QueueType> {};

// prefetch 65535 and 64 KiB messages: without a byte bound the gateway would
// pull the whole queue into memory for a reader that does not read. What it
// holds is what the broker counts unacknowledged (AUTO acks what gRPC took).
TEST_P(StreamBudgetTest, SlowReaderHoldsItsByteBudget) {
  BrokerNode node = BrokerNode::Shared();
  auto g = TestGateway::Start(node.uri());
  ASSERT_TRUE(g->WaitReady());
  std::string q = UniqueName("budget");
  {
    v1::DeclareQueueRequest req;
    req.set_name(q);
    req.set_type(GetParam());
    v1::DeclareQueueResponse resp;
    ASSERT_TRUE(g->stub().DeclareQueue(Ctx().get(), req, &resp).ok());
  }
  constexpr int kMessages = 400;
  constexpr int kSize = 64 << 10;
  constexpr uint64_t kBudget = 4 << 20;  // 64 messages
  ASSERT_NO_FATAL_FAILURE(PublishNumbered(g->stub(), q, kMessages, kSize, 50));
  BudgetedStream stream(*g, q, kBudget);
  v1::StreamMessagesResponse ev;
  ASSERT_TRUE(stream.Read(&ev));
  ASSERT_TRUE(ev.has_subscribed());
  // The reader reads nothing for a while: the gateway's window fills.
  ASSERT_TRUE(WaitFor([&] { return Counts(node, q).unacked > 0; }));
  int64_t most = 0;
  for (int i = 0; i < 4; ++i) {
    QueueCounts c = Counts(node, q);
    most = std::max(most, c.unacked);
    EXPECT_GT(c.ready, 0);  // the budget, not the queue, is what holds it
  }
  std::printf(
      "[budget %s] unacked at most %lld (budget %llu bytes = %llu "
      "messages)\n",
      v1::QueueType_Name(GetParam()).c_str(), static_cast<long long>(most),
      static_cast<unsigned long long>(kBudget),
      static_cast<unsigned long long>(kBudget / kSize));
  EXPECT_LE(most, static_cast<int64_t>(kBudget / kSize) + 1);
  // Reading on, every message comes once.
  stream.ReadDeliveries(kMessages);
  EXPECT_EQ(stream.deliveries(), kMessages);
  EXPECT_EQ(stream.distinct(), static_cast<size_t>(kMessages));
  stream.Cancel();
  DeleteQueue(g->stub(), q);
}

// Messages four times the size the prefetch was chosen for: the first
// window's worth comes at once, then the gateway narrows a classic queue's
// window (channel-wide basic.qos) to the budget.
TEST(StreamWindowTest, LargerMessagesNarrowAClassicQueuesWindow) {
  BrokerNode node = BrokerNode::Shared();
  auto g = TestGateway::Start(node.uri());
  ASSERT_TRUE(g->WaitReady());
  std::string q = DeclareQueue(g->stub(), "budget-large");
  constexpr int kMessages = 160;
  constexpr int kSize = 256 << 10;
  constexpr uint64_t kBudget = 4 << 20;  // 16 messages
  ASSERT_NO_FATAL_FAILURE(PublishNumbered(g->stub(), q, kMessages, kSize, 16));
  BudgetedStream stream(*g, q, kBudget);
  // The first 64 (4 MiB / the 64 KiB assumed) come at once; read past them.
  stream.ReadDeliveries(80);
  ASSERT_TRUE(WaitFor([&] { return Counts(node, q).unacked > 0; }));
  int64_t most = 0;
  for (int i = 0; i < 3; ++i) most = std::max(most, Counts(node, q).unacked);
  std::printf(
      "[budget, 256 KiB messages] unacked at most %lld after the "
      "first window (budget = %llu messages)\n",
      static_cast<long long>(most),
      static_cast<unsigned long long>(kBudget / kSize));
  EXPECT_LE(most, static_cast<int64_t>(kBudget / kSize) + 1);
  stream.ReadDeliveries(kMessages - stream.deliveries());
  EXPECT_EQ(stream.deliveries(), kMessages);
  EXPECT_EQ(stream.distinct(), static_cast<size_t>(kMessages));
  stream.Cancel();
}

INSTANTIATE_TEST_SUITE_P(QueueTypes, StreamBudgetTest,
                         ::testing::Values(v1::CLASSIC, v1::QUORUM),
                         [](const ::testing::TestParamInfo<v1::QueueType>& i) {
                           return v1::QueueType_Name(i.param);
                         });

}  // namespace
}  // namespace amqpgw::testing
