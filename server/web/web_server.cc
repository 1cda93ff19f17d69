#include "server/web/web_server.h"

#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/base/sync.h"
#include "server/web/connect_protocol.h"
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
    "content-type, x-grpc-web, x-user-agent, grpc-timeout, "
    "connect-protocol-version, connect-timeout-ms, authorization";

// An HTTP error that both protocols read as a status: grpc-web clients from
// the grpc-status and grpc-message headers, Connect clients (and people
// with curl) from the JSON body, Connect's Error object.
HttpResponse HttpError(int http_status, absl::StatusCode code,
                       absl::string_view message, Headers headers = {},
                       absl::string_view status_details = "") {
  HttpResponse r;
  r.status = http_status;
  r.headers = std::move(headers);
  r.headers.emplace_back("grpc-status", std::to_string(static_cast<int>(code)));
  r.headers.emplace_back("grpc-message", PercentEncode(message));
  if (code == absl::StatusCode::kUnauthenticated) {
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
  }
  r.content_type = "application/json";
  r.body = absl::StrCat(ConnectErrorJson(code, message, status_details), "\n");
  return r;
}

absl::StatusCode CodeOf(const ::grpc::Status& status) {
  return static_cast<absl::StatusCode>(status.error_code());
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

MethodShape WebServer::Shape(const std::string& path) const {
  return options_.method_shape ? options_.method_shape(path)
                               : LookUpMethod(path);
}

void WebServer::Handle(HttpExchange& exchange) {
  const HttpRequest& req = exchange.request();
  Headers headers;
  MethodShape shape = Shape(req.path);
  const bool connect = IsConnectRequest(req, shape);
  if (Cors(exchange, connect || req.method == "POST", &headers)) return;
  if (connect) {
    HandleConnect(exchange, shape, std::move(headers));
  } else if (req.method == "POST") {
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

bool WebServer::Cors(HttpExchange& exchange, bool call, Headers* headers) {
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
    // calls (Connect's GETs too) and preflights from an origin not allowed
    // are refused.
    if (!call && (req.method == "GET" || req.method == "HEAD")) return false;
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
  GrpcWebRequest request;
  RequestRefusal refusal;
  if (!ParseGrpcWebRequest(req, Shape(req.path), options_.max_request_bytes,
                           absl::Now(), &request, &refusal)) {
    exchange.Respond(HttpError(refusal.http_status, refusal.status.code(),
                               refusal.status.message(), std::move(headers)));
    return;
  }
  std::shared_ptr<GrpcWebCall> call =
      StartCall(std::move(request.method), std::move(request.messages),
                request.metadata, request.deadline);
  if (call == nullptr) {
    exchange.Respond(HttpError(503, absl::StatusCode::kUnavailable,
                               "the gateway is shutting down",
                               std::move(headers)));
    return;
  }
  // Headers go out now; frames follow as the call produces them, each
  // write sent as one HTTP chunk.
  Encoder grpc_web;
  grpc_web.message =
      [](absl::string_view reply) -> absl::StatusOr<std::string> {
    std::string out;
    AppendFrame(kDataFrame, reply, &out);
    return out;
  };
  grpc_web.end = [](const ::grpc::Status& status, const GrpcWebCall& call) {
    GrpcWebCall::Metadata trailers = call.trailers();
    if (!status.error_details().empty()) {
      trailers.emplace_back("grpc-status-details-bin", status.error_details());
    }
    std::string out;
    AppendFrame(
        kTrailerFrame,
        TrailerBlock(status.error_code(), status.error_message(), trailers),
        &out);
    return out;
  };
  grpc_web.base64 = request.wire == WireFormat::kText;
  headers.emplace_back("Cache-Control", "no-store");
  if (exchange.BeginStream(200, ResponseContentType(request.wire), headers)) {
    PumpResponse(exchange, *call, request.server_streaming, grpc_web);
  }
  // The response is over, written or not: make sure the call is too.
  call->Cancel();
  Unregister(call.get());
}

void WebServer::HandleConnect(HttpExchange& exchange, const MethodShape& shape,
                              Headers headers) {
  const HttpRequest& req = exchange.request();
  ConnectRequest request;
  RequestRefusal refusal;
  if (!ParseConnectRequest(req, shape, options_.max_request_bytes, absl::Now(),
                           &request, &refusal)) {
    if (refusal.http_status == 405) headers.emplace_back("Allow", "POST");
    exchange.Respond(HttpError(refusal.http_status, refusal.status.code(),
                               refusal.status.message(), std::move(headers)));
    return;
  }
  const ConnectCodec codec = request.codec;
  std::shared_ptr<GrpcWebCall> call =
      StartCall(std::move(request.method), std::move(request.messages),
                request.metadata, request.deadline);
  if (call == nullptr) {
    exchange.Respond(HttpError(503, absl::StatusCode::kUnavailable,
                               "the gateway is shutting down",
                               std::move(headers)));
    return;
  }
  headers.emplace_back("Cache-Control", "no-store");
  if (request.streaming) {
    // 200 at once; an envelope per reply, each sent as it comes, then the
    // end-of-stream envelope with the status and the server's metadata.
    Encoder connect;
    connect.message =
        [&](absl::string_view reply) -> absl::StatusOr<std::string> {
      absl::StatusOr<std::string> m =
          EncodeConnectMessage(codec, shape.output, reply);
      if (!m.ok()) return m.status();
      std::string out;
      AppendEnvelope(0, *m, &out);
      return out;
    };
    connect.end = [](const ::grpc::Status& status, const GrpcWebCall& call) {
      std::string out;
      AppendEnvelope(
          kConnectEndStreamFlag,
          ConnectEndStreamJson(CodeOf(status), status.error_message(),
                               status.error_details(), call.trailers()),
          &out);
      return out;
    };
    if (exchange.BeginStream(200, ConnectContentType(codec, true), headers)) {
      PumpResponse(exchange, *call, shape.server_streaming, connect);
    }
  } else {
    std::vector<std::string> replies;
    if (AwaitCall(exchange, *call, &replies)) {
      ::grpc::Status status = call->status();
      absl::Status result(CodeOf(status), status.error_message());
      std::string body;
      if (result.ok() && replies.size() != 1) {
        result = absl::InternalError(absl::StrCat(
            "the server sent ", replies.size(), " replies to a unary call"));
      } else if (result.ok()) {
        absl::StatusOr<std::string> m =
            EncodeConnectMessage(codec, shape.output, replies[0]);
        if (m.ok()) {
          body = *std::move(m);
        } else {
          result = m.status();
        }
      }
      // The server's metadata: leading as headers, trailing as "trailer-"
      // headers (Connect's unary form).
      AppendMetadataHeaders(call->initial_metadata(), "", &headers);
      AppendMetadataHeaders(call->trailing_metadata(), "trailer-", &headers);
      if (result.ok()) {
        HttpResponse r;
        r.content_type = ConnectContentType(codec, false);
        r.headers = std::move(headers);
        r.body = std::move(body);
        exchange.Respond(r);
      } else {
        exchange.Respond(HttpError(
            ConnectHttpStatus(result.code()), result.code(), result.message(),
            std::move(headers), status.ok() ? "" : status.error_details()));
      }
    }
  }
  // The response is over, written or not: make sure the call is too.
  call->Cancel();
  Unregister(call.get());
}

std::shared_ptr<GrpcWebCall> WebServer::StartCall(
    std::string method, std::vector<std::string> messages,
    const Metadata& metadata, absl::Time deadline) {
  amqpgw::MutexLock lock(&mu_);
  if (stopping_) return nullptr;
  std::shared_ptr<GrpcWebCall> call = GrpcWebCall::Start(
      &stub_, std::move(method), std::move(messages), metadata, deadline);
  calls_[call.get()] = call;
  return call;
}

void WebServer::PumpResponse(HttpExchange& exchange, GrpcWebCall& call,
                             bool server_streaming, const Encoder& encoder) {
  absl::Time last_write = absl::Now();
  while (true) {
    std::vector<std::string> replies;
    bool ended = call.Next(options_.liveness_check_interval, &replies);
    std::string out;
    std::optional<::grpc::Status> failed;
    for (const std::string& m : replies) {
      absl::StatusOr<std::string> bytes = encoder.message(m);
      if (!bytes.ok()) {
        // A reply that cannot be written ends the call with the reason.
        failed = ::grpc::Status(
            static_cast<::grpc::StatusCode>(bytes.status().code()),
            std::string(bytes.status().message()));
        call.Cancel();
        break;
      }
      out += *bytes;
    }
    if (failed.has_value()) ended = true;
    if (ended) {
      out += encoder.end(failed.value_or(call.status()), call);
    } else if (out.empty() && server_streaming &&
               absl::Now() - last_write >= options_.keepalive_interval) {
      // Keep-alive: an empty message (docs/browser.md).
      absl::StatusOr<std::string> empty = encoder.message("");
      if (empty.ok()) out = *std::move(empty);
    }
    if (!out.empty()) {
      if (encoder.base64) out = Base64Encode(out);
      if (!exchange.Write(out)) return;  // the client is gone or too slow
      last_write = absl::Now();
    }
    if (ended) {
      exchange.End();
      return;
    }
    // Nothing to send: is the client still there? If not, stop at once.
    if (out.empty() && exchange.ClientGone()) return;
  }
}

bool WebServer::AwaitCall(HttpExchange& exchange, GrpcWebCall& call,
                          std::vector<std::string>* replies) {
  while (!call.Next(options_.liveness_check_interval, replies)) {
    if (exchange.ClientGone()) return false;
  }
  return true;
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
