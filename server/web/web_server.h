// The daemon's HTTP port: grpc-web and the Connect protocol
// (connect_protocol.h) for every method of the gRPC server (bridged
// generically through its in-process channel, so authentication, limits,
// metrics, tracing and the call interceptor are the gRPC server's own),
// CORS, the browser view's files at "/", and plain GET handlers other layers
// register (e.g. /metrics). Plain HTTP or HTTPS (Options::tls).
//
// Built on HttpServer (http_server.h): connections wait for their requests
// on one I/O thread; a complete request gets a worker thread, up to
// Options::max_connections at once. That thread starts the call and waits
// for its replies (never for the broker directly): a unary call holds it
// until the answer, a stream for as long as it lasts. A stream costs that
// thread, a socket and at most GrpcWebCall's small reply buffer.
//
// Threads: Start and Stop from the owning thread (once each); AddHandler
// from any thread at any time; handlers run on worker threads.
#ifndef AMQPGW_SERVER_WEB_WEB_SERVER_H_
#define AMQPGW_SERVER_WEB_WEB_SERVER_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/base/sync.h"
#include "server/web/grpc_web_request.h"
#include "server/web/http_message.h"
#include "server/web/rpc_method.h"
#include "server/web/static_files.h"

namespace amqpgw::web {

class GrpcWebCall;
class HttpExchange;
class HttpServer;
class TlsContext;

// A plain GET (or HEAD) handler registered with AddHandler.
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// Whether "/pkg.Service/Method" is server streaming (LookUpMethod).
bool IsServerStreamingMethod(const std::string& method);

class WebServer {
 public:
  struct Options {
    // host:port; port 0 picks a free one (see port()).
    std::string listen = "127.0.0.1:8080";
    // HTTPS when set (certificate, key, optional client CA).
    std::shared_ptr<const TlsContext> tls;
    // Origins allowed to call cross-origin: exact "scheme://host[:port]"
    // values, or "*" for any. Same-origin requests need no entry.
    std::vector<std::string> cors_origins;
    // Serve the browser view from this folder instead of the embedded copy.
    std::string web_root;
    // Largest request, all messages together (decoded; Connect's JSON as
    // protobuf).
    size_t max_request_bytes = 64 << 20;
    // Requests served at once (one thread each); complete requests beyond
    // it wait. Connections idle or still sending a request hold no thread;
    // up to 4 times this many are kept.
    size_t max_connections = 1024;
    // Deadlines for a request's head (from its first byte) and body (from
    // the end of its head); a request that misses one gets 408.
    absl::Duration header_timeout = absl::Seconds(10);
    absl::Duration body_timeout = absl::Seconds(30);
    // An idle server stream gets an empty message this often
    // (docs/browser.md).
    absl::Duration keepalive_interval = absl::Seconds(15);
    // How often a waiting stream checks that its browser is still there.
    absl::Duration liveness_check_interval = absl::Milliseconds(200);
    // What "/pkg.Service/Method" takes and returns: keep-alives go only to
    // server streams (a unary reply must be exactly one message), a method
    // that is not client streaming must get exactly one request message,
    // Connect's JSON needs the message types and its GET the idempotency
    // level. Default: LookUpMethod (rpc_method.h).
    std::function<MethodShape(const std::string& method)> method_shape;
  };

  // `channel` reaches the gRPC server (normally its in-process channel) and
  // must stay usable until Stop returns.
  WebServer(Options options, std::shared_ptr<::grpc::ChannelInterface> channel);
  ~WebServer();

  WebServer(const WebServer&) = delete;
  WebServer& operator=(const WebServer&) = delete;

  // Serves GET (and HEAD) of exactly `path` with `handler`, ahead of the
  // browser view's files. Any thread, any time; a later call for the same
  // path replaces the handler. The handler runs on a worker thread and may
  // block it, but should answer quickly.
  void AddHandler(const std::string& path, HttpHandler handler);

  // Binds the port and starts serving. INVALID_ARGUMENT for a bad address,
  // UNAVAILABLE when it cannot be bound.
  absl::Status Start();
  // From now on new calls are refused (503, UNAVAILABLE); the rest (calls
  // in flight, files, handlers) goes on until Stop.
  void BeginStop();
  // Waits until no call's response is being written (every call ended and
  // its status went out), or `deadline`. True when none is left.
  bool WaitForCalls(absl::Time deadline);
  // BeginStop, then waits up to `grace` for open calls to end by themselves
  // (grpc-web: the real status in the trailer frame; Connect streams: in the
  // end-of-stream message), cancels the rest (CANCELLED), closes the port
  // and every connection, and
  // joins every thread (a write to a browser that stopped reading gives up
  // within 10 s). Idempotent.
  void Stop(absl::Duration grace = absl::Seconds(5));

  // The bound port, after Start.
  int port() const { return port_; }
  // Calls (grpc-web or Connect) whose responses are being written now.
  size_t active_calls() const;
  // Connections waiting for (or sending) a request, and requests being
  // served.
  size_t waiting_connections() const;
  size_t active_requests() const;

 private:
  void Handle(HttpExchange& exchange);
  // CORS: adds the response headers for an allowed origin to `headers`;
  // answers a preflight or a refused origin itself (true: answered).
  // `call`: the request starts a call (every POST, Connect's GETs).
  bool Cors(HttpExchange& exchange, bool call,
            std::vector<std::pair<std::string, std::string>>* headers);
  MethodShape Shape(const std::string& path) const;
  void HandleGrpcWeb(HttpExchange& exchange,
                     std::vector<std::pair<std::string, std::string>> headers);
  void HandleConnect(HttpExchange& exchange, const MethodShape& shape,
                     std::vector<std::pair<std::string, std::string>> headers);
  // Starts the call and registers it (Stop cancels what is registered);
  // nullptr once stopping.
  std::shared_ptr<GrpcWebCall> StartCall(std::string method,
                                         std::vector<std::string> messages,
                                         const Metadata& metadata,
                                         absl::Time deadline);
  // How a streamed response is written.
  struct Encoder {
    // The bytes of one reply (an empty one is a keep-alive); an error ends
    // the call with that status.
    std::function<absl::StatusOr<std::string>(absl::string_view reply)> message;
    // The bytes that end the response, from the call's status (or the
    // error `message` gave) and metadata.
    std::function<std::string(const ::grpc::Status& status,
                              const GrpcWebCall& call)>
        end;
    // Each write base64-encoded (application/grpc-web-text).
    bool base64 = false;
  };
  // Writes the call's replies as they come (keep-alives on idle server
  // streams), then its end; cancels the call when the client goes away.
  void PumpResponse(HttpExchange& exchange, GrpcWebCall& call,
                    bool server_streaming, const Encoder& encoder);
  // Waits for a unary call's end and collects its replies; false when the
  // client went away first.
  bool AwaitCall(HttpExchange& exchange, GrpcWebCall& call,
                 std::vector<std::string>* replies);
  void HandleGet(HttpExchange& exchange,
                 std::vector<std::pair<std::string, std::string>> headers);
  void Unregister(GrpcWebCall* call);

  const Options options_;
  const std::shared_ptr<::grpc::ChannelInterface> channel_;
  ::grpc::GenericStub stub_;
  const StaticFiles files_;
  std::unique_ptr<HttpServer> http_;
  int port_ = 0;

  mutable amqpgw::Mutex mu_;
  amqpgw::CondVar calls_changed_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  // Calls whose responses are being written.
  absl::flat_hash_map<GrpcWebCall*, std::weak_ptr<GrpcWebCall>> calls_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::shared_ptr<const HttpHandler>> handlers_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace amqpgw::web

#endif  // AMQPGW_SERVER_WEB_WEB_SERVER_H_
