#include "server/web/web_server.h"

#include <google/protobuf/descriptor.h>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/base/sync.h"
#include "server/web/grpc_web_call.h"
#include "server/web/grpc_web_frame.h"
#include "server/web/http_server.h"
#include "spdlog/spdlog.h"

namespace amqpgw::web {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr char kExposeHeaders[] =
    "grpc-status, grpc-message, grpc-status-details-bin";
constexpr char kDefaultAllowHeaders[] =
    "content-type, x-grpc-web, x-user-agent, grpc-timeout, authorization";

// An HTTP error that grpc-web clients also read as a status (grpc-status
// and grpc-message headers).
HttpResponse HttpError(int http_status, absl::StatusCode code,
                       absl::string_view message, Headers headers = {}) {
  HttpResponse r;
  r.status = http_status;
  r.headers = std::move(headers);
  r.headers.emplace_back("grpc-status", std::to_string(static_cast<int>(code)));
  r.headers.emplace_back("grpc-message", PercentEncode(message));
  r.body = absl::StrCat(message, "\n");
  return r;
}

// The status a grpc-web client reads from the HTTP server's own refusals.
absl::StatusCode RefusalCode(int http_status) {
  switch (http_status) {
    case 413:
    case 431:
      return absl::StatusCode::kResourceExhausted;
    case 501:
    case 505:
      return absl::StatusCode::kUnimplemented;
    default:
      return absl::StatusCode::kInvalidArgument;
  }
}

// The origin's "host[:port]" equals the Host header: same origin.
bool SameOrigin(absl::string_view origin, absl::string_view host) {
  size_t scheme = origin.find("://");
  if (scheme == absl::string_view::npos || host.empty()) return false;
  return absl::EqualsIgnoreCase(origin.substr(scheme + 3), host);
}

const char* kNotBuiltPage =
    "<!doctype html><meta charset=utf-8><title>amqpgw</title>"
    "<p>The browser view was not built into this binary (web/dist was "
    "missing at build time). grpc-web is served on this port all the "
    "same.</p>\n";

}  // namespace

MethodShape LookUpMethod(absl::string_view path) {
  MethodShape shape;
  // "/pkg.Service/Method" -> "pkg.Service.Method".
  size_t slash = path.rfind('/');
  if (path.size() < 4 || path[0] != '/' || slash == 0 ||
      slash == absl::string_view::npos) {
    return shape;
  }
  std::string full =
      absl::StrCat(path.substr(1, slash - 1), ".", path.substr(slash + 1));
  const google::protobuf::MethodDescriptor* m =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(
          full);
  if (m == nullptr) return shape;
  shape.known = true;
  shape.client_streaming = m->client_streaming();
  shape.server_streaming = m->server_streaming();
  return shape;
}

bool IsServerStreamingMethod(const std::string& method) {
  return LookUpMethod(method).server_streaming;
}

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

size_t WebServer::waiting_connections() const {
  return http_ == nullptr ? 0 : http_->waiting_connections();
}

size_t WebServer::active_requests() const {
  return http_ == nullptr ? 0 : http_->active_requests();
}

absl::Status WebServer::Start() {
  HttpServer::Options o;
  o.listen = options_.listen;
  o.tls = options_.tls;
  o.max_active = options_.max_connections;
  o.max_waiting = 4 * options_.max_connections;
  o.header_timeout = options_.header_timeout;
  o.body_timeout = options_.body_timeout;
  // Text requests are base64 (4 bytes per 3), with a frame header per
  // message; the decoded size is checked against max_request_bytes.
  o.limits.max_body_bytes = options_.max_request_bytes / 3 * 4 + 4096;
  o.limits.body_limit_hint = " (--max_request_bytes)";
  o.refusal = [](int status, absl::string_view reason) {
    return HttpError(status, RefusalCode(status), reason);
  };
  auto http = std::make_unique<HttpServer>(
      std::move(o), [this](HttpExchange& exchange) { Handle(exchange); });
  absl::Status s = http->Start();
  if (!s.ok()) return s;
  port_ = http->port();
  http_ = std::move(http);
  return absl::OkStatus();
}

void WebServer::Handle(HttpExchange& exchange) {
  const HttpRequest& req = exchange.request();
  Headers headers;
  if (Cors(exchange, &headers)) return;
  if (req.method == "POST") {
    HandleGrpcWeb(exchange, std::move(headers));
  } else if (req.method == "GET" || req.method == "HEAD") {
    HandleGet(exchange, std::move(headers));
  } else if (req.method == "OPTIONS") {
    // OPTIONS without CORS (a preflight is answered in Cors).
    HttpResponse r;
    r.status = 204;
    r.headers = std::move(headers);
    r.headers.emplace_back("Allow", "GET, HEAD, POST, OPTIONS");
    exchange.Respond(r);
  } else {
    HttpResponse r = HttpError(405, absl::StatusCode::kUnimplemented,
                               "method not allowed (GET, HEAD, POST, OPTIONS)",
                               std::move(headers));
    r.headers.emplace_back("Allow", "GET, HEAD, POST, OPTIONS");
    exchange.Respond(r);
  }
  spdlog::debug("http {}:{} {} {} -> {}", req.remote_addr, req.remote_port,
                req.method, req.path, exchange.ok() ? "sent" : "failed");
}

bool WebServer::Cors(HttpExchange& exchange, Headers* headers) {
  const HttpRequest& req = exchange.request();
  std::string origin = req.Header("origin");
  if (origin.empty() || SameOrigin(origin, req.Header("host"))) return false;
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
    exchange.Respond(HttpError(
        403, absl::StatusCode::kPermissionDenied,
        absl::StrCat("origin ", origin.substr(0, 200),
                     " may not call this gateway (see --cors_origins)")));
    return true;
  }
  headers->emplace_back("Access-Control-Allow-Origin", listed ? origin : "*");
  if (listed) headers->emplace_back("Vary", "Origin");
  headers->emplace_back("Access-Control-Expose-Headers", kExposeHeaders);
  if (req.method != "OPTIONS") return false;
  // Preflight: allow what the page asks for (custom metadata included).
  std::string requested = req.Header("access-control-request-headers");
  HttpResponse r;
  r.status = 204;
  r.content_type.clear();
  r.headers = std::move(*headers);
  r.headers.emplace_back("Access-Control-Allow-Methods", "POST, GET, OPTIONS");
  r.headers.emplace_back("Access-Control-Allow-Headers",
                         requested.empty() ? kDefaultAllowHeaders : requested);
  r.headers.emplace_back("Access-Control-Max-Age", "600");
  exchange.Respond(r);
  return true;
}

void WebServer::HandleGrpcWeb(HttpExchange& exchange, Headers headers) {
  const HttpRequest& req = exchange.request();
  MethodShape shape = options_.method_shape ? options_.method_shape(req.path)
                                            : LookUpMethod(req.path);
  GrpcWebRequest request;
  GrpcWebRefusal refusal;
  if (!ParseGrpcWebRequest(req, shape, options_.max_request_bytes, absl::Now(),
                           &request, &refusal)) {
    exchange.Respond(HttpError(refusal.http_status, refusal.status.code(),
                               refusal.status.message(), std::move(headers)));
    return;
  }
  std::shared_ptr<GrpcWebCall> call = StartCall(request);
  if (call == nullptr) {
    exchange.Respond(HttpError(503, absl::StatusCode::kUnavailable,
                               "the gateway is shutting down",
                               std::move(headers)));
    return;
  }
  // Headers go out now; frames follow as the call produces them, each
  // write sent as one HTTP chunk.
  headers.emplace_back("Cache-Control", "no-store");
  if (exchange.BeginStream(200, ResponseContentType(request.wire), headers)) {
    PumpResponse(exchange, *call, request.wire, request.server_streaming);
  }
  // The response is over, written or not: make sure the call is too.
  call->Cancel();
  Unregister(call.get());
}

std::shared_ptr<GrpcWebCall> WebServer::StartCall(GrpcWebRequest& request) {
  amqpgw::MutexLock lock(&mu_);
  if (stopping_) return nullptr;
  std::shared_ptr<GrpcWebCall> call = GrpcWebCall::Start(
      &stub_, std::move(request.method), std::move(request.messages),
      request.metadata, request.deadline);
  calls_[call.get()] = call;
  return call;
}

void WebServer::PumpResponse(HttpExchange& exchange, GrpcWebCall& call,
                             WireFormat wire, bool server_streaming) {
  absl::Time last_write = absl::Now();
  while (true) {
    std::vector<std::string> replies;
    bool ended = call.Next(options_.liveness_check_interval, &replies);
    std::string out;
    for (const std::string& m : replies) AppendFrame(kDataFrame, m, &out);
    if (ended) {
      ::grpc::Status status = call.status();
      GrpcWebCall::Metadata trailers = call.trailers();
      if (!status.error_details().empty()) {
        trailers.emplace_back("grpc-status-details-bin",
                              status.error_details());
      }
      AppendFrame(
          kTrailerFrame,
          TrailerBlock(status.error_code(), status.error_message(), trailers),
          &out);
    } else if (out.empty() && server_streaming &&
               absl::Now() - last_write >= options_.keepalive_interval) {
      // Keep-alive: an empty message (docs/browser.md).
      AppendFrame(kDataFrame, "", &out);
    }
    if (!out.empty()) {
      if (wire == WireFormat::kText) out = Base64Encode(out);
      if (!exchange.Write(out)) return;  // the client is gone or too slow
      last_write = absl::Now();
    }
    if (ended) {
      exchange.End();
      return;
    }
    // Nothing to send: is the browser still there? If not, stop at once.
    if (out.empty() && exchange.ClientGone()) return;
  }
}

void WebServer::Unregister(GrpcWebCall* call) {
  amqpgw::MutexLock lock(&mu_);
  calls_.erase(call);
  calls_changed_.SignalAll();
}

void WebServer::HandleGet(HttpExchange& exchange, Headers headers) {
  const HttpRequest& req = exchange.request();
  std::shared_ptr<const HttpHandler> handler;
  {
    amqpgw::MutexLock lock(&mu_);
    auto it = handlers_.find(req.path);
    if (it != handlers_.end()) handler = it->second;
  }
  if (handler != nullptr) {
    HttpResponse out = (*handler)(req);
    for (auto& h : headers) out.headers.push_back(std::move(h));
    exchange.Respond(out);
    return;
  }

  HttpResponse r;
  r.headers = std::move(headers);
  std::optional<StaticFile> file = files_.Find(req.path);
  if (!file.has_value()) {
    if (req.path == "/" && files_.embedded()) {
      r.content_type = "text/html; charset=utf-8";
      r.body = kNotBuiltPage;
    } else {
      r.status = 404;
      r.body = absl::StrCat("not found: ", req.path.substr(0, 200), "\n");
    }
    exchange.Respond(r);
    return;
  }
  r.headers.emplace_back("ETag", file->etag);
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  if (absl::StartsWith(file->content_type, "text/html")) {
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'self'; img-src 'self' data:; "
                           "frame-ancestors 'none'; base-uri 'none'");
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
  }
  if (req.Header("if-none-match") == file->etag) {
    r.status = 304;
    r.content_type.clear();
    exchange.Respond(r);
    return;
  }
  r.content_type = file->content_type;
  r.body = std::move(file->body);
  exchange.Respond(r);
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
  if (http_ != nullptr) http_->Stop();
  amqpgw::MutexLock lock(&mu_);
  stopped_ = true;
}

}  // namespace amqpgw::web
