#include "server/web/web_server.h"

#include <google/protobuf/descriptor.h>
#include <httplib.h>
#include <sys/socket.h>

#include <exception>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/base/sync.h"
#include "server/web/grpc_web_call.h"
#include "server/web/grpc_web_frame.h"
#include "server/web/thread_pool.h"
#include "spdlog/spdlog.h"

namespace amqpgw::web {

// httplib's task queue, backed by an ElasticThreadPool.
class WebServer::TaskQueueAdapter : public httplib::TaskQueue {
 public:
  explicit TaskQueueAdapter(size_t max_threads)
      : pool_(max_threads, /*keep_idle=*/4, absl::Seconds(30)) {}
  void enqueue(std::function<void()> fn) override {
    pool_.Enqueue(std::move(fn));
  }
  void shutdown() override { pool_.Shutdown(); }

 private:
  ElasticThreadPool pool_;
};

namespace {

constexpr char kExposeHeaders[] =
    "grpc-status, grpc-message, grpc-status-details-bin";
constexpr char kDefaultAllowHeaders[] =
    "content-type, x-grpc-web, x-user-agent, grpc-timeout, authorization";

// Request headers that are not passed on as gRPC metadata: HTTP/1.1
// transport, browser bookkeeping, grpc-web's own, and those gRPC reserves.
bool IsHopOrBrowserHeader(absl::string_view key) {
  static constexpr absl::string_view kExact[] = {
      "host",
      "connection",
      "keep-alive",
      "proxy-connection",
      "transfer-encoding",
      "te",
      "upgrade",
      "content-length",
      "content-type",
      "content-encoding",
      "accept",
      "accept-encoding",
      "accept-language",
      "accept-charset",
      "origin",
      "referer",
      "user-agent",
      "cookie",
      "cache-control",
      "pragma",
      "dnt",
      "priority",
      "expect",
      "x-grpc-web",
      "x-user-agent",
      "http2-settings",
      "upgrade-insecure-requests",
      "x-forwarded-for",
      // Added by cpp-httplib itself.
      "remote_addr",
      "remote_port",
      "local_addr",
      "local_port",
  };
  for (absl::string_view e : kExact) {
    if (key == e) return true;
  }
  return absl::StartsWith(key, "sec-") || absl::StartsWith(key, "grpc-") ||
         absl::StartsWith(key, "access-control-") || absl::StartsWith(key, ":");
}

// Answers with an HTTP error that grpc-web clients also read as a status.
void HttpError(httplib::Response& res, int http_status, ::grpc::StatusCode code,
               absl::string_view message) {
  res.status = http_status;
  res.set_header("grpc-status", std::to_string(static_cast<int>(code)));
  res.set_header("grpc-message", PercentEncode(message));
  res.set_content(absl::StrCat(message, "\n"), "text/plain; charset=utf-8");
}

::grpc::StatusCode ToGrpcCode(absl::StatusCode code) {
  return static_cast<::grpc::StatusCode>(static_cast<int>(code));
}

// "host:port" or "[v6]:port" -> host, port.
absl::Status SplitHostPort(const std::string& listen, std::string* host,
                           int* port) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(listen.substr(colon + 1), port) || *port < 0 ||
      *port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("want host:port (port 0..65535), got '", listen, "'"));
  }
  *host = listen.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return absl::OkStatus();
}

// The origin's "host[:port]" equals the Host header: same origin.
bool SameOrigin(absl::string_view origin, absl::string_view host) {
  size_t scheme = origin.find("://");
  if (scheme == absl::string_view::npos || host.empty()) return false;
  return absl::EqualsIgnoreCase(origin.substr(scheme + 3), host);
}

}  // namespace

bool IsServerStreamingMethod(const std::string& method) {
  // "/pkg.Service/Method" -> "pkg.Service.Method".
  size_t slash = method.rfind('/');
  if (method.size() < 4 || method[0] != '/' || slash == 0) return false;
  std::string full =
      absl::StrCat(method.substr(1, slash - 1), ".", method.substr(slash + 1));
  const google::protobuf::MethodDescriptor* m =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(
          full);
  return m != nullptr && m->server_streaming();
}

namespace {

bool ValidMethodPath(absl::string_view path) {
  std::vector<absl::string_view> parts =
      absl::StrSplit(path.substr(path.empty() ? 0 : 1), '/');
  if (path.empty() || path[0] != '/' || parts.size() != 2) return false;
  for (absl::string_view part : parts) {
    if (part.empty()) return false;
    for (char c : part) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' &&
          c != '.') {
        return false;
      }
    }
  }
  return true;
}

const char* kNotBuiltPage =
    "<!doctype html><meta charset=utf-8><title>amqpgw</title>"
    "<p>The browser view was not built into this binary (web/dist was "
    "missing at build time). grpc-web is served on this port all the "
    "same.</p>\n";

}  // namespace

WebServer::WebServer(Options options,
                     std::shared_ptr<::grpc::ChannelInterface> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(channel_),
      files_(options_.web_root.empty()
                 ? StaticFiles::Embedded()
                 : StaticFiles::FromDirectory(options_.web_root)) {}

WebServer::~WebServer() { Stop(absl::ZeroDuration()); }

void WebServer::AddHandler(const std::string& path, HttpHandler handler) {
  auto h = std::make_shared<const HttpHandler>(std::move(handler));
  amqpgw::MutexLock lock(&mu_);
  handlers_[path] = std::move(h);
}

size_t WebServer::active_calls() const {
  amqpgw::MutexLock lock(&mu_);
  return calls_.size();
}

absl::Status WebServer::Start() {
  std::string host;
  int port = 0;
  absl::Status s = SplitHostPort(options_.listen, &host, &port);
  if (!s.ok()) return s;

  http_ = std::make_unique<httplib::Server>();
  const size_t max_connections = options_.max_connections;
  http_->new_task_queue = [max_connections] {
    return new TaskQueueAdapter(max_connections);
  };
  // SO_REUSEADDR only: cpp-httplib's default also sets SO_REUSEPORT, which
  // would let a second daemon share the port silently. The listening
  // socket is kept to raise its backlog after bind (cpp-httplib uses 5).
  int listen_fd = -1;
  bool binding = true;
  http_->set_socket_options([&listen_fd, &binding](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (binding) listen_fd = sock;
  });
  http_->set_tcp_nodelay(true);
  http_->set_keep_alive_max_count(100);
  http_->set_keep_alive_timeout(5);
  http_->set_read_timeout(10);
  http_->set_write_timeout(10);
  // Text requests are base64 (4 bytes per 3), with a frame header per
  // message; the decoded size is checked against max_request_bytes.
  http_->set_payload_max_length(options_.max_request_bytes / 3 * 4 + 4096);
  Route();

  if (port == 0) {
    port = http_->bind_to_any_port(host);
  } else if (!http_->bind_to_port(host, port)) {
    port = -1;
  }
  binding = false;
  if (port <= 0) {
    http_.reset();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options_.listen,
                     " (address in use or not local?)"));
  }
  if (listen_fd >= 0) listen(listen_fd, SOMAXCONN);
  http_->set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  port_ = port;
  started_ = true;
  listener_ = std::thread([this] { http_->listen_after_bind(); });
  // cpp-httplib's stop() does nothing until the accept loop runs (0.11 has
  // no readiness callback): wait for it, so Stop can never miss it.
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!http_->is_running() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  return absl::OkStatus();
}

void WebServer::Route() {
  http_->set_pre_routing_handler(
      [this](const httplib::Request& req, httplib::Response& res) {
        return PreRoute(req, res) ? httplib::Server::HandlerResponse::Handled
                                  : httplib::Server::HandlerResponse::Unhandled;
      });
  http_->Post(R"(/[^/]+/[^/]+)",
              [this](const httplib::Request& req, httplib::Response& res) {
                HandleGrpcWeb(req, res);
              });
  http_->Get(".*", [this](const httplib::Request& req, httplib::Response& res) {
    HandleGet(req, res);
  });
  // OPTIONS without CORS (a preflight is answered in PreRoute).
  http_->Options(".*", [](const httplib::Request&, httplib::Response& res) {
    res.status = 204;
    res.set_header("Allow", "GET, HEAD, POST, OPTIONS");
  });
  http_->set_error_handler(
      [](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return;
        if (res.status == 404 && req.method == "POST") {
          HttpError(res, 404, ::grpc::StatusCode::UNIMPLEMENTED,
                    absl::StrCat("no such method: '", req.path,
                                 "' (want /package.Service/Method)"));
        } else if (res.status == 413) {
          HttpError(res, 413, ::grpc::StatusCode::RESOURCE_EXHAUSTED,
                    "request body too large (--max_request_bytes)");
        } else {
          res.set_content(absl::StrCat("HTTP ", res.status, "\n"),
                          "text/plain; charset=utf-8");
        }
      });
  http_->set_exception_handler([](const httplib::Request& req,
                                  httplib::Response& res,
                                  std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("http {} {}: {}", req.method, req.path, what);
    HttpError(res, 500, ::grpc::StatusCode::INTERNAL,
              absl::StrCat("internal error: ", what));
  });
  http_->set_logger(
      [](const httplib::Request& req, const httplib::Response& res) {
        spdlog::debug("http {}:{} {} {} -> {}", req.remote_addr,
                      req.remote_port, req.method, req.path, res.status);
      });
}

bool WebServer::PreRoute(const httplib::Request& req, httplib::Response& res) {
  std::string origin = req.get_header_value("Origin");
  if (origin.empty() || SameOrigin(origin, req.get_header_value("Host"))) {
    return false;
  }
  bool star = false;
  bool listed = false;
  for (const std::string& o : options_.cors_origins) {
    if (o == "*") star = true;
    if (absl::EqualsIgnoreCase(o, origin)) listed = true;
  }
  if (!star && !listed) {
    // Reading a cross-origin GET's answer is blocked by the browser anyway;
    // calls and preflights from an origin not allowed are refused.
    if (req.method == "GET" || req.method == "HEAD") return false;
    HttpError(res, 403, ::grpc::StatusCode::PERMISSION_DENIED,
              absl::StrCat("origin ", origin,
                           " may not call this gateway (see --cors_origins)"));
    return true;
  }
  res.set_header("Access-Control-Allow-Origin", listed ? origin : "*");
  if (listed) res.set_header("Vary", "Origin");
  res.set_header("Access-Control-Expose-Headers", kExposeHeaders);
  if (req.method != "OPTIONS") return false;
  // Preflight: allow what the page asks for (custom metadata included).
  std::string requested =
      req.get_header_value("Access-Control-Request-Headers");
  res.status = 204;
  res.set_header("Access-Control-Allow-Methods", "POST, GET, OPTIONS");
  res.set_header("Access-Control-Allow-Headers",
                 requested.empty() ? kDefaultAllowHeaders : requested);
  res.set_header("Access-Control-Max-Age", "600");
  return true;
}

void WebServer::HandleGrpcWeb(const httplib::Request& req,
                              httplib::Response& res) {
  if (!ValidMethodPath(req.path)) {
    HttpError(res, 404, ::grpc::StatusCode::UNIMPLEMENTED,
              absl::StrCat("no such method: '", req.path,
                           "' (want /package.Service/Method)"));
    return;
  }
  {
    amqpgw::MutexLock lock(&mu_);
    if (stopping_) {
      HttpError(res, 503, ::grpc::StatusCode::UNAVAILABLE,
                "the gateway is shutting down");
      return;
    }
  }
  absl::StatusOr<WireFormat> format =
      ParseContentType(req.get_header_value("Content-Type"));
  if (!format.ok()) {
    HttpError(res, 415, ::grpc::StatusCode::INVALID_ARGUMENT,
              format.status().message());
    return;
  }
  std::string decoded;
  absl::string_view body = req.body;
  if (*format == WireFormat::kText) {
    absl::StatusOr<std::string> d = Base64DecodeChunks(req.body);
    if (!d.ok()) {
      HttpError(res, 400, ::grpc::StatusCode::INVALID_ARGUMENT,
                d.status().message());
      return;
    }
    decoded = std::move(*d);
    body = decoded;
  }
  absl::StatusOr<std::vector<absl::string_view>> messages =
      ParseRequestMessages(body, options_.max_request_bytes);
  if (!messages.ok()) {
    bool too_big =
        messages.status().code() == absl::StatusCode::kResourceExhausted;
    HttpError(res, too_big ? 413 : 400, ToGrpcCode(messages.status().code()),
              messages.status().message());
    return;
  }

  // Request headers -> metadata; grpc-timeout -> deadline.
  GrpcWebCall::Metadata metadata;
  absl::Time deadline = absl::InfiniteFuture();
  std::string forwarded_for;
  for (const auto& [name, value] : req.headers) {
    std::string key = absl::AsciiStrToLower(name);
    if (key == "grpc-timeout") {
      absl::StatusOr<absl::Duration> timeout = ParseGrpcTimeout(value);
      if (!timeout.ok()) {
        HttpError(res, 400, ::grpc::StatusCode::INVALID_ARGUMENT,
                  timeout.status().message());
        return;
      }
      deadline = absl::Now() + *timeout;
      continue;
    }
    if (key == "x-forwarded-for") forwarded_for = value;
    if (IsHopOrBrowserHeader(key) || !IsValidMetadataKey(key)) continue;
    if (absl::EndsWith(key, "-bin")) {
      absl::StatusOr<std::string> bin = Base64DecodeChunks(value);
      if (!bin.ok()) {
        HttpError(res, 400, ::grpc::StatusCode::INVALID_ARGUMENT,
                  absl::StrCat("header ", key, ": not base64"));
        return;
      }
      metadata.emplace_back(key, std::move(*bin));
    } else if (!IsValidMetadataValue(value)) {
      HttpError(res, 400, ::grpc::StatusCode::INVALID_ARGUMENT,
                absl::StrCat("header ", key,
                             ": only printable ASCII can pass as gRPC "
                             "metadata (use a -bin header for bytes)"));
      return;
    } else {
      metadata.emplace_back(key, value);
    }
  }
  metadata.emplace_back(
      "x-forwarded-for",
      forwarded_for.empty()
          ? req.remote_addr
          : absl::StrCat(forwarded_for, ", ", req.remote_addr));

  std::vector<std::string> requests;
  requests.reserve(messages->size());
  for (absl::string_view m : *messages) requests.emplace_back(m);
  const bool streaming = options_.is_server_streaming
                             ? options_.is_server_streaming(req.path)
                             : IsServerStreamingMethod(req.path);

  std::shared_ptr<GrpcWebCall> call = GrpcWebCall::Start(
      &stub_, req.path, std::move(requests), metadata, deadline);
  {
    amqpgw::MutexLock lock(&mu_);
    calls_[call.get()] = call;
  }

  // Headers go out now; frames follow as the call produces them, each
  // write flushed as one HTTP chunk.
  res.status = 200;
  res.set_header("Cache-Control", "no-store");
  const WireFormat wire = *format;
  const absl::Duration keepalive = options_.keepalive_interval;
  const absl::Duration check = options_.liveness_check_interval;
  res.set_chunked_content_provider(
      ResponseContentType(wire),
      [call, wire, streaming, keepalive, check, last_write = absl::Now()](
          size_t, httplib::DataSink& sink) mutable {
        std::vector<std::string> replies;
        bool ended = call->Next(check, &replies);
        std::string out;
        for (const std::string& m : replies) AppendFrame(kDataFrame, m, &out);
        if (ended) {
          ::grpc::Status status = call->status();
          GrpcWebCall::Metadata trailers = call->trailers();
          if (!status.error_details().empty()) {
            trailers.emplace_back("grpc-status-details-bin",
                                  status.error_details());
          }
          AppendFrame(kTrailerFrame,
                      TrailerBlock(status.error_code(), status.error_message(),
                                   trailers),
                      &out);
        } else if (out.empty() && streaming &&
                   absl::Now() - last_write >= keepalive) {
          // Keep-alive: an empty message (docs/browser.md).
          AppendFrame(kDataFrame, "", &out);
        }
        if (!out.empty()) {
          if (wire == WireFormat::kText) out = Base64Encode(out);
          if (!sink.write(out.data(), out.size())) {
            call->Cancel();
            return false;
          }
          last_write = absl::Now();
        }
        if (ended) {
          sink.done();
          return true;
        }
        // Nothing to send: is the browser still there? (A closed socket
        // reads as EOF.) If not, cancel the call at once.
        if (out.empty() && !sink.is_writable()) {
          call->Cancel();
          return false;
        }
        return true;
      },
      [this, call](bool) {
        // The response is over, written or not: make sure the call is too.
        call->Cancel();
        Unregister(call.get());
      });
}

void WebServer::Unregister(GrpcWebCall* call) {
  amqpgw::MutexLock lock(&mu_);
  calls_.erase(call);
  calls_changed_.SignalAll();
}

void WebServer::HandleGet(const httplib::Request& req, httplib::Response& res) {
  std::shared_ptr<const HttpHandler> handler;
  {
    amqpgw::MutexLock lock(&mu_);
    auto it = handlers_.find(req.path);
    if (it != handlers_.end()) handler = it->second;
  }
  if (handler != nullptr) {
    HttpRequest r;
    r.method = req.method;
    r.path = req.path;
    for (const auto& [k, v] : req.headers) {
      r.headers.emplace(absl::AsciiStrToLower(k), v);
    }
    for (const auto& [k, v] : req.params) r.params.emplace(k, v);
    r.remote_addr = req.remote_addr;
    HttpResponse out = (*handler)(r);
    res.status = out.status;
    for (const auto& [k, v] : out.headers) res.set_header(k, v);
    res.set_content(std::move(out.body), out.content_type);
    return;
  }

  std::optional<StaticFile> file = files_.Find(req.path);
  if (!file.has_value()) {
    if (req.path == "/" && files_.embedded()) {
      res.set_content(kNotBuiltPage, "text/html; charset=utf-8");
      return;
    }
    res.status = 404;
    res.set_content(absl::StrCat("not found: ", req.path, "\n"),
                    "text/plain; charset=utf-8");
    return;
  }
  res.set_header("ETag", file->etag);
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Content-Type-Options", "nosniff");
  if (absl::StartsWith(file->content_type, "text/html")) {
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; img-src 'self' data:; "
                   "frame-ancestors 'none'; base-uri 'none'");
    res.set_header("Referrer-Policy", "no-referrer");
  }
  if (req.get_header_value("If-None-Match") == file->etag) {
    res.status = 304;
    return;
  }
  res.set_content(std::move(file->body), file->content_type);
}

void WebServer::BeginStop() {
  amqpgw::MutexLock lock(&mu_);
  stopping_ = true;
}

bool WebServer::WaitForCalls(absl::Time deadline) {
  amqpgw::MutexLock lock(&mu_);
  while (!calls_.empty()) {
    if (calls_changed_.WaitWithDeadline(&mu_, deadline)) break;
  }
  return calls_.empty();
}

void WebServer::Stop(absl::Duration grace) {
  std::vector<std::weak_ptr<GrpcWebCall>> calls;
  {
    amqpgw::MutexLock lock(&mu_);
    if (stopped_) return;
    stopping_ = true;
    // Calls end by themselves first (the daemon has ended its streams and
    // given unary calls their grace), writing their real status.
    absl::Time deadline = absl::Now() + grace;
    while (!calls_.empty()) {
      if (calls_changed_.WaitWithDeadline(&mu_, deadline)) break;
    }
    for (const auto& [ptr, weak] : calls_) calls.push_back(weak);
  }
  for (const auto& weak : calls) {
    if (std::shared_ptr<GrpcWebCall> call = weak.lock()) call->Cancel();
  }
  {
    // Cancelled calls write their trailers within a liveness check.
    amqpgw::MutexLock lock(&mu_);
    absl::Time deadline = absl::Now() + absl::Seconds(2);
    while (!calls_.empty()) {
      if (calls_changed_.WaitWithDeadline(&mu_, deadline)) break;
    }
  }
  if (started_) {
    http_->stop();
    if (listener_.joinable()) listener_.join();
  }
  amqpgw::MutexLock lock(&mu_);
  stopped_ = true;
}

}  // namespace amqpgw::web
