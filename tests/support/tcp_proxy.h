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
  // From now on, a connection whose client sends `marker` (empty: none) is
  // treated as a broker that cannot handle that message treats it: the bytes
  // before the marker are forwarded, the client gets a connection.close
  // (541 INTERNAL_ERROR, for basic.publish) and then EOF, and the broker side
  // is closed. For poison-message tests that must not depend on what the
  // gateway refuses before sending.
  void SetPoison(std::string marker);
  // Connections closed so by SetPoison.
  int poisoned() const { return poisoned_.load(); }
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
    // SetPoison: the client's last bytes, for a marker split across reads;
    // once poisoned, the pipe closes when its bytes to the client are out.
    std::string scan_tail;
    bool poisoned = false;
    std::deque<Chunk> to_server;
    std::deque<Chunk> to_client;
  };

  void Run();
  // Closes both sides; the client with a RST unless `graceful` (a FIN after
  // what was written to it).
  void CloseLocked(Pipe& p, bool graceful = false)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Wake();

  int listen_fd_ = -1;
  int port_ = 0;
  int target_port_;
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> poisoned_{0};
  std::thread thread_;

  amqpgw::Mutex mu_;
  std::vector<std::unique_ptr<Pipe>> pipes_ ABSL_GUARDED_BY(mu_);
  absl::Duration delay_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  bool refuse_ ABSL_GUARDED_BY(mu_) = false;
  std::string poison_ ABSL_GUARDED_BY(mu_);
};

}  // namespace amqpgw::testing

#endif  // AMQPGW_TESTS_SUPPORT_TCP_PROXY_H_
