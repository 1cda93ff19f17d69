// A loopback TCP proxy for fault injection between the gateway and a broker:
// it can cut connections, stall them silently (a black-holed link: nothing
// forwarded, nothing closed), delay traffic, or refuse new connections.
//
// Thread safety: all methods may be called from any thread. One internal
// thread moves the bytes.
#ifndef AMQPGW_TESTS_SUPPORT_TCP_PROXY_H_
#define AMQPGW_TESTS_SUPPORT_TCP_PROXY_H_

#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "server/base/sync.h"

namespace amqpgw::testing {

class TcpProxy {
 public:
  // Listens on 127.0.0.1 (a free port) and forwards to 127.0.0.1:target.
  explicit TcpProxy(int target_port);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }
  // amqp://guest:guest@127.0.0.1:<port>/
  std::string uri() const;

  // Closes every open connection (both sides see EOF/RST).
  void CutAll();
  // Existing connections stop moving bytes, without closing: the peers see
  // silence. New connections are unaffected. Lifted by CutAll().
  void StallAll();
  // Every byte is held for `delay` before it is forwarded (0 to stop).
  void SetDelay(absl::Duration delay);
  // New connections are accepted and closed at once.
  void SetRefuse(bool refuse);
  // Connections accepted so far.
  int accepted() const { return accepted_.load(); }
  int open_connections() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Chunk {
    absl::Time due;
    std::string data;
  };
  struct Pipe {
    int client = -1;
    int server = -1;
    bool stalled = false;
    std::deque<Chunk> to_server;
    std::deque<Chunk> to_client;
  };

  void Run();
  void CloseLocked(Pipe& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Wake();

  int listen_fd_ = -1;
  int port_ = 0;
  int target_port_;
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;

  amqpgw::Mutex mu_;
  std::vector<std::unique_ptr<Pipe>> pipes_ ABSL_GUARDED_BY(mu_);
  absl::Duration delay_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  bool refuse_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace amqpgw::testing

#endif  // AMQPGW_TESTS_SUPPORT_TCP_PROXY_H_
