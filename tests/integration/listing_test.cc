// Seeing the whole broker through the gateway: the listing RPCs
// (ListQueues, ListExchanges, ListBindings, ListConsumers), InspectQueue's
// details and GetStatus's `listing`, from RabbitMQ's management API on the
// shared node (and a node without it). Queues and consumers are made by an
// independent AMQP client (AmqpPeer).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/base/http_url.h"
#include "tests/support/amqp_peer.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/stream_reader.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

class ListingTest : public SharedGatewayTest {
 protected:
  // ListQueues for the queues whose names start with `prefix`.
  ::grpc::Status Queues(const std::string& prefix, v1::ListQueuesResponse* out,
                        uint32_t page_size = 0,
                        const std::string& page_token = "") {
    v1::ListQueuesRequest req;
    req.mutable_filter()->set_prefix(prefix);
    req.set_page_size(page_size);
    req.set_page_token(page_token);
    out->Clear();
    return stub().ListQueues(Ctx().get(), req, out);
  }
  // The queue named `name`, or nullopt.
  std::optional<v1::QueueInfo> Queue(const std::string& name) {
    v1::ListQueuesResponse r;
    if (!Queues(name, &r).ok()) return std::nullopt;
    for (const v1::QueueInfo& q : r.queues()) {
      if (q.name() == name) return q;
    }
    return std::nullopt;
  }
  ::grpc::Status Consumers(const std::string& queue,
                           v1::ListConsumersResponse* out) {
    v1::ListConsumersRequest req;
    req.set_queue(queue);
    out->Clear();
    return stub().ListConsumers(Ctx().get(), req, out);
  }
};

TEST_F(ListingTest, StatusSaysListingIsAvailable) {
  v1::GetStatusResponse r;
  // The daemon asks the API once the session is up.
  EXPECT_TRUE(WaitFor([&] {
    r = GatewayStatus(*gateway_);
    return r.listing().state() == v1::ListingStatus::AVAILABLE;
  })) << r.listing().DebugString();
  EXPECT_EQ(r.listing().url(), node_->management_url());
  EXPECT_THAT(r.listing().detail(), HasSubstr("guest"));
  EXPECT_GT(r.listing().checked_at().seconds(), 0);
}

TEST_F(ListingTest, InspectQueueGainsTheManagementApisDetails) {
  const std::string q = UniqueName("inspect-details");
  auto peer = AmqpPeer::Connect(node_->port());
  ASSERT_TRUE(peer.ok()) << peer.status();
  ASSERT_TRUE((*peer)->DeclareQueue(q).ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE((*peer)->Publish("", q, "m").ok());
  auto consumer = AmqpPeer::Connect(node_->port(), "inspect app");
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  ASSERT_TRUE((*consumer)->Consume(q, 2, "holder").ok());

  v1::InspectQueueRequest req;
  req.set_name(q);
  v1::InspectQueueResponse resp;
  // AMQP counts only ready messages; the details count the unacked too
  // (once the broker's statistics have caught up).
  EXPECT_TRUE(WaitFor([&] {
    resp.Clear();
    return stub().InspectQueue(Ctx().get(), req, &resp).ok() &&
           resp.details().unacked() == 2 && resp.details().ready() == 3 &&
           resp.details().consumers() == 1;
  })) << resp.DebugString();
  EXPECT_EQ(resp.name(), q);
  EXPECT_EQ(resp.message_count(), 3u);
  EXPECT_EQ(resp.consumer_count(), 1u);
  EXPECT_EQ(resp.details_unavailable(), "");
  const v1::QueueInfo& d = resp.details();
  EXPECT_EQ(d.name(), q);
  EXPECT_EQ(d.type(), v1::CLASSIC);
  EXPECT_TRUE(d.durable());
  EXPECT_EQ(d.total(), 5u);
  EXPECT_EQ(d.consumers(), 1u);
  EXPECT_GT(d.memory_bytes(), 0u);

  // NOT_FOUND comes from the broker itself, as before.
  req.set_name(q + "-absent");
  ::grpc::Status s = stub().InspectQueue(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::NOT_FOUND);
  consumer->reset();
  ASSERT_TRUE((*peer)->DeleteQueue(q).ok());
}

TEST_F(ListingTest, QueuesDeclaredElsewhereAppearWithTheirCounts) {
  const std::string q = UniqueName("list-counts");
  auto peer = AmqpPeer::Connect(node_->port());
  ASSERT_TRUE(peer.ok()) << peer.status();
  ASSERT_TRUE((*peer)->DeclareQueue(q).ok());
  for (int i = 0; i < 6; ++i) ASSERT_TRUE((*peer)->Publish("", q, "m").ok());
  // Another client's consumer holds 4 of them unacknowledged.
  auto consumer = AmqpPeer::Connect(node_->port(), "billing worker");
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  ASSERT_TRUE((*consumer)->Consume(q, 4, "billing-1").ok());

  std::optional<v1::QueueInfo> seen;
  // The broker's statistics arrive in parts (counts, consumers, state),
  // each within its collect_statistics_interval.
  EXPECT_TRUE(WaitFor([&] {
    seen = Queue(q);
    return seen && seen->unacked() == 4 && seen->ready() == 2 &&
           seen->consumers() == 1 && !seen->state().empty();
  })) << (seen ? seen->DebugString() : "absent");
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->total(), 6u);
  EXPECT_EQ(seen->consumers(), 1u);
  EXPECT_EQ(seen->type(), v1::CLASSIC);
  EXPECT_TRUE(seen->durable());
  EXPECT_FALSE(seen->state().empty());

  v1::ListConsumersResponse consumers;
  ASSERT_TRUE(Consumers(q, &consumers).ok());
  ASSERT_EQ(consumers.consumers_size(), 1);
  const v1::ConsumerInfo& c = consumers.consumers(0);
  EXPECT_EQ(c.consumer_tag(), "billing-1");
  EXPECT_EQ(c.connection_name(), "billing worker");
  EXPECT_EQ(c.prefetch(), 4u);
  EXPECT_TRUE(c.ack_required());
  EXPECT_FALSE(c.gateway_own());
  consumer->reset();
  ASSERT_TRUE((*peer)->DeleteQueue(q).ok());
}

TEST_F(ListingTest, PagesFollowTheirTokens) {
  const std::string prefix = UniqueName("list-pages");
  auto peer = AmqpPeer::Connect(node_->port());
  ASSERT_TRUE(peer.ok()) << peer.status();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(
        (*peer)->DeclareQueue(absl::StrCat(prefix, "-", i), false).ok());
  }
  std::vector<std::string> names;
  std::string token;
  int pages = 0;
  do {
    v1::ListQueuesResponse r;
    ::grpc::Status s = Queues(prefix, &r, 2, token);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(r.filtered_count(), 5u);
    EXPECT_GE(r.total_count(), 5u);
    for (const auto& q : r.queues()) names.push_back(q.name());
    token = r.next_page_token();
    ASSERT_LE(++pages, 3);
  } while (!token.empty());
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(names.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(names[i], absl::StrCat(prefix, "-", i));
  }

  // A regular expression instead of a prefix.
  v1::ListQueuesRequest req;
  req.mutable_filter()->set_regex(absl::StrCat("^", prefix, "-[04]$"));
  v1::ListQueuesResponse r;
  ASSERT_TRUE(stub().ListQueues(Ctx().get(), req, &r).ok());
  ASSERT_EQ(r.queues_size(), 2);
  EXPECT_EQ(r.queues(1).name(), absl::StrCat(prefix, "-4"));

  // Bad paging names the field.
  req.set_page_size(501);
  ::grpc::Status s = stub().ListQueues(Ctx().get(), req, &r);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::StartsWith("page_size: "));
  req.set_page_size(0);
  req.set_page_token("not-a-token");
  s = stub().ListQueues(Ctx().get(), req, &r);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::StartsWith("page_token: "));
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE((*peer)->DeleteQueue(absl::StrCat(prefix, "-", i)).ok());
  }
}

TEST_F(ListingTest, RatesMoveWhileALoadRunsAndOwnStreamsAreMarked) {
  const std::string q = UniqueName("list-rates");
  v1::DeclareQueueRequest dq;
  dq.set_name(q);
  dq.set_durable(false);
  v1::DeclareQueueResponse dq_resp;
  ASSERT_TRUE(stub().DeclareQueue(Ctx().get(), dq, &dq_resp).ok());
  v1::StreamMessagesRequest sreq;
  sreq.set_queue(q);
  sreq.set_consumer_tag("ours");
  StreamReader reader(gateway_->NewStub().get(), sreq);
  ASSERT_TRUE(reader.WaitSubscribed());
  Traffic traffic(gateway_->NewStub(), q);
  std::optional<v1::QueueInfo> seen;
  // The broker's rates need two statistics samples of the load.
  EXPECT_TRUE(WaitFor(
      [&] {
        seen = Queue(q);
        return seen && seen->rates().publish() > 0 &&
               seen->rates().deliver() > 0 && seen->rates().ack() > 0;
      },
      absl::Seconds(60), absl::Milliseconds(250)))
      << (seen ? seen->DebugString() : "absent");

  v1::ListConsumersResponse consumers;
  ASSERT_TRUE(Consumers(q, &consumers).ok());
  ASSERT_EQ(consumers.consumers_size(), 1);
  EXPECT_EQ(consumers.consumers(0).consumer_tag(), "ours");
  EXPECT_TRUE(consumers.consumers(0).gateway_own());
  EXPECT_THAT(consumers.consumers(0).connection_name(),
              ::testing::StartsWith(absl::StrCat(
                  "amqpgw ", GatewayStatus(*gateway_).instance_id(), " ")));
  traffic.Stop();
  EXPECT_GT(traffic.confirmed().size(), 0u);
}

TEST_F(ListingTest, ExchangesAndBindings) {
  const std::string q = UniqueName("list-bq");
  const std::string x = UniqueName("list-bx");
  auto peer = AmqpPeer::Connect(node_->port());
  ASSERT_TRUE(peer.ok()) << peer.status();
  ASSERT_TRUE((*peer)->DeclareQueue(q, false).ok());
  ASSERT_TRUE((*peer)->DeclareExchange(x, "headers").ok());
  ASSERT_TRUE((*peer)->Bind(q, x, "").ok());

  v1::ListExchangesRequest ereq;
  ereq.mutable_filter()->set_prefix(x);
  v1::ListExchangesResponse eresp;
  ASSERT_TRUE(stub().ListExchanges(Ctx().get(), ereq, &eresp).ok());
  ASSERT_EQ(eresp.exchanges_size(), 1);
  EXPECT_EQ(eresp.exchanges(0).name(), x);
  EXPECT_EQ(eresp.exchanges(0).type(), v1::HEADERS);
  EXPECT_EQ(eresp.next_page_token(), "");

  v1::ListBindingsRequest breq;
  breq.set_exchange(x);
  v1::ListBindingsResponse bresp;
  ASSERT_TRUE(stub().ListBindings(Ctx().get(), breq, &bresp).ok());
  ASSERT_EQ(bresp.bindings_size(), 1);
  EXPECT_EQ(bresp.bindings(0).exchange(), x);
  EXPECT_EQ(bresp.bindings(0).destination(), q);
  EXPECT_EQ(bresp.bindings(0).destination_type(), v1::BindingInfo::QUEUE);

  breq.set_queue(q);
  ASSERT_TRUE(stub().ListBindings(Ctx().get(), breq, &bresp).ok());
  ASSERT_EQ(bresp.bindings_size(), 2);  // the default exchange's, and ours
  EXPECT_EQ(bresp.bindings(0).exchange(), "");
  EXPECT_EQ(bresp.bindings(1).exchange(), x);

  breq.set_queue(q + "-absent");
  ::grpc::Status s = stub().ListBindings(Ctx().get(), breq, &bresp);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr(q + "-absent"));
  v1::ListConsumersResponse consumers;
  s = Consumers(q + "-absent", &consumers);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE((*peer)->DeleteQueue(q).ok());
}

// Listing is for tokens of role consume (or admin); and the management
// user's own refusals name what it lacks.
TEST(ListingAuthTest, RolesAndManagementUsers) {
  BrokerNode node = BrokerNode::Shared();
  const std::string dir = AMQPGW_TEST_TMP_DIR;
  const std::string tokens = absl::StrCat(dir, "/", UniqueName("tokens"));
  std::ofstream(tokens) << "pub-5b1e7d0c9a3f4e26 publish\n"
                        << "con-8c2a6f1e0d4b3957 consume\n";
  // A management user without any tag, made through the API itself.
  const std::string user = UniqueName("list-plain");
  {
    httplib::Client http(ParseHttpUrl(node.management_url())->SchemeHostPort());
    http.set_basic_auth("guest", "guest");
    auto put =
        http.Put(absl::StrCat("/api/users/", user),
                 R"({"password":"pw-list","tags":""})", "application/json");
    ASSERT_TRUE(put && (put->status == 201 || put->status == 204));
  }
  const std::string password = absl::StrCat(dir, "/", UniqueName("mgmt-pw"));
  std::ofstream(password) << "pw-list\n";
  auto g = TestGateway::Start(node.uri(), [&](daemon::Options& o) {
    o.auth_tokens = tokens;
    o.management_url = node.management_url();
    o.management_user = user;
    o.management_password_file = password;
  });
  auto as = [](const std::string& token) {
    auto ctx = Ctx();
    ctx->AddMetadata("authorization", "Bearer " + token);
    return ctx;
  };
  v1::ListQueuesResponse r;
  ::grpc::Status s =
      g->stub().ListQueues(as("pub-5b1e7d0c9a3f4e26").get(), {}, &r);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::PERMISSION_DENIED);
  v1::ListConsumersRequest lc;
  lc.set_queue("q");
  v1::ListConsumersResponse lcr;
  s = g->stub().ListConsumers(as("pub-5b1e7d0c9a3f4e26").get(), lc, &lcr);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::PERMISSION_DENIED);
  s = g->stub().ListQueues(Ctx().get(), {}, &r);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::UNAUTHENTICATED);
  // The consume token gets through to the management API, which refuses
  // the user: the message says what to give it.
  EXPECT_TRUE(WaitFor([&] {
    s = g->stub().ListQueues(as("con-8c2a6f1e0d4b3957").get(), {}, &r);
    return s.error_code() == ::grpc::StatusCode::PERMISSION_DENIED;
  })) << s.error_message();
  EXPECT_THAT(s.error_message(),
              AllOf(HasSubstr(user), HasSubstr("'monitoring' tag"),
                    HasSubstr("--management_user")));
  httplib::Client http(ParseHttpUrl(node.management_url())->SchemeHostPort());
  http.set_basic_auth("guest", "guest");
  (void)http.Delete(absl::StrCat("/api/users/", user));
}

// A node without the management plugin: the gateway works, InspectQueue
// answers with the AMQP counts and says why there are no details, and
// GetStatus says how to enable the plugin.
TEST(ListingWithoutPluginTest, EverythingElseWorksAndStatusSaysWhy) {
  auto node = BrokerNode::StartPrivate("nolisting", "", /*management=*/false);
  ASSERT_TRUE(node.ok()) << node.status();
  auto g = TestGateway::Start(node->uri(), [&](daemon::Options& o) {
    o.management_url = node->management_url();
  });
  ASSERT_TRUE(g->WaitReady());
  v1::DeclareQueueRequest dq;
  dq.set_name("q");
  v1::DeclareQueueResponse dq_resp;
  ASSERT_TRUE(g->stub().DeclareQueue(Ctx().get(), dq, &dq_resp).ok());
  v1::PublishRequest pub;
  pub.set_routing_key("q");
  pub.set_body("x");
  v1::PublishResponse pub_resp;
  ASSERT_TRUE(g->stub().Publish(Ctx().get(), pub, &pub_resp).ok());

  v1::InspectQueueRequest req;
  req.set_name("q");
  v1::InspectQueueResponse resp;
  ASSERT_TRUE(g->stub().InspectQueue(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.message_count(), 1u);
  EXPECT_FALSE(resp.has_details());
  EXPECT_THAT(resp.details_unavailable(),
              HasSubstr("rabbitmq-plugins enable rabbitmq_management"));

  v1::GetStatusResponse r;
  EXPECT_TRUE(WaitFor([&] {
    r = GatewayStatus(*g);
    return r.listing().state() == v1::ListingStatus::UNAVAILABLE;
  })) << r.listing().DebugString();
  EXPECT_THAT(r.listing().detail(),
              AllOf(HasSubstr(node->management_url()),
                    HasSubstr("rabbitmq-plugins enable rabbitmq_management"),
                    HasSubstr("--management_url")));
  // Every listing RPC says how to enable it.
  v1::ListQueuesResponse lq;
  ::grpc::Status s = g->stub().ListQueues(Ctx().get(), {}, &lq);
  EXPECT_EQ(s.error_code(), ::grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(),
              AllOf(HasSubstr("rabbitmq-plugins enable rabbitmq_management"),
                    HasSubstr("--management_url")));
  v1::ListExchangesResponse le;
  EXPECT_EQ(g->stub().ListExchanges(Ctx().get(), {}, &le).error_code(),
            ::grpc::StatusCode::FAILED_PRECONDITION);
  v1::ListBindingsResponse lb;
  EXPECT_EQ(g->stub().ListBindings(Ctx().get(), {}, &lb).error_code(),
            ::grpc::StatusCode::FAILED_PRECONDITION);
  v1::ListConsumersRequest lc;
  lc.set_queue("q");
  v1::ListConsumersResponse lcr;
  EXPECT_EQ(g->stub().ListConsumers(Ctx().get(), lc, &lcr).error_code(),
            ::grpc::StatusCode::FAILED_PRECONDITION);
  g.reset();
  EXPECT_TRUE(node->Stop().ok());
}

}  // namespace
}  // namespace amqpgw::testing
