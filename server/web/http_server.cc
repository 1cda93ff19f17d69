#include "server/web/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <exception>
#include <mutex>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/base/host_port.h"
#include "server/web/tls_context.h"
#include "spdlog/spdlog.h"

namespace amqpgw::web {

// One client connection. The I/O thread owns it while it waits for a
// request (in HttpServer::connections_), one worker while a handler answers
// a request on it (in HttpServer::Serve); the hand-over goes through
// HttpServer::mu_ (returned_) or the pool's queue.
struct HttpConnection {
  enum class Phase {
    kHandshake,  // TLS handshake
    kIdle,       // waiting for the first byte of a request
    kHead,       // reading a request head
    kBody,       // reading a request body
    kClosing,    // sending `out`, then reading and discarding until EOF
  };

  ~HttpConnection() {
    if (ssl != nullptr) SSL_free(ssl);
    if (fd >= 0) close(fd);
  }

  int fd = -1;
  SSL* ssl = nullptr;
  std::string remote_addr;
  int remote_port = 0;
  Phase phase = Phase::kIdle;
  absl::Time since;     // when the phase began
  absl::Time deadline;  // when the phase must be over
  // Received and not yet parsed (a head, a body, pipelined requests).
  std::string in;
  // To send from the I/O thread (an interim 100, a refusal).
  std::string out;
  bool write_side_shut = false;
  // The request being read.
  http::RequestHead head;
  std::unique_ptr<http::ChunkedDecoder> chunked;
  std::string body;
  int requests = 0;
  uint32_t interest = 0;  // epoll events asked for; 0 before EPOLL_CTL_ADD
  bool registered = false;
};

namespace {

using Phase = HttpConnection::Phase;

enum class Io { kProgress, kWouldBlock, kWantWrite, kEof, kError };

constexpr size_t kReadChunk = 64 * 1024;

std::string Describe(const HttpConnection* c) {
  return absl::StrCat(c->remote_addr, ":", c->remote_port);
}

// Reads what is there, up to `limit` bytes in `c->in`.
Io ReadSome(HttpConnection* c, size_t limit) {
  char buf[kReadChunk];
  bool progress = false;
  while (c->in.size() < limit) {
    size_t want = std::min(sizeof(buf), limit - c->in.size());
    if (c->ssl != nullptr) {
      ERR_clear_error();
      int n = SSL_read(c->ssl, buf, static_cast<int>(want));
      if (n > 0) {
        c->in.append(buf, static_cast<size_t>(n));
        progress = true;
        continue;
      }
      switch (SSL_get_error(c->ssl, n)) {
        case SSL_ERROR_WANT_READ:
          return progress ? Io::kProgress : Io::kWouldBlock;
        case SSL_ERROR_WANT_WRITE:
          return Io::kWantWrite;
        case SSL_ERROR_ZERO_RETURN:
          return Io::kEof;
        default:
          ERR_clear_error();
          return Io::kError;
      }
    }
    ssize_t n = recv(c->fd, buf, want, 0);
    if (n > 0) {
      c->in.append(buf, static_cast<size_t>(n));
      progress = true;
    } else if (n == 0) {
      return Io::kEof;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return progress ? Io::kProgress : Io::kWouldBlock;
    } else {
      return Io::kError;
    }
  }
  return Io::kProgress;
}

// Writes as much of `*data` as the socket takes now; removes what went
// from the front of `*data`.
Io WriteSome(HttpConnection* c, absl::string_view* data) {
  while (!data->empty()) {
    if (c->ssl != nullptr) {
      ERR_clear_error();
      int n =
          SSL_write(c->ssl, data->data(),
                    static_cast<int>(std::min<size_t>(data->size(), INT_MAX)));
      if (n > 0) {
        data->remove_prefix(static_cast<size_t>(n));
        continue;
      }
      int e = SSL_get_error(c->ssl, n);
      ERR_clear_error();
      if (e == SSL_ERROR_WANT_WRITE) return Io::kWantWrite;
      if (e == SSL_ERROR_WANT_READ) return Io::kWouldBlock;
      return Io::kError;
    }
    ssize_t n = send(c->fd, data->data(), data->size(), MSG_NOSIGNAL);
    if (n > 0) {
      data->remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return Io::kWantWrite;
    } else {
      return Io::kError;
    }
  }
  return Io::kProgress;
}

bool SafeHeader(absl::string_view name, absl::string_view value) {
  if (name.empty()) return false;
  for (char c : name) {
    if (c <= ' ' || c == ':' || c == 0x7F) return false;
  }
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

void PeerAddress(int fd, std::string* addr, int* port) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return;
  char host[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    *port = ntohs(in->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    *port = ntohs(in6->sin6_port);
  }
  *addr = host;
}

std::string DurationText(absl::Duration d) { return absl::FormatDuration(d); }

}  // namespace

// ---------------------------------------------------------------------------
// HttpExchange (a worker thread).

HttpExchange::HttpExchange(HttpServer* server, HttpConnection* connection,
                           HttpRequest request, bool keep_alive)
    : server_(server),
      connection_(connection),
      request_(std::move(request)),
      head_only_(request_.method == "HEAD"),
      keep_alive_(keep_alive) {}

std::string HttpExchange::Head(
    int status, absl::string_view content_type,
    const std::vector<std::pair<std::string, std::string>>& headers,
    bool streaming, uint64_t content_length) {
  std::string out = absl::StrCat("HTTP/1.1 ", status, " ",
                                 http::StatusReason(status), "\r\n");
  for (const auto& [name, value] : headers) {
    if (!SafeHeader(name, value)) continue;
    absl::StrAppend(&out, name, ": ", value, "\r\n");
  }
  if (!content_type.empty() && SafeHeader("Content-Type", content_type)) {
    absl::StrAppend(&out, "Content-Type: ", content_type, "\r\n");
  }
  const bool no_body = status == 204 || status == 304 || status < 200;
  if (streaming) {
    if (chunked_) out += "Transfer-Encoding: chunked\r\n";
  } else if (!no_body) {
    absl::StrAppend(&out, "Content-Length: ", content_length, "\r\n");
  }
  if (!keep_alive_) {
    out += "Connection: close\r\n";
  } else if (request_.minor_version == 0) {
    out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
  return out;
}

bool HttpExchange::Send(absl::string_view data) {
  if (!ok_) return false;
  ok_ = server_->WriteBlocking(connection_, data);
  return ok_;
}

bool HttpExchange::Respond(const HttpResponse& r) {
  if (responded_) return false;
  responded_ = true;
  std::string out =
      Head(r.status, r.content_type, r.headers, false, r.body.size());
  const bool no_body = r.status == 204 || r.status == 304;
  if (!head_only_ && !no_body) out += r.body;
  return Send(out);
}

bool HttpExchange::BeginStream(
    int status, absl::string_view content_type,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  if (responded_) return false;
  responded_ = true;
  streaming_ = true;
  chunked_ = request_.minor_version >= 1;
  // HTTP/1.0: the body ends when the connection does.
  if (!chunked_) keep_alive_ = false;
  return Send(Head(status, content_type, headers, true, 0));
}

bool HttpExchange::Write(absl::string_view data) {
  if (!streaming_ || ended_) return false;
  if (head_only_ || data.empty()) return ok_;  // an empty chunk would end it
  if (!chunked_) return Send(data);
  std::string chunk = absl::StrCat(absl::Hex(data.size()), "\r\n");
  chunk.reserve(chunk.size() + data.size() + 2);
  chunk.append(data.data(), data.size());
  chunk += "\r\n";
  return Send(chunk);
}

bool HttpExchange::End() {
  if (!streaming_ || ended_) return ok_;
  ended_ = true;
  if (head_only_ || !chunked_) return ok_;
  return Send("0\r\n\r\n");
}

bool HttpExchange::ClientGone() const {
  pollfd p{connection_->fd, POLLIN | POLLRDHUP, 0};
  if (poll(&p, 1, 0) < 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

// ---------------------------------------------------------------------------
// HttpServer.

HttpServer::HttpServer(Options options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {}

HttpServer::~HttpServer() { Stop(); }

absl::Status HttpServer::Start() {
  absl::StatusOr<HostPort> address = ParseHostPort(options_.listen);
  if (!address.ok()) return address.status();
  // TLS writes go through write(2): a closed peer must not kill the process.
  static std::once_flag sigpipe;
  std::call_once(sigpipe, [] { signal(SIGPIPE, SIG_IGN); });

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string port_text = std::to_string(address->port);
  if (getaddrinfo(address->BindHost().c_str(), port_text.c_str(), &hints,
                  &found) != 0 ||
      found == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options_.listen, " (unknown host)"));
  }
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                a->ai_protocol);
    if (fd < 0) continue;
    // SO_REUSEADDR only (TIME_WAIT), never SO_REUSEPORT: a second daemon on
    // the same port must fail here instead of sharing it silently.
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 ||
        listen(fd, SOMAXCONN) != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options_.listen,
                     " (address in use or not local?)"));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.ss_family == AF_INET6
                    ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                    : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  listen_fd_ = fd;
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // the listener
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  ev.data.ptr = &wake_fd_;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  workers_ =
      std::make_unique<ElasticThreadPool>(options_.max_active,
                                          /*keep_idle=*/4, absl::Seconds(30));
  {
    amqpgw::MutexLock lock(&mu_);
    loop_running_ = true;
  }
  loop_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void HttpServer::Wake() {
  uint64_t one = 1;
  ssize_t ignored = write(wake_fd_, &one, sizeof(one));
  (void)ignored;
}

void HttpServer::Stop() {
  {
    amqpgw::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (loop_.joinable()) {
    Wake();
    loop_.join();
  }
  if (workers_ != nullptr) workers_->Shutdown();
  // Connections the last handlers returned after the loop ended.
  std::deque<std::pair<std::unique_ptr<Connection>, bool>> left;
  {
    amqpgw::MutexLock lock(&mu_);
    left.swap(returned_);
  }
  left.clear();
  for (int* fd : {&listen_fd_, &epoll_fd_, &wake_fd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

void HttpServer::Loop() {
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  while (true) {
    {
      amqpgw::MutexLock lock(&mu_);
      if (stopping_) break;
    }
    absl::Time now = absl::Now();
    int timeout_ms = connections_.empty() ? 1000 : 100;
    if (paused_until_ != absl::InfinitePast()) {
      if (now >= paused_until_) {
        paused_until_ = absl::InfinitePast();
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = nullptr;
        epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &ev);
      } else {
        timeout_ms = std::min<int>(
            timeout_ms,
            static_cast<int>(absl::ToInt64Milliseconds(paused_until_ - now)) +
                1);
      }
    }
    int n = epoll_wait(epoll_fd_, events, kMaxEvents, timeout_ms);
    for (int i = 0; i < n; ++i) {
      void* ptr = events[i].data.ptr;
      if (ptr == nullptr) {
        Accept();
      } else if (ptr == &wake_fd_) {
        uint64_t count;
        ssize_t ignored = read(wake_fd_, &count, sizeof(count));
        (void)ignored;
      } else {
        auto* c = static_cast<Connection*>(ptr);
        // An earlier event of this round may have closed it.
        if (connections_.count(c) != 0) OnEvent(c, events[i].events);
      }
    }
    TakeReturned();
    SweepDeadlines();
  }
  // Stopping: every connection without a handler closes now.
  waiting_.store(0);
  connections_.clear();
  amqpgw::MutexLock lock(&mu_);
  loop_running_ = false;
}

void HttpServer::Accept() {
  while (true) {
    int fd =
        accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM) {
        // Out of descriptors: make room, and stop accepting briefly so the
        // level-triggered listener does not spin.
        spdlog::warn("http: cannot accept ({}); {} connections open",
                     errno == EMFILE ? "too many open files" : "no memory",
                     connections_.size());
        MakeRoom();
        paused_until_ = absl::Now() + absl::Milliseconds(100);
        epoll_event ev{};
        ev.events = 0;
        ev.data.ptr = nullptr;
        epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &ev);
      }
      return;
    }
    int yes = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
    if (connections_.size() >= options_.max_waiting) MakeRoom();
    auto c = std::make_unique<Connection>();
    c->fd = fd;
    PeerAddress(fd, &c->remote_addr, &c->remote_port);
    absl::Time now = absl::Now();
    c->since = now;
    if (options_.tls != nullptr) {
      c->ssl = SSL_new(options_.tls->ctx());
      if (c->ssl == nullptr) {
        ERR_clear_error();
        continue;  // closes fd
      }
      SSL_set_fd(c->ssl, fd);
      SSL_set_accept_state(c->ssl);
      c->phase = Phase::kHandshake;
      c->deadline = now + options_.header_timeout;
    } else {
      c->phase = Phase::kIdle;
      c->deadline = now + options_.idle_timeout;
    }
    Connection* raw = c.get();
    Add(std::move(c));
    if (raw->phase == Phase::kHandshake) Handshake(raw);
  }
}

void HttpServer::Add(std::unique_ptr<Connection> c) {
  Connection* raw = c.get();
  connections_.emplace(raw, std::move(c));
  waiting_.store(connections_.size());
  raw->registered = false;
  raw->interest = 0;
  SetInterest(raw, EPOLLIN);
}

void HttpServer::SetInterest(Connection* c, uint32_t events) {
  if (c->registered && c->interest == events) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = c;
  epoll_ctl(epoll_fd_, c->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd,
            &ev);
  c->registered = true;
  c->interest = events;
}

void HttpServer::Close(Connection* c) {
  if (c->registered) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
  connections_.erase(c);
  waiting_.store(connections_.size());
}

void HttpServer::OnEvent(Connection* c, uint32_t events) {
  if (c->phase == Phase::kHandshake) {
    Handshake(c);
    return;
  }
  if (c->phase == Phase::kClosing) {
    if ((events & EPOLLOUT) != 0 || !c->out.empty()) Flush(c);
    if (connections_.count(c) == 0 || !c->write_side_shut) return;
    // Discard what the client still sends, until it closes.
    char buf[kReadChunk];
    while (true) {
      ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      Close(c);
      return;
    }
  }
  if ((events & EPOLLOUT) != 0 && !c->out.empty()) {
    Flush(c);
    if (connections_.count(c) == 0) return;
  }
  if ((events & (EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0) {
    ReadAndProcess(c);
  }
}

void HttpServer::Handshake(Connection* c) {
  ERR_clear_error();
  int r = SSL_do_handshake(c->ssl);
  if (r == 1) {
    absl::Time now = absl::Now();
    c->phase = Phase::kIdle;
    c->since = now;
    c->deadline = now + options_.idle_timeout;
    SetInterest(c, EPOLLIN);
    // The request may have come with the handshake's last flight.
    ReadAndProcess(c);
    return;
  }
  switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
      SetInterest(c, EPOLLIN);
      return;
    case SSL_ERROR_WANT_WRITE:
      SetInterest(c, EPOLLOUT);
      return;
    default: {
      std::string why = TakeOpenSslErrors();
      spdlog::debug("http {}: TLS handshake failed: {}", Describe(c),
                    why.empty() ? "connection closed" : why);
      Close(c);
    }
  }
}

void HttpServer::ReadAndProcess(Connection* c) {
  while (true) {
    // A head may not exceed its limit; a body is moved out of `in` as it is
    // parsed, so `in` stays small either way.
    const size_t limit = options_.limits.max_head_bytes + kReadChunk;
    Io r = ReadSome(c, limit);
    if (!Process(c)) return;  // dispatched, refused or closed
    if (c->in.size() >= limit) {
      // Cannot happen (a head that long is refused, a body leaves `in` as
      // it is parsed); never spin on it.
      Refuse(c, 431, "request header fields too large");
      return;
    }
    switch (r) {
      case Io::kProgress:
        continue;
      case Io::kWouldBlock:
        SetInterest(c, c->out.empty() ? EPOLLIN : EPOLLIN | EPOLLOUT);
        return;
      case Io::kWantWrite:
        SetInterest(c, EPOLLIN | EPOLLOUT);
        return;
      case Io::kEof:
      case Io::kError:
        // The client left (half-way through a request, or between two).
        if (c->phase == Phase::kHead || c->phase == Phase::kBody) {
          spdlog::debug("http {}: closed in the middle of a request",
                        Describe(c));
        }
        Close(c);
        return;
    }
  }
}

bool HttpServer::Process(Connection* c) {
  absl::Time now = absl::Now();
  if (c->phase == Phase::kIdle) {
    if (c->in.empty()) return true;
    {
      amqpgw::MutexLock lock(&mu_);
      if (stopping_) {
        Close(c);
        return false;
      }
    }
    c->phase = Phase::kHead;
    c->since = now;
    c->deadline = now + options_.header_timeout;
  }
  if (c->phase == Phase::kHead) {
    http::HeadResult h = http::ParseRequestHead(c->in, options_.limits);
    if (h.state == http::HeadResult::kIncomplete) return true;
    if (h.state == http::HeadResult::kRefused) {
      Refuse(c, h.refusal.status, h.refusal.reason);
      return false;
    }
    c->in.erase(0, h.head.head_bytes);
    c->head = std::move(h.head);
    c->body.clear();
    if (c->head.framing == http::BodyFraming::kNone) {
      Dispatch(c, c->head.keep_alive);
      return false;
    }
    c->phase = Phase::kBody;
    c->since = now;
    c->deadline = now + options_.body_timeout;
    if (c->head.framing == http::BodyFraming::kChunked) {
      c->chunked = std::make_unique<http::ChunkedDecoder>(options_.limits);
    }
    if (c->head.expect_continue && c->in.empty()) {
      c->out += "HTTP/1.1 100 Continue\r\n\r\n";
      Flush(c);
      if (connections_.count(c) == 0) return false;
    }
  }
  if (c->phase == Phase::kBody) {
    if (c->chunked != nullptr) {
      size_t consumed = 0;
      http::ChunkedDecoder::State s =
          c->chunked->Feed(c->in, &consumed, &c->body);
      c->in.erase(0, consumed);
      if (s == http::ChunkedDecoder::State::kRefused) {
        http::Refusal refusal = c->chunked->refusal();
        Refuse(c, refusal.status, refusal.reason);
        return false;
      }
      if (s == http::ChunkedDecoder::State::kNeedMore) return true;
    } else {
      size_t want =
          static_cast<size_t>(c->head.content_length) - c->body.size();
      size_t take = std::min(want, c->in.size());
      c->body.append(c->in, 0, take);
      c->in.erase(0, take);
      if (c->body.size() < c->head.content_length) return true;
    }
    Dispatch(c, c->head.keep_alive);
    return false;
  }
  return true;
}

void HttpServer::Dispatch(Connection* c, bool keep_alive) {
  HttpRequest request;
  http::RequestHead& head = c->head;
  request.method = std::move(head.method);
  request.target = std::move(head.target);
  request.path = std::move(head.path);
  for (auto& [k, v] : http::ParseQuery(head.query)) {
    request.params.emplace(std::move(k), std::move(v));
  }
  for (auto& [k, v] : head.headers) {
    request.headers.emplace(std::move(k), std::move(v));
  }
  request.body = std::move(c->body);
  request.minor_version = head.minor_version;
  request.remote_addr = c->remote_addr;
  request.remote_port = c->remote_port;
  request.tls = c->ssl != nullptr;
  c->head = http::RequestHead();
  c->chunked.reset();
  c->body.clear();
  ++c->requests;
  keep_alive = keep_alive && c->requests < options_.max_requests_per_connection;

  if (c->registered) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
  c->registered = false;
  c->interest = 0;
  auto it = connections_.find(c);
  std::unique_ptr<Connection> owned = std::move(it->second);
  connections_.erase(it);
  waiting_.store(connections_.size());
  active_.fetch_add(1);
  // std::function must be copyable: the connection and request travel in a
  // shared holder, taken by the job.
  struct Job {
    std::unique_ptr<Connection> connection;
    HttpRequest request;
  };
  auto job = std::make_shared<Job>(Job{std::move(owned), std::move(request)});
  workers_->Enqueue([this, job, keep_alive] {
    Serve(std::move(job->connection), std::move(job->request), keep_alive);
  });
}

std::string HttpServer::RefusalBytes(int status,
                                     absl::string_view reason) const {
  HttpResponse r;
  if (options_.refusal) {
    r = options_.refusal(status, reason);
  } else {
    r.status = status;
    r.body = absl::StrCat(reason, "\n");
  }
  std::string out = absl::StrCat("HTTP/1.1 ", r.status, " ",
                                 http::StatusReason(r.status), "\r\n");
  for (const auto& [name, value] : r.headers) {
    if (SafeHeader(name, value))
      absl::StrAppend(&out, name, ": ", value, "\r\n");
  }
  absl::StrAppend(&out, "Content-Type: ", r.content_type,
                  "\r\nContent-Length: ", r.body.size(),
                  "\r\nConnection: close\r\n\r\n", r.body);
  return out;
}

void HttpServer::Refuse(Connection* c, int status, absl::string_view reason) {
  spdlog::debug("http {}: refused with {}: {}", Describe(c), status,
                std::string(reason));
  c->out += RefusalBytes(status, reason);
  BeginClose(c);
}

void HttpServer::BeginClose(Connection* c) {
  absl::Time now = absl::Now();
  c->phase = Phase::kClosing;
  c->since = now;
  c->deadline = now + options_.linger;
  c->in.clear();
  Flush(c);
}

void HttpServer::Flush(Connection* c) {
  if (!c->out.empty()) {
    absl::string_view left = c->out;
    Io r = WriteSome(c, &left);
    c->out.erase(0, c->out.size() - left.size());
    if (r == Io::kError) {
      Close(c);
      return;
    }
    if (!c->out.empty()) {
      SetInterest(c, r == Io::kWouldBlock ? EPOLLIN : EPOLLIN | EPOLLOUT);
      return;
    }
  }
  if (c->phase != Phase::kClosing) {
    SetInterest(c, EPOLLIN);
    return;
  }
  if (!c->write_side_shut) {
    // Everything is sent: say so (TLS close_notify, TCP FIN), then read
    // until the client closes too, so that unread input does not turn our
    // close into a reset that could destroy the answer in flight.
    if (c->ssl != nullptr) {
      ERR_clear_error();
      SSL_shutdown(c->ssl);
      ERR_clear_error();
    }
    shutdown(c->fd, SHUT_WR);
    c->write_side_shut = true;
  }
  SetInterest(c, EPOLLIN);
}

void HttpServer::SweepDeadlines() {
  absl::Time now = absl::Now();
  if (now < next_sweep_) return;
  next_sweep_ = now + absl::Milliseconds(100);
  std::vector<Connection*> late;
  for (const auto& [c, owned] : connections_) {
    if (c->deadline <= now) late.push_back(c);
  }
  for (Connection* c : late) {
    switch (c->phase) {
      case Phase::kHead:
        Refuse(c, 408,
               absl::StrCat("request head not complete within ",
                            DurationText(options_.header_timeout)));
        break;
      case Phase::kBody:
        Refuse(c, 408,
               absl::StrCat("request body not complete within ",
                            DurationText(options_.body_timeout)));
        break;
      case Phase::kHandshake:
        spdlog::debug("http {}: TLS handshake not complete within {}",
                      Describe(c), DurationText(options_.header_timeout));
        Close(c);
        break;
      case Phase::kIdle:
      case Phase::kClosing:
        Close(c);
        break;
    }
  }
}

void HttpServer::MakeRoom() {
  // Closing first, then the one idle longest, then the one that has been
  // sending its request (or handshake) longest.
  Connection* victim = nullptr;
  auto rank = [](const Connection* c) {
    return c->phase == Phase::kClosing ? 0 : c->phase == Phase::kIdle ? 1 : 2;
  };
  for (const auto& [c, owned] : connections_) {
    if (victim == nullptr || rank(c) < rank(victim) ||
        (rank(c) == rank(victim) && c->since < victim->since)) {
      victim = c;
    }
  }
  if (victim == nullptr) return;
  spdlog::debug("http {}: closed to make room for a new connection",
                Describe(victim));
  Close(victim);
}

void HttpServer::TakeReturned() {
  std::deque<std::pair<std::unique_ptr<Connection>, bool>> returned;
  {
    amqpgw::MutexLock lock(&mu_);
    returned.swap(returned_);
  }
  absl::Time now = absl::Now();
  for (auto& [owned, keep_alive] : returned) {
    Connection* c = owned.get();
    Add(std::move(owned));
    if (!keep_alive) {
      BeginClose(c);
      continue;
    }
    c->phase = Phase::kIdle;
    c->since = now;
    c->deadline = now + options_.idle_timeout;
    // A pipelined request may be waiting in the buffer (or in TLS's).
    ReadAndProcess(c);
  }
}

// ---------------------------------------------------------------------------
// Worker threads.

void HttpServer::Serve(std::unique_ptr<Connection> c, HttpRequest request,
                       bool keep_alive) {
  {
    amqpgw::MutexLock lock(&mu_);
    if (stopping_) keep_alive = false;
  }
  HttpExchange exchange(this, c.get(), std::move(request), keep_alive);
  if (!c->out.empty()) {
    // An interim 100 the I/O thread could not send at once.
    exchange.ok_ = WriteBlocking(c.get(), c->out);
    c->out.clear();
  }
  if (exchange.ok_) {
    try {
      handler_(exchange);
    } catch (const std::exception& e) {
      spdlog::error("http {} {}: {}", exchange.request().method,
                    exchange.request().path, e.what());
      if (!exchange.responded()) {
        HttpResponse r;
        r.status = 500;
        r.body = "internal error\n";
        exchange.Respond(r);
      }
      exchange.keep_alive_ = false;
    }
    if (!exchange.responded()) {
      HttpResponse r;
      r.status = 500;
      r.body = "no response\n";
      exchange.Respond(r);
    } else if (exchange.streaming_) {
      exchange.End();
    }
  }
  active_.fetch_sub(1);
  if (!exchange.ok_) return;  // the client is gone or too slow: close now
  Return(std::move(c), exchange.keep_alive_);
}

void HttpServer::Return(std::unique_ptr<Connection> c, bool keep_alive) {
  amqpgw::MutexLock lock(&mu_);
  if (!loop_running_ || stopping_) return;  // closes it
  returned_.emplace_back(std::move(c), keep_alive);
  Wake();
}

bool HttpServer::WriteBlocking(Connection* c, absl::string_view data) const {
  absl::string_view pending = data;
  const int timeout_ms =
      static_cast<int>(absl::ToInt64Milliseconds(options_.write_timeout));
  while (true) {
    Io r = WriteSome(c, &pending);
    if (r == Io::kProgress) return true;
    if (r == Io::kError) return false;
    pollfd p{c->fd, static_cast<short>(r == Io::kWantWrite ? POLLOUT : POLLIN),
             0};
    int n = poll(&p, 1, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // no progress within write_timeout
    if ((p.revents & (POLLERR | POLLNVAL)) != 0) return false;
  }
}

}  // namespace amqpgw::web
