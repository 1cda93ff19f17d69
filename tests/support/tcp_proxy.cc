#include "tests/support/tcp_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "server/base/sync.h"

namespace amqpgw::testing {
namespace {

void SetNonBlocking(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

int ConnectTo(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  SetNonBlocking(fd);
  return fd;
}

// connection.close (541 INTERNAL_ERROR) for basic.publish, as one frame.
std::string ConnectionCloseFrame() {
  std::string payload;
  auto u16 = [&payload](int v) {
    payload.push_back(static_cast<char>((v >> 8) & 0xff));
    payload.push_back(static_cast<char>(v & 0xff));
  };
  const std::string text =
      "INTERNAL_ERROR (poison message, from the test proxy)";
  u16(10);   // connection
  u16(50);   // close
  u16(541);  // INTERNAL_ERROR
  payload.push_back(static_cast<char>(text.size()));
  payload += text;
  u16(60);  // basic
  u16(40);  // publish
  std::string frame;
  frame.push_back(1);  // method frame
  frame.push_back(0);  // channel 0
  frame.push_back(0);
  uint32_t n = payload.size();
  for (int shift = 24; shift >= 0; shift -= 8) {
    frame.push_back(static_cast<char>((n >> shift) & 0xff));
  }
  frame += payload;
  frame.push_back(static_cast<char>(0xce));
  return frame;
}

}  // namespace

TcpProxy::TcpProxy(int target_port) : target_port_(target_port) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = 0;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      listen(listen_fd_, 64) != 0) {
    std::abort();
  }
  socklen_t len = sizeof(a);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  SetNonBlocking(listen_fd_);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  thread_ = std::thread([this] { Run(); });
}

TcpProxy::~TcpProxy() {
  stop_.store(true);
  Wake();
  thread_.join();
  amqpgw::MutexLock lock(&mu_);
  for (auto& p : pipes_) CloseLocked(*p);
  close(listen_fd_);
  close(wake_fd_);
}

std::string TcpProxy::uri() const {
  return absl::StrCat("amqp://guest:guest@127.0.0.1:", port_, "/");
}

void TcpProxy::Wake() {
  uint64_t one = 1;
  ssize_t n = write(wake_fd_, &one, sizeof(one));
  (void)n;
}

void TcpProxy::CloseLocked(Pipe& p, bool graceful) {
  if (p.client >= 0) {
    if (!graceful) {
      // RST, like a crashed peer or a middlebox dropping state.
      linger l{1, 0};
      setsockopt(p.client, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    close(p.client);
  }
  if (p.server >= 0) close(p.server);
  p.client = p.server = -1;
}

void TcpProxy::CutAll() {
  {
    amqpgw::MutexLock lock(&mu_);
    for (auto& p : pipes_) CloseLocked(*p);
  }
  Wake();
}

void TcpProxy::StallAll() {
  {
    amqpgw::MutexLock lock(&mu_);
    for (auto& p : pipes_) p->stalled = true;
  }
  Wake();
}

void TcpProxy::SetDelay(absl::Duration delay) {
  {
    amqpgw::MutexLock lock(&mu_);
    delay_ = delay;
  }
  Wake();
}

void TcpProxy::SetPoison(std::string marker) {
  amqpgw::MutexLock lock(&mu_);
  poison_ = std::move(marker);
}

void TcpProxy::SetRefuse(bool refuse) {
  amqpgw::MutexLock lock(&mu_);
  refuse_ = refuse;
}

int TcpProxy::open_connections() {
  amqpgw::MutexLock lock(&mu_);
  int n = 0;
  for (auto& p : pipes_) n += p->client >= 0 ? 1 : 0;
  return n;
}

void TcpProxy::Run() {
  std::vector<pollfd> fds;
  while (!stop_.load()) {
    absl::Time next_due = absl::InfiniteFuture();
    {
      amqpgw::MutexLock lock(&mu_);
      pipes_.erase(std::remove_if(pipes_.begin(), pipes_.end(),
                                  [](const std::unique_ptr<Pipe>& p) {
                                    return p->client < 0;
                                  }),
                   pipes_.end());
      fds.clear();
      fds.push_back({wake_fd_, POLLIN, 0});
      fds.push_back({listen_fd_, POLLIN, 0});
      absl::Time now = absl::Now();
      for (auto& p : pipes_) {
        if (p->stalled) continue;
        short cev = POLLIN, sev = POLLIN;
        if (!p->to_client.empty()) {
          if (p->to_client.front().due <= now) cev |= POLLOUT;
          next_due = std::min(next_due, p->to_client.front().due);
        }
        if (!p->to_server.empty()) {
          if (p->to_server.front().due <= now) sev |= POLLOUT;
          next_due = std::min(next_due, p->to_server.front().due);
        }
        fds.push_back({p->client, cev, 0});
        fds.push_back({p->server, sev, 0});
      }
    }
    int timeout = -1;
    if (next_due != absl::InfiniteFuture()) {
      timeout = static_cast<int>(std::max<int64_t>(
          0, absl::ToInt64Milliseconds(next_due - absl::Now()) + 1));
    }
    if (poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      uint64_t v;
      ssize_t n = read(wake_fd_, &v, sizeof(v));
      (void)n;
    }
    if (fds[1].revents & POLLIN) {
      for (;;) {
        int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) break;
        ++accepted_;
        amqpgw::MutexLock lock(&mu_);
        int s = refuse_ ? -1 : ConnectTo(target_port_);
        if (s < 0) {
          close(c);
          continue;
        }
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        SetNonBlocking(c);
        auto p = std::make_unique<Pipe>();
        p->client = c;
        p->server = s;
        pipes_.push_back(std::move(p));
      }
    }
    amqpgw::MutexLock lock(&mu_);
    absl::Time now = absl::Now();
    size_t i = 2;
    for (auto& p : pipes_) {
      if (p->stalled) continue;
      if (i + 1 >= fds.size() || fds[i].fd != p->client) break;  // new pipe
      pollfd cf = fds[i], sf = fds[i + 1];
      i += 2;
      if (p->client < 0) continue;  // cut meanwhile
      bool dead = false;
      auto pump_in = [&](int from, std::deque<Chunk>& q) {
        char buf[65536];
        ssize_t n = read(from, buf, sizeof(buf));
        if (n > 0) {
          std::string data(buf, n);
          if (from == p->client && !poison_.empty()) {
            // The marker may straddle two reads: look at the tail too.
            std::string scan = p->scan_tail + data;
            size_t at = scan.find(poison_);
            if (at != std::string::npos) {
              size_t keep =
                  at > p->scan_tail.size() ? at - p->scan_tail.size() : 0;
              if (keep > 0) q.push_back({now, data.substr(0, keep)});
              p->to_client.push_back({now, ConnectionCloseFrame()});
              p->poisoned = true;
              ++poisoned_;
              return;
            }
            size_t tail = std::min(scan.size(), poison_.size() - 1);
            p->scan_tail = scan.substr(scan.size() - tail);
          }
          q.push_back({now + delay_, std::move(data)});
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          dead = true;
        }
      };
      auto pump_out = [&](int to, std::deque<Chunk>& q) {
        while (!q.empty() && q.front().due <= now) {
          std::string& d = q.front().data;
          ssize_t n = write(to, d.data(), d.size());
          if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) dead = true;
            return;
          }
          d.erase(0, n);
          if (!d.empty()) return;
          q.pop_front();
        }
      };
      if (!p->poisoned && (cf.revents & (POLLIN | POLLHUP | POLLERR)))
        pump_in(p->client, p->to_server);
      if (!p->poisoned && (sf.revents & (POLLIN | POLLHUP | POLLERR)))
        pump_in(p->server, p->to_client);
      pump_out(p->server, p->to_server);
      pump_out(p->client, p->to_client);
      if (p->poisoned && p->to_client.empty()) {
        CloseLocked(*p, /*graceful=*/true);
      } else if (dead) {
        CloseLocked(*p);
      }
    }
  }
}

}  // namespace amqpgw::testing
