// PublishStream against a real RabbitMQ node over real gRPC: every message
// answered once, bad messages failing alone, max_in_flight, half-close,
// cancel and a lost broker connection, counted with an independent AMQP
// client.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/base/sync.h"
#include "tests/support/amqp_peer.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/gateway_rig.h"
#include "tests/support/tcp_proxy.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

using ::testing::HasSubstr;

// One PublishStream with a reader thread that collects every answer.
class StreamClient {
 public:
  explicit StreamClient(v1::Gateway::Stub* stub,
                        absl::Duration deadline = absl::Seconds(120))
      : ctx_(Ctx(deadline)), stream_(stub->PublishStream(ctx_.get())) {
    reader_ = std::thread([this] {
      v1::PublishStreamResponse r;
      while (stream_->Read(&r)) {
        amqpgw::MutexLock lock(&mu_);
        answers_.push_back(r);
      }
    });
  }
  ~StreamClient() {
    if (reader_.joinable()) {
      ctx_->TryCancel();
      reader_.join();
    }
  }

  bool Write(const v1::PublishStreamRequest& r) {
    bool ok = stream_->Write(r);
    if (ok) ++written_;
    return ok;
  }
  // A message with body `body` to the default exchange, routing key `queue`.
  bool Write(const std::string& queue, const std::string& body,
             uint64_t sequence = 0, uint32_t max_in_flight = 0) {
    v1::PublishStreamRequest r;
    r.mutable_message()->set_routing_key(queue);
    r.mutable_message()->set_body(body);
    r.set_sequence(sequence);
    r.set_max_in_flight(max_in_flight);
    return Write(r);
  }
  bool WritesDone() { return stream_->WritesDone(); }
  void Cancel() { ctx_->TryCancel(); }
  // Waits for the reader (the stream's end) and returns the status.
  ::grpc::Status Finish() {
    reader_.join();
    return stream_->Finish();
  }

  int written() const { return written_.load(); }
  std::vector<v1::PublishStreamResponse> answers() {
    amqpgw::MutexLock lock(&mu_);
    return answers_;
  }
  size_t answered() {
    amqpgw::MutexLock lock(&mu_);
    return answers_.size();
  }
  // Sequences answered OK.
  std::set<uint64_t> Confirmed() {
    std::set<uint64_t> out;
    for (const auto& a : answers()) {
      if (a.result().code() == 0) out.insert(a.sequence());
    }
    return out;
  }

 private:
  std::unique_ptr<::grpc::ClientContext> ctx_;
  std::unique_ptr<::grpc::ClientReaderWriter<v1::PublishStreamRequest,
                                             v1::PublishStreamResponse>>
      stream_;
  std::thread reader_;
  std::atomic<int> written_{0};
  amqpgw::Mutex mu_;
  std::vector<v1::PublishStreamResponse> answers_ ABSL_GUARDED_BY(mu_);
};

std::string Declare(v1::Gateway::Stub& stub, const std::string& prefix) {
  std::string q = UniqueName(prefix);
  v1::DeclareQueueRequest req;
  req.set_name(q);
  v1::DeclareQueueResponse resp;
  EXPECT_TRUE(stub.DeclareQueue(Ctx().get(), req, &resp).ok());
  return q;
}

// Every body in `queue` (emptying it), with how often it came.
std::map<std::string, int> DrainBodies(AmqpPeer& peer,
                                       const std::string& queue) {
  std::map<std::string, int> out;
  while (true) {
    auto got = peer.Get(queue);
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok() || !got->has_value()) break;
    ++out[(*got)->body];
  }
  return out;
}

uint32_t Depth(AmqpPeer& peer, const std::string& queue) {
  auto n = peer.MessageCount(queue);
  EXPECT_TRUE(n.ok()) << n.status();
  return n.ok() ? *n : 0;
}

class PublishStreamTest : public SharedGatewayTest {
 protected:
  void SetUp() override {
    auto peer = AmqpPeer::Connect(node_->port());
    ASSERT_TRUE(peer.ok()) << peer.status();
    peer_ = *std::move(peer);
  }
  std::unique_ptr<AmqpPeer> peer_;
};

TEST_F(PublishStreamTest, EveryMessageAnsweredOnceAndQueued) {
  constexpr int kMessages = 5000 / kLoadDivisor;
  std::string q = Declare(stub(), "stream-n");
  StreamClient c(&stub());
  for (int i = 1; i <= kMessages; ++i) {
    // The gateway numbers the messages (sequence unset).
    ASSERT_TRUE(c.Write(q, absl::StrCat(i), 0, i == 1 ? 64 : 0));
  }
  ASSERT_TRUE(c.WritesDone());
  ::grpc::Status s = c.Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();

  std::vector<v1::PublishStreamResponse> answers = c.answers();
  ASSERT_EQ(answers.size(), static_cast<size_t>(kMessages));
  std::set<uint64_t> sequences;
  int ok = 0;
  for (const auto& a : answers) {
    sequences.insert(a.sequence());
    if (a.result().code() == 0) {
      ++ok;
      EXPECT_GT(a.result().publish_time().seconds(), 0);
    }
  }
  EXPECT_EQ(ok, kMessages);
  ASSERT_EQ(sequences.size(), static_cast<size_t>(kMessages));
  EXPECT_EQ(*sequences.begin(), 1u);
  EXPECT_EQ(*sequences.rbegin(), static_cast<uint64_t>(kMessages));
  EXPECT_EQ(Depth(*peer_, q), static_cast<uint32_t>(kMessages));

  // One stream goes to one publisher connection: one queue keeps the order.
  int expected = 1;
  int out_of_order = 0;
  while (true) {
    auto got = peer_->Get(q);
    ASSERT_TRUE(got.ok());
    if (!got->has_value()) break;
    if ((*got)->body != absl::StrCat(expected)) ++out_of_order;
    ++expected;
  }
  EXPECT_EQ(out_of_order, 0);
}

TEST_F(PublishStreamTest, SeveralAnswersPerResponseWhenAsked) {
  constexpr int kMessages = 2000 / kLoadDivisor;
  constexpr int kPerResponse = 64;
  constexpr uint64_t kBad = 10;  // no message: answered INVALID_ARGUMENT
  std::string q = Declare(stub(), "stream-answers");
  StreamClient c(&stub());
  for (uint64_t i = 1; i <= kMessages; ++i) {
    v1::PublishStreamRequest r;
    r.set_sequence(i);
    if (i == 1) r.set_max_answers_per_response(kPerResponse);
    if (i != kBad) {
      r.mutable_message()->set_routing_key(q);
      r.mutable_message()->set_body(absl::StrCat(i));
    }
    ASSERT_TRUE(c.Write(r));
  }
  ASSERT_TRUE(c.WritesDone());
  ::grpc::Status s = c.Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();

  std::map<uint64_t, int> answered;  // sequence -> answers
  int most = 0;
  for (const v1::PublishStreamResponse& r : c.answers()) {
    // Batched answers leave the single-answer fields unset.
    EXPECT_EQ(r.sequence(), 0u);
    EXPECT_FALSE(r.has_result());
    EXPECT_GE(r.answers_size(), 1);
    EXPECT_LE(r.answers_size(), kPerResponse);
    most = std::max(most, r.answers_size());
    for (const v1::PublishStreamAnswer& a : r.answers()) {
      ++answered[a.sequence()];
      if (a.sequence() == kBad) {
        EXPECT_EQ(a.result().code(), ::grpc::StatusCode::INVALID_ARGUMENT);
        EXPECT_THAT(a.result().error(), HasSubstr("message: must be set"));
      } else {
        EXPECT_EQ(a.result().code(), 0) << a.result().error();
      }
    }
  }
  ASSERT_EQ(answered.size(), static_cast<size_t>(kMessages));
  for (const auto& [sequence, times] : answered) {
    EXPECT_EQ(times, 1) << "sequence " << sequence;
  }
  // Confirms settle many messages at once: some response carried several.
  EXPECT_GT(most, 1);
  EXPECT_EQ(Depth(*peer_, q), static_cast<uint32_t>(kMessages - 1));
}

TEST_F(PublishStreamTest, CallerSequencesAreEchoed) {
  std::string q = Declare(stub(), "stream-seq");
  StreamClient c(&stub());
  for (uint64_t seq : {uint64_t{7}, uint64_t{1} << 40, uint64_t{3}}) {
    ASSERT_TRUE(c.Write(q, "x", seq));
  }
  ASSERT_TRUE(c.WritesDone());
  ASSERT_TRUE(c.Finish().ok());
  EXPECT_EQ(c.Confirmed(), (std::set<uint64_t>{3, 7, uint64_t{1} << 40}));
}

TEST_F(PublishStreamTest, BadMessagesFailAloneAndTheOthersConfirm) {
  constexpr int kMessages = 600;
  std::string q = Declare(stub(), "stream-bad");
  std::string missing_exchange = UniqueName("no-such-exchange");
  // sequence -> expected code and a piece of its error.
  const std::map<uint64_t, std::pair<::grpc::StatusCode, std::string>> bad = {
      {50,
       {::grpc::StatusCode::INVALID_ARGUMENT, "message.properties.headers"}},
      {100, {::grpc::StatusCode::INVALID_ARGUMENT, "message.body"}},
      {150, {::grpc::StatusCode::FAILED_PRECONDITION, "NO_ROUTE"}},
      {200, {::grpc::StatusCode::NOT_FOUND, "does not exist"}},
      {250, {::grpc::StatusCode::INVALID_ARGUMENT, "message: must be set"}},
      {300, {::grpc::StatusCode::INVALID_ARGUMENT, "message.routing_key"}},
  };
  StreamClient c(&stub());
  for (uint64_t i = 1; i <= kMessages; ++i) {
    v1::PublishStreamRequest r;
    r.set_sequence(i);
    v1::PublishRequest* m = r.mutable_message();
    m->set_routing_key(q);
    m->set_body(absl::StrCat(i));
    switch (i) {
      case 50:
        (*m->mutable_properties()->mutable_headers())["nan"].set_double_value(
            std::numeric_limits<double>::quiet_NaN());
        break;
      case 100:
        m->set_body(std::string((4 << 20) + 1, 'x'));  // > max_message_bytes
        break;
      case 150:
        m->set_routing_key(UniqueName("nobody-bound"));
        break;
      case 200:
        m->set_exchange(missing_exchange);
        break;
      case 250:
        r.clear_message();
        break;
      case 300:
        m->set_routing_key(std::string(300, 'k'));
        break;
    }
    ASSERT_TRUE(c.Write(r));
  }
  ASSERT_TRUE(c.WritesDone());
  ::grpc::Status s = c.Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();

  std::vector<v1::PublishStreamResponse> answers = c.answers();
  ASSERT_EQ(answers.size(), static_cast<size_t>(kMessages));
  int ok = 0;
  std::set<uint64_t> failed;
  for (const auto& a : answers) {
    if (a.result().code() == 0) {
      ++ok;
      continue;
    }
    failed.insert(a.sequence());
    auto it = bad.find(a.sequence());
    ASSERT_NE(it, bad.end()) << "innocent message " << a.sequence()
                             << " failed: " << a.result().error();
    EXPECT_EQ(a.result().code(), it->second.first) << a.result().error();
    EXPECT_THAT(a.result().error(), HasSubstr(it->second.second));
  }
  EXPECT_EQ(failed.size(), bad.size());
  EXPECT_EQ(ok, kMessages - static_cast<int>(bad.size()));
  // Every innocent message is in the queue, once (nothing was resent:
  // the shared channel was never closed under them).
  std::map<std::string, int> bodies = DrainBodies(*peer_, q);
  EXPECT_EQ(bodies.size(), static_cast<size_t>(ok));
  for (uint64_t i = 1; i <= kMessages; ++i) {
    if (bad.count(i) != 0) {
      EXPECT_EQ(bodies.count(absl::StrCat(i)), 0u) << i;
    } else {
      EXPECT_EQ(bodies[absl::StrCat(i)], 1) << i;
    }
  }
}

TEST_F(PublishStreamTest, HalfCloseAnswersEverythingOutstanding) {
  constexpr int kMessages = 500;
  std::string q = Declare(stub(), "stream-half");
  StreamClient c(&stub());
  for (int i = 1; i <= kMessages; ++i) {
    ASSERT_TRUE(c.Write(q, absl::StrCat(i), 0, i == 1 ? kMessages : 0));
  }
  // Half-closed at once, with most messages not yet confirmed.
  ASSERT_TRUE(c.WritesDone());
  ::grpc::Status s = c.Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(c.Confirmed().size(), static_cast<size_t>(kMessages));
  EXPECT_EQ(Depth(*peer_, q), static_cast<uint32_t>(kMessages));
}

TEST_F(PublishStreamTest, CancelledStreamLosesNoMessageAnsweredOk) {
  std::string q = Declare(stub(), "stream-cancel");
  auto c = std::make_unique<StreamClient>(&stub());
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 1; !stop.load() && i <= 1000000; ++i) {
      if (!c->Write(q, absl::StrCat(i))) break;
    }
  });
  ASSERT_TRUE(WaitFor([&] { return c->answered() >= 2000; }));
  c->Cancel();
  stop = true;
  writer.join();
  ::grpc::Status s = c->Finish();
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::CANCELLED);
  std::set<uint64_t> ok = c->Confirmed();
  // Messages sent before the cancel may still be confirmed: wait until the
  // gateway holds none.
  ASSERT_TRUE(WaitFor(
      [&] { return GatewayStatus(*gateway_).counters().unconfirmed() == 0; }));
  uint32_t depth = Depth(*peer_, q);
  EXPECT_GE(depth, ok.size());
  EXPECT_LE(depth, static_cast<uint32_t>(c->written()));
  std::map<std::string, int> bodies = DrainBodies(*peer_, q);
  int lost = 0;
  for (uint64_t n : ok) lost += bodies.count(absl::StrCat(n)) == 0;
  EXPECT_EQ(lost, 0) << ok.size() << " answered OK, " << depth << " queued";
}

// SIGTERM with PublishStreams in flight (an amqpgwd process of its own):
// each stream reads nothing more, answers every message it read, and ends
// UNAVAILABLE "... open the stream again" (not CANCELLED, not a broken
// stream) within --shutdown_grace; the gateway exits 0. Counts: every
// message answered OK is in the queue exactly once, none answered fails,
// and the queue holds nothing else (nothing published went unanswered).
TEST_F(PublishStreamTest, SigtermAnswersWhatIsInFlightThenEndsUnavailable) {
  constexpr int kStreams = 4;
  constexpr absl::Duration kGrace = absl::Seconds(20);
  std::string q = Declare(stub(), "stream-sigterm");
  auto g = GatewayProcess::Start(
      UniqueName("ps-drain"), node_->uri(),
      {absl::StrCat("--shutdown_grace=", absl::FormatDuration(kGrace))},
      AMQPGW_TEST_TMP_DIR);
  ASSERT_TRUE(g.ok()) << g.status();
  auto direct = v1::Gateway::NewStub(::grpc::CreateChannel(
      (*g)->grpc_address(), ::grpc::InsecureChannelCredentials()));
  std::vector<std::unique_ptr<StreamClient>> clients;
  std::vector<std::thread> writers;
  for (int i = 0; i < kStreams; ++i) {
    clients.push_back(std::make_unique<StreamClient>(direct.get()));
  }
  for (int i = 0; i < kStreams; ++i) {
    writers.emplace_back([&, i] {
      StreamClient& c = *clients[i];
      // Until the stream ends: Write fails once the gateway finished it.
      for (uint64_t n = 1; n <= 1000000; ++n) {
        if (!c.Write(q, absl::StrCat("s", i, "-", n), n, n == 1 ? 64 : 0)) {
          break;
        }
      }
    });
  }
  ASSERT_TRUE(WaitFor([&] {
    for (auto& c : clients) {
      if (c->answered() < 200) return false;
    }
    return true;
  })) << (*g)->process().Log();
  size_t answered_at_signal = 0;
  for (auto& c : clients) answered_at_signal += c->answered();
  const absl::Time signalled = absl::Now();
  (*g)->process().Signal(SIGTERM);

  std::vector<::grpc::Status> ends;
  for (int i = 0; i < kStreams; ++i) {
    writers[i].join();
    ends.push_back(clients[i]->Finish());
  }
  const absl::Duration ended_after = absl::Now() - signalled;
  EXPECT_EQ((*g)->process().Wait(absl::Seconds(60)), 0)
      << (*g)->process().Log();
  for (const ::grpc::Status& s : ends) {
    EXPECT_EQ(s.error_code(), ::grpc::StatusCode::UNAVAILABLE)
        << s.error_message();
    EXPECT_THAT(s.error_message(),
                HasSubstr("the gateway is shutting down: open the stream "
                          "again"));
  }
  EXPECT_LT(ended_after, kGrace);

  size_t ok = 0, failed = 0, written = 0, answered = 0;
  std::map<std::string, int> bodies = DrainBodies(*peer_, q);
  int lost = 0, duplicates = 0;
  for (int i = 0; i < kStreams; ++i) {
    written += clients[i]->written();
    answered += clients[i]->answered();
    for (const auto& a : clients[i]->answers()) {
      if (a.result().code() != 0) {
        ++failed;
        continue;
      }
      ++ok;
      auto it = bodies.find(absl::StrCat("s", i, "-", a.sequence()));
      if (it == bodies.end()) {
        ++lost;
      } else {
        duplicates += it->second - 1;
      }
    }
  }
  std::printf(
      "written=%zu answered=%zu (at SIGTERM %zu) ok=%zu failed=%zu "
      "queued=%zu lost=%d duplicates=%d ended after %s\n",
      written, answered, answered_at_signal, ok, failed, bodies.size(), lost,
      duplicates, absl::FormatDuration(ended_after).c_str());
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(duplicates, 0);
  EXPECT_EQ(failed, 0u);
  // Nothing was published without an answer.
  EXPECT_EQ(bodies.size(), ok);
}

// A gateway of its own behind a proxy, for stalls and cuts.
class PublishStreamProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_ = std::make_unique<BrokerNode>(BrokerNode::Shared());
    proxy_ = std::make_unique<TcpProxy>(node_->port());
    g_ = TestGateway::Start(proxy_->uri(), [](daemon::Options& o) {
      o.reconnect_initial_delay = absl::Milliseconds(50);
      o.reconnect_max_delay = absl::Milliseconds(500);
    });
    ASSERT_TRUE(g_->WaitReady());
    auto peer = AmqpPeer::Connect(node_->port());
    ASSERT_TRUE(peer.ok()) << peer.status();
    peer_ = *std::move(peer);
  }
  std::unique_ptr<BrokerNode> node_;
  std::unique_ptr<TcpProxy> proxy_;
  std::unique_ptr<TestGateway> g_;
  std::unique_ptr<AmqpPeer> peer_;
};

// The window is what the broker holds: the gateway reads ahead (at most
// kMaxInFlight more, which wait in it unpublished) but publishes no more
// than kMaxInFlight unconfirmed.
TEST_F(PublishStreamProxyTest, NeverMoreThanMaxInFlightUnconfirmed) {
  constexpr int kMaxInFlight = 16;
  constexpr int kMessages = 3000;
  std::string q = Declare(g_->stub(), "stream-window");
  // The default exchange is proven once, so that the stream's messages are
  // pipelined rather than sent alone.
  v1::PublishRequest first;
  first.set_routing_key(q);
  first.set_body("0");
  v1::PublishResponse first_resp;
  ASSERT_TRUE(g_->stub().Publish(Ctx().get(), first, &first_resp).ok());
  const uint64_t base = GatewayStatus(*g_).counters().published();

  // Confirms stop coming: the stream must stop reading at kMaxInFlight.
  proxy_->StallAll();
  StreamClient c(&g_->stub());
  std::thread writer([&] {
    for (int i = 1; i <= kMessages; ++i) {
      if (!c.Write(q, absl::StrCat(i), 0, i == 1 ? kMaxInFlight : 0)) break;
    }
    c.WritesDone();
  });
  ASSERT_TRUE(WaitFor([&] {
    return GatewayStatus(*g_).counters().published() - base >= kMaxInFlight;
  }));
  // The caller wrote many more than that (gRPC buffered them) ...
  ASSERT_TRUE(WaitFor([&] { return c.written() >= 4 * kMaxInFlight; }))
      << c.written();
  // ... and the gateway still took only kMaxInFlight of them.
  v1::Counters counters = GatewayStatus(*g_).counters();
  EXPECT_EQ(counters.published() - base, static_cast<uint64_t>(kMaxInFlight));
  EXPECT_LE(counters.unconfirmed(), static_cast<uint64_t>(kMaxInFlight));
  EXPECT_EQ(c.answered(), 0u);

  // The link comes back (cut, reconnect): everything goes through, the
  // window sampled all along.
  std::atomic<bool> sampling{true};
  std::atomic<uint64_t> max_unconfirmed{0};
  std::thread sampler([&] {
    while (sampling.load()) {
      uint64_t u = GatewayStatus(*g_).counters().unconfirmed();
      if (u > max_unconfirmed.load()) max_unconfirmed = u;
    }
  });
  proxy_->CutAll();
  writer.join();
  ::grpc::Status s = c.Finish();
  sampling = false;
  sampler.join();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(c.Confirmed().size(), static_cast<size_t>(kMessages));
  EXPECT_LE(max_unconfirmed.load(), static_cast<uint64_t>(kMaxInFlight));
  // Each stream message at least once (the stalled ones may be twice).
  std::map<std::string, int> bodies = DrainBodies(*peer_, q);
  int missing = 0, duplicates = 0;
  for (int i = 1; i <= kMessages; ++i) {
    int n = bodies[absl::StrCat(i)];
    if (n == 0) ++missing;
    if (n > 1) duplicates += n - 1;
  }
  EXPECT_EQ(missing, 0);
  EXPECT_LE(duplicates, kMaxInFlight);
}

TEST_F(PublishStreamProxyTest, LostBrokerConnectionLosesNoConfirmedMessage) {
  constexpr int kMessages = 20000 / kLoadDivisor;
  std::string q = Declare(g_->stub(), "stream-cut");
  StreamClient c(&g_->stub(), absl::Seconds(300));
  std::thread writer([&] {
    for (int i = 1; i <= kMessages; ++i) {
      if (!c.Write(q, absl::StrCat(i), 0, i == 1 ? 256 : 0)) break;
    }
    c.WritesDone();
  });
  for (size_t at : {kMessages / 4, kMessages / 2}) {
    ASSERT_TRUE(WaitFor([&] { return c.answered() >= at; }));
    proxy_->CutAll();
  }
  writer.join();
  ::grpc::Status s = c.Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_GE(GatewayStatus(*g_).counters().reconnects(), 1u);
  std::set<uint64_t> ok = c.Confirmed();
  // Republished after the reconnects within the deadline: all confirmed.
  EXPECT_EQ(ok.size(), static_cast<size_t>(kMessages));
  std::map<std::string, int> bodies = DrainBodies(*peer_, q);
  int lost = 0, duplicates = 0;
  for (uint64_t n : ok) lost += bodies.count(absl::StrCat(n)) == 0;
  for (const auto& [body, n] : bodies) duplicates += n - 1;
  std::printf("confirmed=%zu queued=%zu duplicates=%d\n", ok.size(),
              bodies.size(), duplicates);
  EXPECT_EQ(lost, 0);
}

TEST_F(PublishStreamTest, CountersCountStreamMessages) {
  std::string q = Declare(stub(), "stream-counters");
  uint64_t before = GatewayStatus(*gateway_).counters().published();
  StreamClient c(&stub());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(c.Write(q, "c"));
  ASSERT_TRUE(c.WritesDone());
  ASSERT_TRUE(c.Finish().ok());
  EXPECT_GE(GatewayStatus(*gateway_).counters().published() - before, 10u);
}

}  // namespace
}  // namespace amqpgw::testing
