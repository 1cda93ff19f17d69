// ManagementClient: RabbitMQ's management HTTP API for one virtual host, as
// a backend for listing queues, exchanges, bindings and consumers.
//
// Calls never block the caller: each is queued for the client's own threads
// (Options::threads), which own one cpp-httplib client each (keep-alive,
// http or https with the broker's TLS trust) and bound every request by
// Options::timeout. Answers are cached for Options::cache_ttl per request
// (errors too), and a request already on its way is joined rather than sent
// again, so many pollers cost the broker one request per second each kind.
// Errors are mapped in errors.h.
//
// `done` runs on one of the client's threads, or on the calling thread when
// the answer is cached or the call is refused at once (bad query, too many
// requests waiting, stopped). It must not block.
//
// Thread safety: every method may be called from any thread. Stop() (or the
// destructor) answers calls still waiting with UNAVAILABLE and joins the
// threads; it waits for requests in progress (at most Options::timeout).
#ifndef AMQPGW_SERVER_MANAGEMENT_CLIENT_H_
#define AMQPGW_SERVER_MANAGEMENT_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/base/http_url.h"
#include "server/base/sync.h"
#include "server/management/errors.h"
#include "server/management/types.h"

namespace httplib {
class Client;
}

namespace amqpgw::management {

// Which bindings ListBindings returns.
struct BindingFilter {
  enum class Kind { kAll, kQueue, kExchange };
  Kind kind = Kind::kAll;
  // The queue (bindings to it) or the exchange (bindings from it).
  std::string name;
};

class ManagementClient {
 public:
  struct Options {
    // The API's base URL, http(s)://host:port/ (a path prefix is kept, for
    // brokers with management.path_prefix).
    std::string url;
    std::string user;
    std::string password;
    std::string vhost = "/";
    // https: PEM files as for amqps:// brokers. CA bundle (empty: the
    // system's CAs); client certificate and key (both or neither). The
    // server's certificate and host name are always verified.
    std::string tls_ca_file;
    std::string tls_cert_file;
    std::string tls_key_file;
    // Bounds connecting, sending and reading each request.
    absl::Duration timeout = absl::Seconds(5);
    // How long an answer is reused.
    absl::Duration cache_ttl = absl::Seconds(1);
    int threads = 2;
    // Distinct requests waiting for a thread; beyond it calls answer
    // RESOURCE_EXHAUSTED.
    size_t max_waiting = 64;
    // Consumers whose connection name starts with this are the gateway's
    // own (Consumer::own). Empty: none is.
    std::string own_connection_prefix;
  };

  // Whether the API answered the last request it was sent: OK, or why not
  // (errors that say nothing of the API itself, such as NOT_FOUND for a
  // queue, count as answers).
  struct Availability {
    absl::Time checked = absl::InfinitePast();  // never asked yet
    absl::Status status;
  };

  struct Counters {
    uint64_t requests = 0;    // HTTP requests sent
    uint64_t failures = 0;    // of those, without a 2xx answer
    uint64_t cache_hits = 0;  // calls answered from the cache
    uint64_t joined = 0;      // calls that joined a request on its way
  };

  template <typename T>
  using Done = absl::AnyInvocable<void(absl::StatusOr<T>) &&>;

  // Checks the URL (INVALID_ARGUMENT naming what is wrong) and starts the
  // threads.
  static absl::StatusOr<std::unique_ptr<ManagementClient>> Create(
      Options options);
  ~ManagementClient();
  ManagementClient(const ManagementClient&) = delete;
  ManagementClient& operator=(const ManagementClient&) = delete;

  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // The management user and its tags (a cheap probe: GET /api/whoami).
  void WhoAmI(Done<User> done);
  // Queues of the vhost, sorted by name, one page.
  void ListQueues(ListQuery query, Done<Page<Queue>> done);
  // One queue; NOT_FOUND when absent.
  void GetQueue(std::string name, Done<Queue> done);
  // A queue's consumers, with the names of their connections; NOT_FOUND
  // when the queue is absent.
  void ListConsumers(std::string queue, Done<std::vector<Consumer>> done);
  // Exchanges of the vhost, sorted by name, one page.
  void ListExchanges(ListQuery query, Done<Page<Exchange>> done);
  // All bindings of the vhost, or those of one queue or exchange (NOT_FOUND
  // when it is absent).
  void ListBindings(BindingFilter filter, Done<std::vector<Binding>> done);

  // The base URL, without credentials (for logs and messages).
  const std::string& url() const { return context_.url; }
  const std::string& user() const { return options_.user; }
  Counters counters() const;
  Availability availability() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // A parsed answer; its type is fixed by the request path.
  using Parsed = absl::StatusOr<std::shared_ptr<const void>>;
  using Parser = Parsed (*)(absl::string_view body);
  using Callback = absl::AnyInvocable<void(const Parsed&) &&>;

  struct Entry {
    bool in_flight = true;
    absl::Time answered = absl::InfinitePast();
    Parsed result = std::shared_ptr<const void>();
    std::string object;  // RequestContext::object
    Parser parser = nullptr;
    // The answer to a page past the last one is an empty page.
    bool paged = false;
    std::vector<Callback> waiters;
  };

  ManagementClient(Options options, HttpUrl url);
  // The answer to GET `path` (cached, joined or fetched), parsed once by
  // `parser`; `done` gets it.
  void FetchParsed(std::string path, std::string object, bool paged,
                   Parser parser, Callback done) ABSL_LOCKS_EXCLUDED(mu_);
  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  std::unique_ptr<httplib::Client> NewHttpClient() const;
  Parsed Perform(httplib::Client& http, const std::string& path,
                 const std::string& object, bool paged, Parser parser);
  // "/api/queues/%2F..." under the URL's path prefix.
  std::string ApiPath(absl::string_view rest) const;

  const Options options_;
  const HttpUrl url_;
  RequestContext context_;  // url, user, vhost; fixed after construction
  std::string vhost_path_;  // the vhost, percent-encoded

  mutable amqpgw::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, Entry> cache_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> waiting_ ABSL_GUARDED_BY(mu_);  // paths to fetch
  Availability availability_ ABSL_GUARDED_BY(mu_);

  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> failures_{0};
  std::atomic<uint64_t> cache_hits_{0};
  std::atomic<uint64_t> joined_{0};
  std::vector<std::thread> threads_;
};

}  // namespace amqpgw::management

#endif  // AMQPGW_SERVER_MANAGEMENT_CLIENT_H_
