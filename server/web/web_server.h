// The daemon's HTTP port: grpc-web for every method of the gRPC server
// (bridged generically through its in-process channel), CORS, the browser
// view's files at "/", and plain GET handlers other layers register (e.g.
// /metrics).
//
// Built on cpp-httplib: one thread per open HTTP connection (a streaming
// response holds its connection's thread while it lasts), from a pool that
// grows on demand up to Options::max_connections. A grpc-web stream costs
// that thread, a socket and at most GrpcWebCall's small reply buffer.
//
// Threads: Start and Stop from the owning thread (once each); AddHandler
// from any thread at any time; handlers run on connection threads.
#ifndef AMQPGW_SERVER_WEB_WEB_SERVER_H_
#define AMQPGW_SERVER_WEB_WEB_SERVER_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/base/sync.h"
#include "server/web/static_files.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace amqpgw::web {

class GrpcWebCall;

// A plain HTTP request for a handler registered with AddHandler.
struct HttpRequest {
  std::string method;  // GET or HEAD
  std::string path;
  // Header names in lower case.
  std::multimap<std::string, std::string> headers;
  // Query parameters.
  std::multimap<std::string, std::string> params;
  std::string remote_addr;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// Whether "/pkg.Service/Method" is server streaming, from the generated
// descriptors linked into the binary; false for methods it does not know.
bool IsServerStreamingMethod(const std::string& method);

class WebServer {
 public:
  struct Options {
    // host:port; port 0 picks a free one (see port()).
    std::string listen = "127.0.0.1:8080";
    // Origins allowed to call cross-origin: exact "scheme://host[:port]"
    // values, or "*" for any. Same-origin requests need no entry.
    std::vector<std::string> cors_origins;
    // Serve the browser view from this folder instead of the embedded copy.
    std::string web_root;
    // Largest grpc-web request, all messages together (decoded).
    size_t max_request_bytes = 64 << 20;
    // Most HTTP connections served at once (one thread each); more wait.
    size_t max_connections = 1024;
    // An idle server stream gets an empty message this often (docs/browser.md).
    absl::Duration keepalive_interval = absl::Seconds(15);
    // How often a waiting stream checks that its browser is still there.
    absl::Duration liveness_check_interval = absl::Milliseconds(200);
    // Whether "/pkg.Service/Method" is server streaming: keep-alives go
    // only to those (a unary reply must be exactly one message). Default:
    // looks the method up in the linked generated descriptors; unknown
    // methods count as unary.
    std::function<bool(const std::string& method)> is_server_streaming;
  };

  // `channel` reaches the gRPC server (normally its in-process channel) and
  // must stay usable until Stop returns.
  WebServer(Options options, std::shared_ptr<::grpc::ChannelInterface> channel);
  ~WebServer();

  WebServer(const WebServer&) = delete;
  WebServer& operator=(const WebServer&) = delete;

  // Serves GET (and HEAD) of exactly `path` with `handler`, ahead of the
  // browser view's files. Any thread, any time; a later call for the same
  // path replaces the handler. The handler runs on a connection thread and
  // may block it, but should answer quickly.
  void AddHandler(const std::string& path, HttpHandler handler);

  // Binds the port and starts serving. INVALID_ARGUMENT for a bad address,
  // UNAVAILABLE when it cannot be bound.
  absl::Status Start();
  // From now on new grpc-web calls are refused (503, UNAVAILABLE); the rest
  // (calls in flight, files, handlers) goes on until Stop.
  void BeginStop();
  // Waits until no grpc-web response is being written (every call ended and
  // its trailer frame went out), or `deadline`. True when none is left.
  bool WaitForCalls(absl::Time deadline);
  // BeginStop, then waits up to `grace` for open calls to end by themselves
  // (their responses end with the real status in the trailer frame),
  // cancels the rest (CANCELLED), closes the port and joins every
  // connection thread (idle keep-alive connections end within 5 s, a write
  // to a browser that stopped reading within 10 s). Idempotent.
  void Stop(absl::Duration grace = absl::Seconds(5));

  // The bound port, after Start.
  int port() const { return port_; }
  // grpc-web responses being written now.
  size_t active_calls() const;

 private:
  class TaskQueueAdapter;

  void Route();
  bool PreRoute(const httplib::Request& req, httplib::Response& res);
  void HandleGrpcWeb(const httplib::Request& req, httplib::Response& res);
  void HandleGet(const httplib::Request& req, httplib::Response& res);
  void Unregister(GrpcWebCall* call);

  const Options options_;
  const std::shared_ptr<::grpc::ChannelInterface> channel_;
  ::grpc::GenericStub stub_;
  const StaticFiles files_;
  std::unique_ptr<httplib::Server> http_;
  std::thread listener_;
  int port_ = 0;
  bool started_ = false;

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
