// The management API client (server/management) against the shared node of
// the ctest fixture (management plugin on), a port nothing listens on, and
// a port that accepts connections but never answers (a node without the
// plugin: listing_test). Queues, bindings and consumers are made by an
// independent AMQP client (AmqpPeer), users through the management API itself.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "server/base/http_url.h"
#include "server/management/client.h"
#include "server/management/parse.h"
#include "tests/support/amqp_peer.h"
#include "tests/support/broker_node.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

using management::BindingFilter;
using management::Consumer;
using management::ListQuery;
using management::ManagementClient;
using management::Page;
using management::Queue;
using ::testing::AllOf;
using ::testing::HasSubstr;

// Runs one asynchronous client call and waits for its answer.
template <typename T, typename Start>
absl::StatusOr<T> Call(Start start) {
  absl::Notification done;
  absl::StatusOr<T> out = absl::UnknownError("no answer");
  start([&](absl::StatusOr<T> r) {
    out = std::move(r);
    done.Notify();
  });
  if (!done.WaitForNotificationWithTimeout(absl::Seconds(60))) {
    return absl::DeadlineExceededError("the client never answered");
  }
  return out;
}

class ManagementTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { node_ = new BrokerNode(BrokerNode::Shared()); }
  static void TearDownTestSuite() { delete node_; }

  static ManagementClient::Options Options() {
    ManagementClient::Options o;
    o.url = node_->management_url();
    o.user = "guest";
    o.password = "guest";
    o.own_connection_prefix = "amqpgw test-gw:1 ";
    return o;
  }

  static std::unique_ptr<ManagementClient> NewClient(
      ManagementClient::Options o = Options()) {
    auto c = ManagementClient::Create(std::move(o));
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  static absl::StatusOr<Page<Queue>> Queues(ManagementClient& c,
                                            ListQuery query) {
    return Call<Page<Queue>>(
        [&](auto done) { c.ListQueues(query, std::move(done)); });
  }

  // The queue named `name` from a listing filtered to it, or nullopt.
  static std::optional<Queue> FindQueue(ManagementClient& c,
                                        const std::string& name) {
    ListQuery q;
    q.name_regex = management::PrefixRegex(name);
    auto page = Queues(c, q);
    if (!page.ok()) return std::nullopt;
    for (const Queue& x : page->items) {
      if (x.name == name) return x;
    }
    return std::nullopt;
  }

  // A user made through the API (guest is an administrator).
  static void PutUser(const std::string& name, const std::string& tags) {
    httplib::Client http(HttpUrlOf(node_->management_url()));
    http.set_basic_auth("guest", "guest");
    auto r =
        http.Put(absl::StrCat("/api/users/", name),
                 absl::StrCat(R"({"password":"pw","tags":")", tags, R"("})"),
                 "application/json");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    ASSERT_TRUE(r->status == 201 || r->status == 204) << r->status << r->body;
  }
  static void DeleteUser(const std::string& name) {
    httplib::Client http(HttpUrlOf(node_->management_url()));
    http.set_basic_auth("guest", "guest");
    (void)http.Delete(absl::StrCat("/api/users/", name));
  }
  static std::string HttpUrlOf(const std::string& url) {
    return ParseHttpUrl(url)->SchemeHostPort();
  }

  static BrokerNode* node_;
};

BrokerNode* ManagementTest::node_ = nullptr;

TEST_F(ManagementTest, WhoAmINamesTheUserAndItsTags) {
  auto c = NewClient();
  auto user =
      Call<management::User>([&](auto done) { c->WhoAmI(std::move(done)); });
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->name, "guest");
  EXPECT_THAT(user->tags, ::testing::Contains("administrator"));
}

TEST_F(ManagementTest, QueuesDeclaredElsewhereAppearWithTheirCounts) {
  const std::string q = UniqueName("mgmt-counts");
  auto peer = AmqpPeer::Connect(node_->port());
  ASSERT_TRUE(peer.ok()) << peer.status();
  ASSERT_TRUE((*peer)->DeclareQueue(q).ok());
  for (int i = 0; i < 7; ++i) ASSERT_TRUE((*peer)->Publish("", q, "m").ok());
  // A consumer of another connection holds 3 of them unacknowledged.
  auto consumer = AmqpPeer::Connect(node_->port(), "some app");
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  ASSERT_TRUE((*consumer)->Consume(q, 3, "holder").ok());

  auto c = NewClient();
  std::optional<Queue> seen;
  // The broker's statistics lag by up to collect_statistics_interval, and
  // arrive in parts (counts, consumers, state).
  EXPECT_TRUE(WaitFor([&] {
    seen = FindQueue(*c, q);
    return seen.has_value() && seen->unacked == 3 && seen->ready == 4 &&
           seen->consumers == 1 && !seen->state.empty();
  })) << (seen ? absl::StrCat(seen->ready, " ready ", seen->unacked, " unacked")
               : "absent");
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->total, 7u);
  EXPECT_EQ(seen->consumers, 1u);
  EXPECT_EQ(seen->type, "classic");
  EXPECT_TRUE(seen->durable);
  EXPECT_FALSE(seen->auto_delete);
  EXPECT_FALSE(seen->exclusive);
  EXPECT_FALSE(seen->state.empty());
  EXPECT_GT(seen->memory, 0u);
  EXPECT_FALSE(seen->node.empty());

  // The same queue on its own, and its consumer.
  auto one = Call<Queue>([&](auto done) { c->GetQueue(q, std::move(done)); });
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->name, q);
  EXPECT_EQ(one->total, 7u);
  auto consumers = Call<std::vector<Consumer>>(
      [&](auto done) { c->ListConsumers(q, std::move(done)); });
  ASSERT_TRUE(consumers.ok()) << consumers.status();
  ASSERT_EQ(consumers->size(), 1u);
  const Consumer& k = (*consumers)[0];
  EXPECT_EQ(k.queue, q);
  EXPECT_EQ(k.consumer_tag, "holder");
  EXPECT_EQ(k.prefetch, 3u);
  EXPECT_TRUE(k.ack_required);
  EXPECT_EQ(k.connection_name, "some app");
  EXPECT_THAT(k.connection, HasSubstr("->"));
  EXPECT_EQ(k.user, "guest");
  EXPECT_FALSE(k.own);

  consumer->reset();
  ASSERT_TRUE((*peer)->DeleteQueue(q).ok());
}

TEST_F(ManagementTest, TheGatewaysOwnConsumersAreMarked) {
  const std::string q = UniqueName("mgmt-own");
  auto peer = AmqpPeer::Connect(node_->port());
  ASSERT_TRUE(peer.ok()) << peer.status();
  ASSERT_TRUE((*peer)->DeclareQueue(q, /*durable=*/false).ok());
  auto ours = AmqpPeer::Connect(node_->port(), "amqpgw test-gw:1 consumer-0");
  auto theirs =
      AmqpPeer::Connect(node_->port(), "amqpgw test-gw:10 consumer-0");
  ASSERT_TRUE(ours.ok() && theirs.ok());
  ASSERT_TRUE((*ours)->Consume(q, 10, "ours").ok());
  ASSERT_TRUE((*theirs)->Consume(q, 10, "theirs").ok());

  auto c = NewClient();
  absl::StatusOr<std::vector<Consumer>> consumers;
  // The management API may list a consumer before its channel's details
  // (the connection name the mark is made from) are in its statistics.
  ASSERT_TRUE(WaitFor([&] {
    consumers = Call<std::vector<Consumer>>(
        [&](auto done) { c->ListConsumers(q, std::move(done)); });
    if (!consumers.ok() || consumers->size() != 2) return false;
    for (const Consumer& k : *consumers) {
      if (k.connection_name.empty()) return false;
    }
    return true;
  })) << consumers.status();
  for (const Consumer& k : *consumers) {
    EXPECT_EQ(k.own, k.consumer_tag == "ours") << k.consumer_tag;
  }
  ASSERT_TRUE((*peer)->DeleteQueue(q).ok());
}

TEST_F(ManagementTest, FiltersAndPages) {
  const std::string prefix = UniqueName("mgmt-page");
  auto peer = AmqpPeer::Connect(node_->port());
  ASSERT_TRUE(peer.ok()) << peer.status();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(
        (*peer)->DeclareQueue(absl::StrCat(prefix, ".", i), false).ok());
  }
  // A name that a careless prefix match would take: "." is a wildcard in a
  // regular expression.
  ASSERT_TRUE((*peer)->DeclareQueue(absl::StrCat(prefix, "x0"), false).ok());

  auto c = NewClient();
  ListQuery q;
  q.name_regex = management::PrefixRegex(absl::StrCat(prefix, "."));
  q.page_size = 2;
  std::vector<std::string> names;
  for (q.page = 1; q.page <= 3; ++q.page) {
    auto page = Queues(*c, q);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_EQ(page->page, q.page);
    EXPECT_EQ(page->page_count, 3);
    EXPECT_EQ(page->filtered_count, 5u);
    EXPECT_GE(page->total_count, 6u);
    for (const Queue& x : page->items) names.push_back(x.name);
  }
  EXPECT_THAT(names, ::testing::ElementsAre(
                         absl::StrCat(prefix, ".0"), absl::StrCat(prefix, ".1"),
                         absl::StrCat(prefix, ".2"), absl::StrCat(prefix, ".3"),
                         absl::StrCat(prefix, ".4")));
  // Past the last page: empty, not an error (queues may have gone since the
  // page before).
  q.page = 9;
  auto past = Queues(*c, q);
  ASSERT_TRUE(past.ok()) << past.status();
  EXPECT_TRUE(past->items.empty());

  // A regular expression of the caller's.
  q.page = 1;
  q.page_size = 100;
  q.name_regex = absl::StrCat("^", prefix, "\\.[13]$");
  auto odd = Queues(*c, q);
  ASSERT_TRUE(odd.ok()) << odd.status();
  ASSERT_EQ(odd->items.size(), 2u);
  EXPECT_EQ(odd->items[0].name, absl::StrCat(prefix, ".1"));
  EXPECT_EQ(odd->items[1].name, absl::StrCat(prefix, ".3"));

  // Bad paging is refused before anything is sent.
  const uint64_t sent = c->counters().requests;
  q.page_size = 501;
  EXPECT_EQ(Queues(*c, q).status().code(), absl::StatusCode::kInvalidArgument);
  q.page_size = 10;
  q.page = 0;
  EXPECT_EQ(Queues(*c, q).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c->counters().requests, sent);

  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE((*peer)->DeleteQueue(absl::StrCat(prefix, ".", i)).ok());
  }
  ASSERT_TRUE((*peer)->DeleteQueue(absl::StrCat(prefix, "x0")).ok());
}

TEST_F(ManagementTest, ExchangesAndBindings) {
  const std::string q = UniqueName("mgmt-bq");
  const std::string x = UniqueName("mgmt-bx");
  auto peer = AmqpPeer::Connect(node_->port());
  ASSERT_TRUE(peer.ok()) << peer.status();
  ASSERT_TRUE((*peer)->DeclareQueue(q, false).ok());
  ASSERT_TRUE((*peer)->DeclareExchange(x, "topic").ok());
  ASSERT_TRUE((*peer)->Bind(q, x, "orders.#").ok());

  auto c = NewClient();
  ListQuery query;
  query.name_regex = management::PrefixRegex(x);
  auto exchanges = Call<Page<management::Exchange>>(
      [&](auto done) { c->ListExchanges(query, std::move(done)); });
  ASSERT_TRUE(exchanges.ok()) << exchanges.status();
  ASSERT_EQ(exchanges->items.size(), 1u);
  EXPECT_EQ(exchanges->items[0].name, x);
  EXPECT_EQ(exchanges->items[0].type, "topic");
  EXPECT_FALSE(exchanges->items[0].durable);

  auto bindings = [&](BindingFilter f) {
    return Call<std::vector<management::Binding>>(
        [&](auto done) { c->ListBindings(f, std::move(done)); });
  };
  auto of_queue = bindings({BindingFilter::Kind::kQueue, q});
  ASSERT_TRUE(of_queue.ok()) << of_queue.status();
  // The default exchange's implicit binding, and ours.
  ASSERT_EQ(of_queue->size(), 2u);
  EXPECT_EQ((*of_queue)[0].source, "");
  EXPECT_EQ((*of_queue)[1].source, x);
  EXPECT_EQ((*of_queue)[1].routing_key, "orders.#");
  EXPECT_EQ((*of_queue)[1].destination_type, "queue");

  auto of_exchange = bindings({BindingFilter::Kind::kExchange, x});
  ASSERT_TRUE(of_exchange.ok()) << of_exchange.status();
  ASSERT_EQ(of_exchange->size(), 1u);
  EXPECT_EQ((*of_exchange)[0].destination, q);

  auto all = bindings({BindingFilter::Kind::kAll, ""});
  ASSERT_TRUE(all.ok()) << all.status();
  int ours = 0;
  for (const auto& b : *all) ours += b.source == x && b.destination == q;
  EXPECT_EQ(ours, 1);

  // Absent objects are NOT_FOUND, named.
  auto missing = bindings({BindingFilter::Kind::kExchange, x + "-gone"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(),
            absl::StrCat("exchange '", x, "-gone' not found in vhost '/'"));
  missing = bindings({BindingFilter::Kind::kQueue, q + "-gone"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(),
            absl::StrCat("queue '", q, "-gone' not found in vhost '/'"));
  // The default exchange binds every queue implicitly.
  auto from_default = bindings({BindingFilter::Kind::kExchange, ""});
  ASSERT_TRUE(from_default.ok()) << from_default.status();
  int to_q = 0;
  for (const auto& b : *from_default) to_q += b.destination == q;
  EXPECT_EQ(to_q, 1);
  auto gone = Call<Queue>(
      [&](auto done) { c->GetQueue(q + "-gone", std::move(done)); });
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE((*peer)->DeleteQueue(q).ok());
}

TEST_F(ManagementTest, RatesMoveWhileALoadRuns) {
  const std::string q = UniqueName("mgmt-rates");
  auto peer = AmqpPeer::Connect(node_->port());
  ASSERT_TRUE(peer.ok()) << peer.status();
  ASSERT_TRUE((*peer)->DeclareQueue(q, false).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> published{0};
  std::thread load([&] {
    auto p = AmqpPeer::Connect(node_->port());
    if (!p.ok()) return;
    while (!stop.load()) {
      if (!(*p)->Publish("", q, "x", false).ok()) return;
      published.fetch_add(1);
      // About 1,000 messages a second: a steady rate, not a flood.
      if (published.load() % 50 == 0) absl::SleepFor(absl::Milliseconds(50));
    }
  });
  auto c = NewClient();
  std::optional<Queue> seen;
  EXPECT_TRUE(WaitFor(
      [&] {
        seen = FindQueue(*c, q);
        return seen.has_value() && seen->rates.publish > 0;
      },
      absl::Seconds(60), absl::Milliseconds(200)))
      << "published " << published.load();
  stop = true;
  load.join();
  EXPECT_GT(published.load(), 0);
  ASSERT_TRUE((*peer)->DeleteQueue(q).ok());
}

TEST_F(ManagementTest, PollersShareOneRequestPerSecond) {
  ManagementClient::Options o = Options();
  o.cache_ttl = absl::Seconds(30);  // no expiry during the test
  auto c = NewClient(o);
  ListQuery q;
  q.name_regex = "^mgmt-cache-nothing-matches$";
  // 20 callers at once: one request on its way, the others join it.
  std::vector<std::thread> callers;
  std::atomic<int> ok{0};
  for (int i = 0; i < 20; ++i) {
    callers.emplace_back([&] { ok += Queues(*c, q).ok(); });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(ok.load(), 20);
  ManagementClient::Counters n = c->counters();
  EXPECT_EQ(n.requests, 1u);
  EXPECT_EQ(n.joined + n.cache_hits, 19u);
  // Later callers get the cached answer.
  ASSERT_TRUE(Queues(*c, q).ok());
  EXPECT_EQ(c->counters().requests, 1u);
  // Another query is another request.
  q.page_size = 7;
  ASSERT_TRUE(Queues(*c, q).ok());
  EXPECT_EQ(c->counters().requests, 2u);

  // A short cache expires.
  o.cache_ttl = absl::Milliseconds(1);
  auto fresh = NewClient(o);
  ASSERT_TRUE(Queues(*fresh, q).ok());
  absl::SleepFor(absl::Milliseconds(5));  // lets the 1 ms cache expire
  ASSERT_TRUE(Queues(*fresh, q).ok());
  EXPECT_EQ(fresh->counters().requests, 2u);
}

TEST_F(ManagementTest, RefusalsNameTheUserAndWhatItLacks) {
  ManagementClient::Options o = Options();
  o.password = "not-the-pass-7731";
  auto c = NewClient(o);
  auto r = Queues(*c, ListQuery());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(r.status().message(),
              AllOf(HasSubstr("'guest'"), HasSubstr("--management_user"),
                    ::testing::Not(HasSubstr("7731"))));

  // A user without a management tag.
  const std::string plain = UniqueName("mgmt-plain");
  PutUser(plain, "");
  o = Options();
  o.user = plain;
  o.password = "pw";
  c = NewClient(o);
  r = Queues(*c, ListQuery());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(r.status().message(),
              AllOf(HasSubstr(plain), HasSubstr("'monitoring' tag"),
                    HasSubstr("rabbitmqctl set_user_tags")));

  // A monitoring user without access to the vhost.
  PutUser(plain, "monitoring");
  c = NewClient(o);
  r = Queues(*c, ListQuery());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(r.status().message(),
              AllOf(HasSubstr(plain), HasSubstr("vhost '/'"),
                    HasSubstr("set_permissions")));

  // Access with no rights on the vhost's resources, as the message says,
  // is enough.
  {
    httplib::Client http(HttpUrlOf(node_->management_url()));
    http.set_basic_auth("guest", "guest");
    auto put = http.Put(absl::StrCat("/api/permissions/%2F/", plain),
                        R"({"configure":"","write":"","read":""})",
                        "application/json");
    ASSERT_TRUE(put && (put->status == 201 || put->status == 204));
  }
  c = NewClient(o);
  r = Queues(*c, ListQuery());
  EXPECT_TRUE(r.ok()) << r.status();
  DeleteUser(plain);
}

// A socket that accepts connections (the kernel's backlog) and never
// answers; closed, nothing listens on its port.
class SilentPort {
 public:
  SilentPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(fd_, 16);
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~SilentPort() { close(fd_); }
  std::string url() const {
    return absl::StrCat("http://127.0.0.1:", port_, "/");
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST_F(ManagementTest, ASilentServerIsUnavailableWithinTheTimeout) {
  SilentPort silent;
  ManagementClient::Options o = Options();
  o.url = silent.url();
  o.timeout = absl::Milliseconds(300);
  auto c = NewClient(o);
  const absl::Time start = absl::Now();
  auto r = Queues(*c, ListQuery());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr(silent.url()));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(ManagementTest, StopAnswersCallsStillWaiting) {
  SilentPort silent;
  ManagementClient::Options o = Options();
  o.url = silent.url();
  o.timeout = absl::Seconds(2);
  o.threads = 1;
  auto c = NewClient(o);
  // The first request occupies the only thread; the second waits.
  absl::Notification first_done, second_done;
  absl::Status first, second;
  ListQuery a, b;
  b.page_size = 3;
  c->ListQueues(a, [&](absl::StatusOr<Page<Queue>> r) {
    first = r.status();
    first_done.Notify();
  });
  ASSERT_TRUE(WaitFor([&] { return c->counters().requests == 1; }));
  c->ListQueues(b, [&](absl::StatusOr<Page<Queue>> r) {
    second = r.status();
    second_done.Notify();
  });
  c->Stop();
  ASSERT_TRUE(first_done.HasBeenNotified());
  ASSERT_TRUE(second_done.HasBeenNotified());
  EXPECT_EQ(first.code(), absl::StatusCode::kUnavailable) << first;
  EXPECT_EQ(second.code(), absl::StatusCode::kUnavailable) << second;
  EXPECT_THAT(second.message(), HasSubstr("shutting down"));
  EXPECT_EQ(c->counters().requests, 1u);
  // And later calls are answered at once.
  auto later = Queues(*c, ListQuery());
  EXPECT_EQ(later.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(ManagementTest, BadUrlsAreRefusedAtCreation) {
  for (const char* url : {"", "amqp://127.0.0.1:5672/", "http://u:p@h:1/"}) {
    ManagementClient::Options o = Options();
    o.url = url;
    EXPECT_EQ(ManagementClient::Create(o).status().code(),
              absl::StatusCode::kInvalidArgument)
        << url;
  }
}

// Nothing listening at the URL (a node without the plugin: listing_test
// runs one): every call says how to enable it.
TEST_F(ManagementTest, NothingListeningSaysHowToEnableThePlugin) {
  int port = 0;
  {
    SilentPort reserved;  // a port that was free a moment ago
    port = reserved.port();
  }
  ManagementClient::Options o = Options();
  o.url = absl::StrCat("http://127.0.0.1:", port, "/");
  auto c = NewClient(o);
  auto r = Queues(*c, ListQuery());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(),
              AllOf(HasSubstr(o.url),
                    HasSubstr("rabbitmq-plugins enable rabbitmq_management"),
                    HasSubstr("--management_url")));
  // The answer is reused for a second, like any other.
  EXPECT_EQ(Queues(*c, ListQuery()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(c->counters().requests, 1u);
  EXPECT_EQ(c->availability().status.code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace amqpgw::testing
