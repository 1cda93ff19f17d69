// The daemon's HTTP/1.1 server (the HTTP port, and --metrics_listen), over
// plain TCP or TLS. Written for a port that faces callers who may be
// hostile, which cpp-httplib 0.11 could not be made into (see
// docs: its request loop is private; it gives a thread to a connection
// before a single byte arrives, has no deadline for a whole request head,
// drops a pipelined request, and reads framing leniently):
//
// - One I/O thread (epoll) accepts connections, does the TLS handshake and
//   reads each request, head and body, without blocking. A connection that
//   is idle, or still sending its request, holds no worker thread: slow
//   senders cannot starve the workers. Deadlines: idle_timeout between
//   requests, header_timeout for a whole head (from its first byte),
//   body_timeout for a whole body; a request that misses one is answered
//   408 and the connection closed.
// - Framing is strict (http_parser.h); refusals are answered at once, with
//   "Connection: close", and the connection is closed after the answer
//   (lingering, so the answer is not lost to a reset).
// - Only complete requests reach the worker threads (an ElasticThreadPool
//   of up to max_active threads); requests beyond that wait in order. A
//   handler may stream its response for as long as it likes (a grpc-web
//   stream): it holds its thread meanwhile.
// - Pipelined requests are answered in order: the bytes after a request
//   stay in the connection's buffer and are parsed once the response went
//   out.
// - At most max_waiting connections are held without a thread; when a new
//   one arrives beyond that, the one idle longest (else the one nearest its
//   deadline) is closed to make room.
//
// Threads: Start and Stop from the owning thread; handlers run on worker
// threads, one exchange on one thread; the HttpExchange a handler gets is
// used by that thread only.
#ifndef AMQPGW_SERVER_WEB_HTTP_SERVER_H_
#define AMQPGW_SERVER_WEB_HTTP_SERVER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/base/sync.h"
#include "server/web/http_message.h"
#include "server/web/http_parser.h"
#include "server/web/thread_pool.h"

namespace amqpgw::web {

class TlsContext;
// A connection's state (http_server.cc): owned by the I/O thread while it
// waits for a request, by one worker while a handler answers.
struct HttpConnection;

class HttpServer;

// One request and its response, on a worker thread. A handler answers with
// Respond (the whole response) or BeginStream, Write..., End (a response
// sent as it is produced, chunked). Writes block the handler's thread up to
// the server's write_timeout for each bit of progress.
class HttpExchange {
 public:
  const HttpRequest& request() const { return request_; }

  // The whole response (for HEAD: without the body). Once; false when it
  // could not be written (the client is gone or too slow).
  bool Respond(const HttpResponse& response);
  // The head of a streamed response; chunked for HTTP/1.1 (an HTTP/1.0
  // client reads until the connection closes).
  bool BeginStream(
      int status, absl::string_view content_type,
      const std::vector<std::pair<std::string, std::string>>& headers = {});
  // One piece of a streamed response, sent at once (one chunk).
  bool Write(absl::string_view data);
  // The end of a streamed response.
  bool End();
  // True when the client closed its side of the connection or the
  // connection failed (checked without waiting).
  bool ClientGone() const;

  // Whether a response (or its head) was written, and whether every write
  // so far succeeded.
  bool responded() const { return responded_; }
  bool ok() const { return ok_; }

 private:
  friend class HttpServer;
  HttpExchange(HttpServer* server, HttpConnection* connection,
               HttpRequest request, bool keep_alive);

  std::string Head(
      int status, absl::string_view content_type,
      const std::vector<std::pair<std::string, std::string>>& headers,
      bool streaming, uint64_t content_length);
  bool Send(absl::string_view data);

  HttpServer* const server_;
  HttpConnection* const connection_;
  const HttpRequest request_;
  const bool head_only_;
  bool keep_alive_;
  bool responded_ = false;
  bool streaming_ = false;
  bool chunked_ = false;
  bool ended_ = false;
  bool ok_ = true;
};

class HttpServer {
 public:
  struct Options {
    // host:port, [v6]:port; port 0 picks a free one.
    std::string listen = "127.0.0.1:8080";
    // TLS (HTTPS) when set.
    std::shared_ptr<const TlsContext> tls;
    // Requests served at once (one worker thread each); more wait.
    size_t max_active = 1024;
    // Connections held without a thread (idle between requests, or still
    // sending one).
    size_t max_waiting = 4096;
    // Between requests on a kept-alive connection (and before the first).
    absl::Duration idle_timeout = absl::Seconds(5);
    // From the first byte of a request (or the TCP accept, for the TLS
    // handshake) to the end of its head.
    absl::Duration header_timeout = absl::Seconds(10);
    // From the end of a request's head to the end of its body.
    absl::Duration body_timeout = absl::Seconds(30);
    // A response write that makes no progress this long fails.
    absl::Duration write_timeout = absl::Seconds(10);
    // How long a refused connection is read (and discarded) after the
    // answer, so that the answer is not lost to a reset.
    absl::Duration linger = absl::Seconds(2);
    // Requests on one connection before it is closed.
    int max_requests_per_connection = 1000;
    http::Limits limits;
    // The answer to a request the server refuses by itself (400, 408, 413,
    // 414, 417, 431, 501, 505): lets the owner add headers (grpc-web
    // status). Default: the reason as text/plain.
    std::function<HttpResponse(int status, absl::string_view reason)> refusal;
  };
  using Handler = std::function<void(HttpExchange&)>;

  HttpServer(Options options, Handler handler);
  // Stops.
  ~HttpServer();

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds (SO_REUSEADDR only: a second daemon on the port fails here) and
  // starts the I/O thread. INVALID_ARGUMENT for a bad address, UNAVAILABLE
  // when the port cannot be bound.
  absl::Status Start();
  // The bound port, after Start.
  int port() const { return port_; }
  // Closes the port and every connection without a request in a handler;
  // waits for the running handlers to return (the owner makes them: see
  // WebServer::Stop), then joins every thread. Idempotent.
  void Stop();

  // Connections held by the I/O thread, and requests in handlers or
  // waiting for a worker (for tests and metrics).
  size_t waiting_connections() const { return waiting_.load(); }
  size_t active_requests() const { return active_.load(); }

 private:
  friend class HttpExchange;
  using Connection = HttpConnection;

  // I/O thread.
  void Loop();
  void Accept();
  void Add(std::unique_ptr<Connection> c);
  void OnEvent(Connection* c, uint32_t events);
  void Handshake(Connection* c);
  void ReadAndProcess(Connection* c);
  // Parses what `c` received; dispatches a complete request, refuses a bad
  // one. False when `c` left the I/O thread (dispatched or closed).
  bool Process(Connection* c);
  void Dispatch(Connection* c, bool keep_alive);
  void Refuse(Connection* c, int status, absl::string_view reason);
  void BeginClose(Connection* c);
  void Close(Connection* c);
  void Flush(Connection* c);
  void SetInterest(Connection* c, uint32_t events);
  void SweepDeadlines();
  void MakeRoom();
  void TakeReturned();
  std::string RefusalBytes(int status, absl::string_view reason) const;

  // Worker threads.
  void Serve(std::unique_ptr<Connection> c, HttpRequest request,
             bool keep_alive);
  // A worker is done with `c`: back to the I/O thread, to wait for the next
  // request (keep_alive) or to be closed.
  void Return(std::unique_ptr<Connection> c, bool keep_alive);
  bool WriteBlocking(Connection* c, absl::string_view data) const;

  void Wake();

  const Options options_;
  const Handler handler_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  int port_ = 0;
  std::thread loop_;
  std::unique_ptr<ElasticThreadPool> workers_;

  // I/O thread only.
  std::map<Connection*, std::unique_ptr<Connection>> connections_;
  absl::Time paused_until_ = absl::InfinitePast();
  absl::Time next_sweep_ = absl::InfinitePast();

  std::atomic<size_t> waiting_{0};
  std::atomic<size_t> active_{0};

  amqpgw::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool loop_running_ ABSL_GUARDED_BY(mu_) = false;
  // Connections workers are done with, for the I/O thread.
  std::deque<std::pair<std::unique_ptr<Connection>, bool>> returned_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace amqpgw::web

#endif  // AMQPGW_SERVER_WEB_HTTP_SERVER_H_
