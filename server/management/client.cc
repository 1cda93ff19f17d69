#include "server/management/client.h"

#include <httplib.h>

#include <chrono>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/base/hex.h"
#include "server/base/quote.h"
#include "server/management/parse.h"

namespace amqpgw::management {
namespace {

// Every byte but the unreserved ones (RFC 3986) as %XX: vhosts and names
// become one path segment or query value.
std::string PercentEncode(absl::string_view s) {
  std::string out;
  for (char c : s) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      AppendHex(absl::string_view(&c, 1), &out, /*upper=*/true);
    }
  }
  return out;
}

// The columns the listings use: the rest of a queue's statistics
// (garbage collection, backing queue status, ...) stays on the broker.
constexpr char kQueueColumns[] =
    "name,type,durable,auto_delete,exclusive,arguments,policy,"
    "messages_ready,messages_unacknowledged,messages,consumers,"
    "consumer_utilisation,memory,state,node,leader,members,online,"
    "message_stats.publish_details.rate,"
    "message_stats.deliver_get_details.rate,"
    "message_stats.ack_details.rate,message_stats.redeliver_details.rate";
constexpr char kExchangeColumns[] =
    "name,type,durable,auto_delete,internal,arguments,policy,"
    "message_stats.publish_in_details.rate,"
    "message_stats.publish_out_details.rate";

// The body the API would send for a page past the last.
constexpr char kEmptyPage[] = R"({"items":[]})";

absl::Status CheckQuery(const ListQuery& q) {
  if (q.page < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("page must be 1 or more, got ", q.page));
  }
  if (q.page_size < 1 || q.page_size > kMaxPageSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_size must be 1..", kMaxPageSize, ", got ", q.page_size));
  }
  return absl::OkStatus();
}

std::string PageQuery(const ListQuery& q, const char* columns) {
  std::string out = absl::StrCat("?page=", q.page, "&page_size=", q.page_size,
                                 "&sort=name&columns=", PercentEncode(columns));
  if (!q.name_regex.empty()) {
    absl::StrAppend(&out, "&name=", PercentEncode(q.name_regex),
                    "&use_regex=true");
  }
  return out;
}

// Errors that say the API cannot serve listings (as opposed to answers
// about one object, such as NOT_FOUND).
bool SaysTheApiIsUnusable(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnknown:
      return true;
    default:
      return false;
  }
}

// A parse.h function as a type-erased Parser.
template <typename T, absl::StatusOr<T> (*parse)(absl::string_view)>
absl::StatusOr<std::shared_ptr<const void>> Erased(absl::string_view body) {
  absl::StatusOr<T> v = parse(body);
  if (!v.ok()) return v.status();
  return std::shared_ptr<const void>(std::make_shared<const T>(*std::move(v)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ManagementClient>> ManagementClient::Create(
    Options options) {
  absl::StatusOr<HttpUrl> url = ParseHttpUrl(options.url);
  if (!url.ok()) return url.status();
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "a TLS client certificate and key go together");
  }
  if (options.threads < 1) options.threads = 1;
  std::unique_ptr<ManagementClient> c(
      new ManagementClient(std::move(options), *std::move(url)));
  for (int i = 0; i < c->options_.threads; ++i) {
    c->threads_.emplace_back([p = c.get()] { p->Run(); });
  }
  return c;
}

ManagementClient::ManagementClient(Options options, HttpUrl url)
    : options_(std::move(options)), url_(std::move(url)) {
  std::string base = url_.path;
  if (base.empty() || base.back() != '/') base.push_back('/');
  context_.url = absl::StrCat(url_.SchemeHostPort(), base);
  context_.user = options_.user;
  context_.vhost = options_.vhost;
  vhost_path_ = PercentEncode(options_.vhost);
}

ManagementClient::~ManagementClient() { Stop(); }

void ManagementClient::Stop() {
  {
    amqpgw::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  for (std::thread& t : threads_) t.join();
  // Requests that never reached a thread: their callers get an answer.
  std::vector<Callback> orphans;
  {
    amqpgw::MutexLock lock(&mu_);
    for (auto& [path, entry] : cache_) {
      for (Callback& w : entry.waiters) orphans.push_back(std::move(w));
      entry.waiters.clear();
    }
    waiting_.clear();
  }
  Parsed stopped = absl::UnavailableError(
      "the gateway is shutting down its management "
      "API client");
  for (Callback& w : orphans) std::move(w)(stopped);
}

ManagementClient::Availability ManagementClient::availability() const {
  amqpgw::MutexLock lock(&mu_);
  return availability_;
}

ManagementClient::Counters ManagementClient::counters() const {
  Counters c;
  c.requests = requests_.load(std::memory_order_relaxed);
  c.failures = failures_.load(std::memory_order_relaxed);
  c.cache_hits = cache_hits_.load(std::memory_order_relaxed);
  c.joined = joined_.load(std::memory_order_relaxed);
  return c;
}

std::string ManagementClient::ApiPath(absl::string_view rest) const {
  absl::string_view prefix = url_.path;
  absl::ConsumeSuffix(&prefix, "/");
  return absl::StrCat(prefix, "/api/", rest);
}

void ManagementClient::FetchParsed(std::string path, std::string object,
                                   bool paged, Parser parser, Callback done) {
  Parsed ready = std::shared_ptr<const void>();
  {
    amqpgw::MutexLock lock(&mu_);
    if (stopping_) {
      ready = absl::UnavailableError(
          "the gateway is shutting down its management API client");
    } else {
      const absl::Time now = absl::Now();
      auto it = cache_.find(path);
      if (it != cache_.end() && it->second.in_flight) {
        it->second.waiters.push_back(std::move(done));
        joined_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      if (it != cache_.end() &&
          now - it->second.answered < options_.cache_ttl) {
        cache_hits_.fetch_add(1, std::memory_order_relaxed);
        ready = it->second.result;
      } else if (waiting_.size() >= options_.max_waiting) {
        ready = absl::ResourceExhaustedError(absl::StrCat(
            "too many listing requests waiting for the management API (",
            options_.max_waiting, "); try again shortly"));
      } else {
        // Forget old answers now and then, so the cache stays small.
        if (cache_.size() >= 256) {
          absl::erase_if(cache_, [&](const auto& kv) {
            return !kv.second.in_flight &&
                   now - kv.second.answered >= options_.cache_ttl;
          });
        }
        Entry& e = cache_[path];
        e.in_flight = true;
        e.object = std::move(object);
        e.parser = parser;
        e.paged = paged;
        e.waiters.push_back(std::move(done));
        waiting_.push_back(std::move(path));
        return;
      }
    }
  }
  std::move(done)(ready);
}

void ManagementClient::Run() {
  std::unique_ptr<httplib::Client> http = NewHttpClient();
  for (;;) {
    std::string path;
    std::string object;
    bool paged = false;
    Parser parser = nullptr;
    {
      amqpgw::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !waiting_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      path = std::move(waiting_.front());
      waiting_.pop_front();
      const Entry& e = cache_[path];
      object = e.object;
      paged = e.paged;
      parser = e.parser;
    }
    Parsed result = Perform(*http, path, object, paged, parser);
    std::vector<Callback> waiters;
    {
      amqpgw::MutexLock lock(&mu_);
      availability_.checked = absl::Now();
      availability_.status = SaysTheApiIsUnusable(result.status())
                                 ? result.status()
                                 : absl::OkStatus();
      Entry& e = cache_[path];
      e.in_flight = false;
      e.answered = absl::Now();
      e.result = result;
      waiters.swap(e.waiters);
    }
    for (Callback& w : waiters) std::move(w)(result);
  }
}

std::unique_ptr<httplib::Client> ManagementClient::NewHttpClient() const {
  std::unique_ptr<httplib::Client> http;
  if (url_.https && !options_.tls_cert_file.empty()) {
    http = std::make_unique<httplib::Client>(
        url_.SchemeHostPort(), options_.tls_cert_file, options_.tls_key_file);
  } else {
    http = std::make_unique<httplib::Client>(url_.SchemeHostPort());
  }
  if (url_.https) {
    http->enable_server_certificate_verification(true);
    if (!options_.tls_ca_file.empty()) {
      http->set_ca_cert_path(options_.tls_ca_file);
    }
  }
  const auto ms = std::chrono::milliseconds(
      std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.timeout)));
  http->set_connection_timeout(ms);
  http->set_read_timeout(ms);
  http->set_write_timeout(ms);
  http->set_keep_alive(true);
  http->set_basic_auth(options_.user, options_.password);
  http->set_default_headers({{"Accept", "application/json"}});
  return http;
}

ManagementClient::Parsed ManagementClient::Perform(httplib::Client& http,
                                                   const std::string& path,
                                                   const std::string& object,
                                                   bool paged, Parser parser) {
  RequestContext context = context_;
  context.object = object;
  requests_.fetch_add(1, std::memory_order_relaxed);
  httplib::Result r = http.Get(path);
  if (!r) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    const httplib::Error error = r.error();
    TransportError kind = TransportError::kOther;
    std::string detail;
    switch (error) {
      case httplib::Error::Connection:
        kind = TransportError::kConnect;
        detail = "connection refused or host unknown";
        break;
      case httplib::Error::ConnectionTimeout:
        kind = TransportError::kTimeout;
        detail = absl::StrCat("no connection within ",
                              absl::FormatDuration(options_.timeout));
        break;
      case httplib::Error::Read:
        // A read timeout is a read error too.
        kind = TransportError::kTimeout;
        detail = absl::StrCat("no complete answer within ",
                              absl::FormatDuration(options_.timeout),
                              ", or the connection was closed");
        break;
      case httplib::Error::SSLConnection:
      case httplib::Error::SSLLoadingCerts:
      case httplib::Error::SSLServerVerification:
        kind = TransportError::kTls;
        detail = httplib::to_string(error);
        break;
      default:
        detail = httplib::to_string(error);
        break;
    }
    return TransportErrorToStatus(kind, detail, context);
  }
  absl::string_view body = r->body;
  if (r->status < 200 || r->status > 299) {
    if (paged && r->status == 400 &&
        ParseErrorBody(body).error == "page_out_of_range") {
      body = kEmptyPage;
    } else {
      failures_.fetch_add(1, std::memory_order_relaxed);
      return HttpErrorToStatus(r->status, body, context);
    }
  }
  Parsed parsed = parser(body);
  if (!parsed.ok()) return UnexpectedAnswer(parsed.status(), context);
  return parsed;
}

void ManagementClient::WhoAmI(Done<User> done) {
  FetchParsed(ApiPath("whoami"), "", false, &Erased<User, &ParseUser>,
              [done = std::move(done)](const Parsed& r) mutable {
                if (!r.ok()) return std::move(done)(r.status());
                std::move(done)(*std::static_pointer_cast<const User>(*r));
              });
}

void ManagementClient::ListQueues(ListQuery query, Done<Page<Queue>> done) {
  if (absl::Status s = CheckQuery(query); !s.ok()) {
    return std::move(done)(s);
  }
  FetchParsed(
      ApiPath(absl::StrCat("queues/", vhost_path_,
                           PageQuery(query, kQueueColumns))),
      "", true, &Erased<Page<Queue>, &ParseQueuePage>,
      [done = std::move(done)](const Parsed& r) mutable {
        if (!r.ok()) return std::move(done)(r.status());
        std::move(done)(*std::static_pointer_cast<const Page<Queue>>(*r));
      });
}

void ManagementClient::GetQueue(std::string name, Done<Queue> done) {
  std::string path =
      ApiPath(absl::StrCat("queues/", vhost_path_, "/", PercentEncode(name)));
  FetchParsed(std::move(path), absl::StrCat("queue ", QuoteInput(name)), false,
              &Erased<QueueDetails, &ParseQueueDetails>,
              [done = std::move(done)](const Parsed& r) mutable {
                if (!r.ok()) return std::move(done)(r.status());
                std::move(done)(
                    std::static_pointer_cast<const QueueDetails>(*r)->queue);
              });
}

void ManagementClient::ListConsumers(std::string queue,
                                     Done<std::vector<Consumer>> done) {
  std::string path =
      ApiPath(absl::StrCat("queues/", vhost_path_, "/", PercentEncode(queue)));
  FetchParsed(
      std::move(path), absl::StrCat("queue ", QuoteInput(queue)), false,
      &Erased<QueueDetails, &ParseQueueDetails>,
      [this, done = std::move(done)](const Parsed& r) mutable {
        if (!r.ok()) return std::move(done)(r.status());
        auto details = std::static_pointer_cast<const QueueDetails>(*r);
        if (details->consumers.empty()) {
          return std::move(done)(std::vector<Consumer>());
        }
        // The consumers' connections by the names their clients gave.
        FetchParsed(
            ApiPath(absl::StrCat("vhosts/", vhost_path_,
                                 "/connections?columns=name,"
                                 "user_provided_name")),
            "", false, &Erased<ConnectionNames, &ParseConnectionNames>,
            [this, details, done = std::move(done)](const Parsed& c) mutable {
              std::vector<Consumer> consumers = details->consumers;
              // Without the names (a user that may not list connections)
              // the consumers are still worth showing.
              static const ConnectionNames kNone;
              const ConnectionNames& names =
                  c.ok() ? *std::static_pointer_cast<const ConnectionNames>(*c)
                         : kNone;
              NameConsumers(names, options_.own_connection_prefix, &consumers);
              std::move(done)(std::move(consumers));
            });
      });
}

void ManagementClient::ListExchanges(ListQuery query,
                                     Done<Page<Exchange>> done) {
  if (absl::Status s = CheckQuery(query); !s.ok()) {
    return std::move(done)(s);
  }
  FetchParsed(
      ApiPath(absl::StrCat("exchanges/", vhost_path_,
                           PageQuery(query, kExchangeColumns))),
      "", true, &Erased<Page<Exchange>, &ParseExchangePage>,
      [done = std::move(done)](const Parsed& r) mutable {
        if (!r.ok()) return std::move(done)(r.status());
        std::move(done)(*std::static_pointer_cast<const Page<Exchange>>(*r));
      });
}

void ManagementClient::ListBindings(BindingFilter filter,
                                    Done<std::vector<Binding>> done) {
  auto finish = [done = std::move(done)](const Parsed& r) mutable {
    if (!r.ok()) return std::move(done)(r.status());
    std::move(done)(*std::static_pointer_cast<const std::vector<Binding>>(*r));
  };
  if (filter.kind == BindingFilter::Kind::kAll) {
    return FetchParsed(ApiPath(absl::StrCat("bindings/", vhost_path_)), "",
                       false, &Erased<std::vector<Binding>, &ParseBindings>,
                       std::move(finish));
  }
  const bool queue = filter.kind == BindingFilter::Kind::kQueue;
  // The API names the default exchange "amq.default".
  const std::string name = PercentEncode(
      !queue && filter.name.empty() ? "amq.default" : filter.name);
  const std::string object =
      absl::StrCat(queue ? "queue " : "exchange ", QuoteInput(filter.name));
  std::string bindings =
      queue ? ApiPath(
                  absl::StrCat("queues/", vhost_path_, "/", name, "/bindings"))
            : ApiPath(absl::StrCat("exchanges/", vhost_path_, "/", name,
                                   "/bindings/source"));
  // The bindings of an absent queue or exchange are no error to the API
  // (an empty list, or the default exchange's implicit binding): ask
  // whether it exists first.
  std::string exists =
      ApiPath(absl::StrCat(queue ? "queues/" : "exchanges/", vhost_path_, "/",
                           name, "?columns=name"));
  FetchParsed(std::move(exists), object, false,
              &Erased<std::string, &ParseName>,
              [this, bindings = std::move(bindings), object,
               finish = std::move(finish)](const Parsed& r) mutable {
                if (!r.ok()) return std::move(finish)(r.status());
                FetchParsed(std::move(bindings), std::move(object), false,
                            &Erased<std::vector<Binding>, &ParseBindings>,
                            std::move(finish));
              });
}

}  // namespace amqpgw::management
